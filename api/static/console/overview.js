// The front page: queue and workers (from /metrics?format=json) and recent runs by
// status (threads by last update, then each thread's runs), refreshed every 2 s.
import { get, post } from "./api.js";
import { ago, h, status, table } from "./dom.js";

const STATUSES = ["", "pending", "running", "success", "error", "interrupted", "timeout"];
const filters = { status: "", graph: "", thread: "" };

function sample(metrics, family, labels = {}) {
  const samples = metrics[family]?.samples ?? [];
  const found = samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found?.value ?? 0;
}

function seconds(value) {
  return value < 60 ? `${value.toFixed(1)} s` : `${(value / 60).toFixed(1)} min`;
}

function cards(metrics) {
  const card = (label, value, id) => h("div", { class: "card", "data-testid": id }, h("b", {}, value), label);
  return h(
    "section",
    { class: "cards" },
    card("queue depth", sample(metrics, "broker_queue_depth"), "queue-depth"),
    card("oldest pending", seconds(sample(metrics, "broker_queue_oldest_age_seconds")), "oldest-pending"),
    card("pending runs", sample(metrics, "broker_runs", { status: "pending" }), "runs-pending"),
    card("running runs", sample(metrics, "broker_runs", { status: "running" }), "runs-running"),
    card("workers alive", sample(metrics, "broker_workers_alive"), "workers-alive"),
  );
}

function workers(metrics) {
  const slots = metrics.broker_worker_slots?.samples ?? [];
  const rows = slots.map((s) => {
    const busy = sample(metrics, "broker_worker_slots_busy", { worker: s.labels.worker });
    const claimed = sample(metrics, "broker_runs_claimed", { worker: s.labels.worker });
    return h("tr", {}, h("td", {}, s.labels.worker), h("td", {}, `${busy} / ${s.value}`), h("td", {}, claimed));
  });
  return table(["worker", "slots busy", "runs claimed"], rows, { "data-testid": "workers" });
}

async function recentRuns() {
  const search = { limit: 25, sort_by: "updated_at", sort_order: "desc" };
  if (filters.graph) search.metadata = { graph_id: filters.graph };
  const threads = filters.thread
    ? [await get(`threads/${filters.thread}`)]
    : await post("threads/search", search);
  const query = `limit=20${filters.status ? `&status=${filters.status}` : ""}`;
  const lists = await Promise.all(
    threads.map((t) =>
      get(`threads/${t.thread_id}/runs?${query}`).then((runs) =>
        runs.map((run) => ({ ...run, graph: t.metadata?.graph_id ?? "", thread_status: t.status })),
      ),
    ),
  );
  return lists.flat().sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, 50);
}

function runRow(run) {
  return h(
    "tr",
    { "data-run": run.run_id },
    h("td", {}, h("a", { href: `#/run/${run.thread_id}/${run.run_id}` }, run.run_id)),
    h("td", {}, h("a", { href: `#/thread/${run.thread_id}` }, run.thread_id)),
    h("td", {}, status(run.thread_status)),
    h("td", {}, run.graph),
    h("td", {}, status(run.status)),
    h("td", {}, ago(run.created_at)),
    h("td", {}, ago(run.updated_at)),
  );
}

function filterBar(refresh) {
  const set = (key) => (event) => {
    filters[key] = event.target.value.trim();
    refresh();
  };
  return h(
    "form",
    { class: "filters", onsubmit: (e) => e.preventDefault() },
    h("label", {}, "status ", h("select", { "aria-label": "status", onchange: set("status") },
      STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s || "any")))),
    h("label", {}, "graph ", h("input", { "aria-label": "graph", value: filters.graph, onchange: set("graph") })),
    h("label", {}, "thread ", h("input", { "aria-label": "thread", value: filters.thread, onchange: set("thread"), size: 36 })),
  );
}

export async function overview(root, signal) {
  const top = h("div");
  const runs = h("div");
  root.replaceChildren(top, h("h2", {}, "Runs"), filterBar(() => refresh()), runs);
  async function refresh() {
    const [metrics, recent] = await Promise.all([get("metrics?format=json"), recentRuns()]);
    if (signal.aborted) return;
    top.replaceChildren(cards(metrics), h("h2", {}, "Workers"), workers(metrics));
    runs.replaceChildren(
      table(["run", "thread", "thread status", "graph", "run status", "created", "updated"], recent.map(runRow), {
        "data-testid": "runs",
      }),
    );
  }
  return refresh;
}

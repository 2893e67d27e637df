// One thread: its status, its runs, and its checkpoint timeline (POST /threads/{id}/history):
// each step's node(s), what changed from the step before, and the values at that step.
import { get, post } from "./api.js";
import { ago, h, status, table } from "./dom.js";
import { diff, readable } from "./values.js";

// A checkpoint was made by the tasks of the one before it (that checkpoint's `tasks`).
function timeline(history) {
  const oldestFirst = [...history].reverse();
  return oldestFirst.map((state, i) => {
    const parent = i > 0 ? oldestFirst[i - 1] : null;
    const nodes = parent?.tasks?.map((t) => t.name) ?? [];
    return { state, nodes, changes: diff(parent?.values, state.values) };
  });
}

function stepView({ state, nodes, changes }) {
  const step = state.metadata?.step;
  return h(
    "li",
    { class: "step", "data-testid": "step", "data-step": step },
    h(
      "div",
      { class: "step-head" },
      h("b", {}, `step ${step}`),
      h("span", { class: "node" }, nodes.length ? nodes.join(", ") : state.metadata?.source ?? ""),
      h("span", { class: "muted" }, ago(state.created_at)),
      state.next?.length ? h("span", { class: "muted" }, `next: ${state.next.join(", ")}`) : null,
    ),
    h(
      "ul",
      { class: "changes" },
      changes.length
        ? changes.map((c) =>
            h("li", { class: c.kind }, h("code", {}, c.key), ` ${c.kind} `, h("pre", {}, c.text)),
          )
        : h("li", { class: "muted" }, "no change in values"),
    ),
    h(
      "details",
      {},
      h("summary", {}, "values"),
      Object.entries(state.values ?? {}).map(([key, value]) =>
        h("div", {}, h("code", {}, key), h("pre", {}, readable(value))),
      ),
    ),
  );
}

export async function threadView(root, signal, threadId) {
  let shown = null; // what is on screen: redrawn only when it changed (open details stay open)
  async function refresh() {
    const [thread, runs, history] = await Promise.all([
      get(`threads/${threadId}`),
      get(`threads/${threadId}/runs?limit=50`),
      post(`threads/${threadId}/history`, { limit: 100 }),
    ]);
    const seen = JSON.stringify([thread.updated_at, thread.status, runs, history.length]);
    if (signal.aborted || seen === shown) return;
    shown = seen;
    const runRows = runs.map((run) =>
      h(
        "tr",
        {},
        h("td", {}, h("a", { href: `#/run/${threadId}/${run.run_id}` }, run.run_id)),
        h("td", {}, status(run.status)),
        h("td", {}, ago(run.created_at)),
      ),
    );
    root.replaceChildren(
      h("h2", {}, "Thread ", h("code", {}, threadId), " ", status(thread.status)),
      h("p", { class: "muted" }, `graph ${thread.metadata?.graph_id ?? "?"} · updated ${ago(thread.updated_at)}`),
      h("h3", {}, "Runs"),
      table(["run", "status", "created"], runRows, { "data-testid": "thread-runs" }),
      h("h3", {}, `Checkpoints (${history.length})`),
      h("ol", { class: "timeline", "data-testid": "timeline" }, timeline(history).map(stepView)),
    );
  }
  return refresh;
}

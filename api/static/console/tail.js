// A live tail of one run's events: its join stream (GET /threads/{id}/runs/{run_id}/stream),
// one line per event as it arrives, until the run ends. A run started with
// stream_resumable (useStream's runs are) is replayed from its first event.
import { get, stream } from "./api.js";
import { h, status } from "./dom.js";

function line(event, data) {
  const text = JSON.stringify(data);
  return h("li", { "data-event": event }, h("b", {}, event), " ", text.length > 400 ? `${text.slice(0, 400)}…` : text);
}

export async function runTail(root, signal, threadId, runId) {
  const head = h("p");
  const events = h("ol", { class: "events", "data-testid": "events" });
  const state = h("p", { class: "muted", "data-testid": "tail-state" }, "following…");
  root.replaceChildren(
    h("h2", {}, "Run ", h("code", {}, runId)),
    h("p", {}, "thread ", h("a", { href: `#/thread/${threadId}` }, threadId)),
    head,
    events,
    state,
  );
  const showStatus = async () => {
    const run = await get(`threads/${threadId}/runs/${runId}`);
    head.replaceChildren("status ", status(run.status));
  };
  await showStatus();
  stream(
    `threads/${threadId}/runs/${runId}/stream`, // every mode the run was started with
    (event, data) => events.append(line(event, data)),
    signal,
    { "Last-Event-ID": "-1" }, // a resumable run's events from its start; others: live on
  )
    .then(async () => {
      state.textContent = "the run's stream ended";
      await showStatus();
    })
    .catch((error) => {
      if (!signal.aborted) state.textContent = `stream stopped: ${error.message}`;
    });
  return showStatus;
}

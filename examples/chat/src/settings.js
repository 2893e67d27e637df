// Where the page talks to, from its URL: ?api=http://127.0.0.1:2024&assistant=agent&thread=…
// (defaults: `make run`'s address and the `agent` example graph).
const params = new URLSearchParams(window.location.search);

export const apiUrl = params.get("api") ?? "http://127.0.0.1:2024";
export const assistantId = params.get("assistant") ?? "agent";
export const initialThreadId = params.get("thread");

// The thread lives in the URL, so a reload finds it (and `reconnectOnMount` its run).
export function rememberThread(threadId) {
  const url = new URL(window.location.href);
  url.searchParams.set("thread", threadId);
  window.history.replaceState(null, "", url);
}

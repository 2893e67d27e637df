// Routes (#/, #/thread/{id}, #/run/{thread}/{run}); the shown view refreshes every 2 s.
import { saveHeaders, savedHeaders } from "./api.js";
import { overview } from "./overview.js";
import { runTail } from "./tail.js";
import { threadView } from "./thread.js";

const REFRESH_MS = 2000;
const view = document.getElementById("view");
const errorBox = document.getElementById("error");
let current = null; // {controller, timer}

function showError(error) {
  errorBox.hidden = !error;
  errorBox.textContent = error ? String(error.message ?? error) : "";
}

async function route() {
  if (current) {
    current.controller.abort();
    clearInterval(current.timer);
  }
  const controller = new AbortController();
  const [, kind, ...ids] = (location.hash || "#/").slice(1).split("/");
  const open = { thread: threadView, run: runTail }[kind] ?? overview;
  const refresh = await open(view, controller.signal, ...ids);
  const tick = () => refresh().then(() => showError(null), showError);
  current = { controller, timer: setInterval(tick, REFRESH_MS) };
  tick();
}

const headers = document.getElementById("headers");
headers.value = savedHeaders();
document.getElementById("save-headers").addEventListener("click", () => {
  try {
    saveHeaders(headers.value);
    route();
  } catch (error) {
    showError(new Error(`Headers: ${error.message}`));
  }
});

window.addEventListener("hashchange", route);
route().catch(showError);

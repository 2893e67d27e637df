// The broker's own HTTP API, read with the headers the user gave (custom auth).
// Same origin as the console: no CORS, no API URL to configure. The API's root is the
// folder above /console/ (so a server behind a path prefix works too).
const ROOT = new URL("../", document.baseURI);
const url = (path) => new URL(path, ROOT);

const HEADERS_KEY = "broker-console-headers";

export function savedHeaders() {
  return localStorage.getItem(HEADERS_KEY) ?? "{}";
}

export function saveHeaders(text) {
  JSON.parse(text); // refuse what would break every request
  localStorage.setItem(HEADERS_KEY, text);
}

function headers(extra = {}) {
  return { ...JSON.parse(savedHeaders()), ...extra };
}

export class ApiError extends Error {}

async function call(method, path, body) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const response = await fetch(url(path), init);
  if (!response.ok) {
    const detail = await response.json().then((j) => j.detail, () => response.statusText);
    throw new ApiError(`${method} ${path}: ${response.status} ${detail}`);
  }
  return response.json();
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);

// Server-sent events over fetch (EventSource cannot send headers): calls onEvent(event,
// data) per frame until the stream ends or `signal` aborts it. `extra` headers: e.g.
// Last-Event-ID.
export async function stream(path, onEvent, signal, extra = {}) {
  const response = await fetch(url(path), { headers: headers(extra), signal });
  if (!response.ok) throw new ApiError(`GET ${path}: ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n/g, "\n"); // servers may end lines with CRLF
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: ?(.*)$/m.exec(frame)?.[1];
      const data = [...frame.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join("\n");
      if (event) onEvent(event, data ? JSON.parse(data) : null);
    }
  }
}

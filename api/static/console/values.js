// A checkpoint's values as people read them, and what changed from the step before.

function isMessage(item) {
  return item && typeof item === "object" && "type" in item && "content" in item;
}

function messageText(message) {
  const content =
    typeof message.content === "string"
      ? message.content
      : message.content.map((part) => part.text ?? JSON.stringify(part)).join("");
  const calls = (message.tool_calls ?? []).map((c) => `${c.name}(${JSON.stringify(c.args)})`);
  return `${message.type}: ${[content, ...calls].filter(Boolean).join(" ")}`;
}

// One value as text: a list of messages is one line per message, the rest is JSON.
export function readable(value) {
  if (Array.isArray(value) && value.length && value.every(isMessage)) {
    return value.map(messageText).join("\n");
  }
  return JSON.stringify(value, null, 1);
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// [{key, kind: added|removed|changed|appended, text}] between two values dicts.
export function diff(before, after) {
  before = before ?? {};
  after = after ?? {};
  const changes = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const [old, now] = [before[key], after[key]];
    if (!(key in before)) changes.push({ key, kind: "added", text: readable(now) });
    else if (!(key in after)) changes.push({ key, kind: "removed", text: readable(old) });
    else if (same(old, now)) continue;
    else if (Array.isArray(old) && Array.isArray(now) && old.every((x, i) => same(x, now[i]))) {
      changes.push({ key, kind: "appended", text: readable(now.slice(old.length)) });
    } else changes.push({ key, kind: "changed", text: `${readable(old)}\n→ ${readable(now)}` });
  }
  return changes;
}

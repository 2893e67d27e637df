import { useState } from "react";
import { useStream } from "@langchain/langgraph-sdk/react";
import { apiUrl, assistantId, initialThreadId, rememberThread } from "./settings.js";

export function App() {
  const [threadId, setThreadId] = useState(initialThreadId);
  const thread = useStream({
    apiUrl,
    assistantId,
    threadId,
    onThreadId: (id) => {
      setThreadId(id);
      rememberThread(id);
    },
    messagesKey: "messages",
    reconnectOnMount: true, // a reload joins the run still going on the server
  });

  return (
    <main>
      <header>
        <h1>Chat</h1>
        <span className="where">
          {assistantId} @ {apiUrl}
          {threadId ? ` · thread ${threadId}` : ""}
        </span>
      </header>
      <Messages messages={thread.messages} />
      {thread.error ? <p className="error">{String(thread.error?.message ?? thread.error)}</p> : null}
      {thread.interrupt ? (
        <Interrupt interrupt={thread.interrupt} onAnswer={(answer) => thread.submit(undefined, { command: { resume: answer } })} />
      ) : null}
      <Composer
        busy={thread.isLoading}
        onSend={(text) => thread.submit({ messages: [{ type: "human", content: text }] })}
        onStop={() => thread.stop()}
      />
    </main>
  );
}

function Messages({ messages }) {
  return (
    <ol className="messages" data-testid="messages">
      {messages
        .filter((m) => m.type === "human" || (m.type === "ai" && text(m)))
        .map((m) => (
          <li key={m.id} className={m.type} data-testid={`message-${m.type}`}>
            {text(m)}
          </li>
        ))}
    </ol>
  );
}

function text(message) {
  const { content } = message;
  if (typeof content === "string") return content;
  return content.map((part) => (part.type === "text" ? part.text : "")).join("");
}

function Interrupt({ interrupt, onAnswer }) {
  const value = interrupt.value ?? {};
  const options = value.options ?? ["yes", "no"];
  return (
    <section className="interrupt" data-testid="interrupt">
      <p>{value.question ?? JSON.stringify(value)}</p>
      {options.map((option) => (
        <button key={option} onClick={() => onAnswer(option)}>
          {option}
        </button>
      ))}
    </section>
  );
}

function Composer({ busy, onSend, onStop }) {
  const [draft, setDraft] = useState("");
  const send = (event) => {
    event.preventDefault();
    if (!draft.trim()) return;
    onSend(draft);
    setDraft("");
  };
  return (
    <form className="composer" onSubmit={send}>
      <input
        aria-label="message"
        value={draft}
        onChange={(event) => setDraft(event.target.value)}
        placeholder="Say something (ask about the weather in sf)"
      />
      {busy ? (
        <button type="button" onClick={onStop}>
          Stop
        </button>
      ) : (
        <button type="submit">Send</button>
      )}
    </form>
  );
}

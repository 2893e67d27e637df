// The seed's JavaScript example (shared/seed/streaming-api.zh.md), against the broker:
//   node stream.mjs <api url> <stream mode>
// It prints one line per chunk: the event name, a tab, then chunk.data as JSON.
import { Client } from "@langchain/langgraph-sdk";

const [apiUrl, streamMode = "updates"] = process.argv.slice(2);
const client = new Client({ apiUrl, apiKey: null });

// Use the deployed graph named "agent"
const assistantID = "agent";
const input = { messages: [{ role: "user", content: "what's the weather in sf" }] };

// Create a thread
const thread = await client.threads.create();
const threadID = thread["thread_id"];

// Create a streaming run
const streamResponse = client.runs.stream(threadID, assistantID, {
  input,
  streamMode,
});
for await (const chunk of streamResponse) {
  console.log(`${chunk.event}\t${JSON.stringify(chunk.data)}`);
}

"""The SDK's thread-centric streaming protocol (`client.threads.stream`): commands that
start and resume runs, and the thread's events as protocol events over SSE or WebSocket."""

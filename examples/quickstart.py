"""The README's quick start: the seed's streaming example against a running broker.

python examples/quickstart.py [URL]      (default http://127.0.0.1:2024)
"""

import asyncio
import sys

from langgraph_sdk import get_client


async def main(url: str) -> None:
    client = get_client(url=url)
    assistant_id = "agent"  # a graph id from langgraph.json
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    inputs = {"messages": [{"role": "user", "content": "what's the weather in sf"}]}
    async for chunk in client.runs.stream(
        thread_id, assistant_id, input=inputs, stream_mode="updates"
    ):
        print(chunk.event, chunk.data)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:2024"))

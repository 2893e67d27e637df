"""The `subgraph` example streamed with its subgraph's events (`updates|research:<id>`).

python examples/stream_subgraphs.py [URL]      (default http://127.0.0.1:2024)
"""

import asyncio
import sys

from langgraph_sdk import get_client


async def main(url: str) -> None:
    client = get_client(url=url)
    async for chunk in client.runs.stream(
        None,  # a stateless run: no thread to keep
        "subgraph",
        input={"topic": "llamas"},
        stream_mode="updates",
        stream_subgraphs=True,
    ):
        print(chunk.event, chunk.data)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:2024"))

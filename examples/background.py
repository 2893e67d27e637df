"""A background run joined later: start it, walk away, come back to its stream.

python examples/background.py [URL]      (default http://127.0.0.1:2024)
"""

import asyncio
import sys

from langgraph_sdk import get_client


async def main(url: str) -> None:
    client = get_client(url=url)
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "slow", input={"steps": 5, "delay": 0.5}, stream_mode="values"
    )
    print("started run", run["run_id"], run["status"])
    await asyncio.sleep(1.2)  # ... do something else ...
    # Joining is live: it receives what happens from now on, not what came before.
    async for chunk in client.runs.join_stream(thread["thread_id"], run["run_id"]):
        print(chunk.event, chunk.data)
    final = await client.runs.get(thread["thread_id"], run["run_id"])
    print("run ended:", final["status"])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:2024"))

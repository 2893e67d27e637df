"""A cron on a thread: the `agent` graph every weekday at 9:00, Paris time.

python examples/crons.py [URL]      (default http://127.0.0.1:2024)
"""

import asyncio
import sys

from langgraph_sdk import get_client


async def main(url: str) -> None:
    client = get_client(url=url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    cron = await client.crons.create_for_thread(
        thread_id,
        "agent",
        schedule="0 9 * * 1-5",
        timezone="Europe/Paris",
        input={"messages": [{"role": "user", "content": "daily digest"}]},
    )
    cron["next_run_date"]  # when it fires next, in UTC
    print("next run:", cron["next_run_date"])
    await client.crons.delete(cron["cron_id"])  # an example should leave nothing behind


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:2024"))

"""The relay of a run's frames to one client: what it does when the run is seen ended."""

from __future__ import annotations

from typing import Any

from api.sse import HEARTBEAT, Relay
from broker.events import LocalEventBus, Silence, end_message, sse_frame


async def _collect(relay: Relay) -> list[bytes]:
    return [frame async for frame in relay.frames()]


async def test_frames_in_flight_when_the_run_is_seen_ended_are_still_relayed() -> None:
    """A poll on silence finds the run ended while its last frame is on its way."""
    bus = LocalEventBus()
    subscription = await bus.subscribe("run")
    last = sse_frame("values", b'{"done": 5}')

    async def poll() -> dict[str, Any] | None:
        await bus.publish("run", last)  # published before the run ended; arrives just after
        return {"done": 5}

    frames = await _collect(Relay(subscription, 0.01, poll))
    assert frames == [last]


async def test_the_end_marker_ends_the_stream_without_polling() -> None:
    bus = LocalEventBus()
    subscription = await bus.subscribe("run")
    first = sse_frame("values", b"{}")
    await bus.publish("run", first)
    await bus.publish("run", end_message({"status": "success", "output": {}}))

    async def poll() -> dict[str, Any] | None:
        raise AssertionError("no silence, no poll")

    assert await _collect(Relay(subscription, 5.0, poll)) == [first]


async def test_silence_of_a_live_run_sends_heartbeats() -> None:
    polls = 0

    async def poll() -> dict[str, Any] | None:
        nonlocal polls
        polls += 1
        return None if polls < 3 else {}

    assert await _collect(Relay(Silence(), 0.01, poll)) == [HEARTBEAT, HEARTBEAT]

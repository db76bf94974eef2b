"""The control channel against a real Redis server, through a proxy that can make it go silent."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from tests.servers import Proxy, RedisServer
from workers.control import follow


async def test_cancels_are_heard_and_a_silent_channel_is_renewed(redis_server: RedisServer) -> None:
    async with Proxy(redis_server.port) as proxy:
        through_proxy = Redis.from_url(f"redis://127.0.0.1:{proxy.port}/0")
        publisher = Redis.from_url(redis_server.url)
        control = through_proxy.pubsub()
        await control.subscribe("control")
        assert await control.get_message(timeout=5) is not None  # the first confirmation, as at startup
        cancels: asyncio.Queue[str] = asyncio.Queue()
        renewed = asyncio.Event()
        changed = asyncio.Event()

        async def policy_changed() -> None:
            changed.set()

        async def resubscribed() -> None:
            renewed.set()

        following = asyncio.create_task(
            follow(
                control,
                quiet_s=0.3,
                cancel=cancels.put_nowait,
                resubscribed=resubscribed,
                policy_changed=policy_changed,
            )
        )
        try:
            await asyncio.sleep(0.5)  # quiet: a PING goes out and is answered; the channel stays
            assert not renewed.is_set()
            await publisher.publish("control", "cancel a")
            assert await asyncio.wait_for(cancels.get(), 5) == "a"
            proxy.silence()  # open and mute, as a connection a NAT dropped
            await asyncio.wait_for(renewed.wait(), 5)  # dropped after two quiet periods, subscribed anew
            await publisher.publish("control", "cancel b")
            assert await asyncio.wait_for(cancels.get(), 5) == "b"
            await publisher.publish("control", "policy 7")  # the allowed-models policy changed
            await asyncio.wait_for(changed.wait(), 5)
        finally:
            following.cancel()
            await control.aclose()
            await through_proxy.aclose()
            await publisher.aclose()

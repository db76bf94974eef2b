"""The client's pub/sub hub against a real Redis, through a proxy that delays or cuts its connection."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
from redis.asyncio import Redis

from jobstore import Keys
from producer import LLMClient
from producer.channels import ChannelHub
from schemas.codec import encode_response
from schemas.errors import FleetUnavailableError
from schemas.request import LLMRequest
from schemas.response import LLMResponse, Usage
from schemas.settings import FleetSettings
from tests.servers import Proxy, RedisServer


async def test_reconnect_hooks_run_only_once_the_channels_are_live_again(redis_server: RedisServer) -> None:
    """Redis processes the hub's resubscription late (the proxy holds it back): a re-read hook that ran
    before it could miss a message published in between, so the hook must find the channel subscribed."""
    channel = f"hub-{uuid.uuid4().hex}"
    direct = Redis.from_url(redis_server.url)
    received: list[bytes] = []
    arrived = asyncio.Event()
    subscribers_seen_by_hook: list[int] = []
    hooked = asyncio.Event()

    async def reread() -> None:
        subscribers_seen_by_hook.append((await direct.pubsub_numsub(channel))[0][1])
        hooked.set()

    async with Proxy(redis_server.port, delay_s=0.2) as proxy:
        hub = ChannelHub(Redis(port=proxy.port))
        hub.on_reconnect.append(reread)
        await hub.subscribe(channel, lambda data: (received.append(data), arrived.set()))
        proxy.cut()
        await asyncio.wait_for(hooked.wait(), 10)
        await direct.publish(channel, b"after the re-read")
        await asyncio.wait_for(arrived.wait(), 5)
        await hub.close()
    await direct.aclose()
    assert subscribers_seen_by_hook == [1]
    assert received == [b"after the re-read"]


async def test_a_result_whose_message_was_lost_reaches_its_waiting_caller(redis_server: RedisServer) -> None:
    """The worker's finish ran but its message never left Redis (killed before flushing): the client, on
    reconnecting, re-reads its waiting requests and returns the stored result."""
    async with Proxy(redis_server.port, delay_s=0.05) as proxy:
        settings = FleetSettings(REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0", LLM_KEY_PREFIX=uuid.uuid4().hex[:8])
        async with LLMClient(settings=settings) as client:
            request = LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
            await client.submit(request)  # no worker serves this prefix: the request stays queued
            waiting = asyncio.create_task(client.result(request.request_id, timeout=30))
            await asyncio.sleep(0.3)  # its attach (delayed 50 ms by the proxy) is done: it waits on the channel
            assert not waiting.done()
            proxy.cut()
            direct = Redis.from_url(redis_server.url)
            key = Keys(settings.key_prefix).request(request.request_id)
            response = LLMResponse(
                content="stored while the channel was down",
                usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
                latency_ms=1.0,
                provider="openai",
                model="gpt-4.1-mini",
                finish_reason="stop",
                request_id=request.request_id,
                trace_id=request.trace_id,
            )
            await direct.hset(key, mapping={"state": "done", "result": encode_response(response)})
            assert await asyncio.wait_for(waiting, 10) == response
            await direct.aclose()


async def test_two_readers_of_one_channel_each_get_every_message(redis_server: RedisServer) -> None:
    """Two readers of the same stream in one client: both hear it; one leaving does not deafen the other,
    and the channel is unsubscribed only when the last has left."""
    channel = f"hub-{uuid.uuid4().hex}"
    direct = Redis.from_url(redis_server.url)
    first: list[bytes] = []
    second: list[bytes] = []

    async def subscribers(expected: int) -> int:
        for _ in range(200):
            count = int((await direct.pubsub_numsub(channel))[0][1])
            if count == expected:
                break
            await asyncio.sleep(0.01)
        return count

    async def heard(messages: list[bytes], n: int) -> None:
        for _ in range(200):
            if len(messages) >= n:
                return
            await asyncio.sleep(0.01)

    hub = ChannelHub(Redis.from_url(redis_server.url))
    await asyncio.gather(hub.subscribe(channel, first.append), hub.subscribe(channel, second.append))
    await direct.publish(channel, b"one")
    await heard(first, 1)
    await heard(second, 1)
    await hub.unsubscribe(channel, first.append)
    after_one_left = await subscribers(1)
    await direct.publish(channel, b"two")
    await heard(second, 2)
    await hub.unsubscribe(channel, second.append)
    after_both_left = await subscribers(0)
    await hub.close()
    await direct.aclose()
    assert (first, second) == ([b"one"], [b"one", b"two"])
    assert (after_one_left, after_both_left) == (1, 0)


async def test_a_subscription_given_up_leaves_neither_its_reader_nor_its_channel(redis_server: RedisServer) -> None:
    """A reader stops waiting after its SUBSCRIBE has left but before Redis has confirmed it (the proxy
    holds it back): its handler must not hear the channel later, and the hub must not stay subscribed."""
    channel = f"hub-{uuid.uuid4().hex}"
    direct = Redis.from_url(redis_server.url)
    heard: list[bytes] = []
    async with Proxy(redis_server.port, delay_s=0.3) as proxy:
        hub = ChannelHub(Redis(port=proxy.port))
        await hub.subscribe(f"{channel}-first", heard.append)  # the hub's connection is up
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.subscribe(channel, heard.append), 0.05)
        await asyncio.sleep(0.5)  # the SUBSCRIBE has reached Redis by now, and what followed it
        for _ in range(100):
            if (await direct.pubsub_numsub(channel))[0][1] == 0:
                break
            await asyncio.sleep(0.02)
        subscribers = (await direct.pubsub_numsub(channel))[0][1]
        await direct.publish(channel, b"for nobody")
        await asyncio.sleep(0.2)
        await hub.close()
    await direct.aclose()
    assert (subscribers, heard) == (0, [])


async def test_a_refused_reply_channel_fails_connect_typed_and_leaves_no_connection(redis_server: RedisServer) -> None:
    """An ACL user without channel rights (Redis 7's default for a new user): connecting fails at once with a
    typed error, instead of waiting forever for a confirmation that never comes, and closes what it opened."""
    user = f"nochannels-{uuid.uuid4().hex[:8]}"
    direct = Redis.from_url(redis_server.url)
    await direct.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"], reset_channels=True)
    before = len(await direct.client_list())
    client = LLMClient(f"redis://{user}:pw@127.0.0.1:{redis_server.port}/0")
    try:
        with pytest.raises(FleetUnavailableError, match="refused a subscription") as refused:
            await asyncio.wait_for(client.connect(), 5)
        for _ in range(100):
            if len(await direct.client_list()) == before:
                break
            await asyncio.sleep(0.02)
        after = len(await direct.client_list())
    finally:
        await direct.acl_deluser(user)
        await direct.aclose()
    assert refused.value.retryable is False
    assert after == before


async def test_a_refused_submit_fails_typed_at_once(redis_server: RedisServer) -> None:
    """An ACL user that may not run scripts: `complete` fails at once with a typed, non-retryable error
    (before: redis-py's untyped NoPermissionError)."""
    user = f"noscripts-{uuid.uuid4().hex[:8]}"
    direct = Redis.from_url(redis_server.url)
    await direct.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["*"], channels=["*"], commands=["+@all", "-evalsha"]
    )
    try:
        async with LLMClient(f"redis://{user}:pw@127.0.0.1:{redis_server.port}/0") as client:
            with pytest.raises(FleetUnavailableError, match="Redis refused") as refused:
                await asyncio.wait_for(
                    client.complete(LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])), 5
                )
    finally:
        await direct.acl_deluser(user)
        await direct.aclose()
    assert refused.value.retryable is False


async def test_a_redis_that_stops_answering_is_given_up_on_within_the_timeout(redis_server: RedisServer) -> None:
    """Redis hears nothing more after the client connected (a frozen server, or one gone without a word):
    `complete` fails typed once its timeout has passed, instead of waiting on its submit for ever."""
    async with Proxy(redis_server.port) as proxy:
        settings = FleetSettings(REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0", LLM_KEY_PREFIX=uuid.uuid4().hex[:8])
        async with LLMClient(settings=settings) as client:
            proxy.delay_s = 3600
            started = time.monotonic()
            with pytest.raises(FleetUnavailableError, match="no answer in time") as gone:
                await asyncio.wait_for(
                    client.complete(
                        LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}]), timeout=1
                    ),
                    30,
                )
            waited = time.monotonic() - started
    assert gone.value.retryable
    assert 1 <= waited < 3


async def test_a_channel_gone_silent_is_dropped_reconnected_and_reread(redis_server: RedisServer) -> None:
    """The hub's connection stays open and passes nothing on (a server gone without a word): the hub PINGs
    it once it has been quiet, drops it when no answer comes, and reconnects, so its readers re-read what
    they missed and hear what comes next."""
    channel = f"hub-{uuid.uuid4().hex}"
    direct = Redis.from_url(redis_server.url)
    heard: list[bytes] = []
    reread = asyncio.Event()

    async def hook() -> None:
        reread.set()

    async with Proxy(redis_server.port) as proxy:
        hub = ChannelHub(Redis(port=proxy.port), silence_s=0.2)
        hub.on_reconnect.append(hook)
        await hub.subscribe(channel, heard.append)
        await asyncio.sleep(0.5)  # quiet, but answering: the PING is answered, nothing is dropped
        assert not reread.is_set()
        proxy.silence()
        await direct.publish(channel, b"into the silence")
        await asyncio.wait_for(reread.wait(), 5)
        await direct.publish(channel, b"after")
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
        await hub.close()
    await direct.aclose()
    assert heard == [b"after"]

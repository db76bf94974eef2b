"""One multiplexed pub/sub connection per client, shared by every reply and stream subscription.

`subscribe` returns once Redis has confirmed the subscription, so whatever a caller reads from Redis
afterwards cannot miss a message published later. When the connection drops, the hub reconnects
(redis-py resubscribes every channel) and, once Redis has answered a PING sent behind the
resubscriptions (so every channel is live again), calls the `on_reconnect` hooks, so callers re-read
what may have been published while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobstore import REFUSED, access_denied, riding_out
from jobstore.watchdog import watch_subscription
from schemas.errors import FleetUnavailableError

__all__ = ["ChannelHub"]

log = structlog.get_logger("llm_fleet.producer")

Handler = Callable[[bytes], None]

_RESUBSCRIBED = b"llm-fleet:resubscribed"  # the PING that follows the resubscriptions after a reconnect
_FIRST_DELAY_S = 0.05  # the first wait before a reconnect; it doubles (to 1 s) until the channels are restored


class ChannelHub:
    """Owns `redis` (a client of its own, closed with the hub). A connection quiet for `silence_s` is
    PINGed; one that does not answer within another `silence_s` is dropped and reconnected."""

    def __init__(self, redis: Redis, *, silence_s: float = 5.0) -> None:
        self._redis = redis
        self.silence_s = silence_s
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._heard = 0.0  # the loop's clock when the connection last gave us anything
        self._reconnecting = False
        self._lost = False  # since the last loss, the channels have not been restored
        self._delay = _FIRST_DELAY_S  # before the next reconnect
        self._handlers: dict[str, list[Handler]] = {}
        self._confirming: dict[str, list[asyncio.Future[None]]] = {}  # by channel: the readers waiting
        self._subscribing = asyncio.Lock()
        self.on_reconnect: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._hooks: set[asyncio.Task[None]] = set()  # running re-reads: referenced, so none is collected

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Route `channel`'s messages to `handler`, beside its other readers; returns when Redis has
        confirmed the subscription."""
        self._handlers.setdefault(channel, []).append(handler)
        confirmed = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(channel, []).append(confirmed)
        try:
            async with self._subscribing:  # one at a time: the first one connects, the rest share it
                pubsub = self._connected()
                # confirmed even when the channel is subscribed already; through a Redis restart, as any step
                await riding_out(lambda: pubsub.subscribe(channel))
            if self._task is None:
                self._heard = asyncio.get_running_loop().time()
                self._task = asyncio.create_task(self._listen(pubsub), name="llm-fleet-channels")
                watching = watch_subscription(
                    pubsub,
                    quiet_s=self.silence_s,
                    heard_at=lambda: self._heard,
                    paused=lambda: self._reconnecting,
                    event="channels_silent",
                )
                self._watch = asyncio.create_task(watching, name="llm-fleet-channels-watch")
            await confirmed
        except BaseException:  # failed or cancelled: no reader left behind (nor the channel, if it was its last)
            await self.unsubscribe(channel, handler)
            raise
        finally:
            waiting = self._confirming.get(channel, [])
            if confirmed in waiting:
                waiting.remove(confirmed)
            if not waiting:
                self._confirming.pop(channel, None)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel, [])
        if handler in handlers:
            handlers.remove(handler)
        if handlers or self._handlers.pop(channel, None) is None:
            return
        async with self._subscribing:  # in order with the SUBSCRIBE of a reader joining meanwhile
            if channel in self._handlers or self._pubsub is None:
                return  # one did: the channel stays
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def close(self) -> None:
        for task in (self._watch, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._task = self._watch = self._pubsub = None
        await self._redis.aclose()  # the hub's own client

    def _connected(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub()
        return self._pubsub

    async def _listen(self, pubsub: PubSub) -> None:
        """Read the connection's replies ourselves: a message goes straight to its handler (redis-py's
        `get_message` machinery costs more per message than everything else a reader does); the rest
        (subscribe confirmations, pongs) goes through redis-py's `handle_message`, which keeps its record
        of the subscribed channels for the resubscription after a reconnect."""
        loop = asyncio.get_running_loop()
        while True:
            connection = pubsub.connection
            try:
                if connection is None:  # gone with a failed reconnect
                    raise RedisConnectionError("no connection")
                # as redis-py's own reader does: a failed read leaves the connection to us (disconnected and
                # reconnected below), a cancelled one (the hub closing) to `PubSub.aclose`
                reply = await connection.read_response(disconnect_on_error=False, push_request=True)
                self._heard = loop.time()
            except ResponseError as exc:  # a SUBSCRIBE refused (an ACL without our channels): its readers hear why
                self._refused(exc)
                continue
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if isinstance(exc, REFUSED):  # our credentials (changed under us): the readers waiting hear it
                    self._fail_confirmations(access_denied(exc))
                if not self._lost:  # said once an outage, not at every attempt
                    log.warning("channels_lost", error=str(exc))
                self._lost = True
                self._reconnecting = True  # the watch stays out of it (its PING would connect too)
                if connection is not None:
                    await connection.disconnect()
                await self._reconnect(pubsub)
                self._reconnecting = False
                continue
            if reply[0] == b"message":
                for handler in self._handlers.get(reply[1].decode(), ()):
                    handler(reply[2])
                continue
            message = await pubsub.handle_message(reply)
            if message is not None:
                self._dispatch(message)

    def _refused(self, exc: ResponseError) -> None:
        self._fail_confirmations(FleetUnavailableError(f"Redis refused a subscription: {exc}", retryable=False))

    def _fail_confirmations(self, error: FleetUnavailableError) -> None:
        for waiting in self._confirming.values():
            for confirmed in waiting:
                if not confirmed.done():
                    confirmed.set_exception(error)

    def _dispatch(self, message: dict[str, object]) -> None:
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if message["type"] == "subscribe":  # the channel is live: for every reader waiting for it
            for confirmed in self._confirming.pop(name, []):
                if not confirmed.done():
                    confirmed.set_result(None)
        elif message["type"] == "pong" and message["data"] == _RESUBSCRIBED:
            log.info("channels_restored", channels=len(self._handlers))
            self._lost, self._delay = False, _FIRST_DELAY_S
            for hook in self.on_reconnect:
                task = asyncio.create_task(hook())
                self._hooks.add(task)
                task.add_done_callback(self._hooks.discard)

    async def _reconnect(self, pubsub: PubSub) -> None:
        """Reconnect (redis-py resubscribes on connect) and send a PING behind the resubscriptions: its
        answer, read by `_listen`, says every channel is live again. Re-reading before that could miss a
        result published between the re-read and a resubscription Redis had not processed yet."""
        while True:  # the wait grows until the channels are restored (a connection Redis accepts and then
            await asyncio.sleep(self._delay)  # refuses must not be tried twenty times a second)
            self._delay = min(self._delay * 2, 1.0)
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]
                await pubsub.ping(_RESUBSCRIBED)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError):
                continue

"""The allowed-models policy as a caller follows it: loaded at connect, reloaded the moment an operator
changes it (`{prefix}:policy:changed`, and after the channels reconnect), checked before anything is queued."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, NoReturn

import structlog
from redis.asyncio import Redis

from jobstore import Keys
from jobstore.policy import PolicyStore
from producer.channels import ChannelHub
from schemas.catalog import ModelInfo
from schemas.errors import LLMError, ModelNotAllowedError
from schemas.policy import Policy
from schemas.request import LLMRequest

__all__ = ["Governance"]

log = structlog.get_logger("llm_fleet.producer")


class Governance:
    def __init__(self, redis: Redis, keys: Keys, starting: Policy) -> None:
        self.store = PolicyStore(redis, keys, starting)
        self._channel = keys.policy_changed()
        self._reloading: set[asyncio.Task[Any]] = set()

    async def follow(self, hub: ChannelHub) -> None:
        """Subscribe to the policy's changes, then read it (a change made meanwhile is heard)."""
        await hub.subscribe(self._channel, self._changed)
        hub.on_reconnect.append(self.reload)
        await self.store.load()

    async def refuse(self, request: LLMRequest, model: ModelInfo) -> NoReturn:
        """A model the policy does not allow (`store.permits`): said, counted and raised (`ModelNotAllowedError`)."""
        version = self.store.current.version
        log.warning(
            "policy_violation",
            where="submit",
            model=model.id,
            policy_version=version,
            request_id=request.request_id,
            trace_id=request.trace_id,
            source_agent=request.source_agent,
            session_id=request.session_id,
        )
        with contextlib.suppress(LLMError):  # the refusal stands even when it cannot be counted
            await self.store.violated(model.id, request.source_agent)
        raise ModelNotAllowedError(
            model.id, policy_version=version, request_id=request.request_id, trace_id=request.trace_id
        )

    def _changed(self, _: bytes) -> None:
        task = asyncio.create_task(self.reload())
        self._reloading.add(task)
        task.add_done_callback(self._reloading.discard)

    async def reload(self) -> None:
        try:
            await self.store.load()
        except LLMError as exc:  # Redis away: the channels' reconnect reloads it
            log.warning("policy_reload_failed", error=exc.message)

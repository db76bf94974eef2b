"""The allowed-models policy as a caller follows it: loaded at connect, reloaded the moment an operator
changes it (`{prefix}:policy:changed`, and after the channels reconnect), checked before anything is queued;
and the model chosen for a request that names none (`choose`), among those the policy allows, on the
providers that are ready (read from Redis at most once a second)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NoReturn

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobstore import Intake, Keys
from jobstore.budgets import Budgets
from jobstore.policy import PolicyStore
from producer.channels import ChannelHub
from schemas.agents import asks_for_agent_fields, serves
from schemas.catalog import ModelInfo, Provider, catalog
from schemas.errors import InvalidRequestError, LLMError
from schemas.policy import Policy
from schemas.request import LLMRequest
from schemas.selection import ModelSelector
from schemas.settings import FleetSettings

__all__ = ["Governance"]

log = structlog.get_logger("llm_fleet.producer")

_READY_FOR_S = 1.0  # how long a read of which providers are ready is used


class Governance:
    def __init__(self, redis: Redis, keys: Keys, settings: FleetSettings) -> None:
        self.store = PolicyStore(redis, keys, Policy.from_env(settings.allowed_models))
        self.settings = settings
        self._intake = Intake(redis, keys)
        self.budgets = Budgets(redis, keys)
        self._channel = keys.policy_changed()
        self._reloading: set[asyncio.Task[Any]] = set()
        self._ready: frozenset[Provider] | None = None
        self._ready_at = -1.0  # the loop's time it was read

    async def choose(self, request: LLMRequest) -> LLMRequest:
        """`request` with a model: its tier's (or complexity's) choice, with the rationale in `selection` and
        logged, or LLM_DEFAULT_MODEL; `InvalidRequestError` when it asks for neither and there is no default."""
        if request.tier is None and request.task_complexity is None:
            if not self.settings.default_model:
                raise InvalidRequestError(
                    "the request names no model: give a model, a tier or a task_complexity, or set LLM_DEFAULT_MODEL"
                )
            return request.model_copy(update={"model": self.settings.default_model})
        permits: Callable[[ModelInfo], bool] = self.store.permits
        if asks_for_agent_fields(request):  # only models that can serve its tools, images, format or reasoning
            permits = lambda m: self.store.permits(m) and serves(request, m)
        selector = ModelSelector(catalog().models, permits=permits, ready=await self._ready_providers())
        selection = selector.select(
            tier=request.tier, complexity=request.task_complexity, prefer=request.provider_preference
        )
        log.info("model_selected", request_id=request.request_id, trace_id=request.trace_id, **selection.model_dump())
        fallbacks = request.fallbacks or list(selection.fallbacks)
        return request.model_copy(update={"model": selection.model, "fallbacks": fallbacks, "selection": selection})

    async def _ready_providers(self) -> frozenset[Provider] | None:
        """The providers with a live worker and a closed circuit, read at most once a second (None: Redis did not
        say: every provider counts)."""
        now = asyncio.get_running_loop().time()
        if now - self._ready_at >= _READY_FOR_S:
            self._ready_at = now
            try:
                ready = await self._intake.ready([p.value for p in Provider], self.settings.dead_after_s)
            except (LLMError, RedisError):
                self._ready = None
            else:
                self._ready = frozenset(Provider(p) for p in ready)
        return self._ready

    async def follow(self, hub: ChannelHub) -> None:
        """Subscribe to the policy's changes, then read it (a change made meanwhile is heard); the starting
        budgets (LLM_BUDGETS) of agents that have none yet."""
        await hub.subscribe(self._channel, self._changed)
        hub.on_reconnect.append(self.reload)
        await self.store.load()
        if self.settings.budgets:
            await self.budgets.seed(self.settings.budget_limits)

    async def refuse(self, request: LLMRequest, model: ModelInfo) -> NoReturn:
        """A model the policy does not allow (`store.permits`): said, counted and raised (`ModelNotAllowedError`)."""
        raise await self.store.refused(request, model.id, "submit")

    def _changed(self, _: bytes) -> None:
        task = asyncio.create_task(self.reload())
        self._reloading.add(task)
        task.add_done_callback(self._reloading.discard)

    async def reload(self) -> None:
        try:
            await self.store.load()
        except LLMError as exc:  # Redis away: the channels' reconnect reloads it
            log.warning("policy_reload_failed", error=exc.message)

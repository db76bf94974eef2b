"""The allowed-models policy as Redis holds it: the policy an operator set at run time, its version, the model
ids it allows (which the start step checks a job's model against, atomically: `start_job.lua`), and the
count of requests it refused.

Each producer and worker keeps the current policy in a `PolicyStore`: the one an operator set in Redis, or,
when none is (or after a reset), its own starting policy (`ALLOWED_MODELS`). `set_policy.lua` publishes every
change on `{prefix}:policy:changed`; a process subscribed there reloads at once, so a change reaches every
running producer and worker within a second.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import structlog
from redis.asyncio import Redis

from jobstore.keys import Keys
from jobstore.lane import Lane
from jobstore.outage import riding_out
from jobstore.scripts import load
from schemas.catalog import ModelInfo, catalog
from schemas.errors import LLMError, ModelNotAllowedError
from schemas.policy import Policy
from schemas.request import LLMRequest

__all__ = ["PolicyStore"]

log = structlog.get_logger("llm_fleet.policy")


class PolicyStore:
    def __init__(self, redis: Redis, keys: Keys, starting: Policy) -> None:
        self.redis = redis
        self.keys = keys
        self.starting = starting
        self._set(starting)

    def _set(self, policy: Policy) -> None:
        self.current = policy
        self.allowed = policy.allowed(catalog().models)  # one set lookup per check

    def permits(self, info: ModelInfo) -> bool:
        return info.id in self.allowed

    async def load(self) -> Policy:
        """Read the policy an operator set (none set: the starting one, at the version Redis counts)."""
        raw: dict[bytes, bytes] = await riding_out(lambda: self.redis.hgetall(self.keys.policy()))  # type: ignore[arg-type,return-value]
        version = int(raw.get(b"version", 0))
        if raw.get(b"active") == b"1":
            allow = raw.get(b"allow") or b""
            policy = Policy(
                allow=tuple(json.loads(allow)) if allow else None,
                deny=tuple(json.loads(raw.get(b"deny") or b"[]")),
                version=version,
            )
        else:
            policy = self.starting.model_copy(update={"version": version})
        self._set(policy)
        return policy

    async def change(
        self,
        *,
        allow: tuple[str, ...] | None = None,
        deny: tuple[str, ...] = (),
        active: bool = True,
    ) -> Policy:
        """Set a new policy, whole (`active=False`: back to each process's starting policy); returns it, at its
        new version."""
        policy = Policy(allow=allow, deny=deny) if active else self.starting
        script = load("set_policy")
        keys = {"policy": self.keys.policy(), "models": self.keys.policy_models()}
        args = {
            "active": int(active),
            "allow": "" if allow is None else json.dumps(list(allow)),
            "deny": json.dumps(list(deny)),
            "channel": self.keys.policy_changed(),
            "models": sorted(policy.allowed(catalog().models)) if active else [],
        }
        await riding_out(lambda: Lane(self.redis).run(script, *script.bind(keys, args)))
        return await self.load()

    async def refused(self, request: LLMRequest, model: str, where: str) -> ModelNotAllowedError:
        """A request naming a model the policy refuses (`where`: submit, start or fallback): a `policy_violation`
        line, a count by model and source_agent, and the error to end it with."""
        version = self.current.version
        log.warning(
            "policy_violation",
            where=where,
            model=model,
            policy_version=version,
            request_id=request.request_id,
            trace_id=request.trace_id,
            source_agent=request.source_agent,
            session_id=request.session_id,
        )
        field = f"{model} {request.source_agent or '-'}"
        with contextlib.suppress(LLMError):  # the refusal stands even when it cannot be counted
            await riding_out(lambda: self.redis.hincrby(self.keys.violations(), field, 1))  # type: ignore[arg-type,return-value]
        return ModelNotAllowedError(
            model, policy_version=version, request_id=request.request_id, trace_id=request.trace_id
        )

    async def violations(self) -> list[dict[str, Any]]:
        """The refused requests, counted by model and source_agent, most first."""
        raw: dict[bytes, bytes] = await riding_out(lambda: self.redis.hgetall(self.keys.violations()))  # type: ignore[arg-type,return-value]
        rows = []
        for field, count in raw.items():
            model, _, agent = field.decode().partition(" ")
            rows.append({"model": model, "source_agent": agent, "refused": int(count)})
        return sorted(rows, key=lambda r: (-r["refused"], r["model"], r["source_agent"]))

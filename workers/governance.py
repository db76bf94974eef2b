"""The allowed-models policy where a worker meets it: a job's model checked before its call (the start step
checks the policy an operator set, atomically; this checks this worker's own starting policy too), and the
fallbacks a request may move to, never one the policy refuses."""

from __future__ import annotations

import structlog

from jobstore.policy import PolicyStore
from schemas.catalog import ModelInfo, resolve_model
from schemas.errors import LLMError
from schemas.request import LLMRequest

__all__ = ["Enforcer"]

log = structlog.get_logger("llm_fleet.worker")


class Enforcer:
    def __init__(self, policy: PolicyStore) -> None:
        self.policy = policy

    def permits(self, model: ModelInfo) -> bool:
        return self.policy.permits(model)

    async def next_route(self, request: LLMRequest, after: int) -> tuple[int, ModelInfo] | None:
        """The first fallback after route `after` that the policy allows (each one it refuses is a violation)."""
        for route in range(after + 1, len(request.routes)):
            try:
                model = resolve_model(request.routes[route])
            except LLMError:
                continue
            if self.permits(model):
                return route, model
            await self.policy.refused(request, model.id, "fallback")
        return None

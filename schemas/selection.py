"""Choosing a model for a request that names none (the specification's ModelSelector): by tier, or by the
task's complexity, with an optional provider preference; none of them: `LLM_DEFAULT_MODEL`.

The choice is a concrete model the policy allows and its provider has not retired, the cheapest of its tier
(by output, then input price) on the providers that are ready (live workers, circuit closed) when any are,
in the caller's order of preference, plus a fallback chain of the same tier on each other provider. Pure: what
the fleet's state is (`ready`) and what the policy allows (`permits`) are given to it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.catalog import ModelInfo, Provider, Tier
from schemas.errors import InvalidRequestError

__all__ = ["Complexity", "ModelSelector", "Selection", "Tier"]

Complexity = Literal["low", "medium", "high"]
TIER_FOR: dict[Complexity, Tier] = {"low": "fast", "medium": "balanced", "high": "premium"}


class Selection(BaseModel):
    """Why a request runs on the model it runs on: what was asked, what could serve it, what was chosen."""

    model_config = ConfigDict(frozen=True)

    tier: Tier
    asked: str
    """The inputs: tier, complexity, provider preference, or the default model."""
    candidates: tuple[str, ...]
    """Every model of the tier the policy allows, best first."""
    model: str
    fallbacks: tuple[str, ...]
    why: str


class ModelSelector:
    """`permits`: the allowed-models policy; `ready`: the providers with live workers and a closed circuit
    (None: not known, every provider counts as ready)."""

    def __init__(
        self,
        models: Iterable[ModelInfo],
        *,
        permits: Callable[[ModelInfo], bool] = lambda _: True,
        ready: Collection[Provider] | None = None,
    ) -> None:
        self.models = [m for m in models if m.lifecycle.status != "retired" and permits(m)]
        self.ready = ready

    def select(
        self,
        *,
        tier: Tier | None = None,
        complexity: Complexity | None = None,
        prefer: Iterable[Provider] = (),
    ) -> Selection:
        """The model for a tier (or a complexity: low → fast, medium → balanced, high → premium)."""
        if tier is None and complexity is None:
            raise InvalidRequestError("a selection needs a tier or a task complexity")
        chosen_tier: Tier = tier or TIER_FOR[complexity or "medium"]
        preference = list(prefer)
        asked = ", ".join(
            f"{k}={v}"
            for k, v in (("tier", tier), ("complexity", complexity), ("prefer", ",".join(preference) or None))
            if v is not None
        )
        candidates = sorted((m for m in self.models if m.tier == chosen_tier), key=self._rank(preference))
        if not candidates:
            raise InvalidRequestError(f"no model of tier {chosen_tier!r} is allowed and current")
        best = candidates[0]
        others: dict[Provider, ModelInfo] = {}
        for m in candidates[1:]:  # the best of the tier on each other provider, in rank order
            if m.provider is not best.provider and m.provider not in others:
                others[m.provider] = m
        ready = "" if self.ready is None else f"; ready providers: {', '.join(sorted(self.ready)) or 'none'}"
        return Selection(
            tier=chosen_tier,
            asked=asked,
            candidates=tuple(m.id for m in candidates),
            model=best.id,
            fallbacks=tuple(m.id for m in others.values()),
            why=f"the cheapest {chosen_tier} model on the first ready, preferred provider{ready}",
        )

    def _rank(self, prefer: list[Provider]) -> Callable[[ModelInfo], tuple[object, ...]]:
        def rank(m: ModelInfo) -> tuple[object, ...]:
            unready = self.ready is not None and bool(self.ready) and m.provider not in self.ready
            preferred = prefer.index(m.provider) if m.provider in prefer else len(prefer)
            price = m.price
            unknown = price.output is None or price.input is None
            return (
                unready,
                preferred,
                m.lifecycle.status == "deprecated",
                unknown,
                price.output or 0.0,
                price.input or 0.0,
                m.id,
            )

        return rank

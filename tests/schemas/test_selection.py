"""Choosing a model by tier or complexity: the cheapest allowed current model of the tier, on a ready and
preferred provider, with a fallback of the same tier on each other provider; never a refused or retired one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.catalog import Provider, catalog, resolve_model
from schemas.errors import InvalidRequestError
from schemas.policy import Policy
from schemas.request import LLMRequest
from schemas.selection import ModelSelector

MODELS = catalog().models


def test_the_cheapest_model_of_the_tier_with_a_fallback_on_each_other_provider() -> None:
    chosen = ModelSelector(MODELS).select(tier="fast")
    fast = [m for m in MODELS if m.tier == "fast" and m.status == "current" and m.price.output is not None]
    assert resolve_model(chosen.model).price.output == min(m.price.output or 0 for m in fast)
    providers = [resolve_model(m).provider for m in (chosen.model, *chosen.fallbacks)]
    assert sorted(providers) == sorted(Provider) and all(resolve_model(m).tier == "fast" for m in chosen.fallbacks)
    assert chosen.candidates[0] == chosen.model and "tier=fast" in chosen.asked


def test_preference_readiness_and_complexity_steer_the_choice() -> None:
    preferred = ModelSelector(MODELS).select(complexity="high", prefer=[Provider.GEMINI, Provider.ANTHROPIC])
    assert preferred.tier == "premium" and resolve_model(preferred.model).provider is Provider.GEMINI
    assert resolve_model(preferred.fallbacks[0]).provider is Provider.ANTHROPIC
    ready = ModelSelector(MODELS, ready={Provider.ANTHROPIC}).select(tier="balanced", prefer=[Provider.GEMINI])
    assert resolve_model(ready.model).provider is Provider.ANTHROPIC  # a ready provider beats a preferred one
    none_ready = ModelSelector(MODELS, ready=set()).select(tier="balanced", prefer=[Provider.GEMINI])
    assert resolve_model(none_ready.model).provider is Provider.GEMINI  # none ready: as if all were


def test_a_tier_with_nothing_allowed_is_refused_and_a_request_names_a_model_or_a_tier() -> None:
    refused = Policy(deny=("*",))
    with pytest.raises(InvalidRequestError, match="no model of tier 'premium'"):
        ModelSelector(MODELS, permits=refused.permits).select(tier="premium")
    with pytest.raises(InvalidRequestError, match="tier or a task complexity"):
        ModelSelector(MODELS).select()
    with pytest.raises(ValueError, match="not both"):
        LLMRequest(model="gpt-6-luna", tier="fast", messages=[{"role": "user", "content": "x"}])


_PATTERNS = st.sampled_from(["gpt-*", "claude-*", "gemini-*", "*flash*", "*luna*", "claude-haiku-5-5", "*"])


@given(
    allow=st.one_of(st.none(), st.lists(_PATTERNS, min_size=1, max_size=3).map(tuple)),
    deny=st.lists(_PATTERNS, max_size=2).map(tuple),
    tier=st.sampled_from(["fast", "balanced", "premium"]),
    prefer=st.lists(st.sampled_from(list(Provider)), max_size=3, unique=True),
    ready=st.one_of(st.none(), st.sets(st.sampled_from(list(Provider)))),
)
def test_selection_never_returns_a_refused_or_retired_model(
    allow: tuple[str, ...] | None,
    deny: tuple[str, ...],
    tier: str,
    prefer: list[Provider],
    ready: set[Provider] | None,
) -> None:
    policy = Policy(allow=allow, deny=deny)
    selector = ModelSelector(MODELS, permits=policy.permits, ready=ready)
    try:
        chosen = selector.select(tier=tier, prefer=prefer)  # type: ignore[arg-type]
    except InvalidRequestError:  # nothing of that tier is allowed: refused, typed
        assert not [m for m in MODELS if m.tier == tier and policy.permits(m)]
        return
    for model in (chosen.model, *chosen.fallbacks):
        info = resolve_model(model)
        assert policy.permits(info) and info.status != "retired" and info.tier == tier

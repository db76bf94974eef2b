"""The model catalog: every model we route, the one provider that serves it, and the provider rules.

The catalog is data (`CATALOG`), not code paths: adding a model is adding a row.
"""

from __future__ import annotations

import difflib
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.errors import UnknownModelError

__all__ = ["CATALOG", "ModelInfo", "Provider", "resolve_model"]


class Provider(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"


class ModelInfo(BaseModel):
    """One model. `id` is the dated id sent upstream; `aliases` are the short names callers may use."""

    model_config = ConfigDict(frozen=True)

    id: str
    provider: Provider
    aliases: tuple[str, ...] = ()
    status: Literal["current", "retired"] = "current"
    reasoning: bool = False
    """OpenAI reasoning models take `max_completion_tokens` and no temperature."""
    max_output_tokens: int | None = None
    """The most tokens the model writes in one answer, as its provider documents it (None: not known here)."""

    @property
    def takes_temperature(self) -> bool:
        """OpenAI's reasoning models take none, and neither does Anthropic's API since its 2026-10-21 version
        (the anthropic 2.x SDK has no such parameter); 0 to 2 elsewhere (the request's own bound)."""
        return not self.reasoning and self.provider is not Provider.ANTHROPIC


def _m(
    id: str, provider: Provider, *aliases: str, out: int | None, retired: bool = False, reasoning: bool = False
) -> ModelInfo:
    return ModelInfo(
        id=id,
        provider=provider,
        aliases=aliases,
        status="retired" if retired else "current",
        reasoning=reasoning,
        max_output_tokens=out,
    )


_O, _A, _G = Provider.OPENAI, Provider.ANTHROPIC, Provider.GEMINI

# `out`: the providers' documented output limits (OpenAI's, Anthropic's and Google's model pages, 2026-12);
# None where it is not recorded yet. The governance work turns this table into a data file with its sources.
CATALOG: tuple[ModelInfo, ...] = (
    # OpenAI (SPEC FR-1.1, then current ones)
    _m("gpt-4.1-2025-04-14", _O, "gpt-4.1", out=32_768),
    _m("gpt-4.1-mini-2025-04-14", _O, "gpt-4.1-mini", out=32_768),
    _m("gpt-4.1-nano-2025-04-14", _O, "gpt-4.1-nano", out=32_768),
    _m("gpt-5-2025-08-07", _O, "gpt-5", reasoning=True, out=128_000),
    _m("gpt-5-mini-2025-08-07", _O, "gpt-5-mini", reasoning=True, out=128_000),
    _m("gpt-5-nano-2025-08-07", _O, "gpt-5-nano", reasoning=True, out=128_000),
    _m("gpt-5.5-2026-04-23", _O, "gpt-5.5", reasoning=True, out=None),
    _m("gpt-5.4-mini-2026-03-17", _O, "gpt-5.4-mini", reasoning=True, out=None),
    _m("gpt-4o-2024-11-20", _O, "gpt-4o", out=16_384),
    _m("gpt-4o-mini-2024-07-18", _O, "gpt-4o-mini", out=16_384),
    _m("o3-2025-04-16", _O, "o3", reasoning=True, out=100_000),
    _m("o4-mini-2025-04-16", _O, "o4-mini", reasoning=True, out=100_000),
    # Anthropic (SPEC FR-1.2 models are retired upstream; kept and marked)
    _m("claude-3-5-sonnet-20241022", _A, "claude-3-5-sonnet", "claude-3-5-sonnet-latest", retired=True, out=8_192),
    _m("claude-3-5-haiku-20241022", _A, "claude-3-5-haiku", "claude-3-5-haiku-latest", retired=True, out=8_192),
    _m("claude-3-opus-20240229", _A, "claude-3-opus", "claude-3-opus-latest", retired=True, out=4_096),
    _m("claude-sonnet-4-5-20250929", _A, "claude-sonnet-4-5", out=64_000),
    _m("claude-opus-4-5-20251101", _A, "claude-opus-4-5", out=64_000),
    _m("claude-haiku-4-5-20251001", _A, "claude-haiku-4-5", out=64_000),
    _m("claude-sonnet-4-6", _A, out=128_000),
    _m("claude-opus-4-7", _A, out=128_000),
    # Gemini (SPEC FR-1.3 models are retired upstream; kept and marked)
    _m("gemini-2.0-flash-exp", _G, retired=True, out=8_192),
    _m("gemini-1.5-pro-002", _G, "gemini-1.5-pro", retired=True, out=8_192),
    _m("gemini-1.5-flash-002", _G, "gemini-1.5-flash", retired=True, out=8_192),
    _m("gemini-2.0-flash-001", _G, "gemini-2.0-flash", out=8_192),
    _m("gemini-2.5-flash", _G, out=65_536),
    _m("gemini-2.5-flash-lite", _G, out=65_536),
    _m("gemini-2.5-pro", _G, out=65_536),
)

_BY_NAME: dict[str, ModelInfo] = {}
for _info in CATALOG:
    for _name in (_info.id, *_info.aliases):
        if _name in _BY_NAME:  # pragma: no cover - a catalog typo, caught by the first test run
            raise ValueError(f"model name {_name!r} is listed twice")
        _BY_NAME[_name] = _info


def resolve_model(name: str) -> ModelInfo:
    """The catalog entry for a model id or alias; `UnknownModelError` names the model otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownModelError(name, suggestions=difflib.get_close_matches(name, _BY_NAME, n=3)) from None

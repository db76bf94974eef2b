"""The model catalog: every model we route, the one provider that serves it, its tier, prices, limits,
capabilities and lifecycle.

The catalog is data, not code: `catalog.json` in this package (each figure with its source and the date it was
read), and an operator's `LLM_CATALOG_FILE` (the same shape, `{"models": [...]}`) that adds models or overrides
fields of shipped ones, by id, without a release (a negotiated price, a model released today). Loading refuses
an ambiguous catalog: one name (id or alias) on two entries. Read once per process, on first use.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField

from schemas.errors import UnknownModelError
from schemas.settings import FleetSettings

__all__ = [
    "Capabilities",
    "Catalog",
    "CatalogError",
    "Endpoint",
    "Lifecycle",
    "ModelInfo",
    "Price",
    "Provider",
    "catalog",
    "resolve_model",
]


class Provider(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"


Tier = Literal["fast", "balanced", "premium"]


class Price(BaseModel):
    """USD per million tokens (None: not known)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float | None = None
    cached_input: float | None = None
    output: float | None = None


class Capabilities(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    streaming: bool = True
    temperature: bool = True
    """False for OpenAI's reasoning models, Anthropic's current API and Google's newest models: none taken."""
    reasoning: bool = False
    tools: bool = True
    vision: bool = False
    json_schema: bool = False


class Lifecycle(BaseModel):
    """current; deprecated (still served, until `shutdown`); retired (refused, or replaced by `replacement`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["current", "deprecated", "retired"] = "current"
    shutdown: datetime.date | None = None
    replacement: str | None = None


class Endpoint(BaseModel):
    """A self-hosted, OpenAI-compatible server (vLLM, Ollama, llama.cpp's server): its requests get a queue of
    their own, named `name`, served by `llm-fleet worker --endpoint NAME`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = PydanticField(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    base_url: str
    """With the API's version, as OpenAI's is given (`http://host:8000/v1`)."""
    key_env: str | None = None
    """The variable holding its key (None: it takes any, as most self-hosted servers do)."""


class ModelInfo(BaseModel):
    """One model. `id` is what is sent upstream; `aliases` are the short names callers may use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    provider: Provider
    aliases: tuple[str, ...] = ()
    tier: Tier = "balanced"
    price: Price = Price()
    context_window: int | None = None
    max_output_tokens: int | None = None
    """The most tokens the model writes in one answer (None: not known here)."""
    capabilities: Capabilities = Capabilities()
    lifecycle: Lifecycle = Lifecycle()
    source: tuple[str, ...] = ()
    """Where the figures come from: ids of the catalog file's `sources`."""
    endpoint: Endpoint | None = None
    """Served by a self-hosted endpoint (`provider` openai: its API is OpenAI's), not the provider's own API."""

    @property
    def queue(self) -> str:
        """The queue its requests wait on: its provider's, or its endpoint's."""
        return self.endpoint.name if self.endpoint is not None else self.provider.value

    @property
    def status(self) -> str:
        return self.lifecycle.status

    @property
    def reasoning(self) -> bool:
        """OpenAI reasoning models take `max_completion_tokens`."""
        return self.capabilities.reasoning

    @property
    def takes_temperature(self) -> bool:
        return self.capabilities.temperature

    def cost(self, prompt: int, completion: int, cached: int | None = None) -> float | None:
        """USD for this usage, as the three providers bill it (their usage, as we normalise it, counts cached
        input inside the prompt and reasoning inside the completion); None when a price is not known."""
        price = self.price
        if price.input is None or price.output is None:
            return None
        cached_tokens = min(cached or 0, prompt)
        cached_price = price.input if price.cached_input is None else price.cached_input
        total = (prompt - cached_tokens) * price.input + cached_tokens * cached_price + completion * price.output
        return round(total / 1_000_000, 10)


class CatalogError(ValueError):
    """A catalog that cannot be used as it is: ambiguous names, a replacement it does not hold, a bad file."""


class Catalog:
    def __init__(self, models: Iterable[ModelInfo]) -> None:
        self.models = tuple(models)
        self._by_name: dict[str, ModelInfo] = {}
        for info in self.models:
            for name in (info.id, *info.aliases):
                other = self._by_name.get(name)
                if other is not None:
                    raise CatalogError(
                        f"ambiguous catalog: {name!r} names both {other.id} ({other.provider}) and "
                        f"{info.id} ({info.provider})"
                    )
                self._by_name[name] = info
        for info in self.models:
            replacement = info.lifecycle.replacement
            if replacement is not None and replacement not in self._by_name:
                raise CatalogError(f"{info.id}'s replacement {replacement!r} is not in the catalog")

    def resolve(self, name: str) -> ModelInfo:
        """The entry for a model id or alias; `UnknownModelError` naming the model otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            suggestions = difflib.get_close_matches(name, self._by_name, n=3)
            raise UnknownModelError(name, suggestions=suggestions) from None

    @classmethod
    def load(cls, override: str | None = None) -> Catalog:
        """The shipped catalog, with the entries of the file at `override` merged in by id (fields of a shipped
        entry replaced, a new id added)."""
        shipped = json.loads(resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8"))
        entries: dict[str, dict[str, Any]] = {m["id"]: m for m in shipped["models"]}
        if override:
            try:
                extra = json.loads(Path(override).read_text(encoding="utf-8"))["models"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise CatalogError(f"LLM_CATALOG_FILE {override!r} is not a catalog: {exc!r}") from None
            for entry in extra:
                entries[entry["id"]] = _merged(entries.get(entry["id"], {}), entry)
        try:
            return cls(ModelInfo.model_validate(e) for e in entries.values())
        except CatalogError:
            raise
        except ValueError as exc:  # an entry pydantic refuses
            raise CatalogError(f"invalid catalog entry: {exc}") from None


def _merged(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@functools.cache
def catalog() -> Catalog:
    """This process's catalog: the shipped one and `LLM_CATALOG_FILE`'s entries, read on first use."""
    return Catalog.load(FleetSettings().catalog_file)


def resolve_model(name: str) -> ModelInfo:
    """The catalog entry for a model id or alias; `UnknownModelError` names the model otherwise."""
    return catalog().resolve(name)

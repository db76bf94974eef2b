"""Settings both sides read from the environment (pydantic-settings). Importing reads nothing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["FleetSettings"]


class FleetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    key_prefix: str = Field("llmfleet", alias="LLM_KEY_PREFIX", pattern=r"^[A-Za-z0-9_.\-]+$")
    request_timeout_s: float = Field(60.0, alias="LLM_REQUEST_TIMEOUT", gt=0)
    """How long `complete` / `result` wait by default, in seconds."""
    result_ttl_s: int = Field(3600, alias="LLM_RESULT_TTL", gt=0)
    """How long a result (and its request_id's idempotency) is kept, in seconds."""

    stream_ttl_s: int = Field(600, alias="LLM_STREAM_TTL", gt=0)
    """How long a stream's events are kept for late subscribers, in seconds."""

    max_queue_depth: int = Field(100_000, alias="LLM_MAX_QUEUE_DEPTH", gt=0)
    """Requests a provider's queue holds; beyond it `submit` raises `QueueFullError`."""
    dead_letter_ttl_s: int = Field(7 * 86400, alias="LLM_DEAD_LETTER_TTL", gt=0)
    """How long requests that failed for good are kept for inspection and retry, in seconds."""
    allowed_models: str | None = Field(None, alias="ALLOWED_MODELS")
    """The starting allowed-models policy: comma-separated ids, aliases or glob patterns (unset: every current
    and deprecated model); `llm-fleet policy` changes it at run time, fleet-wide."""
    budgets: str | None = Field(None, alias="LLM_BUDGETS", pattern=r"^\s*([^=,\s]+\s*=\s*[0-9.]+\s*(,\s*|$))*$")
    """Starting daily budgets, USD per source_agent: `agent=10,other=2.5` (an operator's `llm-fleet budget set`
    stays)."""
    default_model: str | None = Field(None, alias="LLM_DEFAULT_MODEL")
    """The model of a request that names none and asks for no tier (unset: such a request is refused)."""
    retired_models: Literal["refuse", "replace"] = Field("refuse", alias="LLM_RETIRED_MODELS")
    """A request for a model its provider retired: refused (`ModelRetiredError`, naming the replacement), or
    run on the replacement the catalog names (the response says `model_requested`)."""
    catalog_file: str | None = Field(None, alias="LLM_CATALOG_FILE")
    """A JSON file of catalog entries that add models or override shipped ones, by id."""
    heartbeat_s: float = Field(2.0, alias="LLM_HEARTBEAT_INTERVAL", gt=0)
    """How often a worker refreshes its heartbeat; it is presumed dead after 5 missed beats (`dead_after_s`),
    and the callers' and operators' counts of live workers use the same rule."""

    @property
    def budget_limits(self) -> dict[str, float]:
        """`LLM_BUDGETS` as a mapping: source_agent → USD per day."""
        pairs = (item.partition("=") for item in (self.budgets or "").split(",") if item.strip())
        return {agent.strip(): float(usd) for agent, _, usd in pairs}

    @property
    def dead_after_s(self) -> float:
        return self.heartbeat_s * 5

"""The gateway's own settings, from the environment (the fleet's are `schemas.settings.FleetSettings`)."""

from __future__ import annotations

import hashlib

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GatewaySettings", "digest"]


def digest(token: str) -> str:
    """A bearer token as it is stored and compared: its SHA-256, hex (the token itself is kept nowhere)."""
    return hashlib.sha256(token.encode()).hexdigest()


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    tokens: str | None = Field(None, alias="LLM_GATEWAY_TOKENS", pattern=r"^\s*([^=,\s]+\s*=\s*[^=,\s]+\s*(,\s*|$))*$")
    """Bearer tokens and the source_agent each is bound to: `TOKEN=AGENT,TOKEN=AGENT` (and those `llm-fleet
    tokens add` stored in Redis)."""
    max_body_bytes: int = Field(4 * 1024 * 1024, alias="LLM_GATEWAY_MAX_BODY", gt=0)
    """The largest request body taken; a larger one is refused with 413."""
    token_cache_s: float = Field(5.0, alias="LLM_GATEWAY_TOKEN_CACHE", ge=0)
    """How long a token read from Redis is taken as read: a revoked token stops working within it."""
    max_wait_s: float = Field(60.0, alias="LLM_GATEWAY_MAX_WAIT", gt=0)
    """The longest a long poll (`?wait=`) or an RPC `llm.result` waits before it answers "pending"."""

    @property
    def token_agents(self) -> dict[str, str]:
        """`LLM_GATEWAY_TOKENS` as digest → source_agent."""
        pairs = (item.partition("=") for item in (self.tokens or "").split(",") if item.strip())
        return {digest(token.strip()): agent.strip() for token, _, agent in pairs}

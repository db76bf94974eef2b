"""Worker settings, from the environment. Provider keys are secrets: never logged, never returned."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from schemas.catalog import Provider
from schemas.settings import FleetSettings

__all__ = ["KEY_VARS", "WorkerSettings"]

KEY_VARS = {  # the variable that holds each provider's key
    Provider.OPENAI: "OPENAI_API_KEY",
    Provider.ANTHROPIC: "ANTHROPIC_API_KEY",
    Provider.GEMINI: "GOOGLE_API_KEY",
}


class WorkerSettings(FleetSettings):
    concurrency: int = Field(1000, alias="LLM_WORKER_CONCURRENCY", gt=0)
    """Requests one worker process runs at once; its SDK's connection pool is sized to match."""
    http_transport: Literal["aiohttp", "httpx2"] = Field("aiohttp", alias="LLM_HTTP_TRANSPORT")
    """The SDKs' HTTP transport, chosen explicitly (aiohttp costs about half the CPU of httpx2)."""
    event_loop: Literal["uvloop", "asyncio"] = Field("uvloop", alias="LLM_EVENT_LOOP")
    """The worker's event loop: uvloop (libuv, in C) costs the worker 8-10 % less CPU per request and 13-17 %
    less per streamed token than asyncio's own; `asyncio` where uvloop is not installed (Windows)."""
    anthropic_max_tokens: int = Field(4096, alias="LLM_ANTHROPIC_MAX_TOKENS", gt=0)
    """max_tokens sent to Anthropic (which requires it) when a request gives none."""
    provider_timeout_s: float = Field(600.0, alias="LLM_PROVIDER_TIMEOUT", gt=0)
    metrics_port: int | None = Field(None, alias="LLM_METRICS_PORT", ge=0, le=65535)
    """Where the worker serves `/metrics` for Prometheus (0: a free port; unset: not served)."""
    shutdown_grace_s: int = Field(30, alias="LLM_SHUTDOWN_GRACE", ge=0)

    max_retries: int = Field(3, alias="LLM_MAX_RETRIES", ge=0)
    """Retries of a retryable failure on one model, before its fallbacks (or a final error)."""
    retry_base_s: float = Field(0.5, alias="LLM_RETRY_BASE", gt=0)
    retry_max_s: float = Field(30.0, alias="LLM_RETRY_MAX", gt=0)
    """Backoff: base * 2^retry, at most max, with full jitter; a provider's retry-after wins when longer."""
    provider_concurrency: int = Field(0, alias="LLM_PROVIDER_CONCURRENCY", ge=0)
    """Provider calls in flight across the whole fleet, all workers together (0: no limit)."""
    provider_rpm: int = Field(0, alias="LLM_PROVIDER_RPM", ge=0)
    provider_tpm: int = Field(0, alias="LLM_PROVIDER_TPM", ge=0)
    """Fleet-wide requests and tokens per minute for the provider (0: no limit)."""
    first_token_timeout_s: float = Field(30.0, alias="LLM_STREAM_FIRST_TOKEN_TIMEOUT", gt=0)
    idle_timeout_s: float = Field(30.0, alias="LLM_STREAM_IDLE_TIMEOUT", gt=0)
    """A stream fails (retryably, if nothing was sent yet) when its first token, or the next one, is this late
    (the idle one to within 1 %: a token moves the deadline only when that moves it by more)."""
    stream_coalesce: bool = Field(True, alias="LLM_STREAM_COALESCE")
    """Tokens that arrive while a publish is in flight leave together as one event (off: one event each)."""
    rerun_after_crash: bool = Field(True, alias="LLM_RERUN_AFTER_CRASH")
    max_reruns: int = Field(2, alias="LLM_MAX_RERUNS", ge=0)
    """When a worker dies mid-call, run the request again (the provider may bill twice; it is recorded as a
    rerun), at most max_reruns times (a request that kills every worker it reaches must not take the fleet
    down one by one), or fail it with WorkerLostError."""
    circuit_error_rate: float = Field(0.5, alias="LLM_CIRCUIT_ERROR_RATE", gt=0, le=1)
    circuit_min_requests: int = Field(20, alias="LLM_CIRCUIT_MIN_REQUESTS", gt=0)
    circuit_open_s: float = Field(15.0, alias="LLM_CIRCUIT_OPEN", gt=0)
    """The circuit opens when, over the last 30 s, at least min requests failed and they are at least
    circuit_error_rate of the provider's requests; it stays open (requests go to fallbacks or wait) for
    circuit_open_s, then lets traffic probe again."""

    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    anthropic_api_key: SecretStr | None = Field(None, alias="ANTHROPIC_API_KEY")
    google_api_key: SecretStr | None = Field(None, alias="GOOGLE_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    anthropic_base_url: str | None = Field(None, alias="ANTHROPIC_BASE_URL")
    google_gemini_base_url: str | None = Field(None, alias="GOOGLE_GEMINI_BASE_URL")

    def api_key(self, provider: Provider) -> str:
        """The provider's key; `ValueError` naming the variable when it is not set."""
        secret = {
            Provider.OPENAI: self.openai_api_key,
            Provider.ANTHROPIC: self.anthropic_api_key,
            Provider.GEMINI: self.google_api_key,
        }[provider]
        if secret is None or not secret.get_secret_value():
            raise ValueError(f"{KEY_VARS[provider]} is not set: a {provider} worker needs it to start")
        return secret.get_secret_value()

    def base_url(self, provider: Provider) -> str | None:
        return {
            Provider.OPENAI: self.openai_base_url,
            Provider.ANTHROPIC: self.anthropic_base_url,
            Provider.GEMINI: self.google_gemini_base_url,
        }[provider]

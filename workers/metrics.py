"""What a worker counts for Prometheus (prometheus-client), served on `/metrics` at `LLM_METRICS_PORT`.

The specification's five, with its names and labels, and what an operator also needs per worker: retries,
fallbacks, re-runs after a crash, dead letters, cost, and two histograms: how long a request waited on its queue
(enqueued to claimed, its first call only) and a stream's time to first token (provider call start to its first
token). Labels stay bounded: provider, the catalog's model id, status, token type, error type, source_agent (for
cost); never a request_id or a trace_id. What belongs to the whole fleet (queue depth, live workers, circuits)
is not exported per replica: `llm-fleet exporter` (`monitor/exporter.py`) exports it once.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from schemas.errors import LLMError, RequestCancelledError
from schemas.response import LLMResponse
from workers.streams import EventPublisher

__all__ = ["Metrics"]

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_WAIT_BUCKETS = (0.001, 0.0025, 0.005, *_FIRST_TOKEN_BUCKETS, 120.0, 300.0, 600.0)

REQUESTS = Counter("llm_requests", "Requests that ended, by outcome", ["provider", "model", "status"])
DURATION = Histogram(
    "llm_requests_duration_seconds", "From claim to end", ["provider", "model"], buckets=_DURATION_BUCKETS
)
TOKENS = Counter("llm_tokens", "Tokens used", ["provider", "model", "token_type"])
ERRORS = Counter("llm_errors", "Requests that ended with an error, by its type", ["provider", "model", "error_type"])
ACTIVE = Gauge("llm_active_requests", "Requests this worker runs now", ["provider"])
RETRIES = Counter("llm_retries", "Retries put aside to run later", ["provider", "model"])
FALLBACKS = Counter("llm_fallbacks", "Requests moved to a fallback model", ["provider", "model"])
RERUNS = Counter("llm_reruns", "Requests run again after their worker died mid-call", ["provider", "model"])
DEAD_LETTERS = Counter("llm_dead_letters", "Requests that failed for good", ["provider", "model"])
QUEUE_WAIT = Histogram(
    "llm_queue_wait_seconds", "From enqueued to claimed (first call)", ["provider", "model"], buckets=_WAIT_BUCKETS
)
FIRST_TOKEN = Histogram(
    "llm_time_to_first_token_seconds",
    "Streams: from the provider call's start to its first token",
    ["provider", "model"],
    buckets=_FIRST_TOKEN_BUCKETS,
)
COST = Counter("llm_cost_usd", "What the calls cost, USD", ["provider", "model", "source_agent"])


class Metrics:
    """One worker's counts, for `provider` (a self-hosted endpoint's name, for its worker)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.active = ACTIVE.labels(provider)
        self._waits: dict[str, Histogram] = {}  # per model: a child's lookup costs more than its observation

    def queued(self, model: str, seconds: float) -> None:
        """A request's first call starts, `seconds` after it was enqueued."""
        child = self._waits.get(model)
        if child is None:
            child = self._waits[model] = QUEUE_WAIT.labels(self.provider, model)
        child.observe(seconds)

    @staticmethod
    def serve(port: int) -> int:
        """`/metrics` on `port` (0: a free one), in a thread of its own; returns the port."""
        server, _ = start_http_server(port)
        return int(server.server_port)

    def ended(
        self,
        model: str,
        outcome: LLMResponse | LLMError,
        seconds: float,
        source_agent: str | None,
        dead: bool,
        stream: EventPublisher | None = None,
    ) -> None:
        """A request ended (`stream`: its stream, whose first token, if any came, is timed)."""
        provider = self.provider
        if stream is not None and stream.first_token_s:
            FIRST_TOKEN.labels(provider, model).observe(stream.first_token_s)
        if isinstance(outcome, LLMError):
            status = "cancelled" if isinstance(outcome, RequestCancelledError) else "error"
            REQUESTS.labels(provider, model, status).inc()
            if status == "error":
                ERRORS.labels(provider, model, type(outcome).__name__).inc()
            if dead:
                DEAD_LETTERS.labels(provider, model).inc()
        else:
            REQUESTS.labels(provider, model, "ok").inc()
            usage = outcome.usage
            for token_type, count in (
                ("prompt", usage.prompt_tokens),
                ("completion", usage.completion_tokens),
                ("cached", usage.cached_tokens),
                ("reasoning", usage.reasoning_tokens),
            ):
                if count:
                    TOKENS.labels(provider, model, token_type).inc(count)
            if outcome.cost_usd:
                COST.labels(provider, model, source_agent or "").inc(outcome.cost_usd)
        DURATION.labels(provider, model).observe(seconds)

    def retried(self, model: str) -> None:
        RETRIES.labels(self.provider, model).inc()

    def fell_back(self, model: str) -> None:
        FALLBACKS.labels(self.provider, model).inc()

    def rerun(self, model: str) -> None:
        RERUNS.labels(self.provider, model).inc()

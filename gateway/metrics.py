"""The gateway's own metrics (`/metrics`: requests by route, method and status, and their duration), and what
`llm.metrics` tells: per provider the fleet as Redis holds it (queue depth and oldest age, workers, in flight,
circuit, and the whole fleet's requests, errors, latency, tokens and cost over the last 20-30 s), and per model
the requests, errors, tokens and latency this gateway process relayed."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobstore.fleet import FleetReader, QueueState, fleet_queues
from schemas.response import LLMResponse

__all__ = ["GatewayMetrics", "MetricsMiddleware", "fleet_metrics"]


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llm_gateway_requests",
            "HTTP requests the gateway answered, by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "llm_gateway_request_duration_seconds",
            "Time to the end of the gateway's answer (a stream's: its last event), by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.rpc_calls = Counter(
            "llm_gateway_rpc_calls",
            "JSON-RPC calls by method and outcome (ok, or the error code)",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.models: dict[str, dict[str, float]] = defaultdict(
            lambda: {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0, "latency_ms_sum": 0.0}
        )

    def relayed(self, model: str, response: LLMResponse | None) -> None:
        """A request this gateway relayed: its response (None: it failed)."""
        row = self.models[model]
        row["requests"] += 1
        if response is None:
            row["errors"] += 1
            return
        row["prompt_tokens"] += response.usage.prompt_tokens
        row["completion_tokens"] += response.usage.completion_tokens
        row["latency_ms_sum"] += response.latency_ms

    def by_model(self) -> list[dict[str, Any]]:
        rows = []
        for model, row in sorted(self.models.items()):
            answered = row["requests"] - row["errors"]
            mean = round(row["latency_ms_sum"] / answered, 1) if answered else None
            rows.append(
                {
                    "model": model,
                    "requests": int(row["requests"]),
                    "errors": int(row["errors"]),
                    "prompt_tokens": int(row["prompt_tokens"]),
                    "completion_tokens": int(row["completion_tokens"]),
                    "mean_latency_ms": mean,
                }
            )
        return rows


async def fleet_metrics(reader: FleetReader, metrics: GatewayMetrics) -> dict[str, Any]:
    """`llm.metrics`: every queue of the fleet as Redis holds it (one round trip), and the models as this
    gateway saw them."""
    fleet = await reader.read(fleet_queues())
    return {
        "providers": [_queue_row(queue) for queue in fleet.queues],
        "models": metrics.by_model(),
        "models_scope": "this gateway process",
    }


def _queue_row(queue: QueueState) -> dict[str, Any]:
    recent = queue.activity
    p50, p95 = recent.quantile(0.5), recent.quantile(0.95)
    return {
        "provider": queue.name,
        "queued": queue.depth,
        "retrying": queue.retrying,
        "oldest_age_s": round(queue.oldest_age_s, 3),
        "workers": queue.workers,
        "inflight": queue.inflight,
        "limit": queue.limit or None,
        "circuit": queue.circuit,
        "window_s": round(recent.window_s, 1),
        "requests": recent.requests,
        "errors": recent.errors,
        "requests_per_s": round(recent.per_s(recent.requests), 3),
        "p50_ms": None if p50 is None else round(p50 * 1000, 1),
        "p95_ms": None if p95 is None else round(p95 * 1000, 1),
        "tokens_per_s": round(recent.per_s(recent.tokens), 3),
        "cost_usd": round(recent.cost_usd, 9),
    }


class MetricsMiddleware:
    """Counts every HTTP answer by its route's template (never the raw path: ids would explode the labels),
    found from the endpoint the router chose (`paths`: endpoint → template)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, paths: dict[Any, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            name = self.paths.get(scope.get("endpoint"), "unmatched")
            self.metrics.requests.labels(name, scope["method"], str(status)).inc()
            self.metrics.duration.labels(name).observe(time.perf_counter() - started)

"""The gateway's own metrics (`/metrics`: requests by route, method and status, and their duration), and what
`llm.metrics` tells: per provider the fleet's queue depth, live workers and recent error rate (from Redis), and
per model the requests, errors, tokens and latency this gateway process relayed."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobstore import Keys
from producer.admin import provider_health
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


async def fleet_metrics(redis: Redis, keys: Keys, metrics: GatewayMetrics, *, dead_after_s: float) -> dict[str, Any]:
    """`llm.metrics`: the fleet's providers as Redis holds them, and the models as this gateway saw them.

    The providers' rows come from `producer.admin.provider_health` today; the fleet-wide reader of the
    observability work (`jobstore.fleet.FleetReader.read(fleet_queues())`: per queue its depth, workers and
    recent requests, errors, latency, tokens and cost, in one round trip) replaces it here once it lands."""
    providers = await provider_health(redis, keys, dead_after_s=dead_after_s)
    return {"providers": providers, "models": metrics.by_model(), "models_scope": "this gateway process"}


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

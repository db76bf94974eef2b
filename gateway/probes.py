"""The probes, open without a token: `/healthz` (the process answers), `/readyz` (Redis answers, and which
providers have live workers: 503 when Redis is away or no worker lives), `/metrics` (the gateway's own, for
Prometheus)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.state import gateway_of
from schemas.catalog import Provider

__all__ = ["routes"]

_READY_WAIT_S = 2.0


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        fleet = await gateway_of(request).fleet.read([p.value for p in Provider])
    except (RedisError, OSError) as exc:
        return JSONResponse({"ready": False, "redis": False, "error": type(exc).__name__}, 503)
    workers = {queue.name: queue.workers for queue in fleet.queues}
    ready = any(workers.values())
    return JSONResponse({"ready": ready, "redis": True, "workers": workers}, 200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(gateway_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]

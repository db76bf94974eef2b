"""The ASGI app: the routes of each face (`openai_face`, `rpc`, `requests`) and the probes, behind the body
size limit, the token check and the request metrics; one `LLMClient` per process, connected at startup."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import BaseRoute

from gateway import openai_face, probes, requests, rpc
from gateway.auth import Authenticator, AuthMiddleware
from gateway.bodylimit import BodyLimitMiddleware
from gateway.metrics import GatewayMetrics, MetricsMiddleware
from gateway.settings import GatewaySettings
from gateway.state import Gateway
from gateway.tokens import TokenStore
from jobstore import Keys, connect
from jobstore.fleet import FleetReader
from producer import LLMClient
from schemas.settings import FleetSettings

__all__ = ["create_app"]


def create_app(settings: GatewaySettings | None = None, fleet: FleetSettings | None = None) -> FastAPI:
    """The gateway's app; its settings from the environment unless given."""
    gateway_settings = settings or GatewaySettings()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        fleet_settings = fleet or FleetSettings()
        keys = Keys(fleet_settings.key_prefix)
        redis = connect(fleet_settings.redis_url)
        auth = Authenticator(
            gateway_settings.token_agents, TokenStore(redis, keys), time.monotonic, gateway_settings.token_cache_s
        )
        try:
            async with LLMClient(settings=fleet_settings) as client:
                reader = FleetReader(redis, keys, dead_after_s=fleet_settings.dead_after_s)
                app.state.gateway = Gateway(client, redis, keys, gateway_settings, metrics, auth, reader)
                yield
        finally:
            await redis.aclose()

    routes = [*openai_face.routes, *rpc.routes, *requests.routes, *probes.routes]
    app = FastAPI(
        title="llm-fleet gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the routes are documented in the README; nothing here to discover without a token
        # plain routes: each reads its own body (the faces validate it with their own models), so FastAPI's
        # parameter machinery would only cost time on every request
        routes=list[BaseRoute](routes),
    )
    # the last added runs first: the metrics see every answer; without a token nothing else is learnt, not
    # even the body limit
    app.add_middleware(BodyLimitMiddleware, limit=gateway_settings.max_body_bytes)
    app.add_middleware(AuthMiddleware, authenticator=lambda: app.state.gateway.auth)
    app.add_middleware(MetricsMiddleware, metrics=metrics, paths={r.endpoint: r.path for r in routes})
    return app

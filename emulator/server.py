"""The emulator's aiohttp application: the three provider APIs and the ``/_emulator/`` control endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from emulator.anthropic_api import AnthropicApi
from emulator.gemini_api import GeminiApi
from emulator.openai_api import OpenAIApi
from emulator.responder import Responder
from emulator.stats import Stats

PROVIDERS = (OpenAIApi(), AnthropicApi(), GeminiApi())
MAX_BODY_BYTES = 64 * 1024 * 1024
BACKLOG = 4096
SHUTDOWN_TIMEOUT_S = 0.25  # on stop, open requests (stalls, paced streams) get this long, twice, then are cancelled


@dataclass(frozen=True, slots=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    latency_ms: float = 0.0  # added before every response (before the first token of a stream)
    tokens_per_s: float = 0.0  # pace of stream deltas (non-streaming replies wait as long); 0: no pacing


def build_app(options: Options) -> web.Application:
    """The emulator application. Serve it with ``handler_cancellation=True`` (as :func:`running_emulator` does):
    the emulator learns from the cancellation that a client disconnected, and ends stalled requests with it."""
    stats = Stats(provider.name for provider in PROVIDERS)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    for provider in PROVIDERS:
        responder = Responder(provider, stats, latency_ms=options.latency_ms, tokens_per_s=options.tokens_per_s)
        for path in provider.routes:
            app.router.add_post(path, responder.handle)

    async def get_stats(_request: web.Request) -> web.Response:
        return web.json_response(stats.snapshot())

    async def get_requests(request: web.Request) -> web.Response:
        return web.json_response({"requests": stats.requests_for(request.query.get("trace_id"))})

    async def reset(_request: web.Request) -> web.Response:
        stats.reset()
        return web.json_response({"reset": True})

    app.router.add_get("/_emulator/stats", get_stats)
    app.router.add_get("/_emulator/requests", get_requests)
    app.router.add_post("/_emulator/reset", reset)
    return app


@asynccontextmanager
async def running_emulator(options: Options | None = None) -> AsyncIterator[str]:
    """Serve the emulator in this event loop; yields its base URL, e.g. ``http://127.0.0.1:41234``."""
    options = options or Options()
    runner = web.AppRunner(
        build_app(options), handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, options.host, options.port, backlog=BACKLOG).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()

"""What every route shares: the gateway process's `LLMClient`, Redis connection, metrics and token check
(`Gateway`, one per process, on `app.state`), how a route reads a JSON body, and how it answers a typed error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.auth import Authenticator
from gateway.errors import http_body, row_of
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from gateway.trace import Caller
from jobstore import Keys
from jobstore.fleet import FleetReader
from producer import LLMClient
from schemas.errors import InvalidRequestError, LLMError
from schemas.request import explain

__all__ = ["Gateway", "error_response", "gateway_of", "invalid", "json_body", "json_response"]


@dataclass(slots=True)
class Gateway:
    client: LLMClient
    redis: Redis
    keys: Keys
    settings: GatewaySettings
    metrics: GatewayMetrics
    auth: Authenticator
    fleet: FleetReader  # one per process: a reader holds its own connections


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def json_body(request: Request) -> Any:
    """The body as JSON; `InvalidRequestError` when it is not (empty, not UTF-8, not JSON)."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"the body is not valid JSON: {exc}") from None


def invalid(exc: ValidationError, what: str) -> InvalidRequestError:
    """A pydantic validation error as a typed one, naming the field (`param`)."""
    where = ".".join(str(p) for p in exc.errors()[0]["loc"])
    return InvalidRequestError(f"invalid {what}: {explain(exc)}", param=where or None)


def json_response(content: Any, caller: Caller, *, status: int = 200, request_id: str | None = None) -> Response:
    trace = content.get("trace_id") if isinstance(content, dict) else None
    return JSONResponse(content, status, headers=caller.headers(request_id=request_id, trace_id=trace))


def error_response(error: LLMError, caller: Caller, *, request_id: str | None = None) -> Response:
    """A typed error as its HTTP status and the OpenAI-shaped body; Retry-After when the error says when."""
    trace = getattr(error, "trace_id", None) or caller.trace_id or caller.traceparent_trace
    rid = request_id or getattr(error, "request_id", None)
    headers = caller.headers(request_id=rid, trace_id=trace)
    headers["x-should-retry"] = "true" if error.retryable else "false"  # the openai SDKs follow it
    retry_after = error.details.get("retry_after")
    if isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return JSONResponse(http_body(error, request_id=rid, trace_id=trace), row_of(error).status, headers=headers)

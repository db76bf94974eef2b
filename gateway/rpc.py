"""JSON-RPC 2.0 at `POST /rpc`, to the letter of the specification: a single call or a batch (an empty batch is
one Invalid Request error), notifications (no `id`: run, never answered; a batch of them only: HTTP 204), ids
of every allowed type (string, number, null) echoed as given, and the standard errors -32700, -32600, -32601,
-32602, -32603. The fleet's typed errors get the application codes of `gateway.errors.TABLE`, their `data` the
error's type, retryable, request_id and trace_id. The methods are in `gateway.methods`."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    row_of,
    rpc_data,
)
from gateway.methods import METHODS, InvalidParams
from gateway.state import Gateway, gateway_of
from gateway.trace import Caller, caller_of
from schemas.errors import LLMError

__all__ = ["routes"]

log = structlog.get_logger("llm_fleet.gateway")
_UNSET = object()


async def rpc(request: Request) -> Response:
    gateway, caller = gateway_of(request), caller_of(request)
    try:
        payload = json.loads(await request.body(), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        return _reply(_error(None, PARSE_ERROR, f"Parse error: {exc}"), caller)
    if isinstance(payload, list):
        if not payload:
            return _reply(_error(None, INVALID_REQUEST, "Invalid Request: an empty batch"), caller)
        answers = await asyncio.gather(*(_call(gateway, caller, item) for item in payload))
        kept = [a for a in answers if a is not None]
        return _reply(kept, caller) if kept else Response(status_code=204, headers=caller.headers())
    answer = await _call(gateway, caller, payload)
    return _reply(answer, caller) if answer is not None else Response(status_code=204, headers=caller.headers())


async def _call(gateway: Gateway, caller: Caller, call: Any) -> dict[str, Any] | None:
    """One call's answer (None for a notification)."""
    if not isinstance(call, dict):
        return _error(None, INVALID_REQUEST, "Invalid Request: a call is a JSON object")
    call_id = call.get("id", _UNSET)
    if call_id is not _UNSET and not _valid_id(call_id):
        return _error(None, INVALID_REQUEST, "Invalid Request: id must be a string, a number or null")
    answer_id = None if call_id is _UNSET else call_id
    method, params = call.get("method"), call.get("params", _UNSET)
    if call.get("jsonrpc") != "2.0":
        return _error(answer_id, INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"')
    if not isinstance(method, str):
        return _error(answer_id, INVALID_REQUEST, "Invalid Request: method must be a string")
    if params is not _UNSET and not isinstance(params, list | dict):
        return _error(answer_id, INVALID_REQUEST, "Invalid Request: params must be an array or an object")
    answer = await _run(gateway, caller, method, [] if params is _UNSET else params, answer_id)
    return None if call_id is _UNSET else answer


async def _run(gateway: Gateway, caller: Caller, name: str, params: Any, call_id: Any) -> dict[str, Any]:
    method = METHODS.get(name)
    if method is None:
        gateway.metrics.rpc_calls.labels("unknown", str(METHOD_NOT_FOUND)).inc()
        return _error(call_id, METHOD_NOT_FOUND, f"Method not found: {name!r}")
    try:
        result = await method(gateway, caller, params)
    except InvalidParams as exc:
        gateway.metrics.rpc_calls.labels(name, str(INVALID_PARAMS)).inc()
        return _error(call_id, INVALID_PARAMS, f"Invalid params: {exc.error.message}", exc.data(caller))
    except LLMError as exc:
        code = row_of(exc).code
        gateway.metrics.rpc_calls.labels(name, str(code)).inc()
        trace = getattr(exc, "trace_id", None) or caller.trace_id
        return _error(call_id, code, exc.message, rpc_data(exc, request_id=None, trace_id=trace))
    except Exception:
        log.exception("rpc_internal_error", method=name)
        gateway.metrics.rpc_calls.labels(name, str(INTERNAL_ERROR)).inc()
        return _error(call_id, INTERNAL_ERROR, "Internal error")
    gateway.metrics.rpc_calls.labels(name, "ok").inc()
    return {"jsonrpc": "2.0", "result": result, "id": call_id}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _valid_id(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)  # 1e400 parses as infinity, which no JSON answer can carry
    return value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _error(call_id: Any, code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": call_id}


def _reply(content: Any, caller: Caller) -> Response:
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, media_type="application/json", headers=caller.headers())


routes = [Route("/rpc", rpc, methods=["POST"])]

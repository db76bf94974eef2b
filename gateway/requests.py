"""Requests by id over HTTP: `POST /v1/requests` (202 and the request_id; the `Idempotency-Key` header is the
request_id), `GET /v1/requests/{id}?wait=S` (a long poll: the response, or 202 while it is pending), `DELETE
/v1/requests/{id}` (cancel) and `GET /v1/requests/{id}/events` (server-sent events: the stream's events kept in
Redis from the first, or from `Last-Event-ID`, then live; each SSE id is the event's id in the Redis stream).

The body of `POST /v1/requests` is an `LLMRequest` (the fleet's own fields); `"stream": true` keeps its events
for `/events`. A request that does not stream has one event there: its end, from its result.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.state import Gateway, error_response, gateway_of, invalid, json_body, json_response
from gateway.trace import caller_of
from jobstore import Field, State, riding_out
from schemas.codec import decode_outcome
from schemas.errors import InvalidRequestError, LLMError, RequestNotFoundError, ResultTimeoutError
from schemas.events import TERMINAL, DoneEvent, ErrorEvent, decode_event
from schemas.request import LLMRequest
from schemas.response import LLMResponse

__all__ = ["routes"]

_STREAM_ID = re.compile(r"^\d+-\d+$")
KEEPALIVE_MS = 10_000  # an SSE comment this often while no event comes, so proxies keep the connection


async def submit(request: Request) -> Response:
    gateway, caller = gateway_of(request), caller_of(request)
    try:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise InvalidRequestError("the body must be a JSON object (an LLMRequest)")
        if key := request.headers.get("idempotency-key"):
            body = {**body, "request_id": key}
        try:
            llm = LLMRequest.model_validate(caller.apply(body))
        except ValidationError as exc:
            raise invalid(exc, "request") from None
        await gateway.client.submit(llm)
    except LLMError as exc:
        return error_response(exc, caller)
    content = {"request_id": llm.request_id, "trace_id": llm.trace_id, "status": "accepted"}
    response = json_response(content, caller, status=202, request_id=llm.request_id)
    response.headers["Location"] = f"/v1/requests/{llm.request_id}"
    return response


async def result(request: Request) -> Response:
    gateway, caller, request_id = gateway_of(request), caller_of(request), request.path_params["request_id"]
    try:
        wait = _seconds(request.query_params.get("wait", "0"))
        response = await gateway.client.result(request_id, timeout=min(wait, gateway.settings.max_wait_s))
    except ResultTimeoutError:
        pending = {"request_id": request_id, "status": "pending"}
        answer = json_response(pending, caller, status=202, request_id=request_id)
        answer.headers["Retry-After"] = "1"
        return answer
    except LLMError as exc:
        return error_response(exc, caller, request_id=request_id)
    return json_response(response.model_dump(mode="json"), caller, request_id=request_id)


async def cancel(request: Request) -> Response:
    gateway, caller, request_id = gateway_of(request), caller_of(request), request.path_params["request_id"]
    try:
        cancelled = await gateway.client.cancel(request_id)
    except LLMError as exc:
        return error_response(exc, caller, request_id=request_id)
    return json_response({"request_id": request_id, "cancelled": cancelled}, caller, request_id=request_id)


async def events(request: Request) -> Response:
    gateway, caller, request_id = gateway_of(request), caller_of(request), request.path_params["request_id"]
    after = request.headers.get("last-event-id", "").strip() or "0-0"
    if not _STREAM_ID.match(after):
        return error_response(InvalidRequestError(f"Last-Event-ID {after!r} is not an event id"), caller)
    try:
        if not await riding_out(lambda: gateway.redis.exists(gateway.keys.request(request_id))):
            raise RequestNotFoundError(request_id)
    except LLMError as exc:
        return error_response(exc, caller, request_id=request_id)
    headers = {**caller.headers(request_id=request_id), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_follow(gateway, request_id, after), media_type="text/event-stream", headers=headers)


def _seconds(value: str) -> float:
    """`?wait=S`: seconds, 0 or more."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # negative, or NaN
        raise InvalidRequestError(f"wait must be a number of seconds, 0 or more (not {value!r})", param="wait")
    return seconds


async def _follow(gateway: Gateway, request_id: str, after: str) -> AsyncIterator[bytes]:
    """The kept events after `after`, then each new one as it is kept, to the terminal one. A request whose
    events are not kept (it does not stream) or have expired ends with its outcome, from its result. Redis away
    for good ends the stream: the client reconnects with its Last-Event-ID."""
    redis, key, job = gateway.redis, gateway.keys.events(request_id), gateway.keys.request(request_id)
    try:
        streams: bytes | None = await riding_out(lambda: redis.hget(job, Field.BODY))  # type: ignore[arg-type,return-value]
        if streams is not None and not json.loads(streams).get("stream"):
            yield await _outcome(gateway, request_id)
            return
        while True:
            state, outcome = await riding_out(lambda: redis.hmget(job, [Field.STATE, Field.RESULT]))  # type: ignore[arg-type,return-value]
            entries = await riding_out(functools.partial(redis.xrange, key, min=f"({after}"))
            if not entries and state == State.DONE.encode() and outcome is not None:
                yield _ending(decode_outcome(outcome))
                return
            if not entries and state is None:  # the request expired while we followed it
                return
            if not entries:
                found = await riding_out(functools.partial(redis.xread, {key: after}, block=KEEPALIVE_MS))
                entries = found[0][1] if found else []
                if not entries:
                    yield b": keepalive\n\n"
            for event_id, fields in entries:
                after = event_id.decode()
                event = decode_event(fields[b"e"])
                yield f"id: {after}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n".encode()
                if event.type in TERMINAL:
                    return
    except LLMError:
        return


async def _outcome(gateway: Gateway, request_id: str) -> bytes:
    """A request that does not stream: its end, once it has one (within LLM_REQUEST_TIMEOUT)."""
    try:
        outcome: LLMResponse | LLMError = await gateway.client.result(request_id)
    except LLMError as exc:
        outcome = exc
    return _ending(outcome)


def _ending(outcome: LLMResponse | LLMError) -> bytes:
    """The terminal event of a request from its outcome (no SSE id: it is not in the stream)."""
    event = (
        ErrorEvent(seq=0, error=outcome.to_dict())
        if isinstance(outcome, LLMError)
        else DoneEvent(seq=0, response=outcome)
    )
    return f"event: {event.type}\ndata: {event.model_dump_json()}\n\n".encode()


routes = [
    Route("/v1/requests", submit, methods=["POST"]),
    Route("/v1/requests/{request_id}", result, methods=["GET"]),
    Route("/v1/requests/{request_id}", cancel, methods=["DELETE"]),
    Route("/v1/requests/{request_id}/events", events, methods=["GET"]),
]

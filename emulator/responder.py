"""Answering one provider's calls: authentication, the provider's rules, the control tags, faults and pacing."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from emulator.agents import agent_reply
from emulator.provider import ApiError, Call, Provider, new_id
from emulator.replies import STATUS_FAULTS, Reply, parse_tags, prompt_hash
from emulator.stats import Stats

RETRY_AFTER_STATUSES = frozenset({429, 503, 529})
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


class Responder:
    """Answers the calls to one provider's routes (:meth:`handle` is their aiohttp handler)."""

    def __init__(self, provider: Provider, stats: Stats, *, latency_ms: float, tokens_per_s: float) -> None:
        self.provider = provider
        self.stats = stats
        self.latency_ms = latency_ms
        self.token_interval = 1 / tokens_per_s if tokens_per_s > 0 else 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.time()
        body = _decode(await request.read())
        name = self.provider.name
        self.stats.opened(name, request, body)
        try:
            return await self._answer(request, body, started)
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client disconnects
            self.stats.disconnected(name, request, started)
            raise
        finally:
            self.stats.closed(name)

    async def _answer(self, request: web.Request, body: Any, started: float) -> web.StreamResponse:
        try:
            if not self.provider.api_key(request):
                raise ApiError(401)
            if not isinstance(body, dict):
                raise ApiError(400, "The request body is not a valid JSON object.")
            call = self.provider.parse(request, body)
        except ApiError as error:
            return self._error(error)
        tags = parse_tags(call.prompt)
        fault = self.stats.fault_for(prompt_hash(call.prompt), tags)
        latency_ms = self.latency_ms if tags.latency_ms is None else tags.latency_ms
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        if fault == "stall":
            await asyncio.Event().wait()  # never answers: ends when the client disconnects
        if fault is not None and (fault in STATUS_FAULTS or not call.stream):
            return self._fault(request, fault, tags.retry_after)
        try:
            reply = agent_reply(call, tags)
        except ApiError as error:
            return self._error(error)
        interval = 1 / tags.tokens_per_s if tags.tokens_per_s else self.token_interval
        if call.stream:
            return await self._stream(request, call, reply, fault, started, interval)
        if interval:
            await asyncio.sleep(interval * reply.completion_tokens)
        return self._json(self.provider.completion(call, reply))

    def _fault(self, request: web.Request, fault: str, retry_after: float | None) -> web.Response:
        """An HTTP error fault, or any fault of a non-streaming call (``midstream``: the in-stream error's status)."""
        if fault == "cut":
            _drop_connection(request)
            return web.Response()  # never sent: the connection is closed
        if fault == "malformed":
            return self._json(self.provider.malformed_body)
        if fault == "keyshown":  # as a provider may show the key it refused: in part, its two ends
            key = self.provider.api_key(request)
            return self._error(ApiError(401, f"Incorrect API key provided: {key[:8]}...{key[-8:]}"))
        status = STATUS_FAULTS.get(fault, self.provider.midstream_status)
        return self._error(ApiError(status, retry_after=retry_after if status in RETRY_AFTER_STATUSES else None))

    async def _stream(
        self, request: web.Request, call: Call, reply: Reply, fault: str | None, started: float, interval: float
    ) -> web.StreamResponse:
        frames = self.provider.frames(call, reply)
        response = web.StreamResponse(headers={**SSE_HEADERS, **self._request_id()})
        try:
            await response.prepare(request)
            if fault == "malformed":
                await response.write(self.provider.malformed_event)
                return response
            for frame in frames.head:
                await response.write(frame)
            deltas = frames.deltas[: len(frames.deltas) // 2] if fault in ("cut", "midstream") else frames.deltas
            for index, frame in enumerate(deltas):
                if index and interval:
                    await asyncio.sleep(interval)
                await response.write(frame)
            if fault == "cut":
                _drop_connection(request)
                return response
            for frame in [self.provider.stream_error()] if fault == "midstream" else frames.tail:
                await response.write(frame)
        except ConnectionResetError:  # a write found the client gone
            self.stats.disconnected(self.provider.name, request, started)
        return response

    def _error(self, error: ApiError) -> web.Response:
        request_id = new_id("req_")
        headers = self._request_id(request_id)
        if error.retry_after is not None:
            headers["Retry-After"] = f"{error.retry_after:g}"
            headers["retry-after-ms"] = f"{error.retry_after * 1000:g}"
        body = self.provider.error_body(error, request_id)
        return web.Response(status=error.status, body=body, content_type="application/json", headers=headers)

    def _json(self, body: bytes) -> web.Response:
        return web.Response(body=body, content_type="application/json", headers=self._request_id())

    def _request_id(self, request_id: str | None = None) -> dict[str, str]:
        header = self.provider.request_id_header
        return {header: request_id or new_id("req_")} if header else {}


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _drop_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()

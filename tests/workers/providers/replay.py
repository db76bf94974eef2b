"""Test helpers for the provider adapters: a tiny aiohttp server that replays the providers' published
transcripts and records what it was sent, and the requests, settings and checks the tests share.

Queue replies with `server.reply(...)`; each request takes the next one (FIFO). A transcript is sent byte for
byte: JSON files as one body, SSE files (`.sse`, `.txt`) as `text/event-stream`, chunked, one write per event.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from schemas.catalog import Provider
from schemas.errors import ProviderError
from schemas.request import LLMRequest, Message
from schemas.response import LLMResponse
from workers.providers.base import StreamItem
from workers.settings import WorkerSettings

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "fixtures" / "transcripts"
API_KEYS = {
    Provider.OPENAI: "sk-test-OPENAI-9f3c2a",
    Provider.ANTHROPIC: "sk-ant-test-ANTHROPIC-7b1d4e",
    Provider.GEMINI: "key1234",  # the key Google's recorded "invalid key" response echoes in its debug details
}
_EVENT_END = re.compile(rb"(?<=\n\n)|(?<=\n\r\n)")


def transcript(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def events(body: str | bytes) -> list[bytes]:
    """The SSE events of a transcript (or body), each with its blank-line end, byte for byte."""
    raw = transcript(body) if isinstance(body, str) else body
    return [e for e in _EVENT_END.split(raw) if e]


@dataclass
class Reply:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    sse: bool = False
    cut_after: int | None = None
    """Stream only: drop the connection after this many events, without ending the chunked body."""
    hang_after: int | None = None
    """Stream only: stop sending after this many events and wait until the client goes away."""
    hang_before: bool = False
    """Send nothing at all until the client goes away."""
    drop: bool = False
    """Drop the connection without answering."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class ReplayServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.client_gone = asyncio.Event()
        self._stop = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def reply(
        self,
        body: str | bytes,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        sse: bool | None = None,
        cut_after: int | None = None,
        hang_after: int | None = None,
        hang_before: bool = False,
        drop: bool = False,
    ) -> None:
        """Queue one reply; a `str` is a transcript file name (relative to tests/fixtures/transcripts)."""
        if isinstance(body, str):
            sse = body.endswith((".sse", ".txt")) if sse is None else sse
            body = transcript(body)
        self.replies.append(Reply(body, status, headers or {}, bool(sse), cut_after, hang_after, hang_before, drop))

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(
            Recorded(
                request.method,
                request.path_qs,
                {k.lower(): v for k, v in request.headers.items()},
                json.loads(raw) if raw else None,
            )
        )
        if not self.replies:
            return web.json_response({"error": {"message": "no reply queued"}}, status=599)
        reply = self.replies.popleft()
        if reply.drop:
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=599)
        if reply.hang_before:
            await self._wait_for_client_gone(request)
            return web.Response(status=599)
        if not reply.sse:
            headers = {"Content-Type": "application/json", **reply.headers}
            return web.Response(body=reply.body, status=reply.status, headers=headers)
        return await self._stream(request, reply)

    async def _stream(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(
            status=reply.status, headers={"Content-Type": "text/event-stream", **reply.headers}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        for n, event in enumerate(events(reply.body)):
            if n == reply.cut_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            if n == reply.hang_after:
                await self._wait_for_client_gone(request)
                return response
            await response.write(event)
        await response.write_eof()
        return response

    async def _wait_for_client_gone(self, request: web.Request) -> None:
        while not self._stop.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                self.client_gone.set()
                return
            await asyncio.sleep(0.005)


def make_settings(provider: Provider, url: str, transport: str = "aiohttp", **extra: Any) -> WorkerSettings:
    base = {Provider.OPENAI: url + "/v1", Provider.ANTHROPIC: url, Provider.GEMINI: url}[provider]
    names = {
        Provider.OPENAI: ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
        Provider.ANTHROPIC: ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
        Provider.GEMINI: ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"),
    }[provider]
    values = {
        names[0]: API_KEYS[provider],
        names[1]: base,
        "LLM_HTTP_TRANSPORT": transport,
        "LLM_WORKER_CONCURRENCY": 8,
        **extra,
    }
    return WorkerSettings(**values)


def make_request(model: str, **fields: Any) -> LLMRequest:
    """A request with the A2A context set and a system, a user and an assistant turn (override any field)."""
    values: dict[str, Any] = {
        "model": model,
        "messages": [
            Message(role="system", content="Be brief."),
            Message(role="user", content="Hello"),
            Message(role="assistant", content="Hi."),
            Message(role="user", content="Who are you?"),
        ],
        "request_id": "req-1",
        "trace_id": "trace-1",
        "source_agent": "planner",
        "session_id": "sess-1",
        **fields,
    }
    return LLMRequest(**values)


async def collect_items(chunks: AsyncIterator[StreamItem]) -> tuple[list[StreamItem], LLMResponse]:
    """Every item of a stream before its final response (text, pieces of tool calls and of reasoning), and that
    response (which must come last, exactly once)."""
    items: list[StreamItem] = []
    async for item in chunks:
        items.append(item)
    *before, final = items
    assert isinstance(final, LLMResponse) and not any(isinstance(i, LLMResponse) for i in before)
    return before, final


async def collect(chunks: AsyncIterator[str | LLMResponse]) -> tuple[list[str], LLMResponse]:
    """The deltas of a stream, and its final response (which must come last, exactly once)."""
    deltas: list[str] = []
    final: list[LLMResponse] = []
    async for item in chunks:
        assert not final, "nothing may follow the final response"
        if isinstance(item, str):
            deltas.append(item)
        else:
            final.append(item)
    assert len(final) == 1
    return deltas, final[0]


def check_error(
    err: BaseException, cls: type[ProviderError], provider: Provider, status: int | None = None
) -> ProviderError:
    """`err` is exactly `cls`, names its provider and status, and nowhere shows the API key."""
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    assert isinstance(err, ProviderError)
    assert err.details["provider"] == provider.value
    assert err.details.get("status_code") == status
    for text in (str(err), err.message, json.dumps(err.to_dict())):
        assert API_KEYS[provider] not in text
    return err

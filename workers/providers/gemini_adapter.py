"""The Gemini adapter: the Gemini Developer API through the official google-genai SDK.

The SDK's API client sends the request (URL, key, headers, timeout, typed errors, its retries off) and reads
the HTTP stream, but the body is built here in the API's JSON and the answer is read back as JSON: the
SDK's typed path costs 3x the CPU per streamed chunk (a pydantic model built per chunk: BENCHMARKS.md) and
google-genai has no raw option for streams. `_api_client` is the SDK's own, the one its `models` methods
call; its `async_request` / `async_request_streamed` are pinned by the version range in pyproject.toml and
by this adapter's tests against the published transcripts.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import httpx2
from aiohttp import TraceRequestEndParams
from google import genai
from google.genai import errors, types
from google.genai._api_client import BaseApiClient

from schemas.catalog import ModelInfo, Provider
from schemas.errors import ContentFilteredError, ProviderError
from schemas.request import LLMRequest
from schemas.response import FinishReason, LLMResponse, Usage
from workers.providers import bodies, failures, gemini_agents, normalised, redaction
from workers.providers.base import StreamItem, trace_headers
from workers.settings import WorkerSettings

__all__ = ["GeminiAdapter", "map_error", "read_response", "request_body"]

_P = Provider.GEMINI
_FILTERED = (
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "MODEL_ARMOR",
)
_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(_FILTERED, "content_filter"),
}
_DELAY = re.compile(r"(\d+(?:\.\d*)?)s")
_CAUGHT: tuple[type[Exception], ...] = (errors.APIError, *failures.CAUGHT)


class GeminiAdapter:
    provider = _P

    def __init__(self, settings: WorkerSettings) -> None:
        self._key = settings.api_key(_P)
        self._settings = settings
        self._client: genai.Client | None = None
        self._transport: aiohttp.ClientSession | httpx2.AsyncClient | None = None

    async def complete(self, request: LLMRequest, model: ModelInfo) -> LLMResponse:
        started = time.perf_counter()
        try:
            response = await self._api().async_request(
                "post", f"models/{model.id}:generateContent", request_body(request, model), _options(request)
            )
            return read_response(request, model, bodies.json_object(response.body or ""), started)
        except _CAUGHT as exc:
            raise redaction.redact(map_error(exc), self._key) from exc

    async def stream(self, request: LLMRequest, model: ModelInfo) -> AsyncGenerator[StreamItem]:
        started = time.perf_counter()
        state = _State(model.id, request.request_id)
        opened: list[_Response] = []
        _STREAM_RESPONSES.set(opened)
        try:
            chunks = cast(
                "AsyncGenerator[types.HttpResponse]",
                await self._api().async_request_streamed(
                    "post",
                    f"models/{model.id}:streamGenerateContent?alt=sse",
                    request_body(request, model),
                    _options(request),
                ),
            )
            try:
                async for chunk in chunks:  # an error chunk is raised by the SDK as its APIError
                    text = state.feed(bodies.json_object(chunk.body or ""))
                    if isinstance(text, str):
                        if text:
                            yield text
                    else:  # thoughts or calls in the chunk: its pieces in their order
                        for item in text:
                            yield item
            finally:
                await chunks.aclose()
                await _close(opened)
        except _CAUGHT as exc:
            raise redaction.redact(map_error(exc), self._key) from exc
        finally:
            _STREAM_RESPONSES.set(None)
        if state.finish is None:
            raise failures.truncated(_P, "a finishReason")
        yield state.response(request, started)

    async def open(self) -> None:
        self._api()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client.close()
        if isinstance(self._transport, aiohttp.ClientSession):
            await self._transport.close()
        elif self._transport is not None:
            await self._transport.aclose()

    def _api(self) -> BaseApiClient:
        """The SDK's API client, made on first use (an aiohttp session must be made inside the running loop),
        pinned to the Gemini Developer API whatever GOOGLE_GENAI_USE_ENTERPRISE / _VERTEXAI say."""
        if self._client is None:
            self._client = genai.Client(enterprise=False, api_key=self._key, http_options=self._http_options())
        return self._client.aio._api_client

    def _http_options(self) -> types.HttpOptions:
        """Our own pool, so the SDK does not pick its transport by what is importable; one attempt: with no
        retry options the SDK's aiohttp path still retries a dropped connection once, after 1-10 s."""
        settings = self._settings
        options = types.HttpOptions(
            base_url=settings.base_url(_P),
            timeout=int(settings.provider_timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if settings.http_transport == "aiohttp":
            tracking = aiohttp.TraceConfig()
            tracking.on_request_end.append(_track_aiohttp)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=settings.concurrency), trace_configs=[tracking]
            )
            self._transport = options.aiohttp_client = session
        else:
            limits = httpx2.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
            client = httpx2.AsyncClient(
                limits=limits, timeout=settings.provider_timeout_s, event_hooks={"response": [_track_httpx2]}
            )
            self._transport = options.httpx_async_client = client
        return options


_Response = aiohttp.ClientResponse | httpx2.Response
_STREAM_RESPONSES: ContextVar[list[_Response] | None] = ContextVar("gemini_stream_responses", default=None)
"""The HTTP responses a stream opened. Closing the SDK's stream does not close them: its inner generators sit in
a reference cycle (HttpResponse and its segment iterator) and would wait for the garbage collector; so the
transports' public hooks note each response here, and the stream closes them itself."""


async def _track_httpx2(response: httpx2.Response) -> None:
    opened = _STREAM_RESPONSES.get()
    if opened is not None:
        opened.append(response)


async def _track_aiohttp(_session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: TraceRequestEndParams) -> None:
    opened = _STREAM_RESPONSES.get()
    if opened is not None:
        opened.append(params.response)


async def _close(responses: list[_Response]) -> None:
    for response in responses:
        if isinstance(response, httpx2.Response):
            await response.aclose()
        else:
            response.close()


def request_body(request: LLMRequest, model: ModelInfo) -> dict[str, Any]:
    """The request in the API's JSON, as the SDK's own converter writes it."""
    body: dict[str, Any] = {"contents": gemini_agents.contents(request)}
    system = [m.text for m in request.messages if m.role == "system"]
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}], "role": "user"}
    generation: dict[str, Any] = {}
    if request.temperature is not None:
        generation["temperature"] = request.temperature
    if request.max_tokens is not None:
        generation["maxOutputTokens"] = request.max_tokens
    gemini_agents.add_agent_fields(request, body, generation, model)
    body["generationConfig"] = generation
    return body


def read_response(request: LLMRequest, model: ModelInfo, body: dict[str, Any], started: float) -> LLMResponse:
    """A `generateContent` JSON body as the normalised response (a blocked prompt raises `ContentFilteredError`)."""
    state = _State(model.id, request.request_id)
    state.feed(body)
    return state.response(request, started)


def _options(request: LLMRequest) -> types.HttpOptionsDict:
    return {"headers": trace_headers(request)}


class _State:
    """What one response, or the chunks of one stream, add up to; each read as the API's JSON (camelCase)."""

    def __init__(self, model: str, request_id: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.thoughts: list[str] = []
        self.calls = normalised.ToolCalls()
        self.finish: str | None = None
        self._request_id = request_id
        self._usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> str | list[StreamItem]:
        """Take one response (or stream chunk) in; its answer text, or (when it holds thoughts or function calls)
        its pieces in order: text, `ReasoningDelta`s, a `ToolCallDelta` per call (a call comes whole)."""
        candidates, feedback = chunk.get("candidates"), chunk.get("promptFeedback")
        if not candidates and feedback and feedback.get("blockReason"):
            reason = f"{feedback['blockReason']} {feedback.get('blockReasonMessage') or ''}".strip()
            raise failures.provider_error(ContentFilteredError, _P, f"prompt blocked ({reason})")
        self.model = chunk.get("modelVersion") or self.model
        self._usage = chunk.get("usageMetadata") or self._usage  # in a stream, the last one counts
        if not candidates:
            return ""
        candidate = candidates[0]
        self.finish = candidate.get("finishReason") or self.finish
        parts = (candidate.get("content") or {}).get("parts")
        if not parts:
            return ""
        if len(parts) == 1 and not parts[0].get("thought") and "functionCall" not in parts[0]:  # the usual chunk
            text = parts[0].get("text") or ""
            self.parts.append(text)
            return text
        return [item for part in parts if (item := self._piece(part))]

    def _piece(self, part: dict[str, Any]) -> StreamItem | None:
        if "functionCall" in part:
            index = len(self.calls)
            call = gemini_agents.read_call(part, self._request_id, index)
            return self.calls.add(normalised.ToolCallDelta(index, call.id, call.name, call.arguments, call.signature))
        text = part.get("text")
        if not text:
            return None
        if part.get("thought"):
            self.thoughts.append(text)
            return normalised.ReasoningDelta(text)
        self.parts.append(text)
        return str(text)

    def response(self, request: LLMRequest, started: float) -> LLMResponse:
        calls = self.calls.calls()
        finish = "tool_calls" if calls and self.finish == "STOP" else _FINISH.get(self.finish or "", "other")
        return normalised.response(
            request,
            _P,
            self.model,
            "".join(self.parts),
            self.usage(),
            finish,
            started,
            tool_calls=calls,
            reasoning="".join(self.thoughts),
        )

    def usage(self) -> Usage:
        """Thoughts are billed as output: completion_tokens holds them (as OpenAI's do), reasoning_tokens says how
        many."""
        meta = self._usage
        if meta is None:
            return Usage()
        prompt, thoughts = meta.get("promptTokenCount") or 0, meta.get("thoughtsTokenCount")
        completion = (meta.get("candidatesTokenCount") or 0) + (thoughts or 0)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=meta.get("totalTokenCount") or prompt + completion,
            cached_tokens=meta.get("cachedContentTokenCount"),
            reasoning_tokens=thoughts,
        )


def map_error(exc: BaseException) -> ProviderError:
    """Any failure of a Gemini call as the `ProviderError` it means."""
    if isinstance(exc, errors.APIError):
        return failures.provider_error(
            failures.class_for_status(exc.code),
            _P,
            f"{exc.status}: {exc.message}" if exc.status else str(exc.message),
            status_code=exc.code,
            retry_after=failures.retry_after(getattr(exc.response, "headers", None)) or _retry_delay(exc.details),
        )
    return failures.transport_or_unreadable(_P, exc)


def _retry_delay(body: Any) -> float | None:
    """`RetryInfo.retryDelay` ("53s") from the error body's details."""
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        match = _DELAY.fullmatch(str(detail.get("retryDelay", ""))) if isinstance(detail, dict) else None
        if match:
            return float(match[1])
    return None

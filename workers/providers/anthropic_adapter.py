"""The Anthropic adapter: the Messages API through the official async SDK."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any, cast

import anthropic
import httpx2
from anthropic.types import MessageParam

from schemas.catalog import ModelInfo, Provider
from schemas.errors import ProviderError
from schemas.request import LLMRequest
from schemas.response import FinishReason, LLMResponse, Usage
from workers.providers import anthropic_agents, bodies, failures, normalised, redaction, sse
from workers.providers.base import StreamItem, trace_headers
from workers.settings import WorkerSettings

__all__ = ["AnthropicAdapter", "map_error", "read_response", "request_body"]

_P = Provider.ANTHROPIC
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_CAUGHT: tuple[type[Exception], ...] = (anthropic.AnthropicError, *failures.CAUGHT)


class AnthropicAdapter:
    provider = _P

    def __init__(self, settings: WorkerSettings) -> None:
        self._key = settings.api_key(_P)
        self._max_tokens = settings.anthropic_max_tokens
        self._client = anthropic.AsyncAnthropic(
            api_key=self._key,
            base_url=settings.base_url(_P),
            max_retries=0,
            timeout=settings.provider_timeout_s,
            http_client=_http_client(settings),
            open_telemetry=False,  # else an active OTel span's traceparent replaces ours
        )

    async def complete(self, request: LLMRequest, model: ModelInfo) -> LLMResponse:
        started = time.perf_counter()
        try:
            # the SDK's request method for any endpoint (see the OpenAI adapter): no per-call parameter transform
            raw = await self._client.post(
                "/v1/messages",
                cast_to=httpx2.Response,
                body=request_body(request, model, self._max_tokens),
                options={"headers": trace_headers(request)},
            )
            return read_response(request, model, bodies.json_object(raw.content), started)
        except _CAUGHT as exc:
            raise redaction.redact(map_error(exc), self._key) from exc

    async def stream(self, request: LLMRequest, model: ModelInfo) -> AsyncGenerator[StreamItem]:
        started = time.perf_counter()
        state = _StreamState(model.id)
        try:
            async with self._client.messages.with_streaming_response.create(
                **request_body(request, model, self._max_tokens), stream=True, extra_headers=trace_headers(request)
            ) as response:
                async for event, data in sse.sse_events(response.iter_bytes()):
                    if event == "error":
                        raise redaction.redact(_stream_error(data), self._key)
                    item = state.feed(event, data)
                    if item:
                        yield item
        except _CAUGHT as exc:
            raise redaction.redact(map_error(exc), self._key) from exc
        if not state.stopped:
            raise failures.truncated(_P, "message_stop")
        yield normalised.response(
            request,
            _P,
            state.model,
            "".join(state.parts),
            state.usage(),
            _FINISH.get(state.stop_reason or "", "other"),
            started,
            tool_calls=state.calls.calls(),
            reasoning="".join(state.thinking),
            reasoning_signature=state.signature,
        )

    async def open(self) -> None:
        """The client is made in __init__; nothing is left to prepare."""

    async def aclose(self) -> None:
        await self._client.close()


def request_body(request: LLMRequest, model: ModelInfo, max_tokens: int) -> dict[str, Any]:
    """The Messages request body for `request`; `max_tokens` when the request sets none (the API requires one)."""
    system = [m.text for m in request.messages if m.role == "system"]
    messages = cast("list[MessageParam]", anthropic_agents.messages(request))
    params: dict[str, Any] = {
        "model": model.id,
        "messages": messages,
        "max_tokens": request.max_tokens or max_tokens,
    }
    if system:
        params["system"] = "\n\n".join(system)
    anthropic_agents.add_agent_fields(request, params, max_tokens)
    return params  # no temperature: API version 2026-10-21 refuses it (requests with one are refused at submit)


class _StreamState:
    """What the raw events of one stream add up to."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.thinking: list[str] = []
        self.signature: str | None = None
        self.calls = normalised.ToolCalls()
        self._call_of_block: dict[int, int] = {}  # a tool_use block's index -> its call's (0, 1, ...)
        self.stop_reason: str | None = None
        self.stopped = False
        self._input: int | None = None
        self._cache_write: int | None = None
        self._cache_read: int | None = None
        self._output = 0
        self._thinking: int | None = None

    def feed(self, event: str, data: str) -> str | normalised.ToolCallDelta | normalised.ReasoningDelta | None:
        """Take one event in; its text delta, or piece of a tool call or of thinking, if it is one (`ping` and
        unknown events are skipped)."""
        if event == "content_block_delta":
            body = bodies.json_object(data)
            delta = body["delta"]
            kind = delta["type"]
            if kind == "text_delta":
                self.parts.append(delta["text"])
                return str(delta["text"])
            if kind == "input_json_delta" and body["index"] in self._call_of_block:
                piece = normalised.ToolCallDelta(self._call_of_block[body["index"]], None, None, delta["partial_json"])
                return self.calls.add(piece) if piece.arguments else None
            if kind == "thinking_delta":
                self.thinking.append(delta["thinking"])
                return normalised.ReasoningDelta(delta["thinking"])
            if kind == "signature_delta":
                self.signature = (self.signature or "") + delta["signature"]
        elif event == "content_block_start":
            body = bodies.json_object(data)
            block = body["content_block"]
            if block["type"] == "tool_use":
                index = self._call_of_block[body["index"]] = len(self._call_of_block)
                return self.calls.add(normalised.ToolCallDelta(index, block["id"], block["name"], ""))
        elif event == "message_start":
            message = bodies.json_object(data)["message"]
            self.model = message.get("model") or self.model
            self._take_usage(message.get("usage") or {})
        elif event == "message_delta":
            body = bodies.json_object(data)
            self.stop_reason = body["delta"].get("stop_reason") or self.stop_reason
            self._take_usage(body.get("usage") or {})
        elif event == "message_stop":
            self.stopped = True
        return None

    def _take_usage(self, usage: dict[str, Any]) -> None:
        """message_start has the input counts; message_delta the output so far, and may restate the input."""
        self._input = _first(usage.get("input_tokens"), self._input)
        self._cache_write = _first(usage.get("cache_creation_input_tokens"), self._cache_write)
        self._cache_read = _first(usage.get("cache_read_input_tokens"), self._cache_read)
        self._output = usage.get("output_tokens", self._output)
        details = usage.get("output_tokens_details")
        self._thinking = details.get("thinking_tokens") if details else self._thinking

    def usage(self) -> Usage:
        return _count(self._input, self._cache_write, self._cache_read, self._output, self._thinking)


def _first(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


def _http_client(settings: WorkerSettings) -> httpx2.AsyncClient:
    limits = httpx2.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
    if settings.http_transport == "aiohttp":
        return anthropic.DefaultAioHttpClient(limits=limits, timeout=settings.provider_timeout_s)
    return anthropic.DefaultAsyncHttpxClient(limits=limits, timeout=settings.provider_timeout_s)


def read_response(request: LLMRequest, model: ModelInfo, message: dict[str, Any], started: float) -> LLMResponse:
    """A message's JSON body as the normalised response."""
    text, calls, thinking, signature = anthropic_agents.read_blocks(message["content"])
    return normalised.response(
        request,
        _P,
        message.get("model") or model.id,
        text,
        _usage(message["usage"]),
        _FINISH.get(message.get("stop_reason") or "", "other"),
        started,
        tool_calls=calls,
        reasoning=thinking,
        reasoning_signature=signature,
    )


def _usage(usage: dict[str, Any]) -> Usage:
    details = usage.get("output_tokens_details")
    return _count(
        usage["input_tokens"],
        usage.get("cache_creation_input_tokens"),
        usage.get("cache_read_input_tokens"),
        usage["output_tokens"],
        details.get("thinking_tokens") if details else None,
    )


def _stream_error(data: str) -> ProviderError:
    """An `error` event inside a 200 stream (the SDK would raise a status-200 `APIStatusError`)."""
    error = bodies.json_object(data).get("error")
    fields = error if isinstance(error, dict) else {}
    kind, message = fields.get("type"), fields.get("message") or data
    return failures.provider_error(failures.class_for_type(kind), _P, f"{kind}: {message}")


def _count(
    input_tokens: int | None, cache_write: int | None, cache_read: int | None, output: int, thinking: int | None
) -> Usage:
    """Anthropic's input_tokens leave out the cached part; our prompt_tokens (as OpenAI's and Gemini's) hold it."""
    prompt = (input_tokens or 0) + (cache_write or 0) + (cache_read or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        cached_tokens=cache_read,
        reasoning_tokens=thinking,
    )


def map_error(exc: BaseException) -> ProviderError:
    """Any failure of an Anthropic call as the `ProviderError` it means."""
    if isinstance(exc, anthropic.APIStatusError):
        message = exc.api_message or exc.message
        return failures.provider_error(
            failures.class_for_status(exc.status_code),
            _P,
            f"{exc.type}: {message}" if exc.type else message,
            status_code=exc.status_code,
            retry_after=failures.retry_after(exc.response.headers),
        )
    if isinstance(exc, anthropic.APIConnectionError):
        return failures.transport_or_unreadable(_P, exc, timeout=isinstance(exc, anthropic.APITimeoutError))
    return failures.transport_or_unreadable(_P, exc)

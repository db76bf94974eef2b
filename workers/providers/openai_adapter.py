"""The OpenAI adapter: Chat Completions through the official async SDK."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any, cast

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionStreamOptionsParam

from schemas.catalog import ModelInfo, Provider
from schemas.errors import ProviderError
from schemas.request import LLMRequest
from schemas.response import FinishReason, LLMResponse, Usage
from workers.providers import bodies, failures, normalised, openai_agents, redaction, sse
from workers.providers.base import StreamItem, trace_headers
from workers.settings import WorkerSettings

__all__ = ["OpenAIAdapter", "map_error", "read_response", "request_body"]

_P = Provider.OPENAI
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}
_CAUGHT: tuple[type[Exception], ...] = (openai.OpenAIError, *failures.CAUGHT)
_STREAM_OPTIONS: ChatCompletionStreamOptionsParam = {"include_usage": True}


class OpenAIAdapter:
    provider = _P

    def __init__(self, settings: WorkerSettings) -> None:
        self._key = settings.api_key(_P)
        self._client = openai.AsyncOpenAI(
            api_key=self._key,
            base_url=settings.base_url(_P),
            max_retries=0,
            timeout=settings.provider_timeout_s,
            http_client=_http_client(settings),
        )

    async def complete(self, request: LLMRequest, model: ModelInfo) -> LLMResponse:
        started = time.perf_counter()
        try:
            # the SDK's request method for any endpoint: its auth, headers, timeout and typed errors, without
            # the per-call transform of typed parameters that `create` runs (our body is plain JSON already)
            raw = await self._client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                body=request_body(request, model),
                options={"headers": trace_headers(request)},
            )
            return read_response(request, model, bodies.json_object(raw.content), started)
        except _CAUGHT as exc:
            raise redaction.redact(map_error(exc), self._key) from exc

    async def stream(self, request: LLMRequest, model: ModelInfo) -> AsyncGenerator[StreamItem]:
        started = time.perf_counter()
        parts: list[str] = []
        thoughts: list[str] = []
        calls = normalised.ToolCalls()
        finish: str | None = None
        usage: dict[str, Any] | None = None
        reported = model.id
        refused = False
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                **request_body(request, model),
                stream=True,
                stream_options=_STREAM_OPTIONS,
                extra_headers=trace_headers(request),
            ) as response:
                async for _, data in sse.sse_events(response.iter_bytes()):
                    if data.startswith("[DONE]"):
                        break
                    chunk = bodies.json_object(data)
                    if chunk.get("error"):  # an error event inside the 200 stream
                        raise redaction.redact(_stream_error(chunk["error"]), self._key)
                    reported = chunk.get("model") or reported
                    usage = chunk.get("usage") or usage
                    if not chunk.get("choices"):
                        continue
                    choice = chunk["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    delta = choice["delta"]
                    text = delta.get("content")
                    if not text and delta.get("refusal"):  # the model declined: its refusal is the answer
                        text, refused = delta["refusal"], True
                    if text:
                        parts.append(text)
                        yield text
                    if delta.get("tool_calls"):
                        for piece in openai_agents.tool_call_deltas(delta["tool_calls"]):
                            yield calls.add(piece)
                    if delta.get("reasoning_content"):  # what OpenAI-compatible servers send of their reasoning
                        thoughts.append(delta["reasoning_content"])
                        yield normalised.ReasoningDelta(delta["reasoning_content"])
        except _CAUGHT as exc:
            raise redaction.redact(map_error(exc), self._key) from exc
        if finish is None:
            raise failures.truncated(_P, "its finish_reason")
        reason = "content_filter" if refused else _FINISH.get(finish, "other")
        yield normalised.response(
            request,
            _P,
            reported,
            "".join(parts),
            _usage(usage),
            reason,
            started,
            tool_calls=calls.calls(),
            reasoning="".join(thoughts),
        )

    async def open(self) -> None:
        """The client is made in __init__; nothing is left to prepare."""

    async def aclose(self) -> None:
        await self._client.close()


def _http_client(settings: WorkerSettings) -> httpx2.AsyncClient:
    limits = httpx2.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
    if settings.http_transport == "aiohttp":
        return openai.DefaultAioHttpClient(limits=limits, timeout=settings.provider_timeout_s)
    return openai.DefaultAsyncHttpxClient(limits=limits, timeout=settings.provider_timeout_s)


def request_body(request: LLMRequest, model: ModelInfo) -> dict[str, Any]:
    """The Chat Completions request body for `request` (the SDK sends it as it is)."""
    messages = cast(
        "list[ChatCompletionMessageParam]",
        [
            {"role": m.role, "content": m.content}  # text, as it always was sent
            if m.tool_calls is None and m.role != "tool" and isinstance(m.content, str)
            else openai_agents.message(m)
            for m in request.messages
        ],
    )
    params: dict[str, Any] = {"model": model.id, "messages": messages}
    openai_agents.add_agent_fields(request, params, reasoning_model=model.reasoning)
    if model.reasoning:
        if request.max_tokens is not None:
            params["max_completion_tokens"] = request.max_tokens
        return params
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        params["temperature"] = request.temperature
    return params


def read_response(request: LLMRequest, model: ModelInfo, body: dict[str, Any], started: float) -> LLMResponse:
    """A chat completion's JSON body as the normalised response. A refusal (`message.refusal`, finish_reason
    "stop") is a content-filtered answer whose text is the model's refusal, as Anthropic's `stop_reason: refusal`
    is."""
    choice = body["choices"][0]
    message, reason = choice["message"], _FINISH.get(choice["finish_reason"], "other")
    refusal = message.get("refusal")
    return normalised.response(
        request,
        _P,
        body.get("model") or model.id,
        message.get("content") or refusal or "",
        _usage(body.get("usage")),
        "content_filter" if refusal and not message.get("content") else reason,
        started,
        tool_calls=openai_agents.tool_calls(message),
        reasoning=message.get("reasoning_content"),
    )


def _usage(usage: dict[str, Any] | None) -> Usage:
    """A stream from a server that ignores `include_usage` has none: the answer is complete, its usage unknown (0)."""
    if usage is None:
        return Usage()
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
        total_tokens=usage["total_tokens"],
        cached_tokens=prompt_details.get("cached_tokens"),
        reasoning_tokens=completion_details.get("reasoning_tokens"),
    )


def _stream_error(error: Any) -> ProviderError:
    """The `error` object of an event inside a 200 stream (the SDK would raise a plain `APIError`)."""
    fields = error if isinstance(error, dict) else {}
    message = str(fields.get("message") or "An error occurred during streaming")
    return failures.provider_error(failures.class_for_type(fields.get("type"), fields.get("code")), _P, message)


def map_error(exc: BaseException) -> ProviderError:
    """Any failure of an OpenAI call as the `ProviderError` it means."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}  # the inner `error` object
        return failures.provider_error(
            failures.class_for_status(exc.status_code),
            _P,
            str(body.get("message") or exc.message),
            status_code=exc.status_code,
            retry_after=failures.retry_after(exc.response.headers),
        )
    if isinstance(exc, openai.APIConnectionError):
        return failures.transport_or_unreadable(_P, exc, timeout=isinstance(exc, openai.APITimeoutError))
    return failures.transport_or_unreadable(_P, exc)

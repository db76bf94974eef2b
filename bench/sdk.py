"""The baseline a user compares against: the official SDK called directly, as its documentation shows it
(typed response models, typed stream chunks), on the same transport (aiohttp) as the fleet's workers and a
pool at least as large (the workers' size for OpenAI and Anthropic; google-genai's own, unlimited, for
Gemini), against the same emulator, retries off.

The fleet's adapters call the same SDKs but read their raw responses (`workers/providers/bodies.py`), so
the benchmarks show three paths: this one, the adapter called in-process (what the queue adds on top of),
and the fleet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from schemas.catalog import Provider, resolve_model
from schemas.request import LLMRequest
from workers.settings import WorkerSettings


class DirectSDK:
    """One provider's SDK client; `complete` returns the answer's text, `stream` yields its text deltas."""

    def __init__(self, provider: Provider, settings: WorkerSettings) -> None:
        self.provider = provider
        key, url, pool = settings.api_key(provider), settings.base_url(provider), settings.concurrency
        if provider is Provider.OPENAI:
            import httpx2
            import openai

            limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
            self._client: Any = openai.AsyncOpenAI(
                api_key=key, base_url=url, max_retries=0, http_client=openai.DefaultAioHttpClient(limits=limits)
            )
        elif provider is Provider.ANTHROPIC:
            import anthropic
            import httpx2

            limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
            self._client = anthropic.AsyncAnthropic(
                api_key=key, base_url=url, max_retries=0, http_client=anthropic.DefaultAioHttpClient(limits=limits)
            )
        else:
            from google import genai
            from google.genai import types

            # google-genai takes aiohttp by itself when it is importable (it is here); one attempt
            options = types.HttpOptions(base_url=url, retry_options=types.HttpRetryOptions(attempts=1))
            self._client = genai.Client(enterprise=False, api_key=key, http_options=options)

    async def complete(self, request: LLMRequest) -> str:
        model, messages = resolve_model(request.model).id, _messages(request)
        if self.provider is Provider.OPENAI:
            completion = await self._client.chat.completions.create(
                model=model, messages=messages, max_tokens=request.max_tokens
            )
            return str(completion.choices[0].message.content)
        if self.provider is Provider.ANTHROPIC:
            message = await self._client.messages.create(
                model=model, messages=messages, max_tokens=request.max_tokens or 4096
            )
            return "".join(block.text for block in message.content if block.type == "text")
        response = await self._client.aio.models.generate_content(
            model=model, contents=_contents(request), config={"max_output_tokens": request.max_tokens}
        )
        return str(response.text)

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        """Text deltas, and the argument fragments of tool calls (the request's tools are offered)."""
        model, messages = resolve_model(request.model).id, _messages(request)
        if self.provider is Provider.OPENAI:
            tools = [{"type": "function", "function": t.model_dump()} for t in request.tools or ()]
            chunks = await self._client.chat.completions.create(
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **_given(tools=tools),
            )
            async for chunk in chunks:
                delta = chunk.choices[0].delta if chunk.choices else None
                if delta and delta.content:
                    yield delta.content
                for call in (delta.tool_calls or ()) if delta else ():
                    if call.function and call.function.arguments:
                        yield call.function.arguments
        elif self.provider is Provider.ANTHROPIC:
            tools = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools or ()
            ]
            events = await self._client.messages.create(
                model=model,
                messages=messages,
                max_tokens=request.max_tokens or 4096,
                stream=True,
                **_given(tools=tools),
            )
            async for event in events:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield event.delta.text
                elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                    yield event.delta.partial_json
        else:
            stream = await self._client.aio.models.generate_content_stream(
                model=model, contents=_contents(request), config={"max_output_tokens": request.max_tokens}
            )
            async for piece in stream:
                if piece.text:
                    yield piece.text

    async def aclose(self) -> None:
        if self.provider is Provider.GEMINI:
            await self._client.aio.aclose()
        else:
            await self._client.close()


def _messages(request: LLMRequest) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.text} for m in request.messages]


def _contents(request: LLMRequest) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"text": m.text}]} for m in request.messages]


def _given(**fields: list[Any]) -> dict[str, Any]:
    """The fields that hold something (an SDK call takes no empty `tools`)."""
    return {name: value for name, value in fields.items() if value}

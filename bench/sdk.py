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
        model, messages = resolve_model(request.model).id, _messages(request)
        if self.provider is Provider.OPENAI:
            chunks = await self._client.chat.completions.create(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        elif self.provider is Provider.ANTHROPIC:
            events = await self._client.messages.create(
                model=model, messages=messages, max_tokens=request.max_tokens or 4096, stream=True
            )
            async for event in events:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield event.delta.text
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
    return [{"role": m.role, "content": m.content} for m in request.messages]


def _contents(request: LLMRequest) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"text": m.content}]} for m in request.messages]

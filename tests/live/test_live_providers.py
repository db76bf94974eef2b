"""Live calls to the real provider APIs, through the adapters the workers use, on current model ids: each runs
only where its provider's key was set when the tests started (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
`GOOGLE_API_KEY`), and is skipped otherwise (CI sets none). They check what the emulator cannot: that the real
API still answers the requests the adapters write, and that its answers normalise (text, usage, finish reason),
streamed or not, and that a refused key comes back typed without the key in it. A few tokens per test.

    OPENAI_API_KEY=... .venv/bin/python -m pytest -m live
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from schemas.catalog import Provider, resolve_model
from schemas.errors import AuthenticationError, BadRequestError
from schemas.request import LLMRequest
from schemas.response import LLMResponse
from workers.providers import build_adapter
from workers.providers.base import Adapter
from workers.settings import KEY_VARS, WorkerSettings

pytestmark = pytest.mark.live

MODELS = {Provider.OPENAI: "gpt-6-luna", Provider.ANTHROPIC: "claude-haiku-5-5", Provider.GEMINI: "gemini-3.8-flash"}
NOT_A_KEY = "sk-live-test-0000-not-a-key-9999"


def settings_for(provider: Provider, key: str) -> WorkerSettings:
    """The worker's settings with `key` alone: the provider's own API (no base URL), a short timeout."""
    return WorkerSettings(**{KEY_VARS[provider]: key, "LLM_PROVIDER_TIMEOUT": 60})


@pytest.fixture(params=list(Provider), ids=lambda p: p.value)
def provider(request: pytest.FixtureRequest, live_keys: dict[str, str]) -> Provider:
    chosen = Provider(request.param)
    if KEY_VARS[chosen] not in live_keys:
        pytest.skip(f"{KEY_VARS[chosen]} is not set: no live {chosen} call")
    return chosen


@pytest.fixture
async def adapter(provider: Provider, live_keys: dict[str, str]) -> AsyncIterator[Adapter]:
    made = build_adapter(provider, settings_for(provider, live_keys[KEY_VARS[provider]]))
    await made.open()
    yield made
    await made.aclose()


def _request(provider: Provider, *, stream: bool = False) -> LLMRequest:
    # room for a thinking model's own tokens (gemini-3.8-flash thinks before it answers)
    prompt = [{"role": "user", "content": "Answer with one word: what colour is the sky on a clear day?"}]
    return LLMRequest(model=MODELS[provider], max_tokens=512, stream=stream, messages=prompt)


def _check(response: LLMResponse, request: LLMRequest, provider: Provider) -> None:
    assert response.content.strip()
    assert response.provider is provider
    assert response.request_id == request.request_id
    assert response.usage.prompt_tokens > 0
    assert response.usage.completion_tokens > 0
    assert response.finish_reason in ("stop", "length")


async def test_a_short_answer(adapter: Adapter, provider: Provider) -> None:
    request = _request(provider)
    response = await adapter.complete(request, resolve_model(request.model))
    _check(response, request, provider)


async def test_a_short_stream(adapter: Adapter, provider: Provider) -> None:
    request = _request(provider, stream=True)
    texts: list[str] = []
    final: LLMResponse | None = None
    async for item in adapter.stream(request, resolve_model(request.model)):
        if isinstance(item, str):
            texts.append(item)
        else:
            final = item
    assert final is not None and texts
    assert "".join(texts) == final.content
    _check(final, request, provider)


async def test_a_refused_key_comes_back_typed_and_unnamed(provider: Provider) -> None:
    """Run where the provider's real key is set (so its API can be reached), with a key it refuses."""
    refused = build_adapter(provider, settings_for(provider, NOT_A_KEY))
    await refused.open()
    request = _request(provider)
    try:
        with pytest.raises((AuthenticationError, BadRequestError)) as caught:  # Gemini refuses a key with a 400
            await refused.complete(request, resolve_model(request.model))
    finally:
        await refused.aclose()
    assert not caught.value.retryable
    assert NOT_A_KEY not in str(caught.value) and NOT_A_KEY not in repr(caught.value.to_dict())

"""Provider adapters: one official SDK each, behind the `Adapter` protocol of `workers.providers.base`."""

from __future__ import annotations

from schemas.catalog import Provider
from workers.providers.base import Adapter
from workers.settings import WorkerSettings

__all__ = ["Adapter", "build_adapter"]


def build_adapter(provider: Provider, settings: WorkerSettings) -> Adapter:
    """The adapter for `provider`. Only that provider's module (and SDK) is imported, so a worker loads one SDK.

    Raises `ValueError` naming the environment variable when the provider's API key is not set.
    """
    settings.api_key(provider)  # fail before importing an SDK
    if provider is Provider.OPENAI:
        from workers.providers.openai_adapter import OpenAIAdapter

        return OpenAIAdapter(settings)
    if provider is Provider.ANTHROPIC:
        from workers.providers.anthropic_adapter import AnthropicAdapter

        return AnthropicAdapter(settings)
    from workers.providers.gemini_adapter import GeminiAdapter

    return GeminiAdapter(settings)

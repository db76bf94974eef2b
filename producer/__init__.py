"""What a service imports: `LLMClient` (submit, await, stream, cancel)."""

from producer.client import LLMClient

__all__ = ["LLMClient"]

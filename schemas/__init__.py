"""The contract producer and workers share: requests, responses, errors, catalog, keys, codec."""

from schemas.catalog import ModelInfo, Provider, resolve_model
from schemas.errors import LLMError, ModelNotAllowedError, ProviderError
from schemas.request import LLMRequest, Message
from schemas.response import LLMResponse, Usage

__all__ = [
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "ModelInfo",
    "ModelNotAllowedError",
    "Provider",
    "ProviderError",
    "Usage",
    "resolve_model",
]

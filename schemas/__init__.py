"""The contract producer and workers share: requests, responses, errors, catalog, keys, codec."""

from schemas.agents import ImagePart, NamedTool, Reasoning, ResponseFormat, TextPart, Tool, ToolCall
from schemas.catalog import ModelInfo, Provider, resolve_model
from schemas.errors import LLMError, ModelNotAllowedError, ProviderError
from schemas.request import LLMRequest, Message
from schemas.response import LLMResponse, Usage

__all__ = [
    "ImagePart",
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "ModelInfo",
    "ModelNotAllowedError",
    "NamedTool",
    "Provider",
    "ProviderError",
    "Reasoning",
    "ResponseFormat",
    "TextPart",
    "Tool",
    "ToolCall",
    "Usage",
    "resolve_model",
]

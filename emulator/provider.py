"""What every emulated provider API implements, and the pieces they share."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from emulator.replies import NO_AGENT, Agentic, Reply

JsonObject = dict[str, Any]
TEXT = f"text-{os.urandom(8).hex()}"  # stands for a delta's text in an event rendered once per stream


@dataclass(frozen=True, slots=True)
class Call:
    """A provider request, reduced to what the emulator answers from."""

    model: str
    stream: bool
    prompt: str  # text of the last user message: it carries the control tags
    prompt_tokens: int
    max_tokens: int | None
    include_usage: bool = False  # OpenAI: stream_options.include_usage
    agent: Agentic = NO_AGENT  # tools, tool results, JSON output, thinking, images


@dataclass(frozen=True, slots=True)
class Frames:
    """A reply as SSE events, one ``bytes`` per event: written one by one, paced over ``deltas``."""

    head: list[bytes]
    deltas: list[bytes]
    tail: list[bytes]


class ApiError(Exception):
    """An HTTP error the provider answers with. Each provider renders it in its own body shape."""

    def __init__(
        self,
        status: int,
        message: str = "",
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message  # "" = the provider's usual message for this status
        self.param = param  # OpenAI's error.param
        self.code = code  # OpenAI's error.code
        self.retry_after = retry_after  # seconds; also sent as Retry-After / retry-after-ms headers


class Provider(ABC):
    """One wire protocol: how to read its requests and how to write its replies and errors."""

    name: ClassVar[str]
    routes: ClassVar[tuple[str, ...]]  # aiohttp paths answered with POST
    request_id_header: ClassVar[str | None]
    midstream_status: ClassVar[int]  # the HTTP status of the error sent inside a stream
    malformed_body: ClassVar[bytes]
    malformed_event: ClassVar[bytes]

    @abstractmethod
    def api_key(self, request: web.Request) -> str:
        """The API key sent, or ``""``."""

    @abstractmethod
    def parse(self, request: web.Request, body: JsonObject) -> Call:
        """Validate a request (raise :class:`ApiError` as the real API would) and reduce it to a :class:`Call`."""

    @abstractmethod
    def error_body(self, error: ApiError, request_id: str) -> bytes:
        """The provider's JSON error body."""

    @abstractmethod
    def completion(self, call: Call, reply: Reply) -> bytes:
        """The non-streaming JSON body of a reply."""

    @abstractmethod
    def frames(self, call: Call, reply: Reply) -> Frames:
        """The streaming body of a reply."""

    @abstractmethod
    def stream_error(self) -> bytes:
        """The provider's error event inside a 200 stream."""


def bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def whole_number(value: Any) -> int | None:
    """``value`` if it is a JSON integer, else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def text_of(content: Any) -> str:
    """The text of a message content: a string, or a list of parts/blocks where text parts have ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def render_each(event: bytes, texts: Iterable[str]) -> list[bytes]:
    """One copy of ``event`` per text, its :data:`TEXT` placeholder replaced by the text: streams render their
    delta event once and then only encode each token."""
    head, _, tail = event.partition(json.dumps(TEXT).encode())
    return [head + json.dumps(text).encode() + tail for text in texts]

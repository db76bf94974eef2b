"""Deterministic replies: control tags, reply text and token counts.

A reply is a list of word-sized tokens: ``Echo:``, then the words of the last user message, then filler
words, cut to the requested length. Token counts are word counts, so tests can predict usage exactly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, cycle, islice
from typing import Any, Literal

DEFAULT_TOKENS = 12
FAULTS = frozenset({"429", "500", "503", "529", "stall", "cut", "malformed", "midstream", "keyshown"})
STATUS_FAULTS = {"429": 429, "500": 500, "503": 503, "529": 529}

_TAG = re.compile(r"\[\[(latency_ms|tokens|tokens_per_s|fault|retry_after|fail_times|block|tool)(?:=([^\]\s]*))?\]\]")
_FILLER = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")

Finish = Literal["stop", "length", "blocked", "tool_calls"]
FRAGMENT = 8
"""Streamed tool-call arguments (and JSON answers) are cut into pieces of this many characters."""


@dataclass(frozen=True, slots=True)
class Tags:
    """The ``[[name=value]]`` controls found in the last user message."""

    latency_ms: float | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    fault: str | None = None
    retry_after: float | None = None
    fail_times: int | None = None
    block: bool = False
    tools: tuple[str, ...] = ()  # [[tool=NAME]] or [[tool=A,B]]: the tools to call


_NO_TAGS = Tags()


@dataclass(frozen=True, slots=True)
class Agentic:
    """What a request asks beyond text, read from any of the three wire formats (`emulator.agents` answers it)."""

    tools: dict[str, Any] = field(default_factory=dict)  # name -> its parameters' JSON schema
    choice: str = "auto"  # auto, none, required, or the name of the tool the call must use
    parallel: bool = True
    answered: str | None = None  # the text of the tool results, when the conversation ends with them
    schema: Any = None  # the JSON schema the answer must match
    json_object: bool = False
    thinking: bool = False
    images: int = 0


NO_AGENT = Agentic()


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """A tool call the model makes: the tool's name and its arguments as JSON text."""

    name: str
    arguments: str

    @property
    def fragments(self) -> list[str]:
        return [self.arguments[i : i + FRAGMENT] for i in range(0, len(self.arguments), FRAGMENT)] or [""]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the model "generated": its tokens, why it stopped, and the prompt size it was billed for."""

    pieces: tuple[str, ...]
    finish: Finish
    prompt_tokens: int
    calls: tuple[PlannedCall, ...] = ()
    thinking: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        """A token per piece of text, of thinking, and of each call's arguments."""
        return len(self.pieces) + len(self.thinking) + sum(len(call.fragments) for call in self.calls)


def parse_tags(text: str) -> Tags:
    """Read the control tags of a prompt. Tags with unknown names or bad values are ignored."""
    if "[[" not in text:
        return _NO_TAGS
    found = dict(_TAG.findall(text))
    fault = found.get("fault")
    return Tags(
        latency_ms=_number(found.get("latency_ms")),
        tokens=_count(found.get("tokens")),
        tokens_per_s=_number(found.get("tokens_per_s")),
        fault=fault if fault in FAULTS else None,
        retry_after=_number(found.get("retry_after")),
        fail_times=_count(found.get("fail_times")),
        block="block" in found,
        tools=tuple(name for name in found.get("tool", "").split(",") if name),
    )


def count_tokens(texts: Iterable[str]) -> int:
    """Prompt tokens: the words of all input texts, at least 1."""
    return max(1, sum(len(text.split()) for text in texts))


def prompt_hash(prompt: str) -> str:
    """The key of a prompt in the stats (``by_prompt``) and in the ``fail_times`` counters."""
    return hashlib.sha1(prompt.encode(), usedforsecurity=False).hexdigest()[:16]


def make_reply(prompt: str, prompt_tokens: int, max_tokens: int | None, tags: Tags) -> Reply:
    """The reply to ``prompt``: ``tags.tokens`` tokens (default 12, at least 1), cut to ``max_tokens``."""
    if tags.block:
        return Reply((), "blocked", prompt_tokens)
    wanted = max(1, DEFAULT_TOKENS if tags.tokens is None else tags.tokens)
    limit = wanted if max_tokens is None else max(1, min(wanted, max_tokens))
    words = chain(_TAG.sub("", prompt).split(), cycle(_FILLER))
    pieces = ("Echo:", *(f" {word}" for word in islice(words, limit - 1)))
    return Reply(pieces, "length" if limit < wanted else "stop", prompt_tokens)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _count(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None

"""The provider key taken out of an error's message, whole, in pieces, masked or cut."""

from __future__ import annotations

import re

from schemas.errors import ProviderError

__all__ = ["redact"]


def redact(error: ProviderError, secret: str) -> ProviderError:
    """The same error without `secret` in its message (a provider may echo the key it was sent), nor any
    piece of it of `_FRAGMENT` characters or more (a key shown in part: `sk-SENTI...bc123xyz`, a suffix), nor
    the key as the provider masked it (OpenAI's `sk-svcac****r-IL`: its ends are ours), nor the part of it
    left where the message was cut at its length limit."""
    message = _MASKED.sub(lambda m: "[redacted]" if _ends_of(secret, m[1], m[2]) else m[0], error.message)
    message = _without_fragments(message, secret)
    if message.endswith("..."):
        head = message[:-3]
        cut = next((n for n in range(min(len(secret), len(head)), 3, -1) if head.endswith(secret[:n])), 0)
        if cut:
            message = head[:-cut] + "[redacted]..."
    return error if message == error.message else type(error)(message, **error.details)


_FRAGMENT = 8  # the shortest piece of a key redacted wherever it appears
_MASKED = re.compile(r"([\w-]*)\*{3,}([\w-]*)")  # a key with its middle starred out


def _without_fragments(text: str, secret: str) -> str:
    """`text` with every run of characters covered by pieces of `secret` at least `_FRAGMENT` long replaced."""
    if len(secret) < _FRAGMENT:
        return text.replace(secret, "[redacted]") if secret else text
    pieces = {secret[i : i + _FRAGMENT] for i in range(len(secret) - _FRAGMENT + 1)}
    kept, end = [], 0  # `end`: where the text not yet copied starts
    covered_to = -1  # the end of the run of redacted characters being built
    for i in range(len(text) - _FRAGMENT + 1):
        if text[i : i + _FRAGMENT] in pieces:
            if i > covered_to:  # a new run starts here
                kept.append(text[end:i])
                kept.append("[redacted]")
            covered_to = i + _FRAGMENT
            end = covered_to
    kept.append(text[end:])
    return "".join(kept)


def _ends_of(secret: str, head: str, tail: str) -> bool:
    return (
        bool(head or tail) and len(head) + len(tail) < len(secret) and secret.startswith(head) and secret.endswith(tail)
    )

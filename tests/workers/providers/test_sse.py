"""SSE events read from a body's bytes, however the body is cut."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from workers.providers import sse

_SSE = (
    b": a comment\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"data: first line\ndata:second line\nid: 7\nretry: 10\n\n"
    b"event: ping\r\ndata: {}\r\n\r\n"
    b"data: \xff\xfe\rdata: after a CR\r\r"
    b"\n\n\n"
    b"data: cut off before its blank line\n"
)
_SSE_EVENTS = [
    ("message_start", '{"a": 1}'),
    ("", "first line\nsecond line"),
    ("ping", "{}"),
    ("", "\ufffd\ufffd\nafter a CR"),
]


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
async def test_sse_events_are_whole_however_the_body_is_cut(size: int) -> None:
    """Every chunking of the body gives the same events: a CRLF split over two chunks is one line end, an
    event ends at its blank line only, and an event cut off before it is not an event."""
    assert [e async for e in sse.sse_events(_chunks(_SSE, size))] == _SSE_EVENTS

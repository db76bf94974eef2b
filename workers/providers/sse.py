"""The events of a `text/event-stream` body, read from its bytes an event at a time."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

__all__ = ["sse_events"]


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncGenerator[tuple[str, str]]:
    """The events of a `text/event-stream` body as `(event, data)`, each dispatched at its blank line, as the
    SSE standard says: an event cut off before its blank line is not an event. Comments and `id:` /
    `retry:` fields are ignored; several `data:` lines join with a newline; a line may end in LF, CRLF or CR.

    Read from the body's bytes a block (one event) at a time: the SDKs' line iterators cost several
    async-generator steps per line, and an Anthropic token is three lines. Each byte is looked at once
    (a chunk is searched from where the last one ended), however finely a long event is cut."""
    buffer = bytearray()
    cr = False  # the last chunk ended in CR, held back: it may be half of a CRLF
    async for chunk in chunks:
        if cr or b"\r" in chunk:  # one line ending for all
            chunk = b"\r" + chunk if cr else chunk
            cr = chunk.endswith(b"\r")
            chunk = (chunk[:-1] if cr else chunk).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        start = max(len(buffer) - 1, 0)  # a blank line may begin with the buffer's last byte
        buffer += chunk
        taken = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            event, data = _sse_fields(buffer[taken:end])
            taken = start = end + 2
            if data is not None:
                yield event, data
        del buffer[:taken]


def _sse_fields(block: bytearray) -> tuple[str, str | None]:
    """One event's type and data (None: the block has no `data:` line, so it is no event)."""
    event, data = "", list[str]()
    for line in block.decode(errors="replace").split("\n"):  # undecodable bytes become U+FFFD, as in the SDKs
        if line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            event = line[7:] if line.startswith("event: ") else line[6:]
    return event, "\n".join(data) if data else None

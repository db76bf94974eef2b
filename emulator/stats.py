"""Counters and the bounded log of recent requests, served under ``/_emulator/``."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from emulator.replies import Tags

RECORDED_REQUESTS = 10_000  # recent requests kept for /_emulator/requests
COUNTED_KEYS = 100_000  # distinct trace ids / prompt hashes counted; the oldest are dropped beyond this
TOTAL = "total"
_CREDENTIALS = frozenset({"authorization", "x-api-key", "x-goog-api-key"})


def _masked(secret: str) -> str:
    """A credential as kept and served: its scheme and last four characters (a real key may reach the
    emulator by mistake; what it records is served to anyone who asks)."""
    scheme, _, value = secret.rpartition(" ")
    return f"{scheme} ...{value[-4:]}".lstrip()


class Stats:
    """What the emulator saw. Counts per provider are keyed by provider name and ``"total"``."""

    def __init__(self, providers: Iterable[str]) -> None:
        self.started_at = time.time()
        self.keys = (TOTAL, *providers)
        self.open = dict.fromkeys(self.keys, 0)
        self.reset()

    def reset(self) -> None:
        """Forget everything but the requests still open."""
        self.requests = dict.fromkeys(self.keys, 0)
        self.max_open = dict(self.open)
        self.by_trace_id: dict[str, int] = {}
        self.by_prompt: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.disconnects: deque[dict[str, Any]] = deque(maxlen=RECORDED_REQUESTS)
        self.disconnect_count = 0
        self.recorded: deque[dict[str, Any]] = deque(maxlen=RECORDED_REQUESTS)
        self.fail_counts: dict[str, int] = {}

    def opened(self, provider: str, request: web.Request, body: Any) -> None:
        """Count a request and record its path, headers (lowercased) and body."""
        headers = {
            name.lower(): _masked(value) if name.lower() in _CREDENTIALS else value
            for name, value in request.headers.items()
        }
        trace_id = headers.get("x-trace-id")
        for key in (provider, TOTAL):
            self.requests[key] += 1
            self.open[key] += 1
            self.max_open[key] = max(self.max_open[key], self.open[key])
        if trace_id is not None:
            _bump(self.by_trace_id, trace_id)
        self.recorded.append(
            {
                "at": time.time(),
                "provider": provider,
                "method": request.method,
                "path": request.path,
                "query": urlencode([(k, _masked(v) if k == "key" else v) for k, v in request.query.items()]),
                "headers": headers,
                "body": body,
            }
        )

    def closed(self, provider: str) -> None:
        self.open[provider] -= 1
        self.open[TOTAL] -= 1

    def disconnected(self, provider: str, request: web.Request, started: float) -> None:
        """The client went away before its response was complete."""
        now = time.time()
        self.disconnect_count += 1
        self.disconnects.append(
            {
                "at": now,
                "after_s": round(now - started, 6),
                "provider": provider,
                "path": request.path,
                "trace_id": request.headers.get("x-trace-id"),
            }
        )

    def fault_for(self, prompt_key: str, tags: Tags) -> str | None:
        """Count a prompt; return the fault to inject into this request, if any.

        With ``[[fail_times=K]]`` only the first K requests carrying the same prompt get the fault.
        """
        _bump(self.by_prompt, prompt_key)
        if tags.fault is None:
            return None
        if tags.fail_times is not None:
            self.fail_counts[prompt_key] = seen = self.fail_counts.get(prompt_key, 0) + 1
            if seen > tags.fail_times:
                return None
        self.faults[tags.fault] = self.faults.get(tags.fault, 0) + 1
        return tags.fault

    def snapshot(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "requests": self.requests,
            "open": self.open,
            "max_open": self.max_open,
            "by_trace_id": self.by_trace_id,
            "by_prompt": self.by_prompt,
            "faults": self.faults,
            "disconnects": {"total": self.disconnect_count, "events": list(self.disconnects)},
        }

    def requests_for(self, trace_id: str | None) -> list[dict[str, Any]]:
        if trace_id is None:
            return list(self.recorded)
        return [entry for entry in self.recorded if entry["headers"].get("x-trace-id") == trace_id]


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1
    if len(counts) > COUNTED_KEYS:
        del counts[next(iter(counts))]

"""Trace context in and out: `X-Trace-Id`, `X-Source-Agent`, `X-Session-Id` and W3C `traceparent`.

In: the headers name the trace, the agent and the session of a request unless its body names them itself (an
authenticated token's source_agent overrides both). Out: every response carries them back,
with `X-Request-Id`, and a `traceparent` continuing the caller's trace (a new span of ours).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request

__all__ = ["Caller", "caller_of"]

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, under which trace: from the headers and the token (`agent_bound`: the token's source_agent,
    which no body overrides)."""

    trace_id: str | None = None
    source_agent: str | None = None
    session_id: str | None = None
    traceparent_trace: str | None = None
    agent_bound: bool = False

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """An LLMRequest body with this caller's trace, agent and session in it."""
        out = dict(body)
        trace = self.trace_id or self.traceparent_trace
        if trace and not out.get("trace_id"):
            out["trace_id"] = trace
        if self.source_agent and (self.agent_bound or not out.get("source_agent")):
            out["source_agent"] = self.source_agent
        if self.session_id and not out.get("session_id"):
            out["session_id"] = self.session_id
        return out

    def headers(self, *, request_id: str | None = None, trace_id: str | None = None) -> dict[str, str]:
        """What every response carries back."""
        trace = trace_id or self.trace_id or self.traceparent_trace
        out: dict[str, str] = {}
        if request_id:
            out["X-Request-Id"] = request_id
        if trace:
            out["X-Trace-Id"] = trace
        if self.source_agent:
            out["X-Source-Agent"] = self.source_agent
        if self.session_id:
            out["X-Session-Id"] = self.session_id
        w3c = self.traceparent_trace or (trace if trace and _HEX32.match(trace) else None)
        if w3c:
            out["traceparent"] = f"00-{w3c}-{secrets.token_hex(8)}-01"
        return out

    def for_request(self, trace_id: str) -> Caller:
        return replace(self, trace_id=trace_id)


def caller_of(request: Request) -> Caller:
    """The caller of an HTTP request: its trace headers, and the source_agent its token is bound to (set on the
    request's state by the auth middleware)."""
    headers = request.headers
    parent = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    bound: str | None = request.scope.get("state", {}).get("agent")
    return Caller(
        trace_id=headers.get("x-trace-id") or None,
        source_agent=bound or headers.get("x-source-agent") or None,
        session_id=headers.get("x-session-id") or None,
        traceparent_trace=parent.group(1) if parent else None,
        agent_bound=bound is not None,
    )

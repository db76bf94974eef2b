"""Bearer tokens: every route but the probes needs one once any token is configured (`LLM_GATEWAY_TOKENS`, or
`llm-fleet tokens add` in Redis). A valid token binds the request to its source_agent (so budgets and policy
violations count per token); anything else is a 401 that says nothing more, whatever the route or body.

With no token configured at all the gateway is open, and `llm-fleet gateway` listens on 127.0.0.1 only unless
`--no-auth` says otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.settings import digest
from gateway.tokens import TokenStore
from schemas.errors import LLMError

__all__ = ["OPEN_PATHS", "AuthMiddleware", "Authenticator"]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_REFUSAL = json.dumps(
    {"error": {"message": "a valid bearer token is required", "type": "authentication_error", "code": None}}
).encode()
_AWAY = json.dumps(
    {"error": {"message": "tokens cannot be checked now; retry", "type": "server_error", "code": None}}
).encode()


class Authenticator:
    """Which source_agent a bearer token is bound to: `LLM_GATEWAY_TOKENS` first, then Redis (read at most
    once per `cache_s` per token, and whether Redis holds any token at all)."""

    def __init__(
        self, env_tokens: dict[str, str], store: TokenStore, clock: Callable[[], float], cache_s: float
    ) -> None:
        self.env_tokens = env_tokens
        self.store = store
        self.clock = clock
        self.cache_s = cache_s
        self._known: dict[str, tuple[str | None, float]] = {}  # digest → (agent or None, when read)
        self._any_stored = (False, float("-inf"))

    async def required(self) -> bool:
        """Whether any token is configured (else the gateway is open)."""
        if self.env_tokens:
            return True
        stored, at = self._any_stored
        if self.clock() - at >= self.cache_s:
            stored = await self.store.count() > 0
            self._any_stored = (stored, self.clock())
        return stored

    async def agent(self, token: str) -> str | None:
        key = digest(token)
        if key in self.env_tokens:
            return self.env_tokens[key]
        agent, at = self._known.get(key, (None, float("-inf")))
        if self.clock() - at >= self.cache_s:
            agent = await self.store.agent_of(key)
            if len(self._known) > 10_000:  # bounded: a flood of made-up tokens cannot grow it
                self._known.clear()
            self._known[key] = (agent, self.clock())
        return agent


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Callable[[], Authenticator]) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        auth = self.authenticator()
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        try:
            agent = await auth.agent(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
            refused = agent is None and (bool(header) or await auth.required())
        except LLMError:  # Redis away: no token can be checked, and nobody learns more than that
            await _answer(send, 503, _AWAY, [])
            return
        if refused:
            await _answer(send, 401, _REFUSAL, [(b"www-authenticate", b'Bearer realm="llm-fleet"')])
            return
        if agent is not None:
            scope.setdefault("state", {})["agent"] = agent
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    length = str(len(body)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", length), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})

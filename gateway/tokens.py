"""Bearer tokens stored in Redis, each bound to a source_agent: `llm-fleet tokens add AGENT | list | revoke ID`.

A token is stored as its SHA-256 only (`{prefix}:gateway:tokens`, digest → JSON of agent, label, when added);
`add` prints the token once, `list` shows each token's id (the first 12 hex digits of its digest), never the
token. A revoked token stops working on every gateway within `LLM_GATEWAY_TOKEN_CACHE` seconds (default 5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from typing import Any

from redis.asyncio import Redis

from gateway.settings import digest
from jobstore import Keys, connect, riding_out
from schemas.errors import InvalidRequestError, LLMError
from schemas.settings import FleetSettings

__all__ = ["TokenStore", "add_parser", "run"]

ID_LENGTH = 12


class TokenStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.key = keys.gateway_tokens()

    async def add(self, agent: str, label: str = "") -> str:
        """A new token bound to `agent`; the token is returned here and kept nowhere."""
        token = "lf-" + secrets.token_urlsafe(32)
        entry = json.dumps({"agent": agent, "label": label, "added_at": time.time()})
        await riding_out(lambda: self.redis.hset(self.key, digest(token), entry))  # type: ignore[arg-type,return-value]
        return token

    async def agent_of(self, token_digest: str) -> str | None:
        raw: bytes | None = await riding_out(lambda: self.redis.hget(self.key, token_digest))  # type: ignore[arg-type,return-value]
        return None if raw is None else str(json.loads(raw)["agent"])

    async def count(self) -> int:
        return int(await riding_out(lambda: self.redis.hlen(self.key)))  # type: ignore[arg-type,return-value]

    async def list(self) -> list[dict[str, Any]]:
        entries: dict[bytes, bytes] = await riding_out(lambda: self.redis.hgetall(self.key))  # type: ignore[arg-type,return-value]
        rows = [{"id": k.decode()[:ID_LENGTH], **json.loads(v)} for k, v in entries.items()]
        return sorted(rows, key=lambda r: (r["agent"], r["added_at"]))

    async def revoke(self, token_id: str) -> str:
        """Revoke the one token whose id (a prefix of its digest, at least 6 digits) is `token_id`; its agent."""
        if len(token_id) < 6:
            raise InvalidRequestError("a token id has at least 6 hex digits (`llm-fleet tokens list` shows them)")
        entries: dict[bytes, bytes] = await riding_out(lambda: self.redis.hgetall(self.key))  # type: ignore[arg-type,return-value]
        found = [k for k in entries if k.decode().startswith(token_id.lower())]
        if len(found) != 1:
            raise InvalidRequestError(f"{len(found)} tokens have the id {token_id!r}: `llm-fleet tokens list`")
        await riding_out(lambda: self.redis.hdel(self.key, found[0]))  # type: ignore[arg-type,return-value]
        return str(json.loads(entries[found[0]])["agent"])


def add_parser(commands: Any) -> None:
    tokens = commands.add_parser("tokens", help="the gateway's bearer tokens: add AGENT, list, revoke ID")
    actions = tokens.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="a new token bound to a source_agent (printed once)")
    add.add_argument("agent")
    add.add_argument("--label", default="", help="what the token is for")
    actions.add_parser("list", help="each token's id, agent, label and when it was added (never the token)")
    actions.add_parser("revoke", help="revoke a token by its id").add_argument("token_id")


def run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_run(args))
    except LLMError as exc:
        sys.stderr.write(f"llm-fleet: {type(exc).__name__}: {exc.message}\n")
        return 1
    return 0


async def _run(args: argparse.Namespace) -> None:
    settings = FleetSettings()
    redis = connect(settings.redis_url)
    store = TokenStore(redis, Keys(settings.key_prefix))
    try:
        if args.action == "add":
            token = await store.add(args.agent, args.label)
            sys.stdout.write(f"{token}\n")
            sys.stderr.write(f"a token for {args.agent!r}: shown this once, kept only as its hash\n")
        elif args.action == "list":
            rows = await store.list()
            lines = [f"{'id':<{ID_LENGTH}}  {'source_agent':<24} {'added (UTC)':<20} label"]
            for r in rows:
                added = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["added_at"]))
                lines.append(f"{r['id']:<{ID_LENGTH}}  {r['agent']:<24} {added:<20} {r['label']}")
            sys.stdout.write("\n".join(lines) + "\n" if rows else "(none)\n")
        else:
            agent = await store.revoke(args.token_id)
            sys.stdout.write(f"revoked {args.token_id} ({agent})\n")
    finally:
        await redis.aclose()

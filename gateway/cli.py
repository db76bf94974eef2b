"""`llm-fleet gateway [--host H] [--port P] [--workers N] [--no-auth]`: serve the gateway on uvicorn; and
`llm-fleet tokens add|list|revoke` (`gateway.tokens`).

The socket is bound here, before uvicorn starts (port 0 picks a free one), and one line is printed on stdout
once it accepts connections: `{"event": "gateway_ready", "url": ..., "port": ...}`. With `--workers N`, N
processes share it, each with its own `LLMClient`. With no token configured (`LLM_GATEWAY_TOKENS` unset and
none in Redis) the gateway takes requests without one, so it listens on 127.0.0.1 only: another `--host`
then needs `--no-auth` (an auth proxy in front, say).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import sys

import uvicorn
from pydantic import ValidationError
from uvicorn.supervisors import Multiprocess

from gateway import tokens
from gateway.settings import GatewaySettings
from gateway.tokens import TokenStore
from jobstore import Keys, connect
from schemas.errors import LLMError
from schemas.request import explain
from schemas.settings import FleetSettings

__all__ = ["main"]

LOOPBACK = "127.0.0.1"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llm-fleet")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("gateway", help="serve the fleet over HTTP (JSON-RPC, OpenAI-compatible, by id)")
    serve.add_argument("--host", help="the address to listen on (default: 0.0.0.0 with tokens, else 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="the port (0: a free one; default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (default 1)")
    serve.add_argument("--no-auth", action="store_true", help="listen beyond 127.0.0.1 although no token is configured")
    tokens.add_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "tokens":
        return tokens.run(args)
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        sys.stderr.write("llm-fleet gateway: --workers is 1 or more\n")
        return 2
    try:
        guarded = bool(GatewaySettings().token_agents) or asyncio.run(_stored_tokens())
    except ValidationError as exc:
        sys.stderr.write(f"llm-fleet gateway: a setting is not valid: {explain(exc)}\n")
        return 2
    except LLMError as exc:
        sys.stderr.write(f"llm-fleet gateway: {type(exc).__name__}: {exc.message}\n")
        return 1
    host = args.host or ("0.0.0.0" if guarded else LOOPBACK)
    if not guarded and not args.no_auth and not _loopback(host):
        sys.stderr.write(
            f"llm-fleet gateway: no token is configured, so it listens on {LOOPBACK} only; set LLM_GATEWAY_TOKENS "
            "or `llm-fleet tokens add AGENT`, or pass --no-auth to serve without tokens\n"
        )
        return 2
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, args.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(json.dumps({"event": "gateway_ready", "url": f"http://{shown}:{port}", "port": port}), flush=True)  # noqa: T201
    config = uvicorn.Config(
        "gateway.app:create_app",
        factory=True,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        backlog=2048,
        timeout_graceful_shutdown=5,
    )
    if args.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


async def _stored_tokens() -> bool:
    settings = FleetSettings()
    redis = connect(settings.redis_url)
    try:
        return await TokenStore(redis, Keys(settings.key_prefix)).count() > 0
    finally:
        await redis.aclose()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"

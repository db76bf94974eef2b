"""The caller's commands: `complete`, `models`, `demo`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from pydantic import ValidationError
from redis.exceptions import RedisError

from producer.client import LLMClient
from schemas.catalog import CATALOG
from schemas.errors import InvalidRequestError, LLMError
from schemas.request import LLMRequest, Message, explain
from schemas.response import LLMResponse


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llm-fleet")
    commands = parser.add_subparsers(dest="command", required=True)
    complete = commands.add_parser("complete", help="send one request through the fleet")
    complete.add_argument("--model", required=True)
    complete.add_argument("--system", help="a system message")
    complete.add_argument("--temperature", type=float)
    complete.add_argument("--max-tokens", type=int)
    complete.add_argument("--timeout", type=float, help="seconds to wait (LLM_REQUEST_TIMEOUT)")
    complete.add_argument("--json", action="store_true", help="print the LLMResponse as one JSON object")
    complete.add_argument("prompt", nargs="?", help="the prompt (read from stdin when absent)")
    commands.add_parser("models", help="list the model catalog")
    commands.add_parser("demo", help="start Redis, the emulator and workers; call all three providers")
    args = parser.parse_args(argv)
    if args.command == "models":
        return _models()
    if args.command == "demo":
        from producer.demo import run_demo

        return run_demo()
    return _complete(args)


def _models() -> int:
    sys.stdout.write(f"{'model':<30} {'provider':<10} {'status':<8} aliases\n")
    for m in CATALOG:
        sys.stdout.write(f"{m.id:<30} {m.provider.value:<10} {m.status:<8} {', '.join(m.aliases)}\n")
    return 0


def _complete(args: argparse.Namespace) -> int:
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    messages = [Message(role="system", content=args.system)] if args.system else []
    messages.append(Message(role="user", content=prompt))
    try:
        request = LLMRequest(
            model=args.model, messages=messages, temperature=args.temperature, max_tokens=args.max_tokens
        )
        response = asyncio.run(_call(request, args.timeout))
    except ValidationError as exc:
        return _fail(InvalidRequestError(f"invalid request: {explain(exc)}"), args.json)
    except LLMError as exc:
        return _fail(exc, args.json)
    except (RedisError, OSError) as exc:
        return _fail(LLMError(f"cannot reach Redis: {exc}", retryable=True), args.json)
    if args.json:
        sys.stdout.write(response.model_dump_json() + "\n")
    else:
        sys.stdout.write(response.content + "\n")
    return 0


async def _call(request: LLMRequest, timeout: float | None) -> LLMResponse:
    async with LLMClient() as client:
        return await client.complete(request, timeout=timeout)


def _fail(error: LLMError, as_json: bool) -> int:
    sys.stderr.write(f"llm-fleet: {type(error).__name__}: {error.message}\n")
    if as_json:
        info = error.to_dict()
        sys.stdout.write(json.dumps({"error": {k: info[k] for k in ("type", "message", "retryable")}}) + "\n")
    return 1

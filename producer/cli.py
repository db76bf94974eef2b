"""The caller's and the operator's commands: `complete`, `stream`, `batch`, `models`, `health`, `dlq`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobstore import Keys
from producer import batch, governance_commands
from producer.admin import dead_letters, provider_health, retry_dead_letter, show_request
from producer.client import LLMClient
from schemas.catalog import CatalogError, ModelInfo, catalog
from schemas.errors import (
    InvalidRequestError,
    LLMError,
    RequestCancelledError,
    RequestNotFoundError,
    error_from_dict,
)
from schemas.events import StreamEvent
from schemas.request import LLMRequest, Message, explain
from schemas.response import LLMResponse
from schemas.settings import FleetSettings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llm-fleet")
    commands = parser.add_subparsers(dest="command", required=True)
    complete = commands.add_parser("complete", help="send one request through the fleet")
    choice = complete.add_mutually_exclusive_group()
    choice.add_argument("--model", default="", help="an id or alias (`llm-fleet models`)")
    choice.add_argument("--tier", choices=["fast", "balanced", "premium"], help="let the fleet choose a model")
    choice.add_argument("--complexity", choices=["low", "medium", "high"], help="let the fleet choose a model")
    complete.add_argument("--prefer", default="", help="providers to prefer when the fleet chooses, in order")
    complete.add_argument("--system", help="a system message")
    complete.add_argument("--temperature", type=float)
    complete.add_argument("--max-tokens", type=int)
    complete.add_argument("--timeout", type=float, help="seconds to wait (LLM_REQUEST_TIMEOUT)")
    complete.add_argument("--json", action="store_true", help="print the LLMResponse as one JSON object")
    complete.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    complete.add_argument(
        "--tools", help="a JSON file: the tools the model may call ([{name, description, parameters}])"
    )
    complete.add_argument("--tool-choice", help="auto, none, required, or the name of the tool to call")
    complete.add_argument("--reasoning", choices=["low", "medium", "high"], help="the reasoning effort")
    complete.add_argument("prompt", nargs="?", help="the prompt (read from stdin when absent)")
    stream = commands.add_parser("stream", help="follow a streaming request's tokens by its request_id")
    stream.add_argument("request_id")
    stream.add_argument("--timeout", type=float, help="seconds to wait for each event (LLM_REQUEST_TIMEOUT)")
    runs = commands.add_parser("batch", help="one request per line of a JSONL file; results to OUT; resumes")
    runs.add_argument("input", type=Path, metavar="IN.jsonl")
    runs.add_argument("--out", type=Path, required=True, metavar="OUT.jsonl", help="results, one JSON object a line")
    runs.add_argument("--concurrency", type=_at_least_one, default=16, help="requests in flight at most (16)")
    models = commands.add_parser("models", help="list the model catalog")
    models.add_argument("--json", action="store_true", help="one JSON object per model")
    commands.add_parser("health", help="each provider's circuit, cooldown, error rate, queue and workers")
    dlq = commands.add_parser("dlq", help="requests that failed for good: list, show, retry")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    dlq_actions.add_parser("list", help="the most recent dead letters")
    for action in ("show", "retry"):
        dlq_actions.add_parser(action, help=f"{action} one request").add_argument("request_id")
    governance_commands.add_parsers(commands)
    args = parser.parse_args(argv)
    if args.command in ("policy", "select", "budget"):
        return _run(governance_commands.run(args), as_json=getattr(args, "json", False))
    if args.command == "models":
        return _models(args.json)
    if args.command in ("health", "dlq"):
        return _run(_admin(args), as_json=False)
    if args.command == "stream":
        return _run(_follow(args.request_id, args.timeout), as_json=False)
    if args.command == "batch":
        return _run(batch.run(args.input, args.out, args.concurrency), as_json=False)
    return _complete(args)


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _models(as_json: bool) -> int:
    """The catalog: a table, or with --json one object per model (prices in USD per million tokens)."""
    try:
        models = catalog().models
    except CatalogError as exc:
        return _fail(InvalidRequestError(str(exc)), as_json)
    if as_json:
        sys.stdout.write(json.dumps([_listed(m) for m in models], indent=1) + "\n")
        return 0
    sys.stdout.write(f"{'model':<28} {'provider':<10} {'tier':<9} {'status':<17} {'$in/$out per M':>15}  aliases\n")
    for m in models:
        price = "?" if m.price.input is None or m.price.output is None else f"{m.price.input:g}/{m.price.output:g}"
        status = m.status if m.status != "deprecated" else f"until {m.lifecycle.shutdown or '?'}"
        sys.stdout.write(
            f"{m.id:<28} {m.provider.value:<10} {m.tier:<9} {status:<17} {price:>15}  {', '.join(m.aliases)}\n"
        )
    return 0


def _listed(m: ModelInfo) -> dict[str, Any]:
    return {
        "id": m.id,
        "provider": m.provider.value,
        "status": m.status,
        "tier": m.tier,
        "aliases": list(m.aliases),
        "input_price": m.price.input,
        "cached_input_price": m.price.cached_input,
        "output_price": m.price.output,
        "context_window": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "shutdown": m.lifecycle.shutdown.isoformat() if m.lifecycle.shutdown else None,
        "replacement": m.lifecycle.replacement,
        "capabilities": m.capabilities.model_dump(),
    }


def _complete(args: argparse.Namespace) -> int:
    # bytes that are not UTF-8 become lone surrogates (as in argv), which the client refuses, typed
    prompt = args.prompt if args.prompt is not None else sys.stdin.buffer.read().decode(errors="surrogateescape")
    messages = [Message(role="system", content=args.system)] if args.system else []
    messages.append(Message(role="user", content=prompt))
    try:
        request = LLMRequest(
            model=args.model,
            tier=args.tier,
            task_complexity=args.complexity,
            provider_preference=[p for p in args.prefer.split(",") if p],
            messages=messages,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            stream=args.stream,
            **_agent_fields(args),
        )
    except ValidationError as exc:
        return _fail(InvalidRequestError(f"invalid request: {explain(exc)}"), args.json)
    except (OSError, ValueError) as exc:  # the tools file: unreadable, or not JSON
        return _fail(InvalidRequestError(f"--tools {args.tools!r}: {exc}"), args.json)
    return _run(_call(request, args.timeout, as_json=args.json), as_json=args.json)


def _agent_fields(args: argparse.Namespace) -> dict[str, Any]:
    """--tools, --tool-choice and --reasoning as the request's fields (those not given left out)."""
    fields: dict[str, Any] = {}
    if args.tools:
        with open(args.tools, encoding="utf-8") as file:
            fields["tools"] = json.load(file)
    if args.tool_choice:
        named = args.tool_choice not in ("auto", "none", "required")
        fields["tool_choice"] = {"name": args.tool_choice} if named else args.tool_choice
    if args.reasoning:
        fields["reasoning"] = {"effort": args.reasoning}
    return fields


def _run(call: Coroutine[Any, Any, int | None], *, as_json: bool) -> int:
    """Run a command's coroutine: its exit code (0 when it returns none), or 1 with its typed error."""
    try:
        return asyncio.run(call) or 0
    except LLMError as exc:
        return _fail(exc, as_json)
    except (RedisError, OSError) as exc:
        return _fail(LLMError(f"cannot reach Redis: {exc}", retryable=True), as_json)


async def _call(request: LLMRequest, timeout: float | None, *, as_json: bool) -> None:
    async with LLMClient() as client:
        if not request.stream:
            response = await client.complete(request, timeout=timeout)
            sys.stdout.write((response.model_dump_json() if as_json else response.content) + "\n")
            if not as_json:
                _show_calls(response)
            return
        async for event in client.events(request, timeout=timeout):
            _show(event, as_json=as_json)


async def _follow(request_id: str, timeout: float | None) -> None:
    async with LLMClient() as client:
        async for event in client.subscribe(request_id, timeout=timeout):
            _show(event, as_json=False)


async def _admin(args: argparse.Namespace) -> None:
    settings = FleetSettings()
    redis = Redis.from_url(settings.redis_url)
    try:
        if args.command == "health":
            _table(await provider_health(redis, Keys(settings.key_prefix), dead_after_s=settings.dead_after_s))
        elif args.action == "list":
            _table(await dead_letters(redis, Keys(settings.key_prefix)))
        elif args.action == "show":
            job = await show_request(redis, Keys(settings.key_prefix), args.request_id)
            if not job:
                raise RequestNotFoundError(args.request_id)
            sys.stdout.write(json.dumps(job, indent=2) + "\n")
        elif await retry_dead_letter(
            redis,
            Keys(settings.key_prefix),
            args.request_id,
            timeout_s=settings.request_timeout_s,
            ttl_s=settings.result_ttl_s,
        ):
            sys.stdout.write(f"{args.request_id} queued again\n")
        else:
            raise LLMError(f"{args.request_id!r} is not a dead letter")
    finally:
        await redis.aclose()


def _table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        sys.stdout.write("(none)\n")
        return
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in rows[0]}
    sys.stdout.write("  ".join(k.ljust(w) for k, w in widths.items()) + "\n")
    for row in rows:
        sys.stdout.write("  ".join(str(row[k]).ljust(w) for k, w in widths.items()) + "\n")


def _show(event: StreamEvent, *, as_json: bool) -> None:
    """Tokens as they arrive (with --json, the final response only); a failed stream raises its error."""
    if event.type == "delta" and not as_json:
        sys.stdout.write(event.text)
        sys.stdout.flush()
    elif event.type == "done":
        sys.stdout.write(event.response.model_dump_json() + "\n" if as_json else "\n")
        if not as_json:
            _show_calls(event.response)
    elif event.type == "error":
        sys.stdout.write("" if as_json else "\n")
        raise error_from_dict(event.error)
    elif event.type == "cancelled":
        raise RequestCancelledError("the request was cancelled")


def _show_calls(response: LLMResponse) -> None:
    """The tools the model called, a line each: `id name(arguments)`."""
    for call in response.tool_calls:
        sys.stdout.write(f"tool call {call.id} {call.name}({call.arguments})\n")


def _fail(error: LLMError, as_json: bool) -> int:
    sys.stderr.write(f"llm-fleet: {type(error).__name__}: {error.message}\n")
    if as_json:
        info = error.to_dict()
        sys.stdout.write(json.dumps({"error": {k: info[k] for k in ("type", "message", "retryable")}}) + "\n")
    return 1

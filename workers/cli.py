"""`llm-fleet worker --provider openai|anthropic|gemini`, or `--endpoint NAME` for a self-hosted one."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pydantic import SecretStr, ValidationError

from schemas.catalog import Provider, catalog
from workers.settings import WorkerSettings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llm-fleet worker", description="Run a worker for one provider's queue.")
    serves = parser.add_mutually_exclusive_group(required=True)
    serves.add_argument("--provider", choices=[p.value for p in Provider])
    serves.add_argument("--endpoint", help="a self-hosted, OpenAI-compatible endpoint the catalog names")
    parser.add_argument("--concurrency", type=int, help="requests run at once (LLM_WORKER_CONCURRENCY)")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics for Prometheus here (LLM_METRICS_PORT)")
    args = parser.parse_args(argv)
    try:
        chosen: dict[str, Any] = {} if args.concurrency is None else {"LLM_WORKER_CONCURRENCY": args.concurrency}
        if args.metrics_port is not None:
            chosen["LLM_METRICS_PORT"] = args.metrics_port
        settings = WorkerSettings(**chosen)  # validated as the variable would be
        provider, queue = Provider.OPENAI, args.endpoint
        if args.endpoint:
            settings = _for_endpoint(settings, args.endpoint)
        else:
            provider = Provider(args.provider)
        settings.api_key(provider)
    except (ValueError, ValidationError) as exc:
        sys.stderr.write(f"llm-fleet worker: {_first_line(exc)}\n")
        return 1
    from workers.runtime import run_worker  # imports arq and this provider's SDK only now

    return run_worker(provider, settings, queue)


def _for_endpoint(settings: WorkerSettings, name: str) -> WorkerSettings:
    """Settings for a worker of a self-hosted endpoint: the OpenAI adapter, pointed at it with its key."""
    endpoint = next((m.endpoint for m in catalog().models if m.endpoint and m.endpoint.name == name), None)
    if endpoint is None:
        raise ValueError(f"no model in the catalog is served by an endpoint named {name!r} (LLM_CATALOG_FILE)")
    key = os.environ.get(endpoint.key_env, "") if endpoint.key_env else "self-hosted"  # most take any key
    if not key:
        raise ValueError(f"{endpoint.key_env} is not set: the {name} endpoint's worker needs it to start")
    update = {"openai_api_key": SecretStr(key), "openai_base_url": endpoint.base_url}
    return settings.model_copy(update=update)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if not isinstance(exc, ValidationError) else str(exc.errors()[0]["msg"])

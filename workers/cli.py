"""`llm-fleet worker --provider openai|anthropic|gemini`."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from schemas.catalog import Provider
from workers.settings import WorkerSettings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llm-fleet worker", description="Run a worker for one provider's queue.")
    parser.add_argument("--provider", required=True, choices=[p.value for p in Provider])
    parser.add_argument("--concurrency", type=int, help="requests run at once (LLM_WORKER_CONCURRENCY)")
    args = parser.parse_args(argv)
    provider = Provider(args.provider)
    try:
        chosen = {} if args.concurrency is None else {"LLM_WORKER_CONCURRENCY": args.concurrency}
        settings = WorkerSettings(**chosen)  # validated as the variable would be
        settings.api_key(provider)
    except (ValueError, ValidationError) as exc:
        sys.stderr.write(f"llm-fleet worker: {_first_line(exc)}\n")
        return 1
    from workers.runtime import run_worker  # imports arq and this provider's SDK only now

    return run_worker(provider, settings)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if not isinstance(exc, ValidationError) else str(exc.errors()[0]["msg"])

"""`llm-fleet`: the one command. A thin dispatcher that hands each subcommand to its side."""

from __future__ import annotations

import logging
import os
import sys

import structlog

USAGE = """usage: llm-fleet COMMAND [ARGS]

commands:
  complete   send one request through the fleet and print the answer (producer)
  stream     follow a streaming request's tokens by its request_id (producer)
  batch      one request per line of IN.jsonl, results to OUT.jsonl; resumes (producer)
  models     list the model catalog (producer)
  health     each provider's circuit, cooldown, error rate, queue depth and workers
  top        the fleet, live: queues, rates, latency, tokens, cost, circuits, workers (--once: one frame)
  exporter   serve the fleet's state for Prometheus: --port P [--host H] (monitor)
  dlq        requests that failed for good: list, show ID, retry ID
  select     the model the fleet would choose for a tier or a task complexity, and why
  budget     daily budgets per source_agent: set AGENT USD, clear AGENT, show
  policy     the allowed-models policy: show, allow, deny, set, reset, violations (fleet-wide, at run time)
  demo       start everything locally and call all three providers (launcher)
  worker     run a worker for one provider's queue (workers)
  emulator   run the local provider emulator (tests, benchmarks, demo)
  gateway    serve the fleet over HTTP: JSON-RPC, OpenAI-compatible, requests by id (llm-fleet[gateway])
  tokens     the gateway's bearer tokens: add AGENT, list, revoke ID

`llm-fleet COMMAND --help` shows a command's options.
"""

_PRODUCER = {"complete", "stream", "batch", "models", "health", "dlq", "policy", "select", "budget"}


def configure_logging() -> None:
    """JSON log lines on stderr (stdout stays for command output)."""
    level = getattr(logging, os.environ.get("LLM_LOG_LEVEL", "INFO").upper(), logging.INFO)
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(name)s %(message)s")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),  # a line in one write (print makes two)
        cache_logger_on_first_use=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        sys.stdout.write(USAGE)
        return 0 if args else 2
    configure_logging()
    command, rest = args[0], args[1:]
    if command in _PRODUCER:
        from producer.cli import main as producer_main

        return producer_main([command, *rest])
    if command == "demo":
        from launcher.demo import main as demo_main

        return demo_main(rest)
    if command == "worker":
        from workers.cli import main as worker_main

        return worker_main(rest)
    if command == "exporter":
        from monitor.exporter import main as exporter_main

        return exporter_main(rest)
    if command == "top":
        from monitor.top import main as top_main

        return top_main(rest)
    if command in ("gateway", "tokens"):
        try:
            from gateway.cli import main as gateway_main
        except ImportError as exc:  # the extra is not installed
            sys.stderr.write(f"llm-fleet: {command} needs `pip install 'llm-fleet[gateway]'` ({exc})\n")
            return 2
        return gateway_main(args)
    if command == "emulator":
        from emulator.cli import main as emulator_main

        return emulator_main(rest)
    sys.stderr.write(f"llm-fleet: unknown command {command!r}\n\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

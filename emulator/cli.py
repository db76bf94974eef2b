"""``python -m emulator.cli``: serve the emulator until SIGTERM/SIGINT.

Prints one line to stdout once it listens, then nothing else:
``{"event": "emulator_ready", "url": "http://127.0.0.1:PORT", "port": PORT}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys

from emulator.server import Options, running_emulator


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = Options(host=args.host, port=args.port, latency_ms=args.latency_ms, tokens_per_s=args.tokens_per_s)
    _raise_open_files_limit()
    asyncio.run(_serve(options))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulator.cli", description="Emulate the OpenAI, Anthropic and Gemini APIs."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each response / first token")
    parser.add_argument(
        "--tokens-per-s", type=float, default=0.0, help="pace of streamed tokens; 0 (default): no pacing"
    )
    return parser


async def _serve(options: Options) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_emulator(options) as url:
        port = int(url.rpartition(":")[2])
        sys.stdout.write(json.dumps({"event": "emulator_ready", "url": url, "port": port}) + "\n")
        sys.stdout.flush()
        await stop.wait()


def _raise_open_files_limit() -> None:
    """Thousands of concurrent connections need thousands of file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    sys.exit(main())

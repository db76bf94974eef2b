"""Benchmarks: `python -m bench NAME [options]` (or `make bench ARGS="NAME ..."`). Figures go to BENCHMARKS.md."""

from __future__ import annotations

import importlib
import sys

NAMES = (
    "latency",
    "stream",
    "chaos",
    "abstraction",
    "footprint",
    "soak",
    "capacity",
    "instructions",
    "selection",
    "scaling",
    "gateway",
    "face",
)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in NAMES:
        sys.stderr.write(f"usage: python -m bench {{{'|'.join(NAMES)}}} [options]\n")
        raise SystemExit(2)
    importlib.import_module(f"bench.{sys.argv[1]}").main(sys.argv[2:])


main()

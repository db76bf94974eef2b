"""How long choosing a model takes (NFR-P2: under 1 ms at p99): `ModelSelector.select` over the shipped
catalog, for every tier and complexity, with and without a provider preference, under a policy that allows
some of the catalog and with one provider not ready: what the producer runs for a request that names no model
(its read of which providers are ready is cached for a second, so it is not on every request's path).

    python -m bench selection [--calls 20000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from schemas.catalog import ModelInfo, Provider, catalog
from schemas.policy import Policy
from schemas.selection import ModelSelector


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench selection")
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)
    models = catalog().models
    allowed = Policy(deny=("gpt-4*", "*preview*")).allowed(models)  # as the producer keeps it: a set of ids

    def permits(model: ModelInfo) -> bool:
        return model.id in allowed

    ready = {Provider.OPENAI, Provider.ANTHROPIC}
    rng = random.Random(7)
    asks = [
        {"tier": rng.choice(["fast", "balanced", "premium"]), "prefer": rng.sample(list(Provider), rng.randint(0, 2))}
        if rng.random() < 0.7
        else {"complexity": rng.choice(["low", "medium", "high"]), "prefer": []}
        for _ in range(args.calls)
    ]
    for ask in asks[:500]:  # warm
        ModelSelector(models, permits=permits, ready=ready).select(**ask)  # type: ignore[arg-type]
    took = []
    cpu0 = time.process_time()
    for ask in asks:
        t0 = time.perf_counter()
        ModelSelector(models, permits=permits, ready=ready).select(**ask)  # type: ignore[arg-type]
        took.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    took.sort()
    pct = {q: took[min(len(took) - 1, int(q * len(took)))] * 1e6 for q in (0.5, 0.99, 0.999)}
    sys.stdout.write(
        f"select, {len(models)} models in the catalog, {args.calls} calls: p50 {pct[0.5]:.1f} µs, "
        f"p99 {pct[0.99]:.1f} µs, p99.9 {pct[0.999]:.1f} µs, max {took[-1] * 1e6:.1f} µs; "
        f"CPU {cpu / args.calls * 1e6:.1f} µs per call\n"
    )

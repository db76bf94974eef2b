"""Daily budgets per source_agent, fleet-wide: each agent's budget (USD per UTC day) and what it spent today.

A request counts against its `source_agent`'s budget. Its cost is added to the day's spend atomically when it
finishes (`finish.lua`); once the spend reaches the budget, the agent's next request is refused when it is
submitted (`submit.lua`), and a job already queued when it starts (`start_job.lua`), before any provider call
and with no added round trip. The requests in flight when the spend crosses the budget still finish: the
overshoot is at most what they cost.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from jobstore.keys import Keys
from jobstore.outage import riding_out

__all__ = ["Budgets"]


class Budgets:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def set(self, agent: str, usd: float) -> None:
        await riding_out(lambda: self.redis.hset(self.keys.budgets(), agent, repr(float(usd))))  # type: ignore[arg-type,return-value]

    async def clear(self, agent: str) -> None:
        await riding_out(lambda: self.redis.hdel(self.keys.budgets(), agent))  # type: ignore[arg-type,return-value]

    async def seed(self, budgets: dict[str, float]) -> None:
        """The starting budgets (LLM_BUDGETS) of agents that have none yet: one an operator set stays."""

        async def seed() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for agent, usd in budgets.items():
                    pipe.hsetnx(self.keys.budgets(), agent, repr(float(usd)))
                await pipe.execute()

        await riding_out(seed)

    async def show(self) -> list[dict[str, Any]]:
        """Each agent with a budget or a spend today: its budget, today's spend, what is left."""
        budgets: dict[bytes, bytes] = await riding_out(lambda: self.redis.hgetall(self.keys.budgets()))  # type: ignore[arg-type,return-value]
        spent: dict[bytes, bytes] = await riding_out(lambda: self.redis.hgetall(self.keys.spend()))  # type: ignore[arg-type,return-value]
        rows = []
        for agent in sorted(set(budgets) | set(spent)):
            budget = float(budgets[agent]) if agent in budgets else None
            used = float(spent.get(agent, b"0"))
            left = None if budget is None else round(budget - used, 6)
            rows.append({"source_agent": agent.decode(), "budget_usd": budget, "spent_usd": used, "left_usd": left})
        return rows

"""`llm-fleet policy show | allow MODEL... | deny MODEL... | set MODEL... | reset | violations`: the
allowed-models policy, changed at run time for the whole fleet (every producer and worker follows within a
second). MODEL: an id, an alias or a glob pattern (`gpt-6*`). `llm-fleet select --tier T | --complexity C
[--prefer P,...]`: the model the fleet would choose now, and why."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jobstore.policy import PolicyStore
from producer.client import LLMClient
from schemas.catalog import catalog
from schemas.errors import InvalidRequestError
from schemas.policy import Policy
from schemas.request import LLMRequest

__all__ = ["add_parsers", "run"]


def add_parsers(commands: Any) -> None:
    budget = commands.add_parser("budget", help="daily budgets per source_agent: set, clear, show")
    budget_actions = budget.add_subparsers(dest="action", required=True)
    budget_set = budget_actions.add_parser("set", help="an agent's budget, USD per UTC day")
    budget_set.add_argument("agent")
    budget_set.add_argument("usd", type=float)
    budget_actions.add_parser("clear", help="an agent's budget removed (no limit)").add_argument("agent")
    budget_actions.add_parser("show", help="each agent's budget, today's spend and what is left").add_argument(
        "--json", action="store_true"
    )
    select = commands.add_parser("select", help="the model the fleet would choose for a tier or a complexity")
    choice = select.add_mutually_exclusive_group(required=True)
    choice.add_argument("--tier", choices=["fast", "balanced", "premium"])
    choice.add_argument("--complexity", choices=["low", "medium", "high"])
    select.add_argument("--prefer", default="", help="providers to prefer, in order (openai,anthropic,gemini)")
    select.add_argument("--json", action="store_true", help="print the selection as JSON")
    policy = commands.add_parser("policy", help="the allowed-models policy: show, allow, deny, set, reset, violations")
    actions = policy.add_subparsers(dest="action", required=True)
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON")
    actions.add_parser("show", parents=[json_flag], help="the policy in force, its version and the models it allows")
    for action, what in (("allow", "allow these too"), ("deny", "deny these"), ("set", "allow these only")):
        actions.add_parser(action, parents=[json_flag], help=what).add_argument("models", nargs="+", metavar="MODEL")
    actions.add_parser("reset", parents=[json_flag], help="back to each process's own starting policy (ALLOWED_MODELS)")
    actions.add_parser("violations", parents=[json_flag], help="requests the policy refused, by model and source_agent")


async def run(args: argparse.Namespace) -> None:
    if args.command == "budget":
        await _budget(args)
        return
    if args.command == "select":
        await _select(args)
        return
    async with LLMClient() as client:
        store = client.policy
        assert store is not None
        if args.action == "violations":
            rows = await store.violations()
            sys.stdout.write(json.dumps(rows) + "\n" if args.json else _table(rows))
            return
        if args.action != "show":
            await _change(store, args.action, tuple(getattr(args, "models", ())))
        _show(store, as_json=args.json)


async def _budget(args: argparse.Namespace) -> None:
    async with LLMClient() as client:
        budgets = client.budgets
        assert budgets is not None
        if args.action == "set":
            if args.usd < 0:
                raise InvalidRequestError("a budget is 0 USD or more")
            await budgets.set(args.agent, args.usd)
        elif args.action == "clear":
            await budgets.clear(args.agent)
        rows = await budgets.show()
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    lines = [f"{'source_agent':<24} {'budget $':>10} {'spent today $':>14} {'left $':>10}"]
    for r in rows:
        budget = "-" if r["budget_usd"] is None else f"{r['budget_usd']:g}"
        left = "-" if r["left_usd"] is None else f"{r['left_usd']:.4f}"
        lines.append(f"{r['source_agent']:<24} {budget:>10} {r['spent_usd']:>14.4f} {left:>10}")
    sys.stdout.write("\n".join(lines) + "\n")


async def _select(args: argparse.Namespace) -> None:
    async with LLMClient() as client:
        probe = LLMRequest(
            messages=[{"role": "user", "content": "-"}],
            tier=args.tier,
            task_complexity=args.complexity,
            provider_preference=[p for p in args.prefer.split(",") if p],
        )
        chosen = await client.choose(probe)
    selection = chosen.selection
    assert selection is not None
    if args.json:
        sys.stdout.write(selection.model_dump_json() + "\n")
        return
    sys.stdout.write(
        f"{selection.model}  (fallbacks: {', '.join(selection.fallbacks) or 'none'})\n"
        f"asked: {selection.asked}; {selection.why}\ncandidates: {', '.join(selection.candidates)}\n"
    )


async def _change(store: PolicyStore, action: str, models: tuple[str, ...]) -> None:
    unknown = [m for m in models if not Policy(allow=(m,)).allowed(catalog().models) and m not in _names()]
    if unknown:  # a typo would otherwise allow or deny nothing, silently
        raise InvalidRequestError(f"no model in the catalog is named or matched by {', '.join(unknown)}")
    current = store.current
    if action == "reset":
        await store.change(active=False)
    elif action == "set":
        await store.change(allow=models)
    elif action == "allow":
        allow = None if current.allow is None else (*current.allow, *models)
        await store.change(allow=allow, deny=tuple(d for d in current.deny if d not in models))
    else:
        await store.change(allow=current.allow, deny=(*current.deny, *models))


def _names() -> set[str]:
    return {name for m in catalog().models for name in (m.id, *m.aliases)}


def _show(store: PolicyStore, *, as_json: bool) -> None:
    policy, allowed = store.current, sorted(store.allowed)
    if as_json:
        sys.stdout.write(json.dumps({**policy.model_dump(), "allowed_models": allowed}) + "\n")
    else:
        sys.stdout.write(f"{policy.describe()}\nallowed now ({len(allowed)}): {', '.join(allowed)}\n")


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'model':<30} {'source_agent':<24} refused"]
    lines += [f"{r['model']:<30} {r['source_agent']:<24} {r['refused']}" for r in rows]
    return "\n".join(lines) + "\n" if rows else "(none)\n"

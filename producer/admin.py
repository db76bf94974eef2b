"""What operators read and repair: dead letters (list, show, retry) and provider health."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from redis.asyncio import Redis

from jobstore import Intake, Keys
from jobstore.fleet import FleetReader, fleet_queues
from schemas.catalog import ModelInfo, resolve_model
from schemas.codec import decode_request
from schemas.errors import LLMError

__all__ = ["dead_letters", "provider_health", "retry_dead_letter", "show_request"]


async def dead_letters(redis: Redis, keys: Keys, limit: int = 100) -> list[dict[str, Any]]:
    """The most recent requests that failed for good: id, when, provider, model and error."""
    entries = await redis.zrevrange(keys.dead(), 0, limit - 1, withscores=True)
    letters = []
    for raw_id, at in entries:
        request_id = raw_id.decode()
        job = await show_request(redis, keys, request_id)
        error = (job.get("result") or {}).get("error", {})
        body: dict[str, Any] = job["body"] if isinstance(job.get("body"), dict) else {}
        letters.append(
            {
                "request_id": request_id,
                "failed_at": at,
                "provider": job.get("provider"),
                "model": body.get("model"),
                "error": error.get("type"),
                "message": error.get("message"),
            }
        )
    return letters


async def show_request(redis: Redis, keys: Keys, request_id: str) -> dict[str, Any]:
    """Everything Redis holds about a request (empty when it is unknown or expired)."""
    raw = await redis.hgetall(keys.request(request_id))  # type: ignore[misc]
    job: dict[str, Any] = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
    for field in ("body", "result"):
        if field in job:
            with contextlib.suppress(ValueError):  # a malformed body is shown as it is
                job[field] = json.loads(job[field])
    return job


async def retry_dead_letter(redis: Redis, keys: Keys, request_id: str, *, timeout_s: float, ttl_s: int) -> bool:
    """Queue a dead letter again (same request_id, fresh deadline); False if it is not a dead letter."""
    stored, body = await redis.hmget(keys.request(request_id), ["provider", "body"])  # type: ignore[misc]
    if stored is None:
        await redis.zrem(keys.dead(), request_id)
        return False
    own = _own_model(body)
    return await Intake(redis, keys).retry_dead(
        request_id=request_id,
        provider=own.queue if own else stored.decode(),
        model=own.id if own else "",
        deadline_at=time.time() + timeout_s,
        ttl_s=ttl_s,
    )


def _own_model(body: bytes | None) -> ModelInfo | None:
    """The request's own model, where a retry starts; None for a body that names no model we know (the stored
    provider is kept: its worker fails the job, typed, again)."""
    try:
        return resolve_model(decode_request(body).model)
    except LLMError:
        return None


async def provider_health(redis: Redis, keys: Keys, *, dead_after_s: float) -> list[dict[str, Any]]:
    """Per queue (each provider's, each self-hosted endpoint's): circuit state (closed / open / half-open:
    traffic flows again after an open period and the circuit reopens by the same rule), cooldown, recent error
    rate, queue depth, live workers, and the queue elements dropped for having no job behind them. It reads
    through a reader of its own, whose connections stay open until `redis` closes: right for the one-shot
    `health` command; a long-lived caller holds one `FleetReader` instead (as the gateway and `top` do)."""
    fleet = await FleetReader(redis, keys, dead_after_s=dead_after_s).read(fleet_queues())
    rows = []
    for queue in fleet.queues:
        recent = queue.activity.ok + queue.activity.err
        rows.append(
            {
                "provider": queue.name,
                "circuit": queue.circuit,
                "open_for_s": queue.open_for_s,
                "cooldown_s": queue.cooldown_s,
                "recent_requests": recent,
                "error_rate": round(queue.activity.err / recent, 3) if recent else 0.0,
                "queued": queue.depth,
                "retrying": queue.retrying,
                "dropped": queue.dropped,  # queue elements with no job behind them
                "workers": queue.workers,
            }
        )
    return rows

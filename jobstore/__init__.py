"""A request's life in Redis, in one place: the key names (`keys.py`), the queue element, the job hash's fields,
the states and what moves a request between them (the `.lua` scripts in `lua/`, run by name through
`scripts.py`), and the connections that carry them (`lane.py`, `outage.py`). The callers' steps are in
`intake.py`, the workers' in `queue.py` (what their start step decides: `verdict.py`), what the operators' views
read in `fleet.py`. `producer`, `workers` and `monitor` import this package; it imports none of them (only the
pure contract, `schemas`).

A job's states (`State`, the hash's `state` field) and the script behind each move:

                 submit.lua                 claim.lua / claim_queued.lua / start.lua
    (caller) ─────────────────► queued ──────────────────────────────────────────► running
                                 ▲  │ cancel.lua                (verdict: run; wait, expired,   │
                     defer.lua   │  │ (never reaches a           lost, cancelled end or defer   │
                   reroute.lua   │  ▼  provider)                  without a call)                │
                  release.lua ───┤ done ◄────────────────────────────────────────────────────────┘
                 (a dead worker's│  ▲                 finish.lua (result, reply channels, the
                  jobs go back)  │  │                 stream's terminal event, dead letter)
                                 │  │
                  retry_dead.lua └──┘ (a dead letter starts over)

    running ── cancel.lua ──► running + `cancel` flag (its worker stops the call; finish.lua ends it)
    attach.lua: a caller waits for a request it did not submit (its reply channel joins the hash).
    publish.lua: a stream's events, kept and sent live; heartbeat.lua, promote.lua, size_slots.lua: the
    workers' upkeep (liveness, due retries, the fleet's concurrency tokens).

`done` is the one terminal state: a request never gets two results (finish.lua keeps the first).
"""

from jobstore.intake import Intake
from jobstore.keys import BUCKET_S, Element, Field, Keys, State
from jobstore.lane import AWAY, REFUSED, Lane, connect
from jobstore.outage import access_denied, ride_out, riding_out
from jobstore.queue import Circuit, Limits, WorkerQueue
from jobstore.verdict import Started, Verdict

__all__ = [
    "AWAY",
    "BUCKET_S",
    "REFUSED",
    "Circuit",
    "Element",
    "Field",
    "Intake",
    "Keys",
    "Lane",
    "Limits",
    "Started",
    "State",
    "Verdict",
    "WorkerQueue",
    "access_denied",
    "connect",
    "ride_out",
    "riding_out",
]

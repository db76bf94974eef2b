"""Every Lua script of the job model, one `.lua` file each in `lua/`, loaded once and run by its SHA1.

A file starts with its declarations, one place that names what it reads:

    --! keys: request queue            KEYS, in order, read in the body as `key_request`, `key_queue`
    --! args: reply request_id ...     ARGV, read as `arg_reply`, ...; a name ending in `...` takes the rest
    --! uses: attach_reply element     pieces composed in before the body (shared functions)
    --! flags: allow-oom                Redis script flags (the `#!lua` line)
    --! piece                          this file is a piece, composed into scripts, never run alone

A caller passes named values (`Script.bind`), so an argument can no longer land in another's place; a piece
declares the names it reads too, and a script that uses it must declare them (checked at load time).
`tests/jobstore/test_scripts.py` reads every file and fails on a `KEYS[..]` / `ARGV[..]` read outside the
declarations, a name read that is not declared, or a job hash field that `Field` does not name.
"""

from __future__ import annotations

import functools
import hashlib
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["SCRIPTS", "Script", "load", "source_of"]


@dataclass(frozen=True, slots=True)
class _Declared:
    keys: tuple[str, ...]
    args: tuple[str, ...]
    uses: tuple[str, ...]
    flags: str
    piece: bool
    body: str


def source_of(name: str) -> str:
    """The text of `lua/{name}.lua`, as shipped in the package."""
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def _declared(name: str) -> _Declared:
    text = source_of(name)
    found: dict[str, list[str]] = {"keys": [], "args": [], "uses": [], "flags": []}
    piece = False
    for line in text.splitlines():
        if not line.startswith("--!"):
            continue
        what, _, names = line[3:].strip().partition(":")
        if what == "piece":
            piece = True
        elif what in found:
            found[what] += names.split()
        else:
            raise ValueError(f"{name}.lua: unknown declaration {line!r}")
    return _Declared(
        tuple(found["keys"]), tuple(found["args"]), tuple(found["uses"]), " ".join(found["flags"]), piece, text
    )


def _locals(prefix: str, names: tuple[str, ...], source: str) -> str:
    """`local key_a, key_b = KEYS[1], KEYS[2]` (locals: no table to build per call); a last name ending in
    `...` takes the rest, as a list (all of them: the table itself)."""
    fixed = [n for n in names if not n.endswith("...")]
    lines = []
    if fixed:
        targets = ", ".join(f"{prefix}_{n}" for n in fixed)
        lines.append(f"local {targets} = {', '.join(f'{source}[{i}]' for i in range(1, len(fixed) + 1))}")
    if len(fixed) < len(names):
        rest, skip = f"{prefix}_{names[-1].removesuffix('...')}", len(fixed)
        if not skip:
            lines.append(f"local {rest} = {source}")
        else:
            lines.append(f"local {rest} = {{}}")
            lines.append(f"for i = {skip + 1}, #{source} do {rest}[i - {skip}] = {source}[i] end")
    return "".join(line + "\n" for line in lines)


class Script:
    """One script: its composed source (prelude naming KEYS and ARGV, its pieces, its body) and SHA1."""

    def __init__(self, name: str) -> None:
        declared = _declared(name)
        if declared.piece:
            raise ValueError(f"{name}.lua is a piece: it is composed into scripts, not run alone")
        self.name = name
        self.key_names = declared.keys
        self.arg_names = declared.args
        self._keys, self._args = _picker(declared.keys), _picker(declared.args)
        parts = [f"#!lua flags={declared.flags}\n" if declared.flags else ""]
        parts += [_locals("key", declared.keys, "KEYS"), _locals("arg", declared.args, "ARGV")]
        for used in declared.uses:
            piece = _declared(used)
            missing = [n for n in (*piece.keys, *piece.args) if n not in (*declared.keys, *declared.args)]
            if not piece.piece or missing:
                raise ValueError(f"{name}.lua uses {used}.lua, which reads {missing or 'it as a script'} undeclared")
            parts.append(piece.body)
        parts.append(declared.body)
        self.source = "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def bind(self, keys: Mapping[str, Any], args: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV in the declared order, from named values (a `...` name takes a list); a name missing
        or one the script does not declare is a `ValueError`."""
        try:
            return self._keys(keys), self._args(args)
        except (KeyError, TypeError):
            raise ValueError(
                f"{self.name}.lua takes keys {self.key_names} and args {self.arg_names}, "
                f"was given {sorted(keys)} and {sorted(args)}"
            ) from None


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], list[Any]]:
    """Reads the named values in order, in C (`itemgetter`); more values than names is a `KeyError` too. A
    script whose only name takes the rest gets that list itself (a stream's events: no copy per token)."""
    fixed = [n for n in names if not n.endswith("...")]
    rest = names[-1][:-3] if len(fixed) < len(names) else None
    get = operator.itemgetter(*fixed) if fixed else None

    def pick(values: Mapping[str, Any]) -> list[Any]:
        if len(values) != len(names):
            raise KeyError
        if get is None:  # no fixed name: `rest` is the only one, its list passed as it is
            only: list[Any] = values[str(rest)]
            return only
        got = get(values)
        ordered = list(got) if len(fixed) != 1 else [got]
        return ordered + list(values[rest]) if rest is not None else ordered

    return pick


@functools.cache
def load(name: str) -> Script:
    """The script `lua/{name}.lua`, read and composed once per process."""
    return Script(name)


SCRIPTS = (
    "submit",
    "attach",
    "cancel",
    "retry_dead",
    "claim",
    "claim_queued",
    "start",
    "finish",
    "defer",
    "reroute",
    "publish",
    "promote",
    "heartbeat",
    "release",
    "size_slots",
    "set_policy",
    "ready",
    "fleet",
)
"""Every script, by file name (the rest of `lua/` are pieces)."""

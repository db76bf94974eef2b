"""Every script of the job model read as text: the names it reads are the names it declares, the job hash's
fields are `Field`'s, its states `State`'s, its verdicts `Verdict`'s; so a positional mismatch, or a field
spelled two ways, cannot ship."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from jobstore import Field, State, Verdict
from jobstore.scripts import SCRIPTS, Script, load, source_of

FILES = sorted(p.name.removesuffix(".lua") for p in resources.files("jobstore").joinpath("lua").iterdir())
_JOB_HASH_CALL = re.compile(r"redis\.call\('(H[A-Z]+)',\s*(?:key_request|job_key)\s*,")


def _declared(name: str) -> tuple[set[str], set[str]]:
    keys: set[str] = set()
    args: set[str] = set()
    for line in source_of(name).splitlines():
        for prefix, names in (("--! keys:", keys), ("--! args:", args)):
            if line.startswith(prefix):
                names.update(n.removesuffix("...") for n in line[len(prefix) :].split())
    return keys, args


def _job_hash_calls(code: str) -> list[tuple[str, str]]:
    """Each command on the job hash, with the text of its arguments after the key (to its closing bracket)."""
    calls = []
    for found in _JOB_HASH_CALL.finditer(code):
        depth, end = 1, found.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(code[end], 0)
            end += 1
        calls.append((found[1], code[found.end() : end - 1]))
    return calls


def _code(name: str) -> str:
    """The file without its comments."""
    return "\n".join(line.split("--", 1)[0] for line in source_of(name).splitlines())


def test_every_file_is_a_script_or_a_piece_and_every_script_composes() -> None:
    for name in FILES:
        if name in SCRIPTS:
            assert load(name).sha
        else:
            assert "--! piece" in source_of(name), f"{name}.lua is neither listed in SCRIPTS nor a piece"
            with pytest.raises(ValueError, match="piece"):
                Script(name)


@pytest.mark.parametrize("name", FILES)
def test_a_file_reads_only_the_keys_and_arguments_it_declares(name: str) -> None:
    code = _code(name)
    assert not re.search(r"\b(KEYS|ARGV)\[", code), f"{name}.lua reads KEYS/ARGV by position"
    keys, args = _declared(name)
    assert set(re.findall(r"\bkey_(\w+)", code)) <= keys, f"{name}.lua reads a key it does not declare"
    assert set(re.findall(r"\barg_(\w+)", code)) <= args, f"{name}.lua reads an argument it does not declare"


@pytest.mark.parametrize("name", FILES)
def test_the_job_hash_is_read_and_written_by_the_names_of_field_and_state(name: str) -> None:
    code = _code(name)
    known = {f.value for f in Field} | {s.value for s in State}
    for command, rest in _job_hash_calls(code):
        unknown = set(re.findall(r"(?<!\.\. )'([^']*)'(?! \.\.)", rest)) - known  # not a piece of a value
        assert not unknown, f"{name}.lua: {command} of the job hash names {unknown}, which Field and State do not"
    for compared in re.findall(r"\bstate\s*[~=]=\s*'([^']*)'", code):
        assert compared in {s.value for s in State}, f"{name}.lua compares the state with {compared!r}"


def test_the_start_step_answers_only_verdicts_the_worker_knows() -> None:
    said = set(re.findall(r"\{'(\w+)', ", _code("start_job"))) | set(
        re.findall(r"wait\(.*?'(\w+)'\)", _code("start_job"))
    )
    assert said - {"cooldown", "circuit", "rpm", "tpm"} == {v.value for v in Verdict}


def test_arguments_are_passed_by_name_and_a_missing_or_unknown_one_is_refused() -> None:
    script = load("size_slots")
    assert script.bind({"slots": "s", "size": "z"}, {"limit": 3}) == (["s", "z"], [3])
    with pytest.raises(ValueError, match="size_slots.lua takes"):
        script.bind({"slots": "s"}, {"limit": 3})
    with pytest.raises(ValueError, match="size_slots.lua takes"):
        script.bind({"slots": "s", "size": "z"}, {"limit": 3, "extra": 1})
    publish, events = load("publish"), ["c", "e", 1]
    assert publish.bind({"streams": ["a"]}, {"events": events}) == (["a"], events)
    with pytest.raises(ValueError, match="publish.lua takes"):
        publish.bind({"streams": ["a"]}, {"events": events, "cap": 9})
    claim_queued = load("claim_queued")  # several names
    names = ("claimed", "held", "slots", "cooldown", "circuit", "rate", "dropped", "policy", "policy_models")
    names += ("budgets", "spend", "queue")
    keys = dict.fromkeys(names, "k")
    args = dict.fromkeys(("request_prefix", "worker", "release", "max_reruns", "rpm", "tpm", "again"), 0)
    assert claim_queued.bind(keys, {**args, "most": 7})[1][-1] == 7

"""`llm-fleet batch`'s files: the lines of IN as requests or problems, and what OUT already holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from producer.batch import Line, line_id, read_lines, take_results
from schemas.errors import InvalidRequestError, LLMError
from schemas.request import LLMRequest

ASK = {"model": "gpt-6-luna", "messages": [{"role": "user", "content": "hi"}]}


def _write(path: Path, *lines: str | bytes) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def _problem(line: Line) -> str:
    assert isinstance(line.parsed, InvalidRequestError), line
    return line.parsed.message


def test_a_line_without_a_request_id_gets_one_stable_across_runs_and_distinct_per_line(tmp_path: Path) -> None:
    same = json.dumps(ASK)
    source = _write(tmp_path / "in.jsonl", same, "", same, json.dumps({**ASK, "request_id": "mine"}))
    first, again = list(read_lines(source)), list(read_lines(source))
    assert [line.request_id for line in first] == [line.request_id for line in again]
    assert [line.number for line in first] == [1, 3, 4]  # a blank line is no request
    assert len({line.request_id for line in first}) == 3
    assert first[0].request_id == line_id(1, same.encode()) != line_id(3, same.encode())
    assert first[2].request_id == "mine"
    assert all(isinstance(line.parsed, LLMRequest) and line.parsed.request_id == line.request_id for line in first)
    assert line_id(1, b"a") != line_id(1, b"b")  # an edited line is a new request


def test_bad_lines_name_their_line_and_what_is_wrong(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "in.jsonl",
        "not json",
        "[1, 2]",
        json.dumps({"model": "gpt-6-luna"}),
        json.dumps({**ASK, "request_id": "twice"}),
        json.dumps({**ASK, "request_id": "twice"}),
        b'{"model": "\xff"}',
        json.dumps({**ASK, "request_id": "no spaces allowed"}),
    )
    lines = list(read_lines(source))
    assert isinstance(lines[3].parsed, LLMRequest)
    problems = {line.number: _problem(line) for line in lines if line.number != 4}
    assert problems[1].startswith("line 1: not JSON")
    assert problems[2] == "line 2: a JSON list, not an object (a request)"
    assert problems[3] == "line 3: not a valid request: messages: Field required"
    assert problems[5] == "line 5: request_id 'twice' is line 4's too"
    assert problems[6].startswith("line 6: not JSON")  # not UTF-8
    assert problems[7].startswith("line 7: not a valid request: request_id:")
    assert lines[4].request_id != "twice" and lines[6].request_id.startswith("line7-")
    assert all(isinstance(line.parsed, InvalidRequestError) and line.parsed.line == line.number for line in lines[:3])


def test_results_are_read_by_request_id_and_a_torn_last_line_is_cut(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert take_results(out) == {}
    whole = [
        json.dumps({"line": 1, "request_id": "a", "response": {}}),
        json.dumps({"line": 2, "request_id": "b", "error": {"type": "BadRequestError"}}),
    ]
    _write(out, *whole)
    with out.open("ab") as f:
        f.write(b'{"line": 3, "request_id": "c", "resp')  # a run killed mid-write
    assert take_results(out) == {"a": True, "b": False}
    assert out.read_text() == "".join(f"{line}\n" for line in whole)
    assert take_results(out) == {"a": True, "b": False}  # nothing more to cut


@pytest.mark.parametrize("foreign", ["not json", "[1]", '{"line": 1}', '{"request_id": 7}'])
def test_an_out_file_that_is_not_a_batch_run_s_is_refused(tmp_path: Path, foreign: str) -> None:
    out = _write(tmp_path / "out.jsonl", json.dumps({"line": 1, "request_id": "a", "response": {}}), foreign)
    with pytest.raises(LLMError, match="line 2 is not a result of llm-fleet batch"):
        take_results(out)
    assert out.read_text().endswith(f"{foreign}\n")  # left as it was

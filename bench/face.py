"""What the OpenAI-compatible face costs to read a chat-completions body (`gateway.openai_face.to_request`), in
instructions per body, counted by valgrind's callgrind: a plain text body (a system and a user message) and a
tool loop's body (tools, an assistant's call, its result). A count, not a time: the same on a busy host and an
idle one. A child process runs the translation N times and once more with none; the difference over N is the
cost of one (imports and warm-up cancel out). `--baseline TREE` counts another tree's face (main's checkout,
say) in the same run, beside this one:

    python -m bench face [--bodies 2000] [--baseline TREE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
ASK = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is the weather in Paris?"}]
BODIES = {
    "text": {"model": "gpt-4.1-mini", "messages": ASK, "max_tokens": 64},
    "tool loop": {
        "model": "gpt-4.1-mini",
        "max_tokens": 64,
        "tools": [WEATHER],
        "messages": [
            *ASK,
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12 C"},
        ],
    },
}


_CHILD = """
import json, sys
from gateway.openai_face import to_request
from gateway.trace import Caller
body, caller = json.loads(sys.argv[1]), Caller()
for _ in range(int(sys.argv[2]) + 1):  # once more than counted: the warm-up
    to_request(body, caller)
"""
"""The child: reads the body N times, with the tree's `gateway` (its directory first on the path)."""


def _instructions(tree: str, kind: str, count: int, out: Path) -> int | None:
    """The child's instructions; None when the tree refuses the body (a face that does not take tools)."""
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.{count}"]
    child = [sys.executable, "-c", _CHILD, json.dumps(BODIES[kind]), str(count)]
    env = {**os.environ, "PYTHONPATH": tree}
    done = subprocess.run([*valgrind, *child], capture_output=True, text=True, check=False, env=env, cwd=tree)
    if done.returncode != 0:
        return None
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count: {done.stderr[-500:]}")
    return int(found.group(1))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench face")
    parser.add_argument("--bodies", type=int, default=2000, help="bodies read per count")
    parser.add_argument("--baseline", help="another tree whose face is counted beside this one's")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.stdout.write("valgrind is not installed: nothing to count (Debian: apt install valgrind)\n")
        return
    here = str(Path(__file__).resolve().parent.parent)
    trees = {"this tree": here, **({"baseline": args.baseline} if args.baseline else {})}
    with tempfile.TemporaryDirectory(prefix="bench-face-") as out:
        for kind in BODIES:
            for name, tree in trees.items():
                none, many = (_instructions(tree, kind, n, Path(out)) for n in (0, args.bodies))
                if none is None or many is None:
                    sys.stdout.write(f"{kind}, {name}: the tree refuses this body\n")
                else:
                    sys.stdout.write(
                        f"{kind}, {name}: {(many - none) / args.bodies / 1000:.1f} k instructions per body\n"
                    )

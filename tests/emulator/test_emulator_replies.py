"""Control tags and deterministic replies."""

from __future__ import annotations

from emulator.replies import Tags, count_tokens, make_reply, parse_tags, prompt_hash


def test_parse_tags() -> None:
    text = "Do it [[latency_ms=25.5]] [[tokens=40]] [[fault=429]] [[retry_after=1.5]] [[fail_times=2]] [[block]]"
    assert parse_tags(text) == Tags(latency_ms=25.5, tokens=40, fault="429", retry_after=1.5, fail_times=2, block=True)
    assert parse_tags("no tags here") == Tags()


def test_bad_tags_are_ignored() -> None:
    assert (
        parse_tags("[[fault=418]] [[tokens=-3]] [[tokens=many]] [[latency_ms=soon]] [[blocked]] [[ tokens=3 ]]")
        == Tags()
    )


def test_reply_echoes_the_prompt_then_fills() -> None:
    reply = make_reply("Tell me [[tokens=6]] a story", 7, None, parse_tags("[[tokens=6]]"))
    assert reply.pieces == ("Echo:", " Tell", " me", " a", " story", " alpha")
    assert reply.text == "Echo: Tell me a story alpha"
    assert (reply.finish, reply.prompt_tokens, reply.completion_tokens) == ("stop", 7, 6)


def test_reply_length() -> None:
    assert make_reply("Hi", 1, None, Tags()).completion_tokens == 12
    assert make_reply("Hi", 1, None, Tags(tokens=0)).completion_tokens == 1
    cut = make_reply("Hi", 1, 4, Tags(tokens=10))
    assert (cut.completion_tokens, cut.finish) == (4, "length")
    exact = make_reply("Hi", 1, 10, Tags(tokens=10))
    assert (exact.completion_tokens, exact.finish) == (10, "stop")


def test_blocked_reply_is_empty() -> None:
    blocked = make_reply("Hi", 3, None, Tags(block=True))
    assert (blocked.pieces, blocked.finish, blocked.prompt_tokens) == ((), "blocked", 3)


def test_prompt_tokens_are_words() -> None:
    assert count_tokens(["You are terse.", "Hello  there\nworld"]) == 6
    assert count_tokens([""]) == 1


def test_prompt_hash_is_stable() -> None:
    assert prompt_hash("Hi") == prompt_hash("Hi") != prompt_hash("Hi ")
    assert len(prompt_hash("Hi")) == 16

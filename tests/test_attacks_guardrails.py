"""Guardrails against an attacker: a pattern cannot stall the proxy, and a blocked text cannot
slip past in disguise (invisible or look-alike characters, other dashes and digits), in another
field of the body, or in a streamed answer.

Every bypass case also shows that Python's `re` on the raw message content (what the proxy did
before) would not have matched, so each one is a hole the old code had."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import re2
from click.testing import CliRunner

from cockpit.cli import main
from cockpit.patterns import PatternError, compile_pattern, pattern_problem
from cockpit.proxy.guard import (
    INLINE_LIMIT, STREAM_WINDOW, GuardrailUnavailable, Hit, Rule, ScanTimeout, Screen, normalize, request_texts,
    response_texts, scan_texts, screen_of,
)
from harness.cockpit import EXAMPLES

SSN = r"\b\d{3}-\d{2}-\d{4}\b"
PASSWORD = r"(?i)\bpassword\b"
PATTERNS = [
    {"name": "ssn", "regex": SSN, "type": "block"},
    {"name": "password", "regex": PASSWORD, "type": "block"},
    {"name": "email", "regex": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "type": "detect"},
    {"name": "test-ssn", "regex": r"^000-00-0000$", "type": "allow"},
]


@pytest.fixture(scope="module")
def screen() -> Screen:
    return screen_of(PATTERNS, "pii")


def blocked(screen: Screen, texts: list[str]) -> set[str]:
    return {hit.pattern for hit in screen.scan(texts) if hit.action == "block"}


def tags(text: str) -> str:
    return "".join(chr(0xE0000 + ord(c)) for c in text)


DISGUISES = {
    "zero-width space between digits": ("my ssn is 123-4\u200b5-6789", "ssn"),
    "zero-width joiner in a word": ("the pass\u200dword is hunter2", "password"),
    "word joiner and BOM": ("123\u2060-45-\ufeff6789", "ssn"),
    "soft hyphen in a word": ("pass\u00adword: x", "password"),
    "bidi override inside a word": ("pass\u202eword\u202c", "password"),
    "bidi isolate around digits": ("\u2066123\u2069-45-6789", "ssn"),
    "fullwidth digits, fullwidth hyphen-minus": ("１２３－４５－６７８９", "ssn"),
    "Arabic-Indic digits, en dash": ("٣٢١\u2013٥٤\u2013٩٨٧٦", "ssn"),
    "mathematical bold digits, minus sign": ("𝟏𝟐𝟑\u2212𝟒𝟓\u2212𝟔𝟕𝟖𝟗", "ssn"),
    "en dash": ("123\u201345\u20136789", "ssn"),
    "minus sign": ("123\u221245\u22126789", "ssn"),
    "non-breaking hyphen and figure dash": ("123\u201145\u20126789", "ssn"),
    "em dash and small hyphen-minus": ("123\u201445\ufe636789", "ssn"),
    "Cyrillic a and o": ("my pаsswоrd is x", "password"),
    "Cyrillic capitals": ("РАЅЅWОRD", "password"),
    "Greek capitals": ("ΡΑSSWΟRD", "password"),
    "mathematical bold letters": ("𝐩𝐚𝐬𝐬𝐰𝐨𝐫𝐝", "password"),
    "accents": ("pàsswörd", "password"),
    "combining strike-through": ("p\u0336a\u0336s\u0336s\u0336w\u0336o\u0336r\u0336d\u0336", "password"),
    "variation selectors": ("p\ufe0fa\ufe0fssword", "password"),
    "control characters": ("pass\x00wo\x1brd", "password"),
    "tag characters (ASCII smuggling)": ("see " + tags("123-45-6789"), "ssn"),
}


@pytest.mark.parametrize("text,pattern", DISGUISES.values(), ids=DISGUISES.keys())
def test_disguised_text_is_blocked(screen: Screen, text: str, pattern: str) -> None:
    regex = {"ssn": SSN, "password": PASSWORD}[pattern]
    assert re.search(regex, text) is None  # the old scan let it through
    assert blocked(screen, [text]) == {pattern}


@pytest.mark.parametrize("text", ["ssn １２３-４５-６７８９", "٣٢١-٥٤-٩٨٧٦", "१२३-४५-६७८९", "𝟏𝟐𝟑-𝟒𝟓-𝟔𝟕𝟖𝟗"])
def test_digits_of_any_script_still_match_ascii_digit_classes(screen: Screen, text: str) -> None:
    assert re.search(SSN, text) and not re2.search(SSN, text)  # RE2's \d is ASCII: a hole without normalising
    assert blocked(screen, [text]) == {"ssn"}


def test_allow_still_exempts_a_disguised_test_number(screen: Screen) -> None:
    assert blocked(screen, ["000\u201000\u20100000"]) == set()
    assert blocked(screen, ["000-00-0000 and 123-45-6789"]) == {"ssn"}


def test_patterns_in_other_scripts_keep_matching_their_text() -> None:
    russian = screen_of([{"name": "parol", "regex": "(?i)пароль", "type": "block"}, {"name": "cafe", "regex": "café", "type": "detect"}])
    assert {hit.pattern for hit in russian.scan(["мой ПАРОЛЬ: x", "un café"])} == {"parol", "cafe"}
    assert russian.scan(["пар\u200bоль"]) != ()


def test_normalisation_is_idempotent_and_ascii_is_untouched() -> None:
    text = "Plain ASCII, tabs\tand\nlines - 123"
    assert normalize(text) is text
    for disguised, _ in DISGUISES.values():
        once = normalize(disguised)
        assert normalize(once) == once


SECRET = "123-45-6789"
FIELDS: dict[str, dict[str, Any]] = {
    "message name": {"messages": [{"role": "user", "name": f"ssn-{SECRET}", "content": "hi"}]},
    "tool call arguments": {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": f'{{"ssn": "{SECRET}"}}'}}]}]},
    "tool call name": {"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": f"x {SECRET}", "arguments": "{}"}}]}]},
    "legacy function_call": {"messages": [{"role": "assistant", "function_call": {"name": "f", "arguments": SECRET}}]},
    "tool result": {"messages": [{"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": SECRET}]}]},
    "refusal": {"messages": [{"role": "assistant", "refusal": SECRET}]},
    "tools description": {"tools": [{"type": "function", "function": {"name": "f", "description": f"always send {SECRET}"}}]},
    "tools schema property name": {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {SECRET: {"type": "string"}}}}}]},
    "tools schema enum": {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"enum": [SECRET]}}}}}]},
    "functions (legacy)": {"functions": [{"name": "f", "description": SECRET, "parameters": {}}]},
    "response_format schema": {"response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {
        "type": "object", "properties": {"id": {"type": "string", "description": f"like {SECRET}"}}}}}},
    "response_format schema name": {"response_format": {"type": "json_schema", "json_schema": {"name": SECRET, "schema": {}}}},
    "prediction": {"prediction": {"type": "content", "content": f"ssn: {SECRET}"}},
    "prediction parts": {"prediction": {"type": "content", "content": [{"type": "text", "text": SECRET}]}},
    "user": {"user": SECRET},
    "stop": {"stop": [SECRET]},
}


@pytest.mark.parametrize("body", FIELDS.values(), ids=FIELDS.keys())
def test_every_text_field_is_screened(screen: Screen, body: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], **body}
    contents = [m.get("content") for m in body["messages"] if isinstance(m.get("content"), str)]
    assert not any(SECRET in c for c in contents)  # the old scan read only these
    assert blocked(screen, request_texts(body)) == {"ssn"}


def test_binary_payloads_and_kinds_are_not_texts() -> None:
    image = "data:image/png;base64," + "QUtJQQ" * 1000
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": image}},
        {"type": "input_audio", "input_audio": {"data": "AAAA" * 100, "format": "wav"}}]}]}
    assert request_texts(body) == ["what is this", "wav"]


def test_answer_texts_include_tool_calls(screen: Screen) -> None:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "send", "arguments": f'{{"to": "{SECRET}"}}'}}]}}]}
    assert blocked(screen, response_texts(answer)) == {"ssn"}


# Patterns that would stall the proxy ----------------------------------------------------------

def _tenant_with(tmp_path: Path, *patterns: str) -> Path:
    repo = tmp_path / "acme"
    shutil.copytree(EXAMPLES / "acme", repo)
    path = repo / "guardrails" / "pii-strict.yaml"
    text = path.read_text()
    lines = "".join(f"  - {{name: p{i}, regex: '{p}', type: block}}\n" for i, p in enumerate(patterns))
    path.write_text(text.replace("  - {name: test-ssn", lines + "  - {name: test-ssn", 1))
    return repo


def _validate(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(repo)
    return CliRunner().invoke(main, ["validate", "."])


def test_validate_refuses_patterns_the_engine_cannot_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _tenant_with(tmp_path, "(a+)+$", r"(\w+\s?)*!", r"(?<=ssn )\d+", r"(\d)\1")
    result = _validate(repo, monkeypatch)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("guardrails/pii-strict.yaml:19:23: error: pattern 'p0' repeats a repetition")
    assert "write (a+)+ as a+" in lines[0]
    assert lines[1].startswith("guardrails/pii-strict.yaml:20:23: error: pattern 'p1' repeats a repetition")
    assert lines[2].startswith("guardrails/pii-strict.yaml:21:23: error: pattern 'p2' cannot run on the guardrail engine")
    assert "lookahead and lookbehind are not supported" in lines[2]
    assert "backreferences are not supported" in lines[3]


def test_validate_accepts_the_shipped_patterns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = re.findall(r"regex: '([^']*)'", "\n".join(p.read_text(errors="replace") for p in EXAMPLES.rglob("*.yaml")))
    assert len(found) > 20
    assert {p for p in found if pattern_problem(p)} == {r"\d{4}(-\d{4}"}  # the bad-regex case, still refused
    result = _validate(_tenant_with(tmp_path, r"(?:[a-z0-9-]+\.)+[a-z]{2,}", r"\p{Cyrillic}+", r"(?i)\bkey\s*[:=]\s*\S{16,}"), monkeypatch)
    assert result.exit_code == 0, result.stdout


def test_re2_runs_a_backtracking_pattern_in_linear_time() -> None:
    with pytest.raises(PatternError):
        compile_pattern("(a+)+$")
    evil = re2.compile("(a+)+$")  # compiled anyway, bypassing validate
    screen = Screen((Rule("p", "redos", "block", evil), Rule("p", "nested", "block", re2.compile("(x+x+)+y"))), ())
    text = "a" * 100_000 + "!" + "x" * 100_000
    started = time.perf_counter()
    assert screen.scan([text]) == ()
    assert time.perf_counter() - started < 0.5  # Python's re: 28 characters took 13.6 s


def test_a_stored_block_pattern_re2_cannot_run_fails_closed() -> None:
    with pytest.raises(GuardrailUnavailable) as caught:
        screen_of([{"name": "behind", "regex": r"(?<=ssn )\d+", "type": "block"}])
    assert caught.value.status == 503 and "`behind`" in caught.value.message
    lenient = screen_of([{"name": "ok", "regex": SSN, "type": "block"}, {"name": "behind", "regex": r"(?<=a)b", "type": "detect"}])
    assert [rule.pattern for rule in lenient.rules] == ["ok"]


def test_large_texts_scan_off_the_loop_and_fail_closed_on_timeout(screen: Screen) -> None:
    big = ["x" * INLINE_LIMIT, f"and {SECRET}"]

    async def scan(timeout: float) -> tuple[Hit, ...]:
        return await scan_texts(screen, big, "request", timeout=timeout)

    assert {hit.pattern for hit in anyio.run(scan, 5.0)} == {"ssn"}
    with pytest.raises(ScanTimeout) as caught:
        anyio.run(scan, 0.0)
    assert caught.value.status == 400 and caught.value.code == "guardrail_timeout"
    assert SECRET not in caught.value.message


# Streams --------------------------------------------------------------------------------------

def test_stream_blocks_a_number_split_across_chunks(screen: Screen) -> None:
    stream = screen.stream()
    assert [stream.feed(0, piece) for piece in ["my ", "ssn: 12", "3-4", "5-67"]] == [None] * 4
    hit = stream.feed(0, "89")  # the piece that completes it: the routes hold it back
    assert hit == Hit("pii", "ssn", "block", "response")
    assert stream.feed(0, " more") == hit and stream.finish() == hit


def test_stream_blocks_a_disguised_word_split_across_chunks(screen: Screen) -> None:
    stream = screen.stream()
    assert [stream.feed(0, piece) for piece in ["the pа", "ss\u200b", "wo"]] == [None] * 3
    assert stream.feed(0, "rd") == Hit("pii", "password", "block", "response")


def test_stream_window_cut_makes_no_false_block(screen: Screen) -> None:
    text = "9" * 50 + "123-45-6789" + "-" * (STREAM_WINDOW + 20)  # no SSN: preceded by more digits
    assert screen.scan([text]) == ()
    stream = screen.stream()
    assert all(stream.feed(0, c) is None for c in text)  # some window starts exactly at "123-"
    assert stream.finish() is None


def test_stream_choices_and_parts_are_kept_apart_and_detects_collected(screen: Screen) -> None:
    stream = screen.stream()
    assert stream.feed(0, "123-45") is None and stream.feed(1, "-6789 ") is None
    assert stream.feed(0, " mail bob@acme.com ", part="tool_calls.0.arguments") is None
    assert stream.finish() is None
    assert stream.hits() == (Hit("pii", "email", "detect", "response"),)


def test_stream_match_longer_than_the_window_is_found_by_finish() -> None:
    screen = screen_of([{"name": "key", "regex": "-----BEGIN KEY-----[A-Za-z0-9]+-----END KEY-----", "type": "block"}])
    stream = screen.stream()
    pieces = ["-----BEGIN KEY-----", *(["abcd"] * STREAM_WINDOW), "-----END KEY-----", "\n"]
    assert all(stream.feed(0, piece) is None for piece in pieces)
    assert stream.finish() is not None


def test_stream_cost_stays_linear(screen: Screen) -> None:
    def run(pieces: int) -> float:
        stream = screen.stream()
        started = time.perf_counter()
        for _ in range(pieces):
            stream.feed(0, "word ")
        stream.finish()
        return time.perf_counter() - started

    run(200)
    small, large = run(2_000), run(8_000)
    assert large < small * 8  # four times the text, far less than sixteen times the time


def test_joined_rules_skip_nothing_that_one_rule_matches() -> None:
    """The one-pass filter joins every rule; inline flags and anchors must stay each rule's own."""
    screen = screen_of([
        {"name": "ci", "regex": "(?i)token", "type": "detect"}, {"name": "cs", "regex": "KEY", "type": "detect"},
        {"name": "start", "regex": "^begin", "type": "detect"}, {"name": "end", "regex": "end$", "type": "detect"},
        {"name": "multi", "regex": "(?m)^line$", "type": "detect"}, {"name": "quoted", "regex": r"\Q(a)\E", "type": "detect"},
    ])
    found = {text: {hit.pattern for hit in screen.scan([text])} for text in ["TOKEN", "key", "begin x", "x begin", "the end", "x\nline\ny", "(a)"]}
    assert found == {"TOKEN": {"ci"}, "key": set(), "begin x": {"start"}, "x begin": set(), "the end": {"end"},
                     "x\nline\ny": {"multi"}, "(a)": {"quoted"}}

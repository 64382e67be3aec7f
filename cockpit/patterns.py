"""Guardrail regexes: compiled with RE2, checked the same way by `cockpit validate` and the proxy.

Why RE2 (`google-re2`): Python's `re` backtracks, so a pattern such as `(a+)+$` takes
exponential time on a short crafted prompt (28 characters held the proxy's event loop 13.6 s).
RE2 matches in time linear in the text whatever the pattern, and refuses the features that need
backtracking. This module imports neither the server nor the proxy, so the config layer uses it.

What a tenant author must know (RE2 syntax against Python's `re`):

- Refused, with advice: backreferences (`\\1`, `(?P=name)`), lookarounds (`(?=`, `(?!`, `(?<=`,
  `(?<!`), atomic groups and possessive quantifiers, `\\Z` (write `\\z`), `\\uXXXX` and `\\N{...}`
  (write `\\x{XXXX}`), comments `(?#...)` and the `x`, `a`, `u`, `L` flags (RE2 has `i`, `m`,
  `s`, `U`). Also refused: an unbounded repetition of something that is itself an unbounded
  repetition with only optional parts beside it (`(a+)+`, `(\\w+\\s?)*`): it matches what the
  inner repetition alone matches, and is catastrophic under any backtracking engine a pattern may
  be exported to (the read API serves patterns to other gateways).
- `\\d`, `\\w`, `\\s` and `\\b` are ASCII in RE2 (Unicode in Python). Screened text is normalised
  first (see `cockpit.proxy.guard`): decimal digits of every script become ASCII digits and
  space variants become a space, so `\\d` and `\\s` lose nothing; `\\w` and `\\b` do not count
  accented or non-Latin letters as word characters: write `\\p{L}` for letters of any script.
- `(?i)` is Unicode simple case folding (`Ä` matches `ä`, but `ß` does not match `SS`).
- `a{,3}` is the literal text `a{,3}` in RE2 (0 to 3 `a`s in Python 3.11): write `a{0,3}`.
- RE2 accepts a few things Python refuses, such as `\\p{Greek}` and `[[:alpha:]]` (a POSIX
  class in RE2, a odd character set in Python); they mean what RE2 says.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

import re2

MAX_MEM = 8 << 20
"""RE2's memory budget per pattern (its default): a pattern whose program needs more is refused."""

_OPTIONS = re2.Options()
_OPTIONS.max_mem = MAX_MEM
_OPTIONS.log_errors = False  # the error comes back as a value; RE2 would also print it to stderr

_ADVICE = (
    ((": \\1", ": \\2", ": \\3", ": \\4", ": \\5", ": \\6", ": \\7", ": \\8", ": \\9", ": (?P"),
     "backreferences are not supported; match the repeated text explicitly"),
    (("(?=", "(?!", "(?<=", "(?<!"),
     "lookahead and lookbehind are not supported; match the surrounding text too (a hit names only "
     "preset and pattern, never the text), or use \\b"),
    (("(?>",), "atomic groups are not needed under RE2 (it never backtracks); write (?:...)"),
    (("++", "*+", "?+", "}+"), "possessive quantifiers are not needed under RE2 (it never backtracks); drop the second +"),
    ((": \\Z",), "write \\z for the end of the text"),
    ((": \\u", ": \\U", ": \\N"), "write a code point as \\x{20AC}"),
    (("(?#",), "comments are not supported; remove (?#...)"),
    (("(?x", "(?a", "(?u", "(?L"), "RE2 knows only the flags i, m, s and U"),
    (("invalid repetition size",), "RE2 allows counts up to 1000, nested counts multiplied; use a smaller count, or + for any number"),
)


class PatternError(ValueError):
    """A pattern the guardrail engine cannot run; the message says what to change."""


def compile_pattern(regex: str) -> Any:
    """The RE2 program of a guardrail pattern, or PatternError saying what is wrong and what to do.

    The message completes "pattern 'NAME' …" (validate prefixes the location and name)."""
    try:
        program = re2.compile(regex, _OPTIONS)
    except re2.error as exc:
        raise PatternError(_explain(regex, exc)) from None
    if _nested_repetition(regex):
        raise PatternError(
            "repeats a repetition, as (a+)+ or (\\w+\\s?)* do: it matches what the inner repetition alone matches, "
            "and takes exponential time under backtracking engines (Python re, PCRE, JavaScript) "
            "that exported patterns may run on; repeat once, e.g. write (a+)+ as a+"
        )
    return program


def compile_any(regexes: Sequence[str]) -> Any | None:
    """One RE2 program that matches wherever any of these patterns does (each in its own group,
    where RE2 scopes inline flags), to skip a text in one pass when none matches; None when
    they cannot be joined (`\\Q` quoting runs past a group's end) or the result is too large."""
    if not regexes or any("\\Q" in regex for regex in regexes):
        return None
    options = re2.Options()
    options.max_mem = 4 * MAX_MEM
    options.never_capture = True
    options.log_errors = False
    try:
        return re2.compile("|".join(f"(?:{regex})" for regex in regexes), options)
    except re2.error:
        return None


def pattern_problem(regex: str) -> str | None:
    """What `cockpit validate` reports about a pattern, or None when the proxy can run it."""
    try:
        compile_pattern(regex)
    except PatternError as exc:
        return str(exc)
    return None


def _explain(regex: str, exc: re2.error) -> str:
    detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    try:
        with warnings.catch_warnings():  # e.g. FutureWarning for '[[', printed unlocated
            warnings.simplefilter("ignore")
            re.compile(regex)
    except re.error as python:
        # Malformed for both engines: Python's message gives the position.
        return f"is not a valid regular expression: {python}"
    except (OverflowError, RecursionError, ValueError) as python:
        return f"is not a valid regular expression: {python}"
    for needles, advice in _ADVICE:
        if any(needle in detail for needle in needles):  # RE2 quotes the part it refuses
            return f"cannot run on the guardrail engine (RE2, linear time): {detail}; {advice}"
    if "pattern too large" in detail:
        return f"is too large for the guardrail engine (RE2, {MAX_MEM >> 20} MiB per pattern): {detail}; split it into several patterns"
    return f"cannot run on the guardrail engine (RE2, linear time): {detail}; see RE2's syntax (github.com/google/re2/wiki/Syntax)"


def _nested_repetition(regex: str) -> bool:
    """Whether the pattern has an `(a+)+`-shaped part: an unbounded repeat whose body is an
    unbounded repeat beside optional items only. Read with Python's parser; a pattern it cannot
    read is let through (RE2 accepted it, and runs it in linear time anyway)."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = _parser.parse(regex)
    except Exception:
        return False
    return _has_nested(list(tree))


_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def _unbounded(op: Any, arg: Any) -> bool:
    from re import _constants  # type: ignore[attr-defined]

    return str(op) in _REPEATS and arg[1] == _constants.MAXREPEAT


def _nullable(op: Any, arg: Any) -> bool:
    name = str(op)
    if name in _REPEATS:
        return arg[0] == 0 or all(_nullable(o, a) for o, a in arg[2])
    if name == "SUBPATTERN":
        return all(_nullable(o, a) for o, a in arg[-1])
    if name == "BRANCH":
        return any(all(_nullable(o, a) for o, a in branch) for branch in arg[1])
    return name == "AT"


def _flatten(body: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for op, arg in body:
        flat.extend(_flatten(list(arg[-1])) if str(op) == "SUBPATTERN" else [(op, arg)])
    return flat


def _looping(op: Any, arg: Any) -> bool:
    """Whether an item can repeat without bound by itself: `a+`, `(?:a+|b)`, `(?:a+)?`."""
    name = str(op)
    if _unbounded(op, arg):
        return True
    if name == "BRANCH":
        return any(_repeating(list(branch)) for branch in arg[1])
    return name in _REPEATS and _repeating(list(arg[2]))


def _repeating(body: list[Any]) -> bool:
    """Looping items beside optional ones only: repeating such a body is ambiguous."""
    flat = _flatten(body)
    return any(_looping(o, a) for o, a in flat) and all(_looping(o, a) or _nullable(o, a) for o, a in flat)


def _has_nested(seq: list[Any]) -> bool:
    for op, arg in seq:
        name = str(op)
        if name in _REPEATS:
            if _unbounded(op, arg) and _repeating(list(arg[2])):
                return True
            inner: list[list[Any]] = [list(arg[2])]
        elif name == "BRANCH":
            inner = [list(branch) for branch in arg[1]]
        elif name in ("SUBPATTERN", "ASSERT", "ASSERT_NOT", "ATOMIC_GROUP"):
            inner = [list(arg[-1])]
        else:
            inner = []
        if any(_has_nested(part) for part in inner):
            return True
    return False

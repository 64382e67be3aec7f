"""Guardrail patterns run on what goes to the model and what comes back.

The caller's effective presets (`cockpit.policy.guardrails`) bring their enabled patterns:
`block` refuses the request (400, naming preset and pattern, never the matched text),
`detect` lets it through and records the hit on the ledger row, and `allow` exempts a match:
a block or detect match whose text an allow pattern of any effective preset also matches
counts as no match (e.g. an allow pattern for a documented test card number).

Patterns run on RE2 (`cockpit.patterns`): linear time whatever the pattern. Texts over
`INLINE_LIMIT` are scanned in a worker thread under `SCAN_TIMEOUT`; a scan that overruns
refuses the request or answer (fails closed) instead of serving it unscreened.

Normalisation. Patterns match the text after this normalisation, never the raw text:

- Removed: format characters (Unicode category Cf: zero-width space, joiners and non-joiner,
  word joiner, soft hyphen, bidi marks, embeddings, overrides and isolates, BOM, invisible
  operators), variation selectors, the combining grapheme joiner, Hangul fillers, and control
  characters other than tab, line feed and carriage return. Bidi controls are removed, not
  applied: patterns see the logical order, which is what the model reads.
- Tag characters U+E0020-E007E (invisible, yet some models read them: "ASCII smuggling") become
  the ASCII characters they shadow; the other tag characters are removed.
- Unicode NFKC: fullwidth and halfwidth forms, ligatures, mathematical letters and digits,
  circled and super/subscript characters become their plain letters and digits.
- Decimal digits of every script (Arabic-Indic, Devanagari, ...) become ASCII `0-9`.
- Dashes (category Pd: hyphen, non-breaking hyphen, figure, en and em dash, horizontal bar, ...),
  minus signs (U+2212, U+2796, U+02D7), hyphen bullet, and box-drawing horizontals become `-`.
- Space characters (category Zs, e.g. no-break, em, thin, ideographic) and vertical tab and form
  feed become a space; line and paragraph separators (U+2028, U+2029, U+0085) a line feed.
- Look-alikes: a text is scanned a second time when its "folded" form differs: accents and
  other combining marks stripped (`pàsswörd` → `password`), then Cyrillic, Greek and Armenian
  letters that look like Latin ones mapped to them (`СЕСRЕТ` → `CECRET`, `sеcrеt` → `secret`;
  table `CONFUSABLES`). A pattern matches if it matches either form, so patterns written in
  Cyrillic or with accents keep matching their own text.

Not normalised: letter case (use `(?i)`); look-alikes outside `CONFUSABLES` (e.g. Cherokee,
Latin small capitals, digit-letter swaps such as `0`/`O`, `1`/`l`); text split across
messages, fields or parts (each string is scanned on its own); spelled-out or encoded text
(base64, hex, leetspeak, a model asked to reassemble pieces); binary payloads (images, audio,
files: base64 data is not scanned).
"""

from __future__ import annotations

import functools
import inspect
import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import anyio
import anyio.to_thread
import re2

from cockpit.patterns import PatternError, compile_any, compile_pattern
from cockpit.policy.guardrails import effective_guardrails
from cockpit.proxy.errors import ProxyError
from cockpit.runtime.snapshots import AccountSnapshot

INLINE_LIMIT = 16 * 1024
"""Texts up to this many characters in all are scanned on the event loop (about 30 µs for 1.5 KB
and the example presets' 13 patterns); larger ones in a worker thread, so one big prompt does not
hold other requests. A non-ASCII character counts 8: normalising it costs about that much more."""
SCAN_TIMEOUT = 2.0
"""Seconds a scan may take before the request or answer is refused unscreened."""
STREAM_WINDOW = 512
"""Characters of a streamed choice's earlier text rescanned with each new piece: a match up to
this long that spans pieces is found when its last piece arrives; `finish` rescans everything."""


@dataclass(frozen=True)
class Hit:
    preset: str
    pattern: str
    action: str
    """`block` or `detect`."""
    where: str = "request"
    """`request` or `response`."""

    def as_dict(self) -> dict[str, str]:
        return {"preset": self.preset, "pattern": self.pattern, "action": self.action, "where": self.where}


class ScanTimeout(ProxyError):
    """The guardrails could not screen the text in time; the request or answer is refused."""

    def __init__(self, where: str, timeout: float = SCAN_TIMEOUT) -> None:
        what = "The request" if where == "request" else "The model's answer"
        super().__init__(
            400,
            f"{what} could not be screened by the guardrails within {timeout:g} s, so it was refused. Send less text.",
            "guardrail_timeout",
        )


class GuardrailUnavailable(ProxyError):
    """A block pattern of the caller cannot run (stored before RE2 checked patterns)."""

    def __init__(self, preset: str, pattern: str, problem: str) -> None:
        super().__init__(
            503,
            f"Guardrail preset `{preset}`, pattern `{pattern}` cannot run ({problem}); requests are refused until an administrator fixes it and applies the configuration.",
            "guardrail_unavailable",
        )
        self.problem = problem


# Normalisation tables -------------------------------------------------------------------------

CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "ѕ": "s",
    "і": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ү": "y", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W", "Ү": "Y",
    "Ӏ": "I", "Ԁ": "D", "Ꙅ": "S",
    # Greek
    "α": "a", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "υ": "u", "χ": "x", "ϲ": "c",
    "ϳ": "j", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϲ": "C", "Ϳ": "J",
    # Armenian and Latin extensions
    "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ց": "g", "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i",
}
"""Letters that look like Latin ones, after accents are stripped (so `ё` is `е`). A compact table
rather than Unicode's confusables.txt (6,000 entries, most irrelevant to Latin-letter patterns, and
no maintained Python package maps text with it): these are the ones homoglyph attacks use."""

_DASHES = "\u2212\u2796\u02d7\u2043\u2500\u2501\u23af\ufe63\uff0d"
_EXTRA_INVISIBLE = [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0, *range(0x180B, 0x1810),
                    *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
_ASCII_CLEAN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""ASCII text without these needs no normalisation at all (the fast path)."""


def _build_tables() -> tuple[dict[int, str | None], dict[int, str | None]]:
    """The normalisation table, and the folding one (combining marks out, look-alikes Latin)."""
    table: dict[int, str | None] = {}
    folding: dict[int, str | None] = {ord(k): v for k, v in CONFUSABLES.items()}
    for start, end in ((0, 0x20000), (0xE0000, 0xE1000)):  # every Cf, Pd, Zs and Nd is in these
        for code in range(start, end):
            category = unicodedata.category(chr(code))
            if category == "Cf":
                table[code] = None
            elif category == "Pd":
                table[code] = "-"
            elif category == "Zs":
                table[code] = " "
            elif category in ("Zl", "Zp"):
                table[code] = "\n"
            elif category == "Nd":
                table[code] = str(unicodedata.decimal(chr(code)))
            elif category == "Cc" and code not in (9, 10, 13):
                table[code] = None
            elif category in ("Mn", "Me"):
                folding[code] = None
    table.update({code: None for code in _EXTRA_INVISIBLE})
    table.update({ord(c): "-" for c in _DASHES})
    table.update({0x0B: " ", 0x0C: " ", 0x85: "\n"})
    table.update({code: chr(code - 0xE0000) for code in range(0xE0020, 0xE007F)})  # tag "ASCII smuggling"
    table.pop(ord("-")), table.pop(ord(" "))
    return table, folding


def _class_of(codes: Iterable[int]) -> Any:
    """An RE2 character class of these code points, to test before translating (str.translate
    costs about 50 ns a character; RE2's test a few a byte). Python's re is slow on big classes."""
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return re2.compile("[" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges) + "]")


_TABLE, _FOLDING = _build_tables()
_NEEDS_TABLE = _class_of(_TABLE)
_NEEDS_FOLDING = _class_of(_FOLDING)


def normalize(text: str) -> str:
    """The text patterns see (see the module docstring)."""
    if text.isascii() and not _ASCII_CLEAN.search(text):
        return text
    text = _translated(text)
    if not unicodedata.is_normalized("NFKC", text):
        text = _translated(unicodedata.normalize("NFKC", text))  # NFKC can produce some (⁻ → U+2212)
    return text


def _translated(text: str) -> str:
    return text.translate(_TABLE) if _NEEDS_TABLE.search(text) else text


def fold(normalized: str) -> str:
    """`normalize`d text with combining marks stripped and look-alike letters made Latin."""
    if normalized.isascii():
        return normalized
    decomposed = unicodedata.normalize("NFD", normalized)
    if not _NEEDS_FOLDING.search(decomposed):
        return normalized
    return unicodedata.normalize("NFC", decomposed.translate(_FOLDING))


def forms(text: str) -> tuple[bytes, ...]:
    """The UTF-8 forms a text is matched in: normalised, and folded when that differs."""
    base = normalize(text)
    folded = fold(base)
    return (base.encode(),) if folded == base else (base.encode(), folded.encode())


# Screens ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    preset: str
    pattern: str
    action: str
    regex: Any
    """An RE2 program (`cockpit.patterns.compile_pattern`)."""


@dataclass(frozen=True)
class Screen:
    """The compiled patterns of one caller; blocks are tried before detects."""

    rules: tuple[Rule, ...]
    allows: tuple[Any, ...]
    any_rule: Any = field(init=False, repr=False, compare=False)
    """All rules joined: a text none of them matches costs one pass, not one per rule."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "any_rule", compile_any([rule.regex.pattern for rule in self.rules]))

    def scan(self, texts: Iterable[str], where: str = "request", *, deadline: float | None = None) -> tuple[Hit, ...]:
        """Every rule that matches a text (once each). `deadline` (time.monotonic) raises
        ScanTimeout when passed; `scan_texts` sets it."""
        if not self.rules:
            return ()
        hits: dict[tuple[str, str], Hit] = {}
        for text in texts:
            self._scan(forms(text), where, hits, deadline)
        return tuple(hits.values())

    def _scan(self, texts: Sequence[bytes], where: str, hits: dict[tuple[str, str], Hit], deadline: float | None, cut_start: bool = False) -> None:
        for data in texts:
            if self.any_rule is not None and self.any_rule.search(data) is None:
                continue
            for rule in self.rules:
                if (rule.preset, rule.pattern) in hits:
                    continue
                if deadline is not None and time.monotonic() > deadline:
                    raise ScanTimeout(where)
                if self._matches(rule, data, cut_start):
                    hits[(rule.preset, rule.pattern)] = Hit(rule.preset, rule.pattern, rule.action, where)

    def _matches(self, rule: Rule, data: bytes, cut_start: bool = False) -> bool:
        r"""Whether an unexempted match is in `data`. In a stream window whose start was cut, a
        match at the start may be an artefact (`^`, `\b`): `finish` checks it on the whole text."""
        for match in rule.regex.finditer(data):
            if cut_start and match.start() == 0:
                continue
            if not any(allow.search(match.group(0)) for allow in self.allows):
                return True
        return False

    def stream(self, where: str = "response") -> StreamScreen:
        return StreamScreen(self, where)


NO_SCREEN = Screen((), ())


_ABANDON = ({"abandon_on_cancel": True} if "abandon_on_cancel" in inspect.signature(anyio.to_thread.run_sync).parameters
            else {"cancellable": True})
"""On timeout, leave the thread (it stops at its next deadline check) rather than wait for it;
anyio before 4.1 calls this `cancellable`."""


async def scan_texts(screen: Screen, texts: Sequence[str], where: str = "request", *, timeout: float = SCAN_TIMEOUT) -> tuple[Hit, ...]:
    """`screen.scan`, off the event loop when the texts are large; ScanTimeout (a 400
    ProxyError) when it takes longer than `timeout` seconds."""
    if not screen.rules:
        return ()
    if sum(len(text) if text.isascii() else 8 * len(text) for text in texts) <= INLINE_LIMIT:
        return screen.scan(texts, where)
    deadline = time.monotonic() + timeout
    try:
        with anyio.fail_after(timeout):
            return await anyio.to_thread.run_sync(functools.partial(screen.scan, texts, where, deadline=deadline), **_ABANDON)
    except TimeoutError:
        raise ScanTimeout(where, timeout) from None


@dataclass
class StreamScreen:
    r"""Screens a streamed answer piece by piece.

    Each `feed` scans the last `STREAM_WINDOW` (512) characters of that choice's earlier text
    plus the new piece, so the cost per piece is bounded and a whole stream costs linear time.
    A match counts as soon as the piece that completes it arrives, so the caller can hold that
    piece back and the client never gets the whole matched text. It counts even when it ends
    at the end of the text so far and more text would undo it (a fifth digit after
    `\d{4}\b`): a stream can be cut where the whole answer would pass, never the reverse.
    `finish` scans each choice's whole text once, for matches longer than the window and
    anchored at the start. Hits are counted once per pattern."""

    screen: Screen
    where: str = "response"
    window: int = STREAM_WINDOW
    _texts: dict[tuple[int, str], list[str]] = field(default_factory=dict)
    _tails: dict[tuple[int, str], str] = field(default_factory=dict)
    _lengths: dict[tuple[int, str], int] = field(default_factory=dict)
    _hits: dict[tuple[str, str], Hit] = field(default_factory=dict)

    def feed(self, choice_index: int, text: str, *, part: str = "content") -> Hit | None:
        """The first block hit once the choice's text so far matches one (again on every later
        call), else None. `part` keeps a choice's content and each tool call's arguments apart."""
        if not self.screen.rules or not text:
            return self.blocked()
        key = (choice_index, part)
        self._texts.setdefault(key, []).append(text)
        window = self._tails.get(key, "") + text
        length = self._lengths.get(key, 0) + len(text)
        self._lengths[key] = length
        self._tails[key] = window[-self.window:]
        self.screen._scan(forms(window), self.where, self._hits, None, cut_start=len(window) < length)
        return self.blocked()

    def finish(self) -> Hit | None:
        """Scans each choice's whole text once (matches longer than the window, anchors at the
        start); the first block hit, else None."""
        for key, pieces in self._texts.items():
            self.screen._scan(forms("".join(pieces)), self.where, self._hits, None)
        return self.blocked()

    def blocked(self) -> Hit | None:
        return next((hit for hit in self._hits.values() if hit.action == "block"), None)

    def hits(self) -> tuple[Hit, ...]:
        return tuple(self._hits.values())


# Building a caller's screen -----------------------------------------------------------------------

def patterns_by_preset(snapshot: AccountSnapshot) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
    found: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for resource in snapshot.state.of_type("guardrail_pattern", snapshot.name):
        code, name = resource.key[0], resource.key[-1]
        found.setdefault(code, []).append((name, resource.fields))
    return found


def screen_for(snapshot: AccountSnapshot, domain: str, user: str, agent: str | None) -> Screen:
    """The caller's screen, built once per snapshot and caller."""
    memo = snapshot.memo
    key = ("screen", domain, user, agent)
    found = memo.get(key)
    if found is None:
        if "patterns" not in memo:
            memo["patterns"] = patterns_by_preset(snapshot)
        found = memo[key] = _compile(memo["patterns"], effective_guardrails(snapshot.graph, user, agent, domain))
    if isinstance(found, GuardrailUnavailable):
        raise found
    return found


def _compile(patterns: Mapping[str, list[tuple[str, Mapping[str, Any]]]], presets: Iterable[Any]) -> Screen | GuardrailUnavailable:
    """The caller's screen. A stored pattern RE2 cannot run (applied before validate used RE2)
    fails closed when it blocks; a broken detect or allow pattern is left out."""
    rules: list[Rule] = []
    allows: list[Any] = []
    for preset in presets:
        for name, fields in sorted(patterns.get(preset.code, ())):
            if fields.get("enabled") is False:
                continue
            action = str(fields.get("type") or "detect")
            try:
                regex = compile_pattern(str(fields.get("regex")))
            except PatternError as exc:
                if action == "block":
                    return GuardrailUnavailable(preset.code, name, str(exc))
                continue
            if action == "allow":
                allows.append(regex)
            else:
                rules.append(Rule(preset.code, name, action, regex))
    rules.sort(key=lambda rule: rule.action != "block")
    return Screen(tuple(rules), tuple(allows)) if rules else NO_SCREEN


def screen_of(patterns: Iterable[Mapping[str, Any]], preset: str = "preset") -> Screen:
    """A screen from pattern documents (`{name, regex, type, enabled}`) of one preset: for tests
    and tools that have patterns but no snapshot."""
    built = _compile({preset: [(str(p["name"]), p) for p in patterns]}, [_Preset(preset)])
    if isinstance(built, GuardrailUnavailable):
        raise built
    return built


@dataclass(frozen=True)
class _Preset:
    code: str


# Texts of a request ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TextFields:
    """The top-level fields of a request body whose text reaches the model provider."""

    values: tuple[str, ...]
    """Every string in these fields counts."""
    schemas: tuple[str, ...] = ()
    """Every string and every object key counts (tool and output JSON schemas: a property name
    is text the model reads)."""


CHAT = TextFields(
    values=("messages", "prediction", "stop", "user", "tool_choice", "function_call", "web_search_options"),
    schemas=("tools", "functions", "response_format"),
)
"""Chat Completions. `stop` and `user` are sent to the provider too, so they are screened."""
COMPLETIONS = TextFields(values=("prompt", "suffix", "stop", "user"))
EMBEDDINGS = TextFields(values=("input", "user"))
RESPONSES = TextFields(values=("input", "instructions", "user", "tool_choice", "prompt"), schemas=("tools", "text"))
ANTHROPIC_MESSAGES = TextFields(values=("system", "messages", "stop_sequences", "metadata", "tool_choice"), schemas=("tools",))

_ENUM_KEYS = frozenset({"role", "type"})
"""String values that are names of a kind, not text (`"role": "user"`, `"type": "text"`)."""
_BINARY_KEYS = frozenset({"data", "file_data"})
"""Base64 audio, image and file contents: not text a pattern can screen."""


def texts_of(body: Mapping[str, Any], fields: TextFields = CHAT) -> list[str]:
    """Every string of the named fields of a request body, in document order."""
    texts: list[str] = []
    for name in fields.values:
        if name in body:
            texts.extend(_strings(body[name], keys=False))
    for name in fields.schemas:
        if name in body:
            texts.extend(_strings(body[name], keys=True))
    return texts


def request_texts(body: Mapping[str, Any]) -> list[str]:
    """The texts of a Chat Completions body that guardrails screen."""
    return texts_of(body, CHAT)


def message_texts(messages: Any) -> list[str]:
    """The texts of chat messages (every field: content, name, tool calls, refusal, ...)."""
    return texts_of({"messages": messages}, CHAT)


def response_texts(response: Mapping[str, Any]) -> list[str]:
    """The texts of a Chat Completions answer (`choices[].message`, as a dict)."""
    choices = response.get("choices")
    messages = [choice.get("message") for choice in choices if isinstance(choice, dict)] if isinstance(choices, list) else []
    return message_texts([message for message in messages if isinstance(message, dict)])


def _strings(value: Any, *, keys: bool) -> Iterator[str]:
    """String leaves of JSON, depth first without recursion (bodies may nest deeply)."""
    stack: list[tuple[str | None, Any]] = [(None, value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, str):
            if key in _ENUM_KEYS or key in _BINARY_KEYS or (item.startswith("data:") and ";base64," in item[:200]):
                continue
            yield item
        elif isinstance(item, dict):
            children = list(item.items())
            if keys:
                yield from (k for k, _ in children if isinstance(k, str))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((None, child) for child in reversed(item))


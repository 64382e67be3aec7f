"""Documents → YAML text that reads like a hand-written tenant repo, fast enough for big tenants.

The root of a document is a block mapping; a collection of scalars that fits on a line is
written in flow style (`{model: gpt-4o, scope: 'org:research'}`, `[alice@acme.com]`), anything
longer or nested in block style, sequences indented under their key. Multi-line strings are
literal blocks where YAML allows one, else one double-quoted line with escapes.

The structure is written here; every scalar is written by PyYAML itself (so quoting follows
the resolver the loader uses) and memoized: a tenant repeats the same model names, scopes and
roles thousands of times, and PyYAML's pure-Python emitter is the slow part of a large export.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Iterable

import yaml

FLOW_WIDTH = 88
"""Longest flow collection kept on one line, in characters."""
INDENT = "  "


def dump_documents(documents: Iterable[dict[str, Any]], header: str = "") -> str:
    """Several documents as one YAML stream, with an optional comment header."""
    lines: list[str] = [header] if header else []
    for index, document in enumerate(documents):
        if index:
            lines.append("---\n")
        _mapping_block(document, "", lines)
    return "".join(lines)


def _mapping_block(mapping: dict[str, Any], indent: str, out: list[str], first: str | None = None) -> None:
    """`first`: the prefix of the first line (`- ` of a sequence item) instead of `indent`."""
    if not mapping:
        out.append(f"{first if first is not None else indent}{{}}\n")
        return
    for name, value in mapping.items():
        prefix = first if first is not None else indent
        first = None
        _entry(f"{prefix}{_key(name)}:", value, indent, out)


def _entry(head: str, value: Any, indent: str, out: list[str]) -> None:
    """`head` (`key:` or `-`) followed by `value`, inline or on the lines below."""
    inline = _flow(value)
    if inline is not None:
        out.append(f"{head} {inline}\n")
    elif isinstance(value, dict):
        out.append(f"{head}\n")
        _mapping_block(value, indent + INDENT, out)
    elif isinstance(value, list):
        out.append(f"{head}\n")
        _sequence_block(value, indent + INDENT, out)
    else:  # a multi-line string: a literal block, indented under its head
        out.append(f"{head} {_block_scalar(value, indent + INDENT)}")


def _sequence_block(items: list[Any], indent: str, out: list[str]) -> None:
    for item in items:
        if isinstance(item, dict) and item and _flow(item) is None:
            _mapping_block(item, indent + INDENT, out, first=f"{indent}- ")
        else:
            _entry(f"{indent}-", item, indent, out)


def _flow(value: Any) -> str | None:
    """The value on one line, or None when it must be a block (nested, long or multi-line)."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = []
        for name, item in value.items():
            if isinstance(item, (dict, list)) and item:
                return None
            text = _flow_scalar(item)
            if text is None:
                return None
            parts.append(f"{_key(name)}: {text}")
        text = "{" + ", ".join(parts) + "}"
    elif isinstance(value, list):
        if not value:
            return "[]"
        parts = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                return None
            part = _flow_scalar(item)
            if part is None:
                return None
            parts.append(part)
        text = "[" + ", ".join(parts) + "]"
    else:
        return None if _multiline(value) else _scalar(value, False)
    return text if len(text) <= FLOW_WIDTH else None


def _flow_scalar(value: Any) -> str | None:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return None if _multiline(value) else _scalar(value, True)


def _dumped(value: Any, in_flow: bool) -> str:
    if in_flow:
        text = yaml.safe_dump([value], default_flow_style=True, width=math.inf, allow_unicode=True)
        return text.strip()[1:-1]
    text = yaml.safe_dump({"k": value}, default_flow_style=False, width=math.inf, allow_unicode=True)
    return text[len("k: "):].rstrip("\n")


def _key(name: Any) -> str:
    """A mapping key: always on one line (a multi-line key becomes a double-quoted one)."""
    if _multiline(name):
        return yaml.safe_dump(name, default_style='"', width=math.inf, allow_unicode=False).strip()
    return _scalar(name, True)


_PLAIN = re.compile(r"[A-Za-z](?:[A-Za-z0-9_.@/ -]|:(?=[A-Za-z0-9_.@/-]))*(?<! )\Z")
"""Strings that read back as themselves when written plain in any context, unless the resolver
takes them for another type: names, e-mails, and scopes (`org:x`: PyYAML quotes a `:` in flow
context, but both its loaders read one not followed by a space or indicator as text)."""
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


@lru_cache(maxsize=1 << 18, typed=True)
def _scalar(value: Any, in_flow: bool) -> str:
    """One scalar as PyYAML writes it, in flow context (`, [ ] { }` matter) or block context."""
    if type(value) is str and _PLAIN.match(value) and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG:
        return value  # the common case (names, e-mails), without PyYAML's emitter
    return _dumped(value, in_flow)


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks (`|`), where YAML allows one."""


_LiteralDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
)
LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")
_BREAK = re.compile("[" + "".join(LINE_BREAKS) + "]")


def _multiline(value: Any) -> bool:
    return isinstance(value, str) and _BREAK.search(value) is not None


def _block_scalar(value: str, indent: str) -> str:
    """A multi-line string as a literal block re-indented to `indent`, or, where a plain literal
    block cannot hold it (trailing spaces or blank lines, a leading space, breaks other than
    `\\n`, special characters), one double-quoted line with escapes."""
    text = yaml.dump({"k": value}, Dumper=_LiteralDumper, width=math.inf, allow_unicode=True)
    head, *rest = text.split(": ", 1)[1].rstrip("\n").split("\n")  # the key is written `"k"`
    if head not in ("|", "|-") or any(b in value for b in LINE_BREAKS[1:]):
        return yaml.safe_dump(value, default_style='"', width=math.inf, allow_unicode=False).strip() + "\n"
    body = "".join(f"{indent}{line[2:]}\n" if line else "\n" for line in rest)
    return f"{head}\n{body}"

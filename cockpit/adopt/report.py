"""The import report: everything an importer could not carry over as it was, each entry located.

The new language cannot say everything the old systems stored, and decides some things
differently. Nothing is dropped or changed silently: each such case is one `Entry` naming where
it came from (`table row id` for database input, `file:line` for a config file), what it was and
what the tenant repo says instead. `render` writes the same entries for stdout and for
`IMPORT-REPORT.md`; no entry ever holds a secret value (secrets are named by field, never shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SECTIONS: dict[str, str] = {
    "renamed": "Renamed",
    "changed": "Carried over differently",
    "dropped": "Not carried over",
    "review": "Needs review",
    "parity": "Effective access that differs (old system vs Cockpit)",
}
"""Entry categories, in the order the report lists them."""


def row_at(table: str, row: dict, key: str = "id") -> str:
    """Where a database row came from: `Alchemi_CopilotAgentTable id=…`."""
    return f"{table} {key}={row.get(key)}"


@dataclass(frozen=True)
class Entry:
    category: str
    """One of `SECTIONS`."""
    where: str
    """The source: `Alchemi_CopilotAgentTable id=…`, `config.yaml:12`."""
    message: str
    """What it was, what the tenant repo says instead, and why."""


@dataclass
class Report:
    source: str
    """What was imported, for the heading: `console-cockpit database`, `LiteLLM config.yaml`."""
    entries: list[Entry] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    """One line per imported thing: `3 accounts`, `12 users`, …"""

    def add(self, category: str, where: str, message: str) -> None:
        if category not in SECTIONS:
            raise ValueError(f"unknown report category {category!r}")
        self.entries.append(Entry(category, where, message))

    def forget_prefix(self, prefix: str) -> None:
        """Drop a directory prefix from the entries (the staging directory of an import, which
        Cockpit's explanations name): the report speaks of paths inside the tenant repo."""
        self.entries = [Entry(e.category, e.where, e.message.replace(prefix, "")) for e in self.entries]

    def of(self, category: str) -> list[Entry]:
        return [e for e in self.entries if e.category == category]

    def render(self) -> str:
        """The report as Markdown, which reads as plain text on a terminal too."""
        lines = [f"# Import report: {self.source}", ""]
        if self.summary:
            lines += ["Imported: " + ", ".join(self.summary) + ".", ""]
        if not self.entries:
            lines += ["Everything was carried over as it was; effective access is the same.", ""]
        for category, title in SECTIONS.items():
            entries = self.of(category)
            if not entries:
                continue
            lines += [f"## {title} ({len(entries)})", ""]
            lines += [f"- `{e.where}`: {e.message}" for e in entries]
            lines.append("")
        lines += [
            "Next: review this report, then `cockpit validate DIR`, `cockpit plan DIR` against an",
            "empty database, and `cockpit apply DIR`.",
            "",
        ]
        return "\n".join(lines)

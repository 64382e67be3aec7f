"""The config a plan was made from: every YAML file read, its text and digest.

A saved plan carries one (`plan --out`), so `apply FILE` can verify what it wrote against the
config that was reviewed, even when the directory on disk has moved on since; and it can say
which files moved. Secret files are not YAML and are never read into a snapshot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ConfigSnapshot:
    """The files of one config: `base` is the directory they are relative to (the tenant repo,
    or the directory of a single config file); `files` maps their POSIX paths to their text."""

    base: str
    files: Mapping[str, str] = field(default_factory=dict)
    commit: str | None = None
    """The git commit of the config when the plan was made, if it is in a git checkout."""

    @classmethod
    def of(cls, root: Path, texts: Mapping[Path, str]) -> ConfigSnapshot:
        base = root if root.is_dir() else root.parent
        files = {}
        for path, text in texts.items():
            try:
                relative = path.relative_to(base)
            except ValueError:
                relative = Path(path.name)
            files[relative.as_posix()] = text
        return cls(str(base.resolve()), dict(sorted(files.items())))

    def paths(self) -> dict[Path, str]:
        """Absolute path → text: what the loader reads instead of the disk."""
        base = Path(self.base)
        return {base / name: text for name, text in self.files.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "commit": self.commit,
            "files": [{"path": name, "sha256": text_digest(text), "text": text} for name, text in self.files.items()],
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ConfigSnapshot:
        files = {}
        for item in document["files"]:
            if text_digest(item["text"]) != item["sha256"]:
                raise ValueError(f"config file {item['path']!r}: its text does not match its sha256")
            files[str(item["path"])] = str(item["text"])
        return cls(str(document["base"]), files, document.get("commit"))

    def moved_on(self, now: Mapping[Path, str]) -> list[str]:
        """How the config on disk (`now`: path → text, as the loader finds it) differs from
        this snapshot, for people: `changed: a.yaml`, `added: b.yaml`, `removed: c.yaml`."""
        current = ConfigSnapshot.of(Path(self.base), now).files
        changed = sorted(n for n in self.files.keys() & current.keys() if text_digest(self.files[n]) != text_digest(current[n]))
        added = sorted(current.keys() - self.files.keys())
        removed = sorted(self.files.keys() - current.keys())
        parts = []
        for word, names in (("changed", changed), ("added", added), ("removed", removed)):
            if names:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                parts.append(f"{word}: {shown}")
        return parts

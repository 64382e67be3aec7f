"""Writes an import: the tenant repo in `cockpit export`'s layout, the secret files and the
report, and checks that the tree validates before it is put in place.

Secret values go only into files under `DIR/secrets/` (mode 0600, with a `.gitignore` that keeps
them out of git), referenced from the YAML by `${file:…}` relative to the file that names them.
The tree is written into a staging directory beside `DIR`, validated with `cockpit validate`'s
own code, and only then moved into place: an import that would not validate writes nothing.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.adopt.report import Report
from cockpit.config.validate import validate_path
from cockpit.export.yaml_text import dump_documents

SECRETS_DIR = "secrets"
REPORT_FILE = "IMPORT-REPORT.md"
GITIGNORE = "# Secret values written by `cockpit import`: never commit them.\n*\n!.gitignore\n"


class ImportFailure(Exception):
    """The import cannot be done: a clear message, exit 1, nothing written."""


@dataclass
class TenantTree:
    """What an importer produced: documents per layout path, secret files, the report."""

    report: Report
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    """File name under `secrets/` → the secret value."""

    def add(self, path: str, document: dict[str, Any]) -> None:
        self.files.setdefault(path, []).append(document)

    def secret(self, from_file: str, name: str, value: str) -> str:
        """Store `value` as `secrets/<name>`; the `${file:}` reference as written in `from_file`."""
        self.secrets[name] = value
        relative = posixpath.relpath(f"{SECRETS_DIR}/{name}", posixpath.dirname(from_file) or ".")
        return "${file:" + relative + "}"


def write_tree(tree: TenantTree, out: Path, check: Callable[[Any], None] | None = None) -> list[str]:
    """Write `tree` to `out` (absent or empty) after validating it; the written relative paths.

    `check` is called with the validation result of a valid tree before the report is written,
    so it can add to the report what only the validated config can tell (effective access)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImportFailure(f"{out} already exists and is not an empty directory; import into a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cockpit-import-", dir=out.parent))
    try:
        written = _write(tree, staging)
        result = validate_path(staging)
        errors = [d for d in result.diagnostics if d.severity == "error"]
        if errors:
            shown = "\n".join(str(d).replace(str(staging) + os.sep, "") for d in errors[:20])
            raise ImportFailure(
                f"the imported config does not validate ({len(errors)} error(s)); nothing was written:\n{shown}\n"
                "this is a bug in the importer: please report it with the lines above"
            )
        if check is not None:
            check(result)
            tree.report.forget_prefix(str(staging) + os.sep)
        _write_report(tree, staging)
        written.append(REPORT_FILE)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return written


def _write(tree: TenantTree, root: Path) -> list[str]:
    written = []
    for relative, documents in tree.files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_documents(documents), encoding="utf-8")
        written.append(relative)
    if tree.secrets:
        secrets = root / SECRETS_DIR
        secrets.mkdir(mode=0o700)
        (secrets / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
        for name, value in sorted(tree.secrets.items()):
            fd = os.open(secrets / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(value)
            written.append(f"{SECRETS_DIR}/{name}")
    return written


def _write_report(tree: TenantTree, root: Path) -> None:
    (root / REPORT_FILE).write_text(tree.report.render(), encoding="utf-8")

"""`cockpit export --secrets DIR`: the secret files an export's `${file:…}` references need.

The database keeps each secret encrypted beside the reference it was declared with; an export
writes the references back, and this writes their values where the references resolve from
the exported files (under DIR, as the root of the exported tree), each file 0600, and lists
them in DIR's `.gitignore` so they are never committed. With DIR the export's own directory,
the exported tree plans to no changes as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cockpit.resources.types import types_by_name
from cockpit.store.reader import read_actual
from cockpit.store.secrets import SecretBox
from cockpit.store.tables import metadata

_FILE_PREFIX = "${file:"


def file_secret_values(engine: Engine, box: SecretBox, workspace: str, account: str) -> dict[str, set[str]]:
    """Each `${file:…}` reference of the account's resources (and the catalog's) → the
    values stored for it (one, unless two resources name the same text for different files)."""
    found: dict[str, set[str]] = {}
    with engine.connect() as connection:
        actual = read_actual(connection, workspace)
        for resource in actual.state:
            resource_type = types_by_name()[resource.type]
            if resource_type.secret is None or resource.account not in (account, None):
                continue
            refs = {n: r for n, r in resource_type.secret_refs(resource.fields).items() if r.startswith(_FILE_PREFIX)}
            if not refs:
                continue
            table = metadata.tables[resource_type.table]
            column = table.c[f"{resource_type.secret}_encrypted"]
            token = connection.execute(sa.select(column).where(table.c.id == actual.ids[resource.address])).scalar()
            values = box.decrypt_json(token) if token else {}
            for name, reference in refs.items():
                if name in values:
                    found.setdefault(reference, set()).add(str(values[name]))
    return found


def write_secret_files(
    values: dict[str, set[str]], references: list[tuple[str, str, str]], secrets_dir: Path
) -> tuple[list[Path], list[str]]:
    """Write each referenced secret under `secrets_dir` (0600) and list it in its `.gitignore`;
    returns the files written and, for people, the references that could not be written."""
    written: list[Path] = []
    problems: list[str] = []
    targets: list[str] = []
    for exported, reference, target in references:
        candidates = values.get(reference, set())
        if len(candidates) != 1:
            why = "no value is stored for it" if not candidates else "several secrets use this reference text"
            problems.append(f"{exported} refers to {reference}: {why}; put the file at {secrets_dir / target} by hand")
            continue
        path = secrets_dir / target
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(next(iter(candidates)) + "\n")
        os.chmod(path, 0o600)
        written.append(path)
        targets.append(target)
    if targets:
        ignore = secrets_dir / ".gitignore"
        listed = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
        missing = [f"/{t}" for t in targets if f"/{t}" not in listed]
        if missing:
            header = [] if listed else ["# secret files written by `cockpit export --secrets`: never commit them"]
            ignore.write_text("\n".join([*listed, *header, *missing]) + "\n", encoding="utf-8")
    return written, problems

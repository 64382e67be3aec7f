"""`cockpit export`: an account's actual state back into a tenant repo that plans to no changes.

`export_account` is pure: a `State` (as `read_actual` gives it) in, file path → YAML text out.
`export_to_directory` reads the database and writes those files. The layout:

    account.yaml               Account
    models.yaml                every Model of the workspace's catalog
    directory/copilot.yaml     Directory (copilot)     directory/console.yaml  Directory (console)
    access/models.yaml         ModelAccess, per domain access/features.yaml    Features, per domain
    guardrails/<code>.yaml     GuardrailPreset         agents/<name>.yaml      Agent
    connections/<name>.yaml    Connection              marketplace.yaml        MarketplaceListing
    budgets/<name>.yaml        BudgetPlan

Each kind's exporter (`Kind.export`) says which of these files its documents go to; this module
writes them in the registry's order.

Limitations, all because the database does not keep them:

- Secret fields are written as the references they were declared with (`${env:…}`,
  `${file:…}`), never as values. A `${file:PATH}` reference is relative to the file that
  declared it, which the database does not record; the exported file sits at its place in the
  layout above, so the secret file must be placed relative to *that* file (see
  `file_references`), or the reference changed to `${env:…}`.
- Comments, file splits, list order and fields written with their default value are not kept;
  `distribute_equally` entries are rebuilt from their shares (see `cockpit.resources.equal_shares`),
  which may group the scopes differently from the original while expanding to the same
  allocations.
- The model catalog belongs to the workspace, not to an account, so `models.yaml` holds all of
  it; the tree names one account, so planning it in a workspace that manages other accounts
  would suspend them.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Iterator

import yaml
from sqlalchemy.engine import Engine

from cockpit.config.secrets import secret_fields
from cockpit.export import documents as docs
from cockpit.export.yaml_text import dump_documents
from cockpit.config.registry import build_registry
from cockpit.resources.kinds import kind_registry
from cockpit.resources.state import State
from cockpit.store.reader import read_actual

__all__ = ["ExportError", "export_account", "export_to_directory", "file_references"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FILE_REF_NOTE = (
    "# ${file:...} references are written as they were declared: relative to the file that\n"
    "# declared them. Put the secret files where they resolve from this file, or use ${env:...}.\n"
)


class ExportError(Exception):
    """The account cannot be exported (unknown, or managed by another workspace)."""


def export_account(state: State, account: str) -> dict[str, str]:
    """The tenant repo of `account`: relative file path → YAML text, in layout order."""
    res = docs.AccountResources(state, account)
    if not any(r.key == (account,) for r in res.of("account")):
        raise ExportError(f"no account named '{account}' in the state")
    unknown = res.types() - docs.EXPORTED_TYPES
    if unknown:
        raise ExportError(f"cannot export resource types {sorted(unknown)}: the exporter does not know them")
    layout: dict[str, list[docs.Document]] = {}
    for kind in kind_registry():
        layout.update(kind.export(res))
    files = {}
    for path, documents in layout.items():
        if documents:
            has_file_refs = any(True for d in documents for _ in _file_refs(d))
            files[path] = dump_documents(documents, FILE_REF_NOTE if has_file_refs else "")
    return files


def _file_refs(document: docs.Document) -> Iterator[str]:
    """The `${file:…}` references in the secret fields of a document."""
    descriptor = build_registry().get(document.get("kind"))
    if descriptor is None:
        return
    for _, value in secret_fields(descriptor, document):
        if isinstance(value, str) and value.startswith("${file:") and value.endswith("}"):
            yield value


def file_references(files: dict[str, str]) -> list[tuple[str, str, str]]:
    """(exported file, reference, where the secret file must be, relative to the tree root) for
    every `${file:…}` reference of the export, so a caller can say where to put secret files."""
    found = []
    for path, text in files.items():
        if "${file:" not in text:
            continue
        for document in yaml.load_all(text, Loader=_LOADER):
            for reference in _file_refs(document or {}):
                target = posixpath.normpath((Path(path).parent / reference[len("${file:"):-1]).as_posix())
                if (path, reference, target) not in found:  # two fields may name one file
                    found.append((path, reference, target))
    return found


def export_to_directory(engine: Engine, workspace: str, account: str, out_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Read `account` of `workspace` from the database and write its tenant repo under `out_dir`.

    Refuses a directory that already holds YAML files (they would be loaded with the export)
    unless `overwrite`; then only the exported paths are replaced. Returns the written paths.
    """
    with engine.connect() as connection:
        actual = read_actual(connection, workspace)
    row = actual.accounts.get(account)
    if row is None:
        raise ExportError(f"no account named '{account}' in the database")
    if row.workspace != workspace:
        raise ExportError(
            f"account '{account}' is managed by workspace '{row.workspace}', not '{workspace}'; "
            f"export it with --workspace {row.workspace}"
        )
    files = export_account(actual.state, account)
    out_dir = Path(out_dir)
    if not overwrite and out_dir.is_dir():
        existing = sorted(p for p in out_dir.rglob("*") if p.suffix in (".yaml", ".yml"))
        if existing:
            raise ExportError(
                f"{out_dir} already holds YAML files ({existing[0].relative_to(out_dir)}, ...); "
                "export into an empty directory, or overwrite explicitly"
            )
    written = []
    for relative, text in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

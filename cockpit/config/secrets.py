"""Secret fields: where they are in a document, and the form of the references they hold.

Secret values never live in the repo: a field takes `${env:NAME}` or `${file:PATH}`, PATH
relative to the file that names it and inside the tenant repo. The registry says which fields
are secret (`Descriptor.secret_fields`); this module finds them in any document.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping

from cockpit.config.types import SECRET_REF_PATTERN
from cockpit.resources import Descriptor

SECRET_REF = re.compile(SECRET_REF_PATTERN)


def secret_fields(descriptor: Descriptor, data: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every secret field present in `data`, per the descriptor's patterns."""
    for pattern in descriptor.secret_fields:
        yield from _match(data, tuple(pattern.split(".")), ())


def _match(node: Any, parts: tuple[str, ...], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if not parts:
        yield path, node
        return
    if not isinstance(node, Mapping):
        return
    head, rest = parts[0], parts[1:]
    for key, value in node.items():
        if isinstance(key, str) and fnmatchcase(key.lower(), head):
            yield from _match(value, rest, (*path, key))


def reference_problem(value: Any, document_path: Path, repo_root: Path) -> str | None:
    """What is wrong with a secret field's value, or None; never quotes the value itself."""
    if value is None or value == "":
        return None
    match = SECRET_REF.match(value) if isinstance(value, str) else None
    if match is None:
        return (
            "takes a reference, not a literal secret: write ${env:NAME} or ${file:PATH} and "
            "keep the value out of the repository"
        )
    target = match.group(1)
    if target.startswith("file:"):
        relative = target[len("file:"):]
        if PurePosixPath(relative).is_absolute() or Path(relative).is_absolute():
            return f"refers to an absolute path; make ${{file:{relative}}} relative to this file"
        resolved = (document_path.parent / relative).resolve()
        if not resolved.is_relative_to(repo_root.resolve()):
            return (
                f"refers to ${{file:{relative}}}, outside the tenant repo; keep secret files "
                "inside it, or use ${env:NAME}"
            )
    return None


class UnresolvedSecret(Exception):
    """A reference that names a variable or file that is not there; says which, never a value."""


def resolve_reference(reference: str, base_dir: Path, environ: Mapping[str, str]) -> str:
    match = SECRET_REF.match(reference)
    if match is None:
        raise UnresolvedSecret("is not a ${env:NAME} or ${file:PATH} reference")
    target = match.group(1)
    if target.startswith("env:"):
        name = target[len("env:"):]
        value = environ.get(name)
        if not value:
            raise UnresolvedSecret(f"environment variable {name} is not set; export it before plan and apply")
        return value
    relative = target[len("file:"):]
    path = base_dir / relative
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UnresolvedSecret(f"cannot read secret file {relative} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UnresolvedSecret(f"secret file {relative} is not UTF-8 text") from None

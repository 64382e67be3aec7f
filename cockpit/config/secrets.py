"""Secret fields: where they are in a document, and the form of the references they hold.

Secret values never live in the repo: a field takes `${env:NAME}` or `${file:PATH}`. The
registry says which fields are secret (`Descriptor.secret_fields`); this module finds them in any
document, and decides which references may be followed. The same checks run at validate
(located errors) and again when plan and apply resolve a reference, so nothing skips them:

- `${env:NAME}` may not name the apply host's own settings (`RESERVED_ENV_NAMES`,
  `RESERVED_ENV_PREFIXES`, compared case-insensitively): a config chooses where a model or a
  connection sends its key, so `${env:ZITADEL_CLIENT_SECRET}` would deliver the host's secret to
  any host. `COCKPIT_SECRET_ENV_PREFIX` (comma-separated) restricts references further, e.g.
  `TENANT_` allows only `${env:TENANT_…}` (case-sensitive, as environment names are).
- `${file:PATH}` is relative to the file that names it and must stay inside the tenant repo,
  or inside a directory listed in `COCKPIT_SECRET_FILE_DIRS` (os.pathsep-separated absolute
  paths, e.g. mounted CI secrets in `/run/secrets`); absolute paths only there. Symlinks are
  followed only into those directories (Kubernetes mounts secrets as symlinks). The file must be
  a regular file of at most 64 KiB: a FIFO or a device would hang or flood `plan`.

Both settings are read from the process environment only, never from `.env`: a tenant repo's
`.env` must not widen what its config may read. Containment in the repo is checked at validate,
which plan and apply run first (a saved plan's references are under its MAC); resolving checks
everything else again.
"""

from __future__ import annotations

import os
import re
import stat
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Iterator, Mapping

from cockpit.config.types import SECRET_REF_PATTERN
from cockpit.config.descriptor import Descriptor

SECRET_REF = re.compile(SECRET_REF_PATTERN)

SECRET_ENV_PREFIX_VARIABLE = "COCKPIT_SECRET_ENV_PREFIX"
SECRET_FILE_DIRS_VARIABLE = "COCKPIT_SECRET_FILE_DIRS"
MAX_SECRET_FILE_BYTES = 64 * 1024

RESERVED_ENV_NAMES = frozenset({
    # Cockpit's own settings
    "DATABASE_URL", "REDIS_URL", "PGPASSWORD", "PGPASSFILE",
    # tokens CI runners put in every job's environment
    "GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN", "CI_JOB_TOKEN", "CI_JOB_JWT", "CI_JOB_JWT_V1",
    "CI_JOB_JWT_V2", "CI_REGISTRY_PASSWORD", "CI_DEPLOY_PASSWORD", "CI_DEPENDENCY_PROXY_PASSWORD",
    "SYSTEM_ACCESSTOKEN", "BUILDKITE_AGENT_ACCESS_TOKEN", "CIRCLE_TOKEN", "VAULT_TOKEN",
    # cloud credentials of the runner
    "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET",
})
RESERVED_ENV_PREFIXES = ("COCKPIT_", "ZITADEL_", "OPENOBSERVE_", "LITELLM_", "ACTIONS_", "AWS_")


def secret_fields(descriptor: Descriptor, data: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every secret field present in `data`, per the descriptor's patterns."""
    return fields_matching(data, descriptor.secret_fields)


def fields_matching(data: Mapping[str, Any], patterns: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every field of `data` a dotted pattern names (`*` globs, lower-case;
    a lone `*` also walks every entry of a list, whose index joins the path)."""
    for pattern in patterns:
        yield from _match(data, tuple(pattern.split(".")), ())


def _match(node: Any, parts: tuple[str, ...], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if not parts:
        yield path, node
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, list) and head == "*":  # `deployments.*.litellm.api_key`: every entry
        for index, value in enumerate(node):
            yield from _match(value, rest, (*path, index))
        return
    if not isinstance(node, Mapping):
        return
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
    if target.startswith("env:"):
        return env_problem(target[len("env:"):], os.environ)
    relative = target[len("file:"):]
    base = document_path.parent.resolve()
    problem = file_problem(relative, base, os.environ, repo_root=repo_root.resolve())
    if problem:
        return problem
    try:
        _regular_file(_lexical(base, relative), relative)
    except FileNotFoundError:
        return None  # validate does not need the secrets; plan says it is missing
    except UnresolvedSecret as exc:
        return str(exc)
    return None


def env_problem(name: str, environ: Mapping[str, str]) -> str | None:
    """Why `${env:NAME}` may not be read, or None. `environ` gives the platform's settings."""
    upper = name.upper()
    prefixes = _allowed_prefixes(environ)
    if upper in RESERVED_ENV_NAMES or upper.startswith(RESERVED_ENV_PREFIXES):
        family = next((f"{p}*" for p in RESERVED_ENV_PREFIXES if upper.startswith(p)), upper)
        example = f"{prefixes[0] if prefixes else 'ACME_'}OPENAI_API_KEY"
        return (
            f"refers to ${{env:{name}}}, a setting of the host that runs cockpit ({family}); "
            "a config may not send it to a model or connection. Give the tenant a variable "
            f"of its own, e.g. ${{env:{example}}}"
        )
    if prefixes and not name.startswith(prefixes):
        allowed = ", ".join(f"${{env:{p}…}}" for p in prefixes)
        return (
            f"refers to ${{env:{name}}}, outside what {SECRET_ENV_PREFIX_VARIABLE} allows "
            f"({allowed}); rename the variable"
        )
    return None


def file_problem(relative: str, base_dir: Path, environ: Mapping[str, str], *, repo_root: Path | None = None) -> str | None:
    """Why `${file:relative}` (from a file in `base_dir`, a real directory) may not be read, or
    None. Without `repo_root` (when resolving), containment in the repo is not known here."""
    allowed_dirs = secret_file_dirs(environ)
    lexical = _lexical(base_dir, relative)
    try:
        real = Path(os.path.realpath(lexical))
    except (OSError, ValueError):
        return f"refers to ${{file:{relative}}}, which cannot be resolved; point it at a file"
    if any(real.is_relative_to(d) for d in allowed_dirs):
        return None
    if Path(relative).is_absolute():
        where = (
            f", or point it inside {SECRET_FILE_DIRS_VARIABLE} ({', '.join(map(str, allowed_dirs))})"
            if allowed_dirs
            else f" (the platform may allow a mounted secrets directory with {SECRET_FILE_DIRS_VARIABLE})"
        )
        return f"refers to an absolute path; make ${{file:{relative}}} relative to this file{where}"
    if real != lexical:
        return (
            f"refers to ${{file:{relative}}}, which goes through a symlink to {real}; point it "
            f"at the file itself (symlinks are followed only into {SECRET_FILE_DIRS_VARIABLE})"
        )
    if repo_root is not None and not real.is_relative_to(repo_root):
        return (
            f"refers to ${{file:{relative}}}, outside the tenant repo; keep secret files "
            "inside it, or use ${env:NAME}"
        )
    return None


def secret_file_dirs(environ: Mapping[str, str]) -> tuple[Path, ...]:
    """The real paths of `COCKPIT_SECRET_FILE_DIRS` (absolute entries only; others ignored)."""
    entries = (environ.get(SECRET_FILE_DIRS_VARIABLE) or "").split(os.pathsep)
    return tuple(Path(os.path.realpath(e)) for e in entries if e.strip() and os.path.isabs(e))


def _allowed_prefixes(environ: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(p.strip() for p in (environ.get(SECRET_ENV_PREFIX_VARIABLE) or "").split(",") if p.strip())


def _lexical(base_dir: Path, relative: str) -> Path:
    """The path as written, `..` folded without following symlinks."""
    return Path(os.path.normpath(base_dir / relative))


class UnresolvedSecret(Exception):
    """A reference that names a variable or file that is not there or may not be read; says
    which and why, never a value."""


def resolve_reference(reference: str, base_dir: Path, environ: Mapping[str, str]) -> str:
    """The value of a reference, after the same checks as validate (see the module docstring).
    Platform settings come from the process environment; values from `environ` (with `.env`)."""
    match = SECRET_REF.match(reference)
    if match is None:
        raise UnresolvedSecret("is not a ${env:NAME} or ${file:PATH} reference")
    target = match.group(1)
    if target.startswith("env:"):
        name = target[len("env:"):]
        problem = env_problem(name, os.environ)
        if problem:
            raise UnresolvedSecret(problem)
        value = environ.get(name)
        if not value:
            raise UnresolvedSecret(f"environment variable {name} is not set; export it before plan and apply")
        return value
    relative = target[len("file:"):]
    base_dir = base_dir.resolve()
    problem = file_problem(relative, base_dir, os.environ)
    if problem:
        raise UnresolvedSecret(problem)
    return read_secret_file(_lexical(base_dir, relative), relative)


def read_secret_file(path: Path, shown: str) -> str:
    """The stripped text of a regular file of at most MAX_SECRET_FILE_BYTES. Opened with
    O_NONBLOCK and checked again with fstat, so a FIFO swapped in after the first check cannot
    block; the size is enforced on the bytes read, not only on what stat said."""
    try:
        expected = _regular_file(path, shown)
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UnresolvedSecret(f"secret file {shown} does not exist") from None
    except OSError as exc:
        raise UnresolvedSecret(f"cannot read secret file {shown} ({exc.strerror})") from None
    try:
        opened = os.fstat(descriptor)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (expected.st_dev, expected.st_ino):
            raise UnresolvedSecret(f"secret file {shown} changed while it was opened; run again")
        chunks, size = [], 0
        while size <= MAX_SECRET_FILE_BYTES:
            chunk = os.read(descriptor, MAX_SECRET_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise UnresolvedSecret(f"cannot read secret file {shown} ({exc.strerror})") from None
    finally:
        os.close(descriptor)
    if size > MAX_SECRET_FILE_BYTES:
        raise UnresolvedSecret(_too_large(shown))
    try:
        return b"".join(chunks).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UnresolvedSecret(f"secret file {shown} is not UTF-8 text") from None


def _regular_file(path: Path, shown: str) -> os.stat_result:
    """os.stat of `path` if it is a regular file within the size limit; FileNotFoundError when
    it is missing; UnresolvedSecret naming what it is otherwise."""
    try:
        result = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnresolvedSecret(f"cannot read secret file {shown} ({exc.strerror})") from None
    except ValueError:  # a NUL byte, from a YAML "\0" escape
        raise UnresolvedSecret("secret file path holds a NUL character; write a plain path") from None
    if not stat.S_ISREG(result.st_mode):
        raise UnresolvedSecret(
            f"secret file {shown} is {_file_kind(result.st_mode)}, not a regular file; point "
            "${file:…} at a file holding the secret"
        )
    if result.st_size > MAX_SECRET_FILE_BYTES:
        raise UnresolvedSecret(_too_large(shown))
    return result


def _too_large(shown: str) -> str:
    return f"secret file {shown} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB; a secret file holds one secret"


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"

"""YAML files → documents that remember where every node came from.

PyYAML's composer gives nodes with marks; we build the plain data ourselves from those nodes so
that duplicate keys, unknown tags, runaway aliases and deep nesting become located errors instead
of silent overwrites or tracebacks. The node tree is kept, so a problem found later (schema or
semantics) is located by walking it along the problem's path.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import yaml

from cockpit.config.diagnostics import Diagnostics, Location, display_path
from cockpit.config.secrets import secret_file_dirs

try:  # libyaml when present: the same nodes and marks, several times faster
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - pure-Python fallback
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_STR_TAG = "tag:yaml.org,2002:str"


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Resolves plain scalars with one dict lookup on the first character: the composer calls
    this for every scalar (700,000 in a large tenant) and PyYAML's version does list work."""

    _by_first = dict(_BaseLoader.yaml_implicit_resolvers)

    def resolve(self, kind, value, implicit):  # type: ignore[no-untyped-def]
        if kind is yaml.ScalarNode and not self.yaml_path_resolvers:
            first = value[:1]
            if implicit[0] and first in self._by_first:
                for tag, regexp in self._by_first[first]:
                    if regexp.match(value):
                        return tag
            return _STR_TAG
        return super().resolve(kind, value, implicit)


MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES_PER_FILE = 5_000_000
YAML_SUFFIXES = (".yaml", ".yml")

PathElement = str | int


@dataclass
class SourceDocument:
    """One YAML document: its data, and the node tree that locates any part of it."""

    file: str
    """The path as shown to the user."""
    path: Path
    """The real path, for `${file:…}` references relative to it."""
    index: int
    node: yaml.Node
    data: Any
    relative: str = ""
    """The path relative to the tenant repo (POSIX): what an apply records as its origin."""

    def origin(self, path: Sequence[PathElement]) -> str:
        """`file:line:column` of the node at `path`, the file relative to the tenant repo."""
        location = self.locate(path)
        return f"{self.relative or self.file}:{location.line}:{location.column}"

    def locate(self, path: Sequence[PathElement], *, key: bool = False) -> Location:
        """The position of the node at `path`; with `key`, of the mapping key naming it.

        A path that does not exist (a missing required field, say) falls back to the deepest
        node that does, which is where the user has to add something.
        """
        node = self.node
        mark = node.start_mark
        for depth, element in enumerate(path):
            child = _child(node, element)
            if child is None:
                break
            key_node, node = child
            last = depth == len(path) - 1
            mark = key_node.start_mark if (key and last and key_node is not None) else node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)


class NodeRef(NamedTuple):
    """A node to locate later: positions are walked for only the few nodes that get reported.
    (A named tuple: one is made per resource, and it is the cheapest immutable record.)"""

    document: SourceDocument
    path: tuple[PathElement, ...]

    @property
    def location(self) -> Location:
        return self.document.locate(self.path)

    def __str__(self) -> str:
        return str(self.location)


def _child(node: yaml.Node, element: PathElement) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(element):
                return key_node, value_node
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(element, int):
        if 0 <= element < len(node.value):
            return None, node.value[element]
    return None


def find_files(root: Path, diagnostics: Diagnostics | None = None) -> list[Path]:
    """Every *.yaml / *.yml below `root` (or `root` itself), skipping hidden directories.

    Symlinks are followed only while they stay inside the repo (its real path): a link to a
    file or directory elsewhere would load YAML nobody reviewed in the tenant repo, so it is a
    located error naming the link and its target (a directory link into
    `COCKPIT_SECRET_FILE_DIRS` is left alone: secrets, not YAML). Each real file is read once,
    however many links lead to it; a directory link back up the tree is not walked twice.
    """
    if root.is_file():
        return [root]
    real_root = Path(os.path.realpath(root))
    secret_dirs = secret_file_dirs(os.environ)
    found: dict[Path, Path] = {}
    walked: set[Path] = {real_root}
    pending = [(root, real_root)]
    while pending:
        directory, real_directory = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            if diagnostics is not None:
                diagnostics.error(Location(display_path(directory), 0, 0), f"cannot read directory: {exc.strerror}")
            continue
        for entry in entries:
            path = directory / entry.name
            try:
                is_dir = entry.is_dir()
                is_link = entry.is_symlink()
            except OSError:
                continue
            if is_dir and entry.name.startswith("."):
                continue
            if not is_dir and Path(entry.name).suffix not in YAML_SUFFIXES:
                continue
            real = Path(os.path.realpath(path)) if is_link else real_directory / entry.name
            if is_link and is_dir and any(real.is_relative_to(d) for d in secret_dirs):
                continue  # a mounted secrets directory linked into the repo: not YAML, not walked
            if is_link and not real.is_relative_to(real_root):
                if diagnostics is not None:
                    what = "directory" if is_dir else "file"
                    diagnostics.error(
                        Location(_link_path(path), 0 if is_dir else 1, 0 if is_dir else 1),
                        f"symlinked {what} points outside the tenant repo, to {real}; copy "
                        "what it should hold into the repo, or remove the link",
                    )
                continue
            if is_dir:
                if real not in walked:
                    walked.add(real)
                    pending.append((path, real))
            elif entry.is_file():
                found.setdefault(real, path)
            elif is_link and not real.exists() and diagnostics is not None:
                diagnostics.warning(Location(_link_path(path), 0, 0), f"broken symlink to {real}; skipped")
    return sorted(found.values())


def _link_path(path: Path) -> str:
    """A link as the user would type it (display_path would show its target instead)."""
    absolute = Path(os.path.abspath(path))
    for cwd in (Path(os.path.abspath(Path.cwd())), Path.cwd().resolve()):
        if absolute.is_relative_to(cwd):
            return str(absolute.relative_to(cwd))
    return str(path)


def load_tree(
    root: Path,
    diagnostics: Diagnostics,
    texts: dict[Path, str] | None = None,
    snapshot: Mapping[Path, str] | None = None,
    unparsed: list[tuple[Location, str]] | None = None,
) -> list[SourceDocument]:
    """Load every document under `root`; problems go to `diagnostics`, never raise.

    `texts`, when given, receives the text of every file read (what a saved plan keeps);
    `snapshot` (path → text) is read instead of the disk: the config a saved plan was made
    from, at the paths it had, so `${file:…}` references still resolve beside them.
    `unparsed` receives (where, file) of each file that cannot be read or does not parse."""
    base = root if snapshot is not None or root.is_dir() else root.parent
    if snapshot is not None:
        documents = []
        for path, text in sorted(snapshot.items()):
            documents.extend(_relative(load_file(path, diagnostics, text=text, unparsed=unparsed), path, base))
            if texts is not None:
                texts[path] = text
        return documents
    if not root.exists():
        diagnostics.error(
            Location(str(root), 0, 0), "no such file or directory; give a tenant repo directory"
        )
        return []
    files = find_files(root, diagnostics)
    if not files:
        diagnostics.error(
            Location(display_path(root), 0, 0),
            "no *.yaml or *.yml files found; point cockpit at the tenant repo directory",
        )
    documents: list[SourceDocument] = []
    for path in files:
        documents.extend(_relative(load_file(path, diagnostics, texts, unparsed=unparsed), path, base))
    return documents


def _relative(documents: list[SourceDocument], path: Path, base: Path) -> list[SourceDocument]:
    try:
        relative = path.relative_to(base).as_posix()
    except ValueError:
        relative = path.name
    for document in documents:
        document.relative = relative
    return documents


def load_file(
    path: Path,
    diagnostics: Diagnostics,
    texts: dict[Path, str] | None = None,
    text: str | None = None,
    unparsed: list[tuple[Location, str]] | None = None,
) -> list[SourceDocument]:
    before = len(diagnostics)
    documents = _load_file(path, diagnostics, texts, text)
    if unparsed is not None and not documents and diagnostics.has_errors_since(before):
        unparsed.append((diagnostics.first_error_since(before), display_path(path)))
    return documents


def _load_file(path: Path, diagnostics: Diagnostics, texts: dict[Path, str] | None, text: str | None) -> list[SourceDocument]:
    shown = display_path(path)
    if text is None:
        text = _read_text(path, shown, diagnostics)
        if text is None:
            return []
        if texts is not None:
            texts[path] = text
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        diagnostics.error(_mark_location(shown, exc), _yaml_message(exc, text))
        return []
    except yaml.reader.ReaderError as exc:  # a character YAML forbids; str(exc) spans two lines
        line, column = _char_position(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        diagnostics.error(
            Location(shown, line, column),
            f"invalid YAML: unacceptable character #x{code:04x}: {exc.reason}",
        )
        return []
    except yaml.YAMLError as exc:
        diagnostics.error(Location(shown, 1, 1), f"invalid YAML: {exc}")
        return []
    except RecursionError:
        diagnostics.error(Location(shown, 1, 1), f"nesting deeper than {MAX_DEPTH} levels")
        return []
    documents = []
    builder = _DataBuilder(shown, diagnostics)
    for index, node in enumerate(nodes):
        if node is None:
            continue
        data = builder.build(node)
        if builder.aborted:
            return []
        if data is None:  # an empty document, e.g. after a trailing `---`
            continue
        documents.append(SourceDocument(shown, path, index, node, data))
    if not documents:
        diagnostics.warning(Location(shown, 1, 1), "file holds no YAML documents")
    return documents


def read_text(path: Path) -> str | None:
    """A config file's text as the loader reads it, or None when it cannot be read."""
    return _read_text(path, display_path(path), Diagnostics())


def _read_text(path: Path, shown: str, diagnostics: Diagnostics) -> str | None:
    try:
        # O_NONBLOCK and fstat: a FIFO put in place of a file after it was found cannot hang us
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                diagnostics.error(Location(shown, 0, 0), "not a regular file; tenant files must be YAML text files")
                return None
            size = status.st_size
            if size > MAX_FILE_BYTES:
                diagnostics.error(
                    Location(shown, 1, 1),
                    f"file is {size / 2**20:.1f} MiB, above the {MAX_FILE_BYTES // 2**20} MiB "
                    "limit per file; split it into several files",
                )
                return None
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:  # it grew after fstat
            diagnostics.error(Location(shown, 1, 1), f"file is above the {MAX_FILE_BYTES // 2**20} MiB limit per file; split it into several files")
            return None
    except OSError as exc:
        diagnostics.error(Location(shown, 0, 0), f"cannot read file: {exc.strerror}")
        return None
    if b"\x00" in raw:
        line, column = _position_of(raw, raw.index(b"\x00"))
        diagnostics.error(
            Location(shown, line, column), "binary file (NUL byte); tenant files must be YAML text"
        )
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _position_of(raw, exc.start)
        diagnostics.error(
            Location(shown, line, column), "file is not valid UTF-8; save it as UTF-8 text"
        )
        return None


def _position_of(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, offset - line_start + 1


def _char_position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _mark_location(shown: str, exc: yaml.MarkedYAMLError) -> Location:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return Location(shown, 1, 1)
    return Location(shown, mark.line + 1, mark.column + 1)


def _yaml_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    problem = (exc.problem or "malformed YAML").strip()
    mark = exc.problem_mark
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        return "tab character in YAML; indent with spaces, YAML does not allow tabs"
    hint = _indentation_hint(exc, text)
    if hint:
        return f"invalid YAML: {problem}; {hint}"
    context = f" {exc.context.strip()}" if exc.context else ""
    if exc.context_mark is not None and exc.problem_mark is not None and context:
        context += f" (line {exc.context_mark.line + 1})"
    return f"invalid YAML: {problem}{';' + context if context else ''}"


_INDENTATION_PROBLEMS = {
    "did not find expected key": "mapping",
    "did not find expected '-' indicator": "list",
}


def _indentation_hint(exc: yaml.MarkedYAMLError, text: str) -> str | None:
    """For the errors a mis-indented line gives ("did not find expected key", "... '-'
    indicator"): the line to check, its indentation against that of the block it is in."""
    block = _INDENTATION_PROBLEMS.get((exc.problem or "").strip())
    problem, context = exc.problem_mark, exc.context_mark
    if (exc.problem or "").strip().startswith("mapping values are not allowed") and problem is not None:
        return (
            f"check the indentation of line {problem.line + 1} and the line above it, or quote "
            "a value that holds ': '"
        )
    if block is None or problem is None or context is None:
        return None
    lines = text.splitlines()
    if not (0 <= problem.line < len(lines) and 0 <= context.line < len(lines)):
        return None
    line = lines[problem.line]
    indented = len(line) - len(line.lstrip(" "))
    hint = (
        f"check the indentation of line {problem.line + 1}: it is indented {indented} "
        f"space{'' if indented == 1 else 's'}, the {block} it is in (line {context.line + 1}) {context.column}"
    )
    if block == "list":
        item = lines[context.line][context.column + 1:]
        keys = context.column + 1 + len(item) - len(item.lstrip(" "))
        hint += f" and an item's keys {keys}"
    return hint


class _DataBuilder:
    """Turns composed nodes into plain data, reporting what PyYAML would silently accept."""

    def __init__(self, shown: str, diagnostics: Diagnostics) -> None:
        self._shown = shown
        self._diagnostics = diagnostics
        self._constructor = yaml.constructor.SafeConstructor()
        self._nodes = 0
        self.aborted = False

    def build(self, node: yaml.Node) -> Any:
        return self._build(node, 0)

    def _at(self, node: yaml.Node) -> Location:
        return Location(self._shown, node.start_mark.line + 1, node.start_mark.column + 1)

    def _build(self, node: yaml.Node, depth: int) -> Any:
        if self.aborted:
            return None
        self._nodes += 1
        if self._nodes > MAX_NODES_PER_FILE:
            self.aborted = True
            self._diagnostics.error(
                self._at(node),
                f"more than {MAX_NODES_PER_FILE:,} nodes (aliases expanded); split the file or "
                "use fewer aliases",
            )
            return None
        if depth > MAX_DEPTH:
            self.aborted = True
            self._diagnostics.error(self._at(node), f"nesting deeper than {MAX_DEPTH} levels")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, depth + 1) for item in node.value]
        return self._mapping(node, depth)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == "tag:yaml.org,2002:str":
            return node.value
        construct = self._constructor.yaml_constructors.get(node.tag)
        if construct is None:
            self._diagnostics.error(
                self._at(node), f"unsupported YAML tag {node.tag!r}; remove the tag"
            )
            return None
        try:
            return construct(self._constructor, node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self._diagnostics.error(self._at(node), f"invalid YAML value: {exc}")
            return None

    def _mapping(self, node: yaml.MappingNode, depth: int) -> dict[Any, Any]:
        if node.tag != "tag:yaml.org,2002:map":
            self._diagnostics.error(
                self._at(node), f"unsupported YAML tag {node.tag!r}; remove the tag"
            )
        try:
            self._constructor.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self._diagnostics.error(self._at(node), f"invalid merge key: {exc}")
            return {}
        result: dict[Any, Any] = {}
        first_seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self._build(key_node, depth + 1)
            if self.aborted:
                break
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                self._diagnostics.error(
                    self._at(key_node), "mapping keys must be plain scalars, not lists or maps"
                )
                continue
            if key in first_seen:
                first = first_seen[key].start_mark.line + 1
                self._diagnostics.error(
                    self._at(key_node),
                    f"duplicate key '{key}' (first at line {first}); keep only one",
                )
                continue
            first_seen[key] = key_node
            result[key] = self._build(value_node, depth + 1)
        return result

"""`cockpit validate`: load → schema pass → models → semantic pass, collecting every problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from pydantic import BaseModel, ValidationError

from cockpit.config import semantics
from cockpit.config.diagnostics import Diagnostic, Diagnostics, Location
from cockpit.config.schema import check_document, check_envelope
from cockpit.config.source import SourceDocument, load_tree
from cockpit.config.tenant import Tenant, gather
from cockpit.memory import paused_gc
from cockpit.config.registry import Registry, build_registry


@dataclass(frozen=True)
class ValidationResult:
    diagnostics: list[Diagnostic]
    files: int
    documents: int
    tenant: Tenant
    texts: dict[Path, str] = field(default_factory=dict)
    """The text of every file read, by path: what a saved plan keeps of its config."""

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def validate_path(
    root: Path, registry: Registry | None = None, snapshot: Mapping[Path, str] | None = None
) -> ValidationResult:
    """Validate a tenant repo (or, with `snapshot`, the files it held when a plan was made:
    path → text); never raises on bad input, reports it instead."""
    with paused_gc():
        return _validate(root, registry or build_registry(), snapshot)


def _validate(root: Path, registry: Registry, snapshot: Mapping[Path, str] | None = None) -> ValidationResult:
    diagnostics = Diagnostics()
    texts: dict[Path, str] = {}
    unparsed: list[tuple[Location, str]] = []
    documents = load_tree(root, diagnostics, texts, snapshot, unparsed)
    parsed: list[tuple[SourceDocument, BaseModel]] = []
    broken: list[SourceDocument] = []
    for document in documents:
        descriptor = check_envelope(document, registry, diagnostics)
        if descriptor is None:
            continue
        model = _fast_parse(document, descriptor.model)
        if model is None:
            # Something is off: the JSON Schema pass says what, located; what it accepts is
            # then parsed leniently, reporting whatever pydantic still refuses.
            if not check_document(document, descriptor, diagnostics):
                broken.append(document)
                continue
            model = _parse(document, descriptor.model, diagnostics)
        if model is None:
            broken.append(document)
        else:
            parsed.append((document, model))
    tenant = gather(parsed, registry, diagnostics, broken, unparsed)
    repo_root = root if root.is_dir() else root.parent
    semantics.check(tenant, diagnostics, registry, repo_root)
    files = len({d.file for d in documents})
    return ValidationResult(diagnostics.sorted(), files, len(documents), tenant, texts)


def _fast_parse(document: SourceDocument, model: type[BaseModel]) -> BaseModel | None:
    """The model in strict mode: the schemas are generated from these models, so a document
    strict pydantic accepts is one the JSON Schema accepts. Valid documents (nearly all of them)
    are checked once, in compiled code; 100,000 grants take 0.2 s instead of 0.5 s."""
    try:
        return model.model_validate(document.data, strict=True)
    except ValidationError:
        return None


def _parse(
    document: SourceDocument, model: type[BaseModel], diagnostics: Diagnostics
) -> BaseModel | None:
    """Build the model; the schema pass has vetted the data, so errors here are rare."""
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            diagnostics.error(document.locate(error["loc"]), error["msg"])
        return None

"""What a plan is made from: the validated config and its desired state.

Secrets are resolved only to fingerprint them (the plan records a fingerprint, the executor
resolves them again); a secret that does not resolve is an error of the plan, said with the
others the database checks find.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from cockpit.config.secrets import UnresolvedSecret, resolve_reference
from cockpit.config.snapshot import ConfigSnapshot
from cockpit.config.validate import ValidationResult, validate_path
from cockpit.plan.draft import PlanContext, PlanFailed
from cockpit.resources.desired import desired_state
from cockpit.resources.state import State
from cockpit.resources.types import ResourceType
from cockpit.store.secrets import SecretBox


@dataclass(frozen=True)
class PlanInputs:
    """What `cockpit plan` is asked: the config, its workspace and the explicit choices."""

    config_path: Path
    workspace: str = "default"
    hard_delete_accounts: frozenset[str] = frozenset()
    skip_zitadel: bool = False
    snapshot: ConfigSnapshot | None = None
    """Plan the config a saved plan was made from instead of what `config_path` holds now."""


def validated(config_path: Path, snapshot: ConfigSnapshot | None = None) -> ValidationResult:
    """The config at `config_path` (or the `snapshot` of it a saved plan keeps), validated;
    raises PlanFailed with its errors."""
    if snapshot is not None:
        validation = validate_path(Path(snapshot.base), snapshot=snapshot.paths())
    else:
        validation = validate_path(config_path)
    if not validation.ok:
        raise PlanFailed([str(d) for d in validation.diagnostics if d.severity == "error"], validation)
    return validation


def desired_with_secrets(validation: ValidationResult, box: SecretBox, environ: Mapping[str, str]) -> tuple[State, list[str]]:
    """The desired state, each secret fingerprinted with `box`, and one error per secret that
    does not resolve (its resource then has no fingerprint)."""
    errors: list[str] = []

    def fingerprint(resource_type: ResourceType, refs: dict[str, str], base: str, origins: Mapping[str, str]) -> str | None:
        values = {}
        for name, reference in refs.items():
            try:
                values[name] = resolve_reference(reference, Path(base), environ)
            except UnresolvedSecret as exc:
                errors.append(f"{origins[name]}: error: '{name}' of {resource_type.display}: {exc}")
        return box.fingerprint(values) if len(values) == len(refs) else None

    return desired_state(validation.tenant, fingerprint), errors


def desired_without_secrets(validation: ValidationResult) -> State:
    """The desired state with no secret resolved: enough for what Zitadel should hold."""
    return desired_state(validation.tenant, lambda *_: None)


def plan_context(validation: ValidationResult, inputs: PlanInputs) -> PlanContext:
    """What the comparators need of the config besides its desired state."""
    return PlanContext(
        workspace=inputs.workspace,
        config_accounts=frozenset(validation.tenant.accounts),
        hard_delete_accounts=inputs.hard_delete_accounts,
        warnings=tuple(str(d) for d in validation.diagnostics if d.severity == "warning"),
        config_path=str(inputs.config_path.resolve()),
        snapshot=inputs.snapshot or ConfigSnapshot.of(inputs.config_path, validation.texts),
    )

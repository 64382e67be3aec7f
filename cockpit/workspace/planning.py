"""A workspace's plan: the config and the database in, one `Plan` out (`build_plan`).

Planning fails as a whole (`PlanFailed`, every error said at once) when the config is invalid,
a secret does not resolve, or the config claims what the database gives another workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from cockpit.config.snapshot import ConfigSnapshot
from cockpit.memory import paused_gc
from cockpit.plan.comparators import build_plan
from cockpit.plan.draft import PlanFailed, PlanSources
from cockpit.plan.model import Plan
from cockpit.plan.zitadel_section import zitadel_fingerprints
from cockpit.resources.state import State
from cockpit.store.reader import ActualState, read_actual
from cockpit.store.secrets import SecretBox
from cockpit.workspace.database import database_problem
from cockpit.workspace.inputs import PlanInputs, desired_with_secrets, desired_without_secrets, plan_context, validated
from cockpit.workspace.ownership import ownership_errors, zitadel_key_errors


@dataclass
class Planned:
    """A plan and the two states it was made from (benchmarks and tests read them)."""

    plan: Plan
    desired: State
    actual: ActualState


def make_plan(engine: Engine, box: SecretBox, inputs: PlanInputs, environ: Mapping[str, str]) -> Planned:
    with paused_gc():
        try:
            return _make_plan(engine, box, inputs, environ)
        except OperationalError as exc:  # lost or refused mid-plan (a restart, a crash)
            raise PlanFailed([database_problem(exc, engine)]) from None


def _make_plan(engine: Engine, box: SecretBox, inputs: PlanInputs, environ: Mapping[str, str]) -> Planned:
    validation = validated(inputs.config_path, inputs.snapshot)
    desired, errors = desired_with_secrets(validation, box, environ)
    with engine.connect() as connection:
        actual = read_actual(connection, inputs.workspace)
        errors.extend(zitadel_key_errors(validation, connection, inputs.hard_delete_accounts))
    errors.extend(ownership_errors(validation, actual, inputs))
    if errors:
        raise PlanFailed(errors, validation)
    sources = PlanSources(desired, actual.state, plan_context(validation, inputs), environ, inputs.skip_zitadel)
    return Planned(build_plan(sources), desired, actual)


def zitadel_now(config_path: Path, environ: Mapping[str, str], snapshot: ConfigSnapshot | None = None) -> Callable[[State], Mapping[str, str]]:
    """For applying a saved plan: what Zitadel holds now, as the fingerprints the plan made of
    `config_path` (as `snapshot` kept it, when the plan has one) recorded, given the database's
    state at apply time. Reads the config and Zitadel only when called (under the apply's
    locks); raises PlanFailed as planning does."""

    def fingerprints(actual: State) -> Mapping[str, str]:
        return zitadel_fingerprints(desired_without_secrets(validated(config_path, snapshot)), actual, environ)

    return fingerprints

"""What the config may not claim from the database: another workspace's account or model, an
e-mail domain taken, an account to hard-delete that is not there, or a Zitadel role key shared
with an account the config does not declare."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cockpit.config.semantics import role_key_conflicts
from cockpit.config.validate import ValidationResult
from cockpit.store.reader import ActualState
from cockpit.store.tables import accounts as accounts_table
from cockpit.workspace.inputs import PlanInputs


def ownership_errors(validation: ValidationResult, actual: ActualState, inputs: PlanInputs) -> list[str]:
    """Claiming another workspace's account or model, or an email domain already taken."""
    errors = []
    tenant = validation.tenant
    for name, declared in tenant.accounts.items():
        row = actual.accounts.get(name)
        where = declared.at("name")
        if row is not None and row.workspace != inputs.workspace:
            errors.append(
                f"{where}: error: account '{name}' is managed by workspace '{row.workspace}'; "
                f"it cannot be claimed from workspace '{inputs.workspace}'"
            )
        domain = declared.model.email_domain
        if domain:
            for other in actual.accounts.values():
                if other.email_domain == domain and other.name != name and other.name not in tenant.accounts:
                    errors.append(
                        f"{declared.at('email_domain')}: error: email_domain '{domain}' already "
                        f"belongs to account '{other.name}' (workspace '{other.workspace}')"
                    )
    for name in inputs.hard_delete_accounts:
        row = actual.accounts.get(name)
        if row is None or row.workspace != inputs.workspace:
            errors.append(f"error: --hard-delete-accounts {name}: no such account in workspace '{inputs.workspace}'")
        elif name in tenant.accounts:
            errors.append(f"error: --hard-delete-accounts {name}: the config still declares it; remove it from the config first")
    for name, declared in tenant.catalog.items():
        owner = actual.foreign_models.get(name)
        if owner is not None:
            errors.append(
                f"{declared.at('name')}: error: model '{name}' belongs to workspace '{owner}'; "
                "the catalog is owned by the config that declares it"
            )
    return errors


def zitadel_key_errors(validation: ValidationResult, connection: Connection, deleted: frozenset[str]) -> list[str]:
    """Role keys the config's accounts share with an account of the database it does not
    declare (another workspace's, or one it dropped, which keeps its grants unless hard-deleted)
    in the same Zitadel project: validate checks the same within the config
    (`role_key_conflicts`)."""
    if not any(d.model.zitadel and d.model.zitadel.project_id for d in validation.tenant.accounts.values()):
        return []
    table = accounts_table.c
    rows = connection.execute(sa.select(table.name, table.workspace, table.zitadel)).all()
    errors = []
    for row in rows:
        settings = row.zitadel or {}
        mappings = settings.get("role_mappings") if isinstance(settings, dict) else None
        if row.name in validation.tenant.accounts or row.name in deleted or not isinstance(settings, dict):
            continue
        for declared in validation.tenant.accounts.values():
            zitadel = declared.model.zitadel
            if zitadel is None or not zitadel.project_id or str(settings.get("project_id") or "") != zitadel.project_id:
                continue
            where = f"the database, workspace '{row.workspace}'"
            for location, message in role_key_conflicts(declared, row.name, str(settings.get("role_prefix") or ""), mappings if isinstance(mappings, dict) else {}, where):
                errors.append(f"{location}: error: {message}")
    return errors

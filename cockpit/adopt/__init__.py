"""`cockpit import`: adoption from the systems in use today, as a tenant repo a reviewer can trust.

- `console_cockpit`: a running console-cockpit's `Alchemi_*` tables (read only) → every kind;
- `litellm`: LiteLLM's proxy `config.yaml` and, optionally, its database → models, a console
  directory, model access and budget plans;
- `report`: what could not be carried over as it was, each entry located; `parity` adds, for
  every user, where effective access differs between the old system's algorithms
  (`old_policy`) and Cockpit's policy functions, and why;
- `output`: writes the tree in `cockpit export`'s layout with export's YAML writer, secrets only
  under `secrets/` (mode 0600, git-ignored), validated before it is put in place.
"""

from __future__ import annotations

from pathlib import Path

from cockpit.adopt.output import ImportFailure, write_tree
from cockpit.adopt.report import Report

__all__ = ["ImportFailure", "run_console_cockpit", "run_litellm"]


def run_console_cockpit(database_url: str, out: Path, accounts: tuple[str, ...] = ()) -> tuple[Report, list[str]]:
    """Import from console-cockpit into `out`: (the report, the written paths)."""
    from cockpit.adopt.console_cockpit import import_console_cockpit
    from cockpit.adopt.parity import check_parity

    tree, imports = import_console_cockpit(database_url, accounts)
    written = write_tree(tree, out, lambda validation: check_parity(validation, imports, tree.report))
    return tree.report, written


def run_litellm(config: Path, database_url: str | None, account: str, out: Path) -> tuple[Report, list[str]]:
    """Import from LiteLLM's proxy into `out`: (the report, the written paths)."""
    from cockpit.adopt.litellm import import_litellm

    tree = import_litellm(config, database_url, account)
    return tree.report, write_tree(tree, out)

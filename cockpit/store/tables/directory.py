"""The two directories, console and copilot: orgs, teams, users and team members.

They are structurally the same but kept in separate tables, as the product keeps the domains
separate; only copilot orgs carry ``is_default_global`` (every account has a copilot org
``global``). Users are unique by email per account and domain; emails are stored lower-case.
Org admins are users of the same domain named as admins of an org.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa

from cockpit.store.tables.base import (
    EMAIL_LENGTH,
    account_column,
    flag_column,
    id_column,
    metadata,
    name_column,
    one_of,
    parent_column,
    timestamp_columns,
)


class DirectoryTables(NamedTuple):
    """The tables of one domain's directory, so code can be generic over the domain."""

    orgs: sa.Table
    teams: sa.Table
    users: sa.Table
    team_members: sa.Table
    org_admins: sa.Table


def _orgs(domain: str, *extra: sa.Column[object]) -> sa.Table:
    return sa.Table(
        f"{domain}_orgs",
        metadata,
        id_column(),
        account_column(),
        name_column(),
        sa.Column("description", sa.Text()),
        *extra,
        *timestamp_columns(),
        sa.UniqueConstraint("account_id", "name"),
    )


def _teams(domain: str) -> sa.Table:
    return sa.Table(
        f"{domain}_teams",
        metadata,
        id_column(),
        account_column(index=True),
        parent_column("org_id", f"{domain}_orgs.id"),
        name_column(),
        sa.Column("description", sa.Text()),
        *timestamp_columns(),
        sa.UniqueConstraint("org_id", "name"),
    )


def _users(domain: str) -> sa.Table:
    return sa.Table(
        f"{domain}_users",
        metadata,
        id_column(),
        account_column(),
        sa.Column("email", sa.String(EMAIL_LENGTH), nullable=False),
        sa.Column("display_name", sa.String(200)),
        # The Zitadel user id, when known.
        sa.Column("identity_user_id", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'active'")),
        *timestamp_columns(),
        sa.UniqueConstraint("account_id", "email"),
    )


def _team_members(domain: str) -> sa.Table:
    return sa.Table(
        f"{domain}_team_members",
        metadata,
        id_column(),
        parent_column("team_id", f"{domain}_teams.id"),
        parent_column("user_id", f"{domain}_users.id", index=True),
        sa.Column("role", sa.String(16), nullable=False, server_default=sa.text("'member'")),
        *timestamp_columns(),
        sa.UniqueConstraint("team_id", "user_id"),
        one_of("role", ("member", "admin")),
    )


def _org_admins(domain: str) -> sa.Table:
    return sa.Table(
        f"{domain}_org_admins",
        metadata,
        id_column(),
        parent_column("org_id", f"{domain}_orgs.id"),
        parent_column("user_id", f"{domain}_users.id", index=True),
        *timestamp_columns(),
        sa.UniqueConstraint("org_id", "user_id"),
    )


console_orgs = _orgs("console")
console_teams = _teams("console")
console_users = _users("console")
console_team_members = _team_members("console")
console_org_admins = _org_admins("console")

copilot_orgs = _orgs("copilot", flag_column("is_default_global", False))
copilot_teams = _teams("copilot")
copilot_users = _users("copilot")
copilot_team_members = _team_members("copilot")
copilot_org_admins = _org_admins("copilot")

DIRECTORIES: dict[str, DirectoryTables] = {
    "console": DirectoryTables(
        console_orgs, console_teams, console_users, console_team_members, console_org_admins
    ),
    "copilot": DirectoryTables(
        copilot_orgs, copilot_teams, copilot_users, copilot_team_members, copilot_org_admins
    ),
}

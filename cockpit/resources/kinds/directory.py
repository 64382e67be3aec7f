"""Directory: one domain's (console or copilot) users, orgs, teams, members and org admins."""

from __future__ import annotations

from typing import Callable

from cockpit.config import models
from cockpit.config.registry import DIRECTORY
from cockpit.resources.builder import Builder
from cockpit.resources.documents import AccountResources, Document, header, put
from cockpit.resources.index import DOMAINS, AccountGraph, IndexHandler
from cockpit.resources.kind import Kind
from cockpit.resources.rows import ParentRef, ResourceType
from cockpit.resources.state import Resource

DEFAULT_GLOBAL_DESCRIPTION = "Default global organization"
"""What copilot's implicit org `global` is given when no document declares it."""


def _types(domain: str) -> list[ResourceType]:
    org_fields = ("description", "is_default_global") if domain == "copilot" else ("description",)
    common = {"kind": "Directory", "audit_domain": domain}
    return [
        ResourceType(f"{domain}_org", table=f"{domain}_orgs", key_columns=("name",), fields=org_fields, label=f"{domain} org", **common),
        ResourceType(f"{domain}_user", table=f"{domain}_users", key_columns=("email",), fields=("display_name", "identity_user_id", "status"), label=f"{domain} user", **common),
        ResourceType(f"{domain}_team", table=f"{domain}_teams", key_columns=("name",), parents=(ParentRef("org_id", f"{domain}_org"),), fields=("description",), label=f"{domain} team", **common),
        ResourceType(
            f"{domain}_team_member",
            table=f"{domain}_team_members",
            parents=(ParentRef("team_id", f"{domain}_team"), ParentRef("user_id", f"{domain}_user")),
            fields=("role",),
            label=f"{domain} team member",
            **common,
        ),
        ResourceType(
            f"{domain}_org_admin",
            table=f"{domain}_org_admins",
            parents=(ParentRef("org_id", f"{domain}_org"), ParentRef("user_id", f"{domain}_user")),
            label=f"{domain} org admin",
            **common,
        ),
    ]


TYPES = (*_types("console"), *_types("copilot"))


def expand(b: Builder, d: models.Directory) -> None:
    prefix = d.domain
    extra = {"is_default_global": False} if d.domain == "copilot" else {}
    for i, user in enumerate(d.users):
        b.add(f"{prefix}_user", (user.email.lower(),), ("users", i), display_name=user.display_name, identity_user_id=user.identity_user_id, status=user.status)
    for i, org in enumerate(d.orgs):
        fields = {**extra, "is_default_global": org.name == "global"} if extra else {}
        b.add(f"{prefix}_org", (org.name,), ("orgs", i), description=org.description, **fields)
        for a, email in enumerate(org.admins):
            b.add(f"{prefix}_org_admin", (org.name, email.lower()), ("orgs", i, "admins", a))
        for j, team in enumerate(org.teams):
            b.add(f"{prefix}_team", (org.name, team.name), ("orgs", i, "teams", j), description=team.description)
            for m, member in enumerate(team.members):
                b.add(f"{prefix}_team_member", (org.name, team.name, member.user.lower()), ("orgs", i, "teams", j, "members", m), role=member.role)


def export(res: AccountResources) -> dict[str, list[Document]]:
    return {
        f"directory/{domain}.yaml": [d for d in (directory_document(res, domain),) if d is not None]
        for domain in ("copilot", "console")
    }


def directory_document(res: AccountResources, domain: str) -> Document | None:
    users = []
    for user in res.of(f"{domain}_user"):
        entry = {"email": user.key[0]}
        for name in ("display_name", "identity_user_id", "status"):
            put(entry, models.DirectoryUser, name, user.fields[name])
        users.append(entry)
    orgs = []
    for org in res.of(f"{domain}_org"):
        name = org.key[0]
        entry: Document = {"name": name}
        put(entry, models.Org, "description", org.fields["description"])
        admins = [admin.key[1] for admin in res.children(f"{domain}_org_admin", (name,))]
        put(entry, models.Org, "admins", admins)
        teams = []
        for team in res.children(f"{domain}_team", (name,)):
            team_entry: Document = {"name": team.key[1]}
            put(team_entry, models.Team, "description", team.fields["description"])
            members = []
            for member in res.children(f"{domain}_team_member", team.key):
                member_entry = {"user": member.key[2]}
                put(member_entry, models.Member, "role", member.fields["role"])
                members.append(member_entry)
            put(team_entry, models.Team, "members", members)
            teams.append(team_entry)
        put(entry, models.Org, "teams", teams)
        if domain == "copilot" and name == "global" and _implicit_global(entry):
            continue
        orgs.append(entry)
    if not users and not orgs:
        return None
    document = header("Directory", res.account)
    document["domain"] = domain
    put(document, models.Directory, "users", users)
    put(document, models.Directory, "orgs", orgs)
    return document


def _implicit_global(entry: Document) -> bool:
    """Copilot's org `global` as desired state adds it when nobody declares it."""
    return set(entry) == {"name", "description"} and entry["description"] == DEFAULT_GLOBAL_DESCRIPTION


def _index(domain: str) -> dict[str, IndexHandler]:
    def user(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].users[r.key[0]] = r

    def org(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].orgs[r.key[0]] = r

    def team(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].teams[f"{r.key[0]}/{r.key[1]}"] = r

    def member(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].members[f"{r.key[0]}/{r.key[1]}"][r.key[2]] = r

    def org_admin(g: AccountGraph, r: Resource) -> None:
        g.directories[domain].org_admins[r.key[0]][r.key[1]] = r

    handlers: dict[str, Callable[[AccountGraph, Resource], None]] = {
        f"{domain}_user": user,
        f"{domain}_org": org,
        f"{domain}_team": team,
        f"{domain}_team_member": member,
        f"{domain}_org_admin": org_admin,
    }
    return handlers


KIND = Kind(
    DIRECTORY,
    TYPES,
    expand=expand,
    export=export,
    index={name: handler for domain in DOMAINS for name, handler in _index(domain).items()},
)

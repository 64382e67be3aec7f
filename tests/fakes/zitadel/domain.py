"""Zitadel's command and query semantics for orgs, projects, roles, users and user grants.

Commands validate against the command side and push one event (all-or-nothing); queries read the
query side (`EventLog.view()`), which may lag (§6). The rules and messages follow
`internal/command/{project_role,user_grant}.go` and the contract (§4.3, §4.5, §6):

* role keys are unique per project case-insensitively (409), bulk add is atomic, removing a role
  cascades to the user grants *the query side* knows about;
* one grant per (granting org, user, project) (409); grant roles must exist on the project, by
  exact key (400 FAILED_PRECONDITION `Errors.Project.Role.NotFound`);
* v1 updates without a change → 400 FAILED_PRECONDITION; v2 treats them as success;
* v1 updates/removes of missing objects → 404; v2 removes of missing objects succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from .auth import Principal
from .errors import ZitadelError
from .store import EventLog, Grant, Meta, Op, Org, Project, Role, User, role_key


@dataclass
class Context:
    """One API call: who calls, in which org (v1 `x-zitadel-orgid`), and whether it wrote."""

    principal: Principal | None = None
    org_id: str = ""
    wrote: bool = False


def project_not_found(error_id: str = "COMMA-VCnwD") -> ZitadelError:
    return ZitadelError("FAILED_PRECONDITION", "Project not found", error_id)


def role_not_existing(error_id: str) -> ZitadelError:
    return ZitadelError("NOT_FOUND", "Role doesn't exist", error_id)


def grant_not_found(error_id: str) -> ZitadelError:
    return ZitadelError("NOT_FOUND", "User grant not found", error_id)


ROLE_ALREADY_EXISTS = ("ALREADY_EXISTS", "Role already exists", "V3-DKcYh")
GRANT_ALREADY_EXISTS = ("ALREADY_EXISTS", "User grant already exists", "V3-DKcYh")
ROLE_NOT_FOUND_FOR_GRANT = ("FAILED_PRECONDITION", "Errors.Project.Role.NotFound", "COMMAND-mm9F4")


class Domain:
    def __init__(
        self, log: EventLog, new_id: Callable[[], str], clock: Callable[[], float]
    ) -> None:
        self.log = log
        self.new_id = new_id
        self.clock = clock

    def _push(self, ctx: Context, ops: list[Op]) -> int:
        sequence = self.log.push(ops)
        ctx.wrote = True
        return sequence

    # -- seeding (bypasses the lag; raises ValueError on misuse) --------------------------------

    def seed_org(self, org_id: str, name: str, domain: str) -> None:
        with self.log.lock:
            if org_id in self.log.command.orgs:
                raise ValueError(f"org {org_id} already exists")
            if any(o.name.lower() == name.lower() for o in self.log.command.orgs.values()):
                raise ValueError(f"an org named {name!r} already exists")
            meta = Meta.new(self.log.next_sequence, self.clock())
            self.log.seed([("orgs", org_id, Org(org_id, name, domain, meta))])

    def seed_project(self, project_id: str, org_id: str, name: str, role_assertion: bool) -> None:
        with self.log.lock:
            self._require_org(org_id)
            if project_id in self.log.command.projects:
                raise ValueError(f"project {project_id} already exists")
            if any(
                p.org_id == org_id and p.name.lower() == name.lower()
                for p in self.log.command.projects.values()
            ):
                raise ValueError(f"a project named {name!r} already exists in org {org_id}")
            meta = Meta.new(self.log.next_sequence, self.clock())
            project = Project(project_id, org_id, name, role_assertion, meta)
            self.log.seed([("projects", project_id, project)])

    def seed_user(
        self,
        *,
        user_id: str,
        org_id: str,
        username: str,
        email: str = "",
        first_name: str = "",
        last_name: str = "",
        display_name: str = "",
        machine: bool = False,
        state: str = "USER_STATE_ACTIVE",
    ) -> None:
        with self.log.lock:
            self._require_org(org_id)
            if user_id in self.log.command.users:
                raise ValueError(f"user {user_id} already exists")
            users = self.log.command.users.values()
            if any(u.username.lower() == username.lower() for u in users):
                raise ValueError(f"username {username!r} is taken")
            domain = self.log.command.orgs[org_id].domain
            login_name = username if "@" in username else f"{username}@{domain}"
            meta = Meta.new(self.log.next_sequence, self.clock())
            user = User(
                user_id,
                org_id,
                username,
                email,
                first_name,
                last_name,
                display_name,
                machine,
                state,
                [login_name],
                meta,
            )
            self.log.seed([("users", user_id, user)])

    def seed_role(self, project_id: str, key: str, display_name: str, group: str) -> None:
        with self.log.lock:
            project = self.log.command.projects.get(project_id)
            if project is None:
                raise ValueError(f"no project {project_id}")
            if role_key(project_id, key) in self.log.command.roles:
                raise ValueError(f"role {key!r} already exists on project {project_id}")
            meta = Meta.new(self.log.next_sequence, self.clock())
            role = Role(project_id, key, display_name, group, project.org_id, meta)
            self.log.seed([("roles", role_key(project_id, key), role)])

    def seed_grant(
        self, user_id: str, project_id: str, role_keys: list[str], org_id: str | None
    ) -> str:
        with self.log.lock:
            project = self.log.command.projects.get(project_id)
            if project is None or user_id not in self.log.command.users:
                raise ValueError(f"no project {project_id} or no user {user_id}")
            org_id = org_id or project.org_id
            if undefined := self._undefined_roles(project_id, role_keys):
                raise ValueError(f"roles {undefined} are not defined on project {project_id}")
            if self._find_grant(org_id, user_id, project_id):
                raise ValueError(f"user {user_id} already has a grant on project {project_id}")
            grant_id = self.new_id()
            meta = Meta.new(self.log.next_sequence, self.clock())
            grant = Grant(
                grant_id,
                org_id,
                user_id,
                project_id,
                tuple(role_keys),
                "USER_GRANT_STATE_ACTIVE",
                meta,
            )
            self.log.seed([("grants", grant_id, grant)])
            return grant_id

    def _require_org(self, org_id: str) -> None:
        if org_id not in self.log.command.orgs:
            raise ValueError(f"no org {org_id}; add it with add_org() first")

    # -- projects -------------------------------------------------------------------------------

    def project_in_org(
        self, project_id: str, org_id: str, error_id: str = "COMMA-VCnwD"
    ) -> Project:
        """Command-side existence check of a project owned by `org_id` (400, as upstream)."""
        project = self.log.command.projects.get(project_id)
        if project is None or project.org_id != org_id:
            raise project_not_found(error_id)
        return project

    # -- roles ----------------------------------------------------------------------------------

    def add_roles(
        self, ctx: Context, project_id: str, org_id: str, roles: list[tuple[str, str, str]]
    ) -> Meta:
        """AddProjectRole / BulkAddProjectRole: one atomic push; any conflict → 409, nothing added."""
        with self.log.lock:
            project = self.project_in_org(project_id, org_id)
            seen: set[str] = set()
            for key, display_name, _group in roles:
                if not key.strip() or not display_name.strip():
                    raise ZitadelError("INVALID_ARGUMENT", "Role is invalid", "COMMAND-4m9vS")
                if key.lower() in seen or role_key(project_id, key) in self.log.command.roles:
                    raise ZitadelError(*ROLE_ALREADY_EXISTS)
                seen.add(key.lower())
            meta = Meta.new(self.log.next_sequence, self.clock())
            ops: list[Op] = [
                (
                    "roles",
                    role_key(project_id, key),
                    Role(project_id, key, name, group, project.org_id, meta),
                )
                for key, name, group in roles
            ]
            self._push(ctx, ops)
            return meta

    def update_role(
        self,
        ctx: Context,
        project_id: str,
        org_id: str | None,
        key: str,
        display_name: str | None,
        group: str | None,
        *,
        ignore_unchanged: bool,
    ) -> Role:
        """v1 (org given, both fields written, no-op → 400) and v2 (None = unchanged, no-op → ok)."""
        with self.log.lock:
            if org_id is not None:
                self.project_in_org(project_id, org_id)
            elif project_id not in self.log.command.projects:
                raise project_not_found()
            role = self.log.command.roles.get(role_key(project_id, key))
            if role is None or role.key != key:
                raise role_not_existing("COMMAND-vv8M9")
            new_display = role.display_name if display_name is None else display_name
            new_group = role.group if group is None else group
            if not new_display.strip():
                raise ZitadelError("INVALID_ARGUMENT", "Project is invalid", "COMMAND-2ilfW")
            if (new_display, new_group) == (role.display_name, role.group):
                if ignore_unchanged:
                    return role
                raise ZitadelError("FAILED_PRECONDITION", "No changes", "COMMAND-5M0cs")
            meta = role.meta.changed_at(self.log.next_sequence, self.clock())
            updated = replace(role, display_name=new_display, group=new_group, meta=meta)
            self._push(ctx, [("roles", role_key(project_id, key), updated)])
            return updated

    def remove_role(
        self, ctx: Context, project_id: str, org_id: str | None, key: str, *, missing_ok: bool
    ) -> Meta | None:
        """Removes the role and, in the same push, the key from the grants the query side lists."""
        with self.log.lock:
            role = self.log.command.roles.get(role_key(project_id, key))
            if role is None or role.key != key or (org_id is not None and role.org_id != org_id):
                if missing_ok:
                    return None
                raise role_not_existing("COMMAND-m9vMf")
            sequence, now = self.log.next_sequence, self.clock()
            ops: list[Op] = [("roles", role_key(project_id, key), None)]
            projected = [
                grant.id
                for grant in self.log.view().grants.values()
                if grant.project_id == project_id and key in grant.role_keys
            ]
            for grant_id in projected:
                current = self.log.command.grants.get(grant_id)
                if current is not None and key in current.role_keys:
                    keys = tuple(k for k in current.role_keys if k != key)
                    ops.append(
                        (
                            "grants",
                            grant_id,
                            replace(
                                current, role_keys=keys, meta=current.meta.changed_at(sequence, now)
                            ),
                        )
                    )
            self._push(ctx, ops)
            return role.meta.changed_at(sequence, now)

    def list_roles(self, project_id: str, org_id: str | None, *, fresh: bool) -> list[Role]:
        """Roles in creation order; v1 reads the (lagging) query side filtered by the context
        org, v2 ListProjectRoles triggers the projection (fresh)."""
        with self.log.lock:
            tables = self.log.command if fresh else self.log.view()
            return [
                role
                for role in tables.project_roles(project_id)
                if org_id is None or role.org_id == org_id
            ]

    # -- user grants ----------------------------------------------------------------------------

    def _find_grant(self, org_id: str, user_id: str, project_id: str) -> Grant | None:
        return next(
            (
                g
                for g in self.log.command.grants.values()
                if (g.org_id, g.user_id, g.project_id) == (org_id, user_id, project_id)
            ),
            None,
        )

    def _undefined_roles(self, project_id: str, role_keys: list[str]) -> list[str]:
        """Keys not defined on the project (exact match, as upstream's HasInvalidRoles)."""
        defined = {role.key for role in self.log.command.project_roles(project_id)}
        return [key for key in role_keys if key not in defined]

    def add_grant(
        self, ctx: Context, org_id: str, user_id: str, project_id: str, role_keys: list[str]
    ) -> Grant:
        with self.log.lock:
            user = self.log.command.users.get(user_id)
            if user is None or user.state == "USER_STATE_DELETED":
                raise ZitadelError(
                    "FAILED_PRECONDITION", "User could not be found", "COMMAND-uXHNj"
                )
            self.project_in_org(project_id, org_id, "COMMAND-m9gsd")
            if self._undefined_roles(project_id, role_keys):
                raise ZitadelError(*ROLE_NOT_FOUND_FOR_GRANT)
            if self._find_grant(org_id, user_id, project_id):
                raise ZitadelError(*GRANT_ALREADY_EXISTS)
            meta = Meta.new(self.log.next_sequence, self.clock())
            grant = Grant(
                self.new_id(),
                org_id,
                user_id,
                project_id,
                tuple(role_keys),
                "USER_GRANT_STATE_ACTIVE",
                meta,
            )
            self._push(ctx, [("grants", grant.id, grant)])
            return grant

    def grant(self, grant_id: str, org_id: str | None, user_id: str | None = None) -> Grant | None:
        """Command-side lookup (get-by-id and writes see everything)."""
        with self.log.lock:
            grant = self.log.command.grants.get(grant_id)
        if grant is None or (org_id is not None and grant.org_id != org_id):
            return None
        if user_id is not None and grant.user_id != user_id:
            return None
        return grant

    def update_grant(
        self,
        ctx: Context,
        grant_id: str,
        role_keys: list[str],
        *,
        org_id: str | None,
        user_id: str | None,
        ignore_unchanged: bool,
    ) -> Grant:
        with self.log.lock:
            grant = self.grant(grant_id, org_id, user_id)
            if grant is None:
                raise grant_not_found("COMMAND-3M9sd")
            if tuple(role_keys) == grant.role_keys:  # compared in order, as upstream
                if ignore_unchanged:
                    return grant
                raise ZitadelError(
                    "FAILED_PRECONDITION", "User grant has not been changed", "COMMAND-Rs8fy"
                )
            if self._undefined_roles(grant.project_id, role_keys):
                raise ZitadelError(*ROLE_NOT_FOUND_FOR_GRANT)
            meta = grant.meta.changed_at(self.log.next_sequence, self.clock())
            updated = replace(grant, role_keys=tuple(role_keys), meta=meta)
            self._push(ctx, [("grants", grant_id, updated)])
            return updated

    def remove_grants(
        self,
        ctx: Context,
        grant_ids: list[str],
        *,
        org_id: str | None,
        user_id: str | None,
        missing_ok: bool,
    ) -> Meta | None:
        """Remove one grant, or several atomically (bulk: any missing → 404 for all)."""
        with self.log.lock:
            grants = [self.grant(grant_id, org_id, user_id) for grant_id in grant_ids]
            present = [grant for grant in grants if grant is not None]
            if len(present) != len(grants) and not missing_ok:
                raise grant_not_found("COMMAND-1My0t")
            if not present:
                return None
            sequence, now = self.log.next_sequence, self.clock()
            self._push(ctx, [("grants", grant.id, None) for grant in present])
            return present[0].meta.changed_at(sequence, now)

    def list_grants(self) -> list[Grant]:
        """Query side, creation order."""
        with self.log.lock:
            return sorted(self.log.view().grants.values(), key=lambda grant: grant.meta.order)

    # -- users ----------------------------------------------------------------------------------

    def list_users(self) -> list[User]:
        with self.log.lock:
            return sorted(self.log.view().users.values(), key=lambda user: user.meta.order)

    def user(self, user_id: str) -> User | None:
        with self.log.lock:
            return self.log.command.users.get(user_id)

    def org(self, org_id: str) -> Org | None:
        with self.log.lock:
            return self.log.command.orgs.get(org_id)

    # -- token claims ---------------------------------------------------------------------------

    def roles_claim(self, user_id: str, project_id: str) -> dict[str, dict[str, str]]:
        """`{roleKey: {orgId: orgPrimaryDomain}}` from the user's active grants on the project."""
        with self.log.lock:
            claim: dict[str, dict[str, str]] = {}
            for grant in self.log.command.grants.values():
                if grant.user_id != user_id or grant.project_id != project_id:
                    continue
                if grant.state != "USER_GRANT_STATE_ACTIVE":
                    continue
                org = self.log.command.orgs.get(grant.org_id)
                for key in grant.role_keys:
                    claim.setdefault(key, {})[grant.org_id] = org.domain if org else ""
            return claim

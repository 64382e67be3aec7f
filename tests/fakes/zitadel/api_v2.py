"""v2 routes: the user service over REST (`/v2/users`) and Connect, and the Connect-only
project and authorization services (contract §1.2, §4.2–§4.5).

v2 ignores `x-zitadel-orgid`: requests name their organization (or it follows from the object),
and the caller must administer it (else 403). Semantics that differ from v1 (§6.4): updates
without a change succeed, removes/deletes of missing objects succeed, and ListProjectRoles
triggers the projection (reads fresh data) while ListAuthorizations and ListUsers may lag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .api_v1 import (
    Builder,
    Predicate,
    all_of,
    constant,
    equals,
    in_list,
    one_of,
    sort_users,
    text_query,
    user_query,
)
from .domain import Context, Domain
from .errors import ZitadelError
from .routing import CONNECT, GATEWAY, Request, Route, route
from .store import Grant, Project, Role, User
from .wire import field, invalid, page, prune, strings, text, timestamp, u64

USER_SERVICE = "/zitadel.user.v2.UserService"
PROJECT_SERVICE = "/zitadel.project.v2.ProjectService"
AUTHORIZATION_SERVICE = "/zitadel.authorization.v2.AuthorizationService"


def authorization_state(grant: Grant) -> str:
    return "STATE_ACTIVE" if grant.state == "USER_GRANT_STATE_ACTIVE" else "STATE_INACTIVE"


def permission_denied() -> ZitadelError:
    return ZitadelError("PERMISSION_DENIED", "No matching permissions found", "AUTH-5mWD2")


def user_v2(user: User) -> dict[str, Any]:
    body: dict[str, Any] = {
        "userId": user.id,
        "details": {
            "sequence": u64(user.meta.sequence),
            "changeDate": timestamp(user.meta.changed),
            "resourceOwner": user.org_id,
            "creationDate": timestamp(user.meta.created),
        },
        "state": user.state,
        "username": user.username,
        "loginNames": user.login_names,
        "preferredLoginName": user.login_names[0],
    }
    if user.machine:
        body["machine"] = {"name": user.display_name}
    else:
        body["human"] = {
            "profile": {
                "givenName": user.first_name,
                "familyName": user.last_name,
                "displayName": user.display_name,
                "preferredLanguage": "en",
            },
            "email": {"email": user.email, "isVerified": True},
        }
    return body


def project_v2(project: Project) -> dict[str, Any]:
    return {
        "projectId": project.id,
        "organizationId": project.org_id,
        "creationDate": timestamp(project.meta.created),
        "changeDate": timestamp(project.meta.changed),
        "name": project.name,
        "state": "PROJECT_STATE_ACTIVE",
        "projectRoleAssertion": project.role_assertion,
    }


def role_v2(role: Role) -> dict[str, Any]:
    return {
        "projectId": role.project_id,
        "key": role.key,
        "creationDate": timestamp(role.meta.created),
        "changeDate": timestamp(role.meta.changed),
        "displayName": role.display_name,
        "group": role.group,
    }


class V2:
    def __init__(self, domain: Domain) -> None:
        self.domain = domain

    def routes(self) -> list[Route]:
        def connect(service: str, method: str, handler: Any) -> Route:
            return route("POST", f"{service}/{method}", handler, CONNECT, "v2")

        return [
            route("POST", "/v2/users", self.list_users, GATEWAY, "v2"),
            route("GET", "/v2/users/{userId}", self.get_user, GATEWAY, "v2"),
            connect(USER_SERVICE, "ListUsers", self.list_users),
            connect(USER_SERVICE, "GetUserByID", self.get_user),
            connect(PROJECT_SERVICE, "GetProject", self.get_project),
            connect(PROJECT_SERVICE, "AddProjectRole", self.add_role),
            connect(PROJECT_SERVICE, "UpdateProjectRole", self.update_role),
            connect(PROJECT_SERVICE, "RemoveProjectRole", self.remove_role),
            connect(PROJECT_SERVICE, "ListProjectRoles", self.list_roles),
            connect(AUTHORIZATION_SERVICE, "CreateAuthorization", self.create_authorization),
            connect(AUTHORIZATION_SERVICE, "UpdateAuthorization", self.update_authorization),
            connect(AUTHORIZATION_SERVICE, "DeleteAuthorization", self.delete_authorization),
            connect(AUTHORIZATION_SERVICE, "ListAuthorizations", self.list_authorizations),
        ]

    @staticmethod
    def _admin(ctx: Context, org_id: str) -> None:
        if ctx.principal is None or not ctx.principal.administers(org_id):
            raise permission_denied()

    @staticmethod
    def _filters(
        message: dict[str, Any], name: str, allowed: dict[str, Builder] | Builder
    ) -> Predicate:
        """The `filters`/`queries` array (ANDed) of a v2 list request."""
        items = field(message, name, []) or []
        if not isinstance(items, list):
            raise invalid(f"invalid value for repeated field {name}")
        if isinstance(allowed, dict):
            table = allowed
            return all_of([one_of(item, table) for item in items])
        return all_of([allowed(item) for item in items])

    def _paginated(
        self,
        message: dict[str, Any],
        request_name: str,
        items: list[Any],
        name: str,
        render: Callable[[Any], Any],
    ) -> dict[str, Any]:
        paging = page(field(message, "pagination"), request_name, "PaginationRequest", "Pagination")
        return prune(
            {
                "pagination": {"totalResult": u64(len(items)), "appliedLimit": u64(paging.limit)},
                name: [render(item) for item in paging.apply(items)],
            }
        )

    # -- users ----------------------------------------------------------------------------------

    def list_users(self, request: Request, ctx: Context) -> dict[str, Any]:
        message = request.json()
        predicate = self._filters(message, "queries", user_query(v2=True))
        column = field(message, "sortingColumn")
        paging = page(field(message, "query"), "ListUsersRequest")
        assert ctx.principal is not None
        log = self.domain.log
        with log.lock:
            users = [
                u
                for u in self.domain.list_users()
                if ctx.principal.administers(u.org_id) and predicate(u)
            ]
            users = sort_users(users, column)
            body = prune(
                {
                    "details": {
                        "totalResult": u64(len(users)),
                        "processedSequence": u64(log.processed_sequence),
                        "timestamp": timestamp(log.processed_at),
                    },
                    "result": [user_v2(u) for u in paging.apply(users)],
                }
            )
        if column:
            body["sortingColumn"] = column
        return body

    def get_user(self, request: Request, ctx: Context) -> dict[str, Any]:
        user_id = request.params.get("userId") or text(request.json(), "userId")
        user = self.domain.user(user_id)
        if user is None:
            raise ZitadelError("NOT_FOUND", "User could not be found", "QUERY-Dfbg2")
        self._admin(ctx, user.org_id)
        return prune({"details": user_v2(user)["details"], "user": user_v2(user)})

    # -- projects and roles ---------------------------------------------------------------------

    def _project(self, ctx: Context, project_id: str) -> Project:
        project = self.domain.log.command.projects.get(project_id)
        if project is None:
            raise ZitadelError("FAILED_PRECONDITION", "Project not found", "COMMA-VCnwD")
        self._admin(ctx, project.org_id)
        return project

    def get_project(self, request: Request, ctx: Context) -> dict[str, Any]:
        project = self.domain.log.command.projects.get(text(request.json(), "projectId"))
        if project is None:
            raise ZitadelError("NOT_FOUND", "Project not found", "PROJECT-Gd2hh")
        self._admin(ctx, project.org_id)
        return prune({"project": project_v2(project)})

    def add_role(self, request: Request, ctx: Context) -> dict[str, Any]:
        body = request.json()
        key, name, group = text(body, "roleKey"), text(body, "displayName"), text(body, "group")
        if not 1 <= len(key) <= 200 or not 1 <= len(name) <= 200 or len(group) > 200:
            raise invalid(
                "invalid AddProjectRoleRequest: roleKey and displayName need 1 to 200 runes"
            )
        project = self._project(ctx, text(body, "projectId"))
        meta = self.domain.add_roles(ctx, project.id, project.org_id, [(key, name, group)])
        return {"creationDate": timestamp(meta.created)}

    def update_role(self, request: Request, ctx: Context) -> dict[str, Any]:
        body = request.json()
        project = self._project(ctx, text(body, "projectId"))
        role = self.domain.update_role(
            ctx,
            project.id,
            None,
            text(body, "roleKey"),
            field(body, "displayName"),
            field(body, "group"),
            ignore_unchanged=True,
        )
        return {"changeDate": timestamp(role.meta.changed)}

    def remove_role(self, request: Request, ctx: Context) -> dict[str, Any]:
        body = request.json()
        project = self.domain.log.command.projects.get(text(body, "projectId"))
        if project is None:
            return {}
        self._admin(ctx, project.org_id)
        meta = self.domain.remove_role(
            ctx, project.id, None, text(body, "roleKey"), missing_ok=True
        )
        return {"removalDate": timestamp(meta.changed)} if meta else {}

    def list_roles(self, request: Request, ctx: Context) -> dict[str, Any]:
        message = request.json()
        project_id = text(message, "projectId")
        if not project_id:
            raise invalid(
                "invalid ListProjectRolesRequest.ProjectId: value length must be between 1 and 200 runes, inclusive"
            )
        allowed = {
            "roleKeyFilter": text_query(lambda role: role.key, "key"),
            "displayNameFilter": text_query(lambda role: role.display_name, "displayName"),
        }
        predicate = self._filters(message, "filters", allowed)
        project = self.domain.log.command.projects.get(project_id)
        visible = (
            project is not None
            and ctx.principal is not None
            and ctx.principal.administers(project.org_id)
        )
        roles = self.domain.list_roles(project_id, None, fresh=True) if visible else []
        column = field(message, "sortingColumn")
        if column == "PROJECT_ROLE_FIELD_NAME_KEY":
            roles = sorted(roles, key=lambda role: role.key)
        elif column == "PROJECT_ROLE_FIELD_NAME_DISPLAY_NAME":
            roles = sorted(roles, key=lambda role: role.display_name)
        items = [role for role in roles if predicate(role)]
        return self._paginated(message, "ListProjectRolesRequest", items, "projectRoles", role_v2)

    # -- authorizations -------------------------------------------------------------------------

    def _authorization(self, grant: Grant) -> dict[str, Any]:
        domain = self.domain
        project = domain.log.command.projects.get(grant.project_id)
        org = domain.org(grant.org_id)
        user = domain.user(grant.user_id)
        roles = {role.key: role for role in domain.log.command.project_roles(grant.project_id)}
        return {
            "id": grant.id,
            "creationDate": timestamp(grant.meta.created),
            "changeDate": timestamp(grant.meta.changed),
            "project": {
                "id": grant.project_id,
                "name": project.name if project else "",
                "organizationId": project.org_id if project else "",
            },
            "organization": {"id": grant.org_id, "name": org.name if org else ""},
            "user": {
                "id": grant.user_id,
                "preferredLoginName": user.login_names[0] if user else "",
                "displayName": user.display_name if user else "",
                "organizationId": user.org_id if user else "",
            },
            "state": authorization_state(grant),
            "roles": [
                {
                    "key": key,
                    "displayName": roles[key].display_name if key in roles else "",
                    "group": roles[key].group if key in roles else "",
                }
                for key in grant.role_keys
            ],
        }

    @staticmethod
    def _unique_role_keys(role_keys: list[str], request_name: str) -> list[str]:
        if len(set(role_keys)) != len(role_keys):
            raise invalid(
                f"invalid {request_name}.RoleKeys: repeated value must contain unique items"
            )
        return role_keys

    def create_authorization(self, request: Request, ctx: Context) -> dict[str, Any]:
        body = request.json()
        user_id, project_id, org_id = (
            text(body, "userId"),
            text(body, "projectId"),
            text(body, "organizationId"),
        )
        for name, value in (
            ("UserId", user_id),
            ("ProjectId", project_id),
            ("OrganizationId", org_id),
        ):
            if not value:
                raise invalid(
                    f"invalid CreateAuthorizationRequest.{name}: value length must be at least 1 runes"
                )
        role_keys = self._unique_role_keys(strings(body, "roleKeys"), "CreateAuthorizationRequest")
        self._admin(ctx, org_id)
        grant = self.domain.add_grant(ctx, org_id, user_id, project_id, role_keys)
        return {"id": grant.id, "creationDate": timestamp(grant.meta.created)}

    def update_authorization(self, request: Request, ctx: Context) -> dict[str, Any]:
        body = request.json()
        grant = self.domain.grant(text(body, "id"), None)
        if grant is None:
            raise ZitadelError("NOT_FOUND", "User grant not found", "COMMAND-3M9sd")
        self._admin(ctx, grant.org_id)
        role_keys = self._unique_role_keys(strings(body, "roleKeys"), "UpdateAuthorizationRequest")
        updated = self.domain.update_grant(
            ctx, grant.id, role_keys, org_id=None, user_id=None, ignore_unchanged=True
        )
        return {"changeDate": timestamp(updated.meta.changed)}

    def delete_authorization(self, request: Request, ctx: Context) -> dict[str, Any]:
        grant = self.domain.grant(text(request.json(), "id"), None)
        if grant is None:
            return {}
        self._admin(ctx, grant.org_id)
        meta = self.domain.remove_grants(
            ctx, [grant.id], org_id=None, user_id=None, missing_ok=True
        )
        return {"deletionDate": timestamp(meta.changed)} if meta else {}

    def list_authorizations(self, request: Request, ctx: Context) -> dict[str, Any]:
        message = request.json()
        domain = self.domain

        def user_org(grant: Grant) -> str:
            user = domain.user(grant.user_id)
            return user.org_id if user else ""

        allowed: dict[str, Builder] = {
            "userId": equals(lambda g: g.user_id, "id"),
            "projectId": equals(lambda g: g.project_id, "id"),
            "organizationId": equals(lambda g: g.org_id, "id"),
            "authorizationIds": in_list(lambda g: g.id, "ids"),
            "userOrganizationId": equals(user_org, "id"),
            "roleKey": text_query(lambda g: list(g.role_keys), "key"),
            "state": equals(authorization_state, "state"),
            "projectGrantId": constant(False),  # the fake has no project grants
        }
        predicate = self._filters(message, "filters", allowed)
        assert ctx.principal is not None
        with domain.log.lock:
            grants = [
                g
                for g in domain.list_grants()
                if ctx.principal.administers(g.org_id) and predicate(g)
            ]
            return self._paginated(
                message, "ListAuthorizationsRequest", grants, "authorizations", self._authorization
            )

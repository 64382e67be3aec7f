"""Management API v1 (grpc-gateway REST) routes: orgs/me, projects, roles, users, user grants.

Every route needs a bearer token; the context org is `x-zitadel-orgid` or the caller's own org
(§1.3). Role and grant searches read the (possibly lagging) query side, filtered by the context
org; get-by-id reads the command side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .domain import Context, Domain
from .errors import ZitadelError
from .routing import GATEWAY, Request, Route, route
from .store import Grant, Meta, Project, Role, User
from .wire import (
    field,
    invalid,
    page,
    prune,
    strings,
    text,
    text_matches,
    text_method,
    timestamp,
    u64,
)

PREFIX = "/management/v1"


def details(
    meta: Meta, owner: str, *, added: bool = False, changed: bool = False
) -> dict[str, Any]:
    """ObjectDetails: add responses carry creationDate, change/remove responses changeDate,
    listed objects both."""
    full = not added and not changed
    return {
        "sequence": u64(meta.sequence),
        "creationDate": timestamp(meta.created) if added or full else None,
        "changeDate": timestamp(meta.changed) if changed or full else None,
        "resourceOwner": owner,
    }


def check_length(value: str, message: str, name: str, *, low: int = 1, high: int = 200) -> None:
    if not low <= len(value) <= high:
        raise invalid(
            f"invalid {message}.{name}: value length must be between {low} and {high} runes, inclusive"
            if low
            else f"invalid {message}.{name}: value length must be at most {high} runes"
        )


Predicate = Callable[[Any], bool]
Builder = Callable[[Any], Predicate]  # a query/filter body → a predicate on records


def one_of(query: Any, allowed: dict[str, Builder]) -> Predicate:
    """A query element is a oneof: exactly one known key (else 400 `List.Query.Invalid`)."""
    if not isinstance(query, dict):
        raise invalid(f"invalid query: {query!r}")
    keys = [key for key in query if key in allowed]
    if len(keys) != 1:
        raise ZitadelError("INVALID_ARGUMENT", "List.Query.Invalid")
    return allowed[keys[0]](query[keys[0]])


def all_of(predicates: list[Predicate]) -> Predicate:
    return lambda item: all(predicate(item) for predicate in predicates)


def text_query(getter: Callable[[Any], str | list[str]], name: str) -> Builder:
    """`{name: value, method: TEXT_QUERY_METHOD_*}`; a list-valued getter matches any element."""

    def build(body: Any) -> Predicate:
        wanted, method = text(body, name), text_method(field(body, "method"))

        def matches(item: Any) -> bool:
            actual = getter(item)
            values = actual if isinstance(actual, list) else [actual]
            return any(text_matches(value, wanted, method) for value in values)

        return matches

    return build


def equals(getter: Callable[[Any], str], name: str) -> Builder:
    """`{name: value}`: exact match (ids, enum names)."""

    def build(body: Any) -> Predicate:
        wanted = text(body, name)
        return lambda item: getter(item) == wanted

    return build


def in_list(getter: Callable[[Any], str], name: str) -> Builder:
    """`{name: [values]}`: an SQL `IN`, exact (case-sensitive) match."""

    def build(body: Any) -> Predicate:
        wanted = set(strings(body, name))
        return lambda item: getter(item) in wanted

    return build


def constant(value: bool) -> Builder:
    return lambda body: lambda item: value


def user_query(v2: bool) -> Builder:
    """User search queries, v1 and v2 (v2 adds organizationIdQuery); or/and/not nest."""

    def build(query: Any) -> Predicate:
        return one_of(query, allowed)

    def or_query(body: Any) -> Predicate:
        predicates = [build(query) for query in field(body, "queries", []) or []]
        return lambda user: any(predicate(user) for predicate in predicates)

    def and_query(body: Any) -> Predicate:
        return all_of([build(query) for query in field(body, "queries", []) or []])

    def not_query(body: Any) -> Predicate:
        predicate = build(field(body, "query"))
        return lambda user: not predicate(user)

    allowed: dict[str, Builder] = {
        "emailQuery": text_query(lambda u: u.email, "emailAddress"),
        "userNameQuery": text_query(lambda u: u.username, "userName"),
        "loginNameQuery": text_query(lambda u: u.login_names, "loginName"),
        "firstNameQuery": text_query(lambda u: u.first_name, "firstName"),
        "lastNameQuery": text_query(lambda u: u.last_name, "lastName"),
        "displayNameQuery": text_query(lambda u: u.display_name, "displayName"),
        "inUserIdsQuery": in_list(lambda u: u.id, "userIds"),
        "inUserEmailsQuery": in_list(lambda u: u.email, "userEmails"),
        "typeQuery": equals(lambda u: u.user_type, "type"),
        "stateQuery": equals(lambda u: u.state, "state"),
        "orQuery": or_query,
        "andQuery": and_query,
        "notQuery": not_query,
    }
    if v2:
        allowed["organizationIdQuery"] = equals(lambda u: u.org_id, "organizationId")
    return build


USER_SORT_KEYS: dict[str, Callable[[User], Any]] = {
    "USER_FIELD_NAME_UNSPECIFIED": lambda u: u.meta.order,
    "USER_FIELD_NAME_CREATION_DATE": lambda u: u.meta.order,
    "USER_FIELD_NAME_USER_NAME": lambda u: u.username,
    "USER_FIELD_NAME_FIRST_NAME": lambda u: u.first_name,
    "USER_FIELD_NAME_LAST_NAME": lambda u: u.last_name,
    "USER_FIELD_NAME_DISPLAY_NAME": lambda u: u.display_name,
    "USER_FIELD_NAME_EMAIL": lambda u: u.email,
    "USER_FIELD_NAME_STATE": lambda u: u.state,
    "USER_FIELD_NAME_TYPE": lambda u: u.user_type,
}


def sort_users(users: list[User], column: Any) -> list[User]:
    """Order by `sortingColumn` (default: creation); the page then applies `asc`."""
    key = USER_SORT_KEYS.get(column or "USER_FIELD_NAME_UNSPECIFIED")
    if key is None:
        raise invalid(f"invalid value for enum field sortingColumn: {column!r}")
    return sorted(users, key=lambda u: (key(u), u.meta.order))


def user_v1(user: User) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": user.id,
        "details": details(user.meta, user.org_id),
        "state": user.state,
        "userName": user.username,
        "loginNames": user.login_names,
        "preferredLoginName": user.login_names[0],
    }
    if user.machine:
        body["machine"] = {"name": user.display_name, "description": ""}
    else:
        body["human"] = {
            "profile": {
                "firstName": user.first_name,
                "lastName": user.last_name,
                "displayName": user.display_name,
                "preferredLanguage": "en",
            },
            "email": {"email": user.email, "isEmailVerified": True},
        }
    return body


def grant_v1(grant: Grant, domain: Domain) -> dict[str, Any]:
    user = domain.user(grant.user_id)
    org = domain.org(grant.org_id)
    project = domain.log.command.projects.get(grant.project_id)
    user_org = domain.org(user.org_id) if user else None
    return {
        "id": grant.id,
        "details": details(grant.meta, grant.org_id),
        "roleKeys": list(grant.role_keys),
        "state": grant.state,
        "userId": grant.user_id,
        "userName": user.username if user else "",
        "firstName": user.first_name if user else "",
        "lastName": user.last_name if user else "",
        "email": user.email if user else "",
        "displayName": user.display_name if user else "",
        "orgId": grant.org_id,
        "orgName": org.name if org else "",
        "orgDomain": org.domain if org else "",
        "projectId": grant.project_id,
        "projectName": project.name if project else "",
        "preferredLoginName": user.login_names[0] if user else "",
        "userType": user.user_type if user else "",
        "grantedOrgId": user.org_id if user else "",
        "grantedOrgName": user_org.name if user_org else "",
        "grantedOrgDomain": user_org.domain if user_org else "",
    }


def project_v1(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "details": details(project.meta, project.org_id),
        "name": project.name,
        "state": "PROJECT_STATE_ACTIVE",
        "projectRoleAssertion": project.role_assertion,
    }


def role_v1(role: Role) -> dict[str, Any]:
    return {
        "key": role.key,
        "details": details(role.meta, role.org_id),
        "displayName": role.display_name,
        "group": role.group,
    }


class ManagementV1:
    def __init__(self, domain: Domain) -> None:
        self.domain = domain

    def routes(self) -> list[Route]:
        def r(method: str, path: str, handler: Any) -> Route:
            return route(method, PREFIX + path, handler, GATEWAY, "v1")

        return [
            r("GET", "/orgs/me", self.get_my_org),
            r("POST", "/projects/_search", self.search_projects),
            r("GET", "/projects/{projectId}", self.get_project),
            r("POST", "/projects/{projectId}/roles/_search", self.search_roles),
            r("POST", "/projects/{projectId}/roles/_bulk", self.bulk_add_roles),
            r("POST", "/projects/{projectId}/roles", self.add_role),
            r("PUT", "/projects/{projectId}/roles/{roleKey}", self.update_role),
            r("DELETE", "/projects/{projectId}/roles/{roleKey}", self.remove_role),
            r("POST", "/users/_search", self.search_users),
            r("POST", "/users/grants/_search", self.search_grants),
            r("GET", "/global/users/_by_login_name", self.get_user_by_login_name),
            r("GET", "/users/{userId}", self.get_user),
            r("POST", "/users/{userId}/grants", self.add_grant),
            r("GET", "/users/{userId}/grants/{grantId}", self.get_grant),
            r("PUT", "/users/{userId}/grants/{grantId}", self.update_grant),
            r("DELETE", "/users/{userId}/grants/{grantId}", self.remove_grant),
            r("DELETE", "/user_grants/_bulk", self.bulk_remove_grants),
        ]

    # -- helpers ----------------------------------------------------------------------------

    def _list(
        self,
        message: dict[str, Any],
        request_name: str,
        items: list[Any],
        render: Callable[[Any], Any],
    ) -> dict[str, Any]:
        paging = page(field(message, "query"), request_name)
        selected = paging.apply(items)
        log = self.domain.log
        return prune(
            {
                "details": {
                    "totalResult": u64(len(items)),
                    "processedSequence": u64(log.processed_sequence),
                    "viewTimestamp": timestamp(log.processed_at),
                },
                "result": [render(item) for item in selected],
            }
        )

    @staticmethod
    def _queries(message: dict[str, Any], allowed: dict[str, Builder] | Builder) -> Predicate:
        """The `queries` array (ANDed); `allowed` maps oneof keys to builders, or is a builder."""
        queries = field(message, "queries", []) or []
        if not isinstance(queries, list):
            raise invalid("invalid value for repeated field queries")
        if isinstance(allowed, dict):
            table = allowed
            return all_of([one_of(query, table) for query in queries])
        return all_of([allowed(query) for query in queries])

    # -- orgs and projects --------------------------------------------------------------------

    def get_my_org(self, request: Request, ctx: Context) -> dict[str, Any]:
        org = self.domain.org(ctx.org_id)
        assert org is not None  # the app checked it
        return prune(
            {
                "org": {
                    "id": org.id,
                    "details": details(org.meta, org.id),
                    "state": "ORG_STATE_ACTIVE",
                    "name": org.name,
                    "primaryDomain": org.domain,
                }
            }
        )

    def get_project(self, request: Request, ctx: Context) -> dict[str, Any]:
        project = self.domain.log.command.projects.get(request.params["projectId"])
        if project is None or project.org_id != ctx.org_id:
            raise ZitadelError("NOT_FOUND", "Project not found", "PROJECT-Gd2hh")
        return prune({"project": project_v1(project)})

    def search_projects(self, request: Request, ctx: Context) -> dict[str, Any]:
        message = request.json()
        allowed = {
            "nameQuery": text_query(lambda p: p.name, "name"),
            "projectResourceOwnerQuery": equals(lambda p: p.org_id, "resourceOwner"),
        }
        predicate = self._queries(message, allowed)
        with self.domain.log.lock:
            projects = sorted(self.domain.log.view().projects.values(), key=lambda p: p.meta.order)
            items = [p for p in projects if p.org_id == ctx.org_id and predicate(p)]
            return self._list(message, "ListProjectsRequest", items, project_v1)

    # -- roles --------------------------------------------------------------------------------

    def search_roles(self, request: Request, ctx: Context) -> dict[str, Any]:
        message = request.json()
        allowed = {
            "keyQuery": text_query(lambda role: role.key, "key"),
            "displayNameQuery": text_query(lambda role: role.display_name, "displayName"),
        }
        predicate = self._queries(message, allowed)
        with self.domain.log.lock:
            roles = self.domain.list_roles(request.params["projectId"], ctx.org_id, fresh=False)
            items = [role for role in roles if predicate(role)]
            return self._list(message, "ListProjectRolesRequest", items, role_v1)

    @staticmethod
    def _role_fields(body: Any, message: str, key_name: str) -> tuple[str, str, str]:
        key, name, group = text(body, key_name), text(body, "displayName"), text(body, "group")
        check_length(key, message, key_name[0].upper() + key_name[1:])
        check_length(name, message, "DisplayName")
        check_length(group, message, "Group", low=0)
        return key, name, group

    def add_role(self, request: Request, ctx: Context) -> dict[str, Any]:
        role = self._role_fields(request.json(), "AddProjectRoleRequest", "roleKey")
        meta = self.domain.add_roles(ctx, request.params["projectId"], ctx.org_id, [role])
        return prune({"details": details(meta, ctx.org_id, added=True)})

    def bulk_add_roles(self, request: Request, ctx: Context) -> dict[str, Any]:
        roles = field(request.json(), "roles", [])
        if not isinstance(roles, list) or not roles:
            raise invalid(
                "invalid BulkAddProjectRolesRequest.Roles: value must contain at least 1 item(s)"
            )
        parsed = [
            self._role_fields(role, "BulkAddProjectRolesRequest_Role", "key") for role in roles
        ]
        meta = self.domain.add_roles(ctx, request.params["projectId"], ctx.org_id, parsed)
        return prune({"details": details(meta, ctx.org_id, added=True)})

    def update_role(self, request: Request, ctx: Context) -> dict[str, Any]:
        body = request.json()
        name, group = text(body, "displayName"), text(body, "group")
        check_length(name, "UpdateProjectRoleRequest", "DisplayName")
        check_length(group, "UpdateProjectRoleRequest", "Group", low=0)
        role = self.domain.update_role(
            ctx,
            request.params["projectId"],
            ctx.org_id,
            request.params["roleKey"],
            name,
            group,
            ignore_unchanged=False,
        )
        return prune({"details": details(role.meta, role.org_id, changed=True)})

    def remove_role(self, request: Request, ctx: Context) -> dict[str, Any]:
        meta = self.domain.remove_role(
            ctx,
            request.params["projectId"],
            ctx.org_id,
            request.params["roleKey"],
            missing_ok=False,
        )
        assert meta is not None
        return prune({"details": details(meta, ctx.org_id, changed=True)})

    # -- users --------------------------------------------------------------------------------

    def search_users(self, request: Request, ctx: Context) -> dict[str, Any]:
        message = request.json()
        predicate = self._queries(message, user_query(v2=False))
        column = field(message, "sortingColumn")
        with self.domain.log.lock:
            users = [u for u in self.domain.list_users() if u.org_id == ctx.org_id and predicate(u)]
            body = self._list(message, "ListUsersRequest", sort_users(users, column), user_v1)
        if column:
            body["sortingColumn"] = column
        return body

    def get_user(self, request: Request, ctx: Context) -> dict[str, Any]:
        user = self.domain.user(request.params["userId"])
        if user is None or user.org_id != ctx.org_id:
            raise ZitadelError("NOT_FOUND", "User could not be found", "QUERY-Dfbg2")
        return prune({"user": user_v1(user)})

    def get_user_by_login_name(self, request: Request, ctx: Context) -> dict[str, Any]:
        login_name = request.query.get("loginName", "")
        with self.domain.log.lock:
            user = next(
                (u for u in self.domain.log.command.users.values() if login_name in u.login_names),
                None,
            )
        if user is None:
            raise ZitadelError("NOT_FOUND", "User could not be found", "QUERY-Dfbg2")
        return prune({"user": user_v1(user)})

    # -- user grants --------------------------------------------------------------------------

    def search_grants(self, request: Request, ctx: Context) -> dict[str, Any]:
        message = request.json()
        domain = self.domain

        def user_text(attribute: str, name: str) -> Builder:
            def value(grant: Grant) -> str:
                user = domain.user(grant.user_id)
                return str(getattr(user, attribute)) if user else ""

            return text_query(value, name)

        def user_type(grant: Grant) -> str:
            user = domain.user(grant.user_id)
            return user.user_type if user else ""

        allowed: dict[str, Builder] = {
            "userIdQuery": equals(lambda g: g.user_id, "userId"),
            "projectIdQuery": equals(lambda g: g.project_id, "projectId"),
            "roleKeyQuery": text_query(lambda g: list(g.role_keys), "roleKey"),
            "projectGrantIdQuery": equals(lambda g: "", "projectGrantId"),  # no project grants
            "withGrantedQuery": constant(True),
            "userNameQuery": user_text("username", "userName"),
            "emailQuery": user_text("email", "email"),
            "displayNameQuery": user_text("display_name", "displayName"),
            "firstNameQuery": user_text("first_name", "firstName"),
            "lastNameQuery": user_text("last_name", "lastName"),
            "userTypeQuery": equals(user_type, "type"),
        }
        predicate = self._queries(message, allowed)
        with domain.log.lock:
            grants = [g for g in domain.list_grants() if g.org_id == ctx.org_id and predicate(g)]
            return self._list(
                message, "ListUserGrantRequest", grants, lambda g: grant_v1(g, domain)
            )

    def add_grant(self, request: Request, ctx: Context) -> dict[str, Any]:
        body = request.json()
        project_id = text(body, "projectId")
        check_length(project_id, "AddUserGrantRequest", "ProjectId")
        role_keys = strings(body, "roleKeys")
        grant = self.domain.add_grant(
            ctx, ctx.org_id, request.params["userId"], project_id, role_keys
        )
        return prune(
            {"userGrantId": grant.id, "details": details(grant.meta, grant.org_id, added=True)}
        )

    def get_grant(self, request: Request, ctx: Context) -> dict[str, Any]:
        grant = self.domain.grant(request.params["grantId"], ctx.org_id, request.params["userId"])
        if grant is None:
            raise ZitadelError("NOT_FOUND", "User grant not found", "FAKE-UG404")
        return prune({"userGrant": grant_v1(grant, self.domain)})

    def update_grant(self, request: Request, ctx: Context) -> dict[str, Any]:
        role_keys = strings(request.json(), "roleKeys")
        grant = self.domain.update_grant(
            ctx,
            request.params["grantId"],
            role_keys,
            org_id=ctx.org_id,
            user_id=request.params["userId"],
            ignore_unchanged=False,
        )
        return prune({"details": details(grant.meta, grant.org_id, changed=True)})

    def remove_grant(self, request: Request, ctx: Context) -> dict[str, Any]:
        meta = self.domain.remove_grants(
            ctx,
            [request.params["grantId"]],
            org_id=ctx.org_id,
            user_id=request.params["userId"],
            missing_ok=False,
        )
        assert meta is not None
        return prune({"details": details(meta, ctx.org_id, changed=True)})

    def bulk_remove_grants(self, request: Request, ctx: Context) -> dict[str, Any]:
        grant_ids = strings(request.json(), "grantId")
        if not grant_ids:
            raise ZitadelError("INVALID_ARGUMENT", "Id missing", "COMMAND-5M0sd")
        self.domain.remove_grants(ctx, grant_ids, org_id=ctx.org_id, user_id=None, missing_ok=False)
        return {}

"""ZitadelClient: project roles, user grants and user look-ups over the v1 management API.

The client speaks the domain and owns its outcomes: idempotent writes (409, 400 "no changes"
and 404 are judged here), one writer per project, batched and cached e-mail look-ups. Retries,
max-size paging and exception translation live in `session.py`; an injected transport does the
I/O, so the domain logic here never touches a socket. Paths, bodies and semantics are those of
Zitadel's v1 management API (projects, roles, user grants, user search), which every Zitadel
version serves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from .errors import (
    FAILED_PRECONDITION,
    ZitadelAuthError,
    ZitadelBadRequest,
    ZitadelConflict,
    ZitadelError,
    ZitadelNotFound,
)
from .models import Project, ProjectRole, StatusReport, UserGrant
from .session import ManagementSession

log = logging.getLogger(__name__)

EMAIL_BATCH = 500  # e-mails per in-list search (each sent in two spellings: ≤ 1,000 values)
OR_BATCH = 100  # e-mails per case-insensitive or-search, for the few the in-list missed
# v1 "no changes" error ids (not localized): role update, user grant update.
NO_CHANGE_IDS = frozenset({"COMMAND-5M0cs", "COMMAND-Rs8fy"})
ACTIVE_USER = "USER_STATE_ACTIVE"
IGNORE_CASE = "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE"


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ZitadelClient:
    """Zitadel's management API for one instance (`base_url`) and organization (`org_id`)."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        *,
        transport: httpx.BaseTransport | None = None,
        org_id: str | None = None,
        max_attempts: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 8.0,
        timeout: float = 10.0,
        consistency_timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = ManagementSession(
            base_url,
            auth,
            transport=transport,
            org_id=org_id,
            max_attempts=max_attempts,
            backoff=backoff,
            max_backoff=max_backoff,
            timeout=timeout,
            sleep=sleep,
        )
        self._call = self._session.call
        self._search_all = self._session.search_all
        self.base_url = self._session.base_url
        self.org_id = org_id
        self._consistency_timeout = consistency_timeout
        self._sleep = sleep
        self._clock = clock
        self._locks_guard = threading.Lock()
        self._project_locks: dict[str, threading.Lock] = {}
        self._emails: dict[str, str | None] = {}  # lower-cased e-mail → user id (None: unknown)

    def __repr__(self) -> str:
        return f"ZitadelClient(base_url={self.base_url!r}, org_id={self.org_id!r})"

    def __enter__(self) -> ZitadelClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @property
    def requests_made(self) -> int:
        """HTTP requests sent so far, retries and token fetches included."""
        return self._session.requests_made

    # --- projects -------------------------------------------------------------------------

    def project(self, project_id: str) -> Project:
        """The project, or ZitadelNotFound when it is not in this organization."""
        body = self._call("GET", f"/management/v1/projects/{_segment(project_id)}", read=True)
        return Project.from_api(body.get("project") or {})

    def check(self, project_id: str) -> StatusReport:
        """Reachability, authentication, the project and its role count, for `cockpit status`."""
        report: dict[str, Any] = {"base_url": self.base_url, "project_id": project_id}
        try:
            project = self.project(project_id)
            report.update(reachable=True, authenticated=True, authorized=True)
            report.update(project_found=True, project_name=project.name)
            report["role_count"] = len(self.list_project_roles(project_id))
        except ZitadelNotFound as exc:
            report.update(reachable=True, authenticated=True, authorized=True, error=str(exc))
        except ZitadelAuthError as exc:
            report.update(
                reachable=True,
                authenticated=exc.status == 403,
                authorized=False,
                error=str(exc),
            )
        except ZitadelError as exc:
            report.update(reachable=exc.status is not None, error=str(exc))
        return StatusReport(**report)

    # --- project roles --------------------------------------------------------------------

    def list_project_roles(self, project_id: str) -> list[ProjectRole]:
        """Every role of the project, in pages of 1,000.

        v1 filters roles by the context organization: a wrong `org_id` gives an empty list.
        """
        items = self._search_all(
            f"/management/v1/projects/{_segment(project_id)}/roles/_search", [], key="key"
        )
        return [ProjectRole.from_api(item) for item in items]

    def add_project_roles(self, project_id: str, roles: Iterable[ProjectRole]) -> list[str]:
        """Add missing roles in one atomic `_bulk` call; returns the keys it created.

        If any key exists already (an earlier run, a replayed request) the bulk call adds nothing
        and answers 409; then each role is added alone, tolerating 409 for those that exist.
        """
        unique: dict[str, ProjectRole] = {}
        for role in roles:
            unique.setdefault(role.key.lower(), role)  # keys collide case-insensitively
        if not unique:
            return []
        path = f"/management/v1/projects/{_segment(project_id)}/roles/_bulk"
        with self._project_lock(project_id):
            try:
                self._call("POST", path, {"roles": [_role_body(r, "key") for r in unique.values()]})
                return [role.key for role in unique.values()]
            except ZitadelConflict:
                log.info("bulk role add on project %s hit 409; adding one by one", project_id)
                return [r.key for r in unique.values() if self._add_project_role(project_id, r)]

    def add_project_role(self, project_id: str, role: ProjectRole) -> bool:
        """Add one role; False when it existed already (409), which is not an error."""
        with self._project_lock(project_id):
            return self._add_project_role(project_id, role)

    def _add_project_role(self, project_id: str, role: ProjectRole) -> bool:
        path = f"/management/v1/projects/{_segment(project_id)}/roles"
        try:
            self._call("POST", path, _role_body(role, "roleKey"))
            return True
        except ZitadelConflict:
            return False

    def update_project_role(self, project_id: str, role: ProjectRole) -> None:
        """Set display name and group; an update that changes nothing is a success."""
        path = f"/management/v1/projects/{_segment(project_id)}/roles/{_segment(role.key)}"
        with self._project_lock(project_id):
            try:
                self._call("PUT", path, {"displayName": role.display_name, "group": role.group})
            except ZitadelBadRequest as exc:
                if not self._unchanged(exc, lambda: self._role_matches(project_id, role)):
                    raise

    def remove_project_role(self, project_id: str, key: str) -> bool:
        """Remove a role (Zitadel drops it from grants too); False when it was already gone."""
        path = f"/management/v1/projects/{_segment(project_id)}/roles/{_segment(key)}"
        with self._project_lock(project_id):
            try:
                self._call("DELETE", path)
                return True
            except ZitadelNotFound:
                return False

    def _role_matches(self, project_id: str, role: ProjectRole) -> bool:
        query = {"keyQuery": {"key": role.key, "method": "TEXT_QUERY_METHOD_EQUALS"}}
        path = f"/management/v1/projects/{_segment(project_id)}/roles/_search"
        for item in self._search_all(path, [query], key="key"):
            found = ProjectRole.from_api(item)
            if found.key == role.key:
                return (found.display_name, found.group) == (role.display_name, role.group)
        return False

    # --- user grants ----------------------------------------------------------------------

    def list_user_grants(self, project_id: str) -> list[UserGrant]:
        """Every grant on the project issued by this organization, in pages of 1,000."""
        items = self._search_all(
            "/management/v1/users/grants/_search",
            [{"projectIdQuery": {"projectId": project_id}}],
            key="id",
        )
        return [UserGrant.from_api(item) for item in items]

    def add_user_grant(self, user_id: str, project_id: str, role_keys: Iterable[str]) -> str:
        """Grant roles on a project; returns the grant id.

        A user has at most one grant per project and organization. If it exists (409, perhaps
        from a replayed request), the existing grant's id is returned and its roles are left as
        they are: the planner decides about them, since other accounts may share the project.
        """
        body = {"projectId": project_id, "roleKeys": sorted(set(role_keys))}
        with self._project_lock(project_id):
            try:
                answer = self._call("POST", f"/management/v1/users/{_segment(user_id)}/grants", body)
            except ZitadelConflict as conflict:
                return self._existing_grant_id(user_id, project_id, conflict)
        grant_id = answer.get("userGrantId")
        if not isinstance(grant_id, str) or not grant_id:
            raise ZitadelError(
                "Zitadel added the user grant but returned no userGrantId",
                endpoint=f"POST /management/v1/users/{user_id}/grants",
            )
        return grant_id

    def update_user_grant(
        self,
        user_id: str,
        grant_id: str,
        role_keys: Iterable[str],
        *,
        project_id: str | None = None,
    ) -> None:
        """Replace the grant's roles; the same roles again (v1: 400 no changes) is a success.

        With `project_id`, the write waits for other writes to that project in this client.
        """
        keys = sorted(set(role_keys))
        path = f"/management/v1/users/{_segment(user_id)}/grants/{_segment(grant_id)}"
        with self._project_lock(project_id or f"grant:{grant_id}"):
            try:
                self._call("PUT", path, {"roleKeys": keys})
            except ZitadelBadRequest as exc:
                if not self._unchanged(exc, lambda: self._grant_has(user_id, grant_id, keys)):
                    raise

    def remove_user_grant(
        self, user_id: str, grant_id: str, *, project_id: str | None = None
    ) -> bool:
        """Remove a grant; False when it was already gone (404), which is not an error."""
        path = f"/management/v1/users/{_segment(user_id)}/grants/{_segment(grant_id)}"
        with self._project_lock(project_id or f"grant:{grant_id}"):
            try:
                self._call("DELETE", path)
                return True
            except ZitadelNotFound:
                return False

    def _grant_has(self, user_id: str, grant_id: str, keys: list[str]) -> bool:
        path = f"/management/v1/users/{_segment(user_id)}/grants/{_segment(grant_id)}"
        try:
            body = self._call("GET", path, read=True)
        except ZitadelNotFound:
            return False
        return list(UserGrant.from_api(body.get("userGrant") or {}).role_keys) == keys

    def _existing_grant_id(self, user_id: str, project_id: str, conflict: ZitadelConflict) -> str:
        """After a 409, find the grant that exists; searches may lag writes (§6), so poll."""
        queries = [
            {"userIdQuery": {"userId": user_id}},
            {"projectIdQuery": {"projectId": project_id}},
        ]
        deadline = self._clock() + self._consistency_timeout
        pause = 0.25
        while True:
            for item in self._search_all("/management/v1/users/grants/_search", queries, key="id"):
                grant = UserGrant.from_api(item)
                if grant.user_id == user_id and grant.project_id == project_id and grant.id:
                    return grant.id
            if self._clock() >= deadline:
                raise ZitadelConflict(
                    f"user {user_id} already has a grant on project {project_id}, but it did not "
                    f"show in searches within {self._consistency_timeout:g} s; run again later",
                    status=conflict.status,
                    grpc_code=conflict.grpc_code,
                    endpoint=conflict.endpoint,
                    error_id=conflict.error_id,
                )
            self._sleep(pause)
            pause = min(pause * 2, 4.0)

    # --- users ----------------------------------------------------------------------------

    def search_users_by_email(self, emails: Iterable[str]) -> dict[str, str]:
        """Map e-mails to user ids with as few searches as possible; unknown ones are left out.

        One in-list search per 500 e-mails (each sent as given and lower-cased); only e-mails it
        missed get a case-insensitive or-search. Answers, found or not, are cached for the
        client's lifetime. E-mail is not unique in Zitadel: an active user wins, then one whose
        user name is the e-mail, then the oldest (smallest id).
        """
        asked = [e for e in (str(x).strip() for x in emails) if e]
        spelling: dict[str, str] = {}
        for address in asked:
            if address.lower() not in self._emails:
                spelling.setdefault(address.lower(), address)
        for batch in _chunks(sorted(spelling), EMAIL_BATCH):
            values = sorted({v for key in batch for v in (key, spelling[key])})
            found = self._users_by_email(batch, [{"inUserEmailsQuery": {"userEmails": values}}])
            missed = [key for key in batch if key not in found]
            for chunk in _chunks(missed, OR_BATCH):
                either = [
                    {"emailQuery": {"emailAddress": key, "method": IGNORE_CASE}} for key in chunk
                ]
                query = either[0] if len(either) == 1 else {"orQuery": {"queries": either}}
                found.update(self._users_by_email(chunk, [query]))
            for key in batch:
                self._emails[key] = found.get(key)
        result: dict[str, str] = {}
        for address in asked:
            user_id = self._emails.get(address.lower())
            if user_id:
                result[address] = user_id
        return result

    def _users_by_email(self, wanted: list[str], queries: list[dict[str, Any]]) -> dict[str, str]:
        candidates: dict[str, list[dict[str, Any]]] = {}
        targets = set(wanted)
        for user in self._search_all("/management/v1/users/_search", queries, key="id"):
            address = _user_email(user).lower()
            if address in targets:
                candidates.setdefault(address, []).append(user)
        return {
            address: _user_id(min(users, key=lambda u: _preference(u, address)))
            for address, users in candidates.items()
        }

    # --- helpers --------------------------------------------------------------------------

    def _project_lock(self, project_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._project_locks.setdefault(project_id, threading.Lock())

    def _unchanged(self, error: ZitadelBadRequest, verify: Callable[[], bool]) -> bool:
        """Is this 400 v1's "no changes"? Known error ids say so; else a re-read decides."""
        if error.error_id in NO_CHANGE_IDS:
            return True
        if error.grpc_code not in (None, FAILED_PRECONDITION):
            return False
        return verify()


def _role_body(role: ProjectRole, key_field: str) -> dict[str, str]:
    body = {key_field: role.key, "displayName": role.display_name}
    if role.group:
        body["group"] = role.group
    return body


def _user_id(user: dict[str, Any]) -> str:
    return str(user.get("id") or user.get("userId") or "")


def _user_email(user: dict[str, Any]) -> str:
    email = ((user.get("human") or {}).get("email") or {}).get("email")
    return str(email or "")


def _preference(user: dict[str, Any], address: str) -> tuple[bool, bool, int, str]:
    user_id = _user_id(user)
    names = {str(user.get("userName", "")).lower(), str(user.get("preferredLoginName", "")).lower()}
    return (
        user.get("state") != ACTIVE_USER,
        address not in names,
        len(user_id),
        user_id,
    )

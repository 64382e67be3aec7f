"""`FakeZitadel`: the ASGI app, its lifecycle on a loopback port, seeding and switches."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from ..server import LoopbackServer, Message, Scope, serve_asgi
from .api_v1 import ManagementV1
from .api_v2 import V2
from .auth import (
    Credentials,
    Principal,
    SigningKeys,
    new_rsa_key,
    private_key_pem,
)
from .domain import Context, Domain
from .errors import OAuthError, ZitadelError, connect_body, gateway_body, injected_error, oauth_body
from .faults import Failure, FaultInjector
from .oidc import OIDC
from .routing import CONNECT, OAUTH, Request, Response, Route, RouteTable, family_for
from .store import Clock, EventLog, IdGenerator

# Role writes push events on the project aggregate; these paths name the project.
_V1_ROLE_WRITE = re.compile(r"^/management/v1/projects/(?P<project>[^/]+)/roles(/|$)")
_V2_ROLE_WRITES = {
    "/zitadel.project.v2.ProjectService/AddProjectRole",
    "/zitadel.project.v2.ProjectService/UpdateProjectRole",
    "/zitadel.project.v2.ProjectService/RemoveProjectRole",
}


class FakeZitadel:
    """A Zitadel instance on 127.0.0.1: OAuth/OIDC, Management v1, user v2, Connect v2 services.

    A default org ("Acme", `fake.default_org_id`) exists from the start. See the package
    docstring for the full API.
    """

    def __init__(
        self,
        *,
        token_lifetime: int = 43199,
        org_name: str = "Acme",
        org_domain: str = "acme.localhost",
        org_id: str | None = None,
    ) -> None:
        self.clock = Clock()
        self._new_id = IdGenerator(self.clock)
        self._log = EventLog(self.clock)
        self._domain = Domain(self._log, self._new_id, self.clock)
        self._keys = SigningKeys(self._new_id)
        self._credentials = Credentials(self.clock, self._keys, token_lifetime)
        self._faults = FaultInjector()
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None
        self._url: str | None = None
        self.delay = 0.0
        self.requests: list[tuple[str, str, int]] = []
        self.default_org_id = self.add_org(org_name, org_id, org_domain)
        self._routes = RouteTable(
            [
                *OIDC(lambda: self.url, self._keys, self._credentials, self._domain).routes(),
                *ManagementV1(self._domain).routes(),
                *V2(self._domain).routes(),
            ]
        )

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The issuer and API base URL, e.g. `http://127.0.0.1:41234` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("FakeZitadel has not been started")
        return self._url

    def start(self) -> FakeZitadel:
        """Serve (again); after `stop()` the same port is reused, so clients find it back."""
        if self._server is None:
            self._server = serve_asgi(self.app)
        else:
            self._server.start()
        self._url = self._server.url
        return self

    def stop(self) -> None:
        """Go down: new connections are refused and open ones are cut (state is kept)."""
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> FakeZitadel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- seeding --------------------------------------------------------------------------------

    def add_org(
        self, name: str | None = None, org_id: str | None = None, domain: str | None = None
    ) -> str:
        org_id = org_id or self._new_id()
        name = name or f"org-{org_id}"
        self._domain.seed_org(
            org_id, name, domain or f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.localhost"
        )
        return org_id

    def add_project(
        self,
        project_id: str | None = None,
        org_id: str | None = None,
        *,
        name: str | None = None,
        role_assertion: bool = False,
    ) -> str:
        project_id = project_id or self._new_id()
        self._domain.seed_project(
            project_id,
            org_id or self.default_org_id,
            name or f"project-{project_id}",
            role_assertion,
        )
        return project_id

    def add_role(
        self, project_id: str, key: str, display_name: str | None = None, group: str = ""
    ) -> None:
        self._domain.seed_role(project_id, key, display_name or key, group)

    def add_user(
        self,
        email: str,
        user_id: str | None = None,
        org_id: str | None = None,
        *,
        username: str | None = None,
        first_name: str = "",
        last_name: str = "",
        display_name: str | None = None,
        state: str = "USER_STATE_ACTIVE",
    ) -> str:
        """A human user (username defaults to the email). Emails need not be unique."""
        user_id = user_id or self._new_id()
        first = first_name or email.split("@")[0].capitalize()
        last = last_name or "Doe"
        self._domain.seed_user(
            user_id=user_id,
            org_id=org_id or self.default_org_id,
            username=username or email,
            email=email,
            first_name=first,
            last_name=last,
            display_name=display_name or f"{first} {last}",
            state=state,
        )
        return user_id

    def add_grant(
        self, user_id: str, project_id: str, role_keys: list[str], org_id: str | None = None
    ) -> str:
        """A user grant, by default issued by the project's org; returns its id."""
        return self._domain.seed_grant(user_id, project_id, role_keys, org_id)

    def _add_machine_user(self, username: str, user_id: str | None, org_id: str | None) -> str:
        user_id = user_id or self._new_id()
        self._domain.seed_user(
            user_id=user_id,
            org_id=org_id or self.default_org_id,
            username=username,
            display_name=username,
            machine=True,
        )
        return user_id

    def _principal(self, user_id: str, org_id: str | None, client_id: str, orgs: Any) -> Principal:
        return Principal(
            user_id,
            org_id or self.default_org_id,
            client_id,
            None if orgs is None else frozenset(orgs),
        )

    def add_service_account(
        self,
        client_id: str,
        client_secret: str,
        *,
        org_id: str | None = None,
        orgs: Any = None,
        user_id: str | None = None,
        jwt_access_tokens: bool = False,
    ) -> str:
        """A machine user with a client secret (client_credentials). `orgs=None` administers
        every org (IAM_OWNER); an iterable of org ids limits it (ORG_OWNER there); `orgs=()`
        gives no permissions (403). Returns the machine user's id."""
        user_id = self._add_machine_user(client_id, user_id, org_id)
        principal = self._principal(user_id, org_id, client_id, orgs)
        self._credentials.add_service_account(
            client_id, client_secret, principal, jwt_access_tokens
        )
        return user_id

    def add_service_account_key(self, client_id: str) -> dict[str, str]:
        """A key for the JWT-profile grant of an existing service account: the key file JSON
        (`{"type":"serviceaccount","keyId","key","userId"}`)."""
        principal = self._credentials.principal_for_client(client_id)
        if principal is None:
            raise ValueError(f"no service account {client_id!r}")
        key, key_id = new_rsa_key(), self._new_id()
        self._credentials.add_machine_key(key_id, key.public_key(), principal)
        return {
            "type": "serviceaccount",
            "keyId": key_id,
            "key": private_key_pem(key),
            "userId": principal.user_id,
        }

    def add_pat(
        self,
        token: str,
        *,
        org_id: str | None = None,
        orgs: Any = None,
        user_id: str | None = None,
        expires_at: float | None = None,
    ) -> str:
        """A personal access token (of a new machine user unless `user_id` is given); `orgs` as
        for `add_service_account`; `expires_at` in epoch seconds on the fake's clock."""
        if user_id is None:
            user_id = self._add_machine_user(f"pat-{secrets.token_hex(4)}", None, org_id)
        self._credentials.add_pat(
            token, self._principal(user_id, org_id, user_id, orgs), expires_at
        )
        return user_id

    def add_api_app(self, client_id: str, client_secret: str, project_id: str) -> None:
        """An API application of `project_id`, allowed to call `/oauth/v2/introspect`."""
        self._credentials.add_api_app(client_id, client_secret, project_id)

    # -- tokens and keys ------------------------------------------------------------------------

    def sign_token(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        """An RS256 JWT signed with the active JWKS key (or `kid`). `iss` defaults to `url`,
        `iat` to now and `exp` to now + token lifetime; pass a key with value None to drop it."""
        now = int(self.clock())
        full = {
            "iss": self.url,
            "iat": now,
            "exp": now + self._credentials.token_lifetime,
            **claims,
        }
        return self._keys.sign({k: v for k, v in full.items() if v is not None}, kid)

    def roles_claim(self, user_id: str, project_id: str) -> dict[str, dict[str, str]]:
        """`{roleKey: {orgId: orgDomain}}` from the user's grants on the project (§3.4)."""
        return self._domain.roles_claim(user_id, project_id)

    def user_token(self, user_id: str, project_id: str, **claims: Any) -> str:
        """A signed access/ID token for a user with the role claims of their grants on the
        project, audience [project_id] (override any claim with keyword arguments)."""
        roles = self.roles_claim(user_id, project_id)
        return self.sign_token(
            {
                "sub": user_id,
                "aud": [project_id],
                "urn:zitadel:iam:org:project:roles": roles,
                f"urn:zitadel:iam:org:project:{project_id}:roles": roles,
                **claims,
            }
        )

    @property
    def kid(self) -> str:
        return self._keys.kid

    def rotate_signing_key(self, *, keep_old: bool = True) -> str:
        """A new active signing key (returned kid); old keys stay in the JWKS unless told."""
        return self._keys.rotate(keep_old=keep_old)

    def jwks(self) -> dict[str, Any]:
        return self._keys.jwks()

    def expire_tokens(self, *, include_pats: bool = False) -> None:
        """Every access token issued so far expires now (next API call → 401)."""
        self._credentials.expire_all(include_pats=include_pats)

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (token expiry, timestamps, time-based search lag)."""
        self.clock.offset += seconds

    # -- inspection -----------------------------------------------------------------------------

    def roles(self, project_id: str) -> list[dict[str, str]]:
        """The project's roles as they are (command side), in creation order."""
        with self._log.lock:
            return [
                {"key": r.key, "displayName": r.display_name, "group": r.group}
                for r in self._log.command.project_roles(project_id)
            ]

    def grants(self, project_id: str) -> list[dict[str, Any]]:
        """The project's user grants as they are (command side), in creation order."""
        with self._log.lock:
            grants = sorted(self._log.command.grants.values(), key=lambda g: g.meta.order)
            return [
                {
                    "id": g.id,
                    "userId": g.user_id,
                    "projectId": g.project_id,
                    "orgId": g.org_id,
                    "roleKeys": list(g.role_keys),
                }
                for g in grants
                if g.project_id == project_id
            ]

    def count(
        self, method: str | None = None, path: str | None = None, status: int | None = None
    ) -> int:
        """How many answered requests match (None = any); `path` may end in `*` for a prefix."""
        with self._lock:
            requests = list(self.requests)
        return sum(
            1
            for m, p, s in requests
            if (method is None or m == method)
            and (path is None or (p.startswith(path[:-1]) if path.endswith("*") else p == path))
            and (status is None or s == status)
        )

    # -- switches -------------------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int = 503,
        retry_after: float | None = None,
        *,
        after: int = 0,
        after_commit: bool = False,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next `count` requests (after letting `after` through) with `status`
        before anything is done. `after_commit=True`: instead, the next `count` requests that
        *write* are committed and then answered with `status` (a lost response)."""
        self._faults.fail_next(
            count,
            status,
            retry_after,
            after=after,
            after_commit=after_commit,
            path_prefix=path_prefix,
        )

    def fail_ratio(
        self,
        p: float,
        statuses: tuple[int, ...] = (429, 503, 500),
        seed: int | None = None,
        *,
        lost_response_ratio: float = 0.0,
        lost_status: int = 503,
        retry_after: float | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Each request fails with probability `p` (status drawn from `statuses`) before any
        write; with probability `lost_response_ratio` a write is committed and then answered
        with `lost_status`. `fail_ratio(0)` turns it off."""
        self._faults.fail_ratio(
            p,
            statuses,
            seed,
            lost_response_ratio=lost_response_ratio,
            lost_status=lost_status,
            retry_after=retry_after,
            path_prefix=path_prefix,
        )

    def search_lag(self, n: int | None = None, *, seconds: float | None = None) -> None:
        """Searches do not see the last `n` writes (and/or writes younger than `seconds` on the
        fake's clock; both given: hidden while both hold). `search_lag(0)` makes them current."""
        self._log.set_lag(n, seconds)

    def catch_up(self) -> None:
        """Let the projections catch up with every write so far (the lag setting stays)."""
        self._log.catch_up()

    @property
    def conflict_on_concurrent_writes(self) -> bool:
        """When on, a role write to a project while another one to the same project is in
        flight (see `delay`) answers 500 INTERNAL, like an eventstore push conflict (§6.5)."""
        return self._faults.conflict_on_concurrent_writes

    @conflict_on_concurrent_writes.setter
    def conflict_on_concurrent_writes(self, value: bool) -> None:
        self._faults.conflict_on_concurrent_writes = value

    def reset_faults(self) -> None:
        """All switches off: no scripted or random failures, no delay, no search lag."""
        self._faults.reset()
        self.delay = 0.0
        self._log.set_lag(0, None)

    # -- the ASGI app ---------------------------------------------------------------------------

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message: Message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers[bytes(name).decode("latin-1").lower()] = bytes(value).decode("latin-1")
        query = dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1")))
        request = Request(scope["method"], scope["path"], headers, query, body)
        response = await self._dispatch(request)
        with self._lock:
            self.requests.append((request.method, request.path, response.status))
        content = json.dumps(response.body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    *[(k.encode(), v.encode()) for k, v in response.headers],
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _dispatch(self, request: Request) -> Response:
        aggregate = self._write_aggregate(request)
        conflict = self._faults.enter_write(aggregate)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            failure, lose = self._faults.before(request.path)
            if failure is not None:
                return self._failure(request.path, failure)
            if conflict:
                return self._error(
                    family_for(request.path),
                    ZitadelError("INTERNAL", "An internal error occurred", "FAKE-events2_pkey"),
                )
            ctx = Context()
            response = self._handle(request, ctx)
            if ctx.wrote:
                lost = self._faults.after_commit(request.path, lose)
                if lost is not None:
                    return self._failure(request.path, lost)
            return response
        finally:
            self._faults.leave_write(aggregate)

    @staticmethod
    def _write_aggregate(request: Request) -> str | None:
        if request.method in ("POST", "PUT", "DELETE"):
            found = _V1_ROLE_WRITE.match(request.path)
            if found and not request.path.endswith("/_search"):
                return f"project:{found['project']}"
        if request.path in _V2_ROLE_WRITES:
            try:
                project_id = json.loads(request.body or b"{}").get("projectId")
            except (ValueError, AttributeError):
                return None
            return f"project:{project_id}" if project_id else None
        return None

    def _failure(self, path: str, failure: Failure) -> Response:
        family = family_for(path)
        if family == OAUTH:
            error = OAuthError(failure.status, "server_error", "injected failure")
            response = Response(failure.status, oauth_body(error))
        else:
            response = self._error(family, injected_error(failure.status))
        if failure.retry_after is not None:
            value = failure.retry_after
            response.headers.append(
                ("retry-after", str(int(value)) if float(value).is_integer() else str(value))
            )
        return response

    @staticmethod
    def _error(family: str, error: ZitadelError) -> Response:
        body = connect_body(error) if family == CONNECT else gateway_body(error)
        return Response(error.http_status, body)

    def _handle(self, request: Request, ctx: Context) -> Response:
        found, params, other_method = self._routes.match(request.method, request.path)
        family = found.family if found else family_for(request.path)
        if found is None:
            if other_method:
                return self._error(
                    family, ZitadelError("UNIMPLEMENTED", "Method Not Allowed", http_status=405)
                )
            if family == CONNECT:
                return self._error(
                    family,
                    ZitadelError(
                        "UNIMPLEMENTED", f"{request.path} is not implemented", http_status=404
                    ),
                )
            if family == OAUTH:
                return Response(404, {"error": "not_found", "error_description": "Not Found"})
            return self._error(family, ZitadelError("NOT_FOUND", "Not Found"))
        request.params = params
        try:
            if found.auth is not None:
                self._authorize(request, ctx, found)
            result = found.handler(request, ctx)
        except ZitadelError as error:
            return self._error(family, error)
        except OAuthError as error:
            return Response(error.status, oauth_body(error))
        return result if isinstance(result, Response) else Response(200, result)

    def _authorize(self, request: Request, ctx: Context, found: Route) -> None:
        """Bearer token → principal; v1: the context org (x-zitadel-orgid or the caller's own),
        which must exist (else 403 AUTH-Bs7Ds) and be administered by the caller (403)."""
        principal = self._credentials.authenticate(request.header("authorization"))
        ctx.principal = principal
        if found.auth != "v1":
            if principal.orgs is not None and not principal.orgs:
                raise ZitadelError(
                    "PERMISSION_DENIED", "No matching permissions found", "AUTH-5mWD2"
                )
            return
        org_id = request.header("x-zitadel-orgid") or principal.org_id
        if self._domain.org(org_id) is None:
            raise ZitadelError("PERMISSION_DENIED", "Organisation doesn't exist", "AUTH-Bs7Ds")
        if not principal.administers(org_id):
            raise ZitadelError("PERMISSION_DENIED", "No matching permissions found", "AUTH-5mWD2")
        ctx.org_id = org_id

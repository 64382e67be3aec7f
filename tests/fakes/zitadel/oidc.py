"""OAuth 2.0 / OIDC endpoints: discovery, JWKS, token and introspection (contract §2, §3).

The issuer is the fake's base URL (no trailing slash). Errors use the OAuth2 JSON shape
(`{"error": "invalid_client", "error_description": ...}`), raised as `OAuthError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .auth import Credentials, SigningKeys
from .domain import Context, Domain
from .routing import OAUTH, Request, Route, route


class OIDC:
    def __init__(
        self, issuer: Callable[[], str], keys: SigningKeys, credentials: Credentials, domain: Domain
    ) -> None:
        self.issuer = issuer
        self.keys = keys
        self.credentials = credentials
        self.domain = domain

    def routes(self) -> list[Route]:
        return [
            route("GET", "/.well-known/openid-configuration", self.discovery, OAUTH, None),
            route("GET", "/oauth/v2/keys", self.jwks, OAUTH, None),
            route("POST", "/oauth/v2/token", self.token, OAUTH, None),
            route("POST", "/oauth/v2/introspect", self.introspect, OAUTH, None),
        ]

    def discovery(self, request: Request, ctx: Context) -> dict[str, Any]:
        base = self.issuer()
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/v2/authorize",
            "token_endpoint": f"{base}/oauth/v2/token",
            "introspection_endpoint": f"{base}/oauth/v2/introspect",
            "userinfo_endpoint": f"{base}/oidc/v1/userinfo",
            "revocation_endpoint": f"{base}/oauth/v2/revoke",
            "end_session_endpoint": f"{base}/oidc/v1/end_session",
            "device_authorization_endpoint": f"{base}/oauth/v2/device_authorization",
            "jwks_uri": f"{base}/oauth/v2/keys",
            "scopes_supported": [
                "openid",
                "profile",
                "email",
                "phone",
                "address",
                "offline_access",
            ],
            "response_types_supported": ["code", "id_token", "id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": [
                "authorization_code",
                "implicit",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "request_object_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "revocation_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "private_key_jwt",
            ],
            "introspection_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "claims_supported": [
                "sub",
                "aud",
                "exp",
                "iat",
                "iss",
                "auth_time",
                "nonce",
                "acr",
                "amr",
                "c_hash",
                "at_hash",
                "act",
                "scopes",
                "client_id",
                "azp",
                "preferred_username",
                "name",
                "family_name",
                "given_name",
                "locale",
                "email",
                "email_verified",
                "phone_number",
                "phone_number_verified",
            ],
            "code_challenge_methods_supported": ["S256"],
            "ui_locales_supported": ["en"],
            "request_parameter_supported": True,
            "request_uri_parameter_supported": False,
        }

    def jwks(self, request: Request, ctx: Context) -> dict[str, Any]:
        return self.keys.jwks()

    def token(self, request: Request, ctx: Context) -> dict[str, Any]:
        return self.credentials.token_endpoint(
            request.form(), request.header("authorization"), self.issuer()
        )

    def introspect(self, request: Request, ctx: Context) -> dict[str, Any]:
        def user_claims(user_id: str, project_id: str, roles_requested: bool) -> dict[str, Any]:
            user = self.domain.user(user_id)
            project = self.domain.log.command.projects.get(project_id)
            claims: dict[str, Any] = {}
            if user is not None:
                claims["username"] = user.login_names[0]
                claims["urn:zitadel:iam:user:resourceowner:id"] = user.org_id
            if roles_requested or (project is not None and project.role_assertion):
                roles = self.domain.roles_claim(user_id, project_id)
                if roles:
                    claims["urn:zitadel:iam:org:project:roles"] = roles
                    claims[f"urn:zitadel:iam:org:project:{project_id}:roles"] = roles
            return claims

        return self.credentials.introspect(
            request.form(), request.header("authorization"), self.issuer(), user_claims
        )

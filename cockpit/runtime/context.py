"""Who is calling: the per-request tenant context. The fields up to `product_domains` are what the
old system kept per request (account, super-admin flag, auth provider, roles, scopes, allowed
product domains); the rest say which user, key domain, agent or Zitadel subject called.

The tenant middleware (`cockpit.server.tenant`) builds one `RequestContext` per request from the
credential it finds and stores it in the ASGI scope; routes read it through `deps.context`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

SCOPE_KEY = "cockpit.context"


@dataclass(frozen=True)
class RequestContext:
    account_id: uuid.UUID | None = None
    account_name: str | None = None
    is_super_admin: bool = False
    auth_provider: str | None = None
    """litellm_master_key, virtual_key or zitadel; None when no credential was recognised."""
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    product_domains: tuple[str, ...] = ()
    """Empty: no domain restriction."""
    user_email: str | None = None
    key_domain: str | None = None
    """A virtual key's domain (console or copilot); None serves both."""
    agent_name: str | None = None
    """The agent a virtual key was issued for, if any."""
    subject: str | None = None
    """The Zitadel token's `sub`."""

    def as_me(self) -> dict[str, object]:
        """The body of `GET /v1/me/context`."""
        return {
            "account_id": str(self.account_id) if self.account_id else None,
            "is_super_admin": self.is_super_admin,
            "auth_provider": self.auth_provider,
            "roles": list(self.roles),
            "scopes": list(self.scopes),
            "product_domains_allowed": list(self.product_domains),
        }


EMPTY = RequestContext()

"""The Zitadel role keys an Account's settings produce, and the platform's reserved keys.

Part of the config language: validation (`cockpit.config.semantics`) refuses settings that would
produce a platform key or claim another account's; the Zitadel plan (`cockpit.zitadel.desired`)
and the server's claim mapping (`cockpit.server.claims`) name roles by the same rules.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping

STANDARD_ROLES: tuple[tuple[str, str, str], ...] = (
    ("account_admin", "Account Admin", "account"),
    ("console_org_admin", "Console Org Admin", "console"),
    ("console_team_admin", "Console Team Admin", "console"),
    ("copilot_org_admin", "Copilot Org Admin", "copilot"),
    ("copilot_team_admin", "Copilot Team Admin", "copilot"),
    ("end_user", "End User", "common"),
)


PLATFORM_ROLE_KEYS: tuple[str, ...] = ("super_admin",)
"""Role keys that make a token's holder a platform super admin by default (the server's
`ZITADEL_SUPER_ADMIN_ROLES` adds its own): owned by the platform, never by a tenant."""


def platform_role_keys(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The platform's super-admin role keys, casefolded: always `PLATFORM_ROLE_KEYS`, plus
    `ZITADEL_SUPER_ADMIN_ROLES`. Always both, so a validate run without the server's settings
    is not weaker than the server; casefolded because a look-alike key is refused as well."""
    environ = os.environ if environ is None else environ
    configured = (environ.get("ZITADEL_SUPER_ADMIN_ROLES") or "").split(",")
    return frozenset(k.strip().casefold() for k in (*PLATFORM_ROLE_KEYS, *configured) if k.strip())


def produced_role_keys(prefix: str, mappings: Mapping[str, str]) -> dict[str, str]:
    """Base role → the project role key an account's settings give it (its mapping, else the
    prefix and the base role): the keys the account creates, grants and owns."""
    return {base: mappings.get(base, prefix + base) for base, _, _ in STANDARD_ROLES}


def claims_role_key(prefix: str, keys: Iterable[str], role: str) -> bool:
    """Whether an account with this prefix and these produced keys treats `role` as its own:
    its keys, and (as the reader keeps them, to remove the unused) every role with its prefix."""
    folded = role.casefold()
    return folded in {k.casefold() for k in keys} or bool(prefix) and folded.startswith(prefix.casefold())

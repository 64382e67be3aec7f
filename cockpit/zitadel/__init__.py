"""Zitadel's management API for Cockpit: settings, service-account auth, a client, typed errors.

    settings = ZitadelSettings.from_environment(os.environ)   # None when Zitadel is not set up
    with settings.client(account_issuer=None, org_id="3011…") as zitadel:
        roles = zitadel.list_project_roles("3012…")

Nothing outside this package sees httpx: every failure is a `ZitadelError`.
"""

from .auth import MANAGEMENT_SCOPE, ClientCredentialsAuth, PersonalAccessTokenAuth
from .client import ZitadelClient
from .errors import (
    ZitadelAuthError,
    ZitadelBadRequest,
    ZitadelConfigError,
    ZitadelConflict,
    ZitadelError,
    ZitadelNotFound,
    ZitadelRateLimited,
    ZitadelUnavailable,
)
from .models import Project, ProjectRole, StatusReport, UserGrant
from .settings import ZitadelSettings

__all__ = [
    "MANAGEMENT_SCOPE",
    "ClientCredentialsAuth",
    "PersonalAccessTokenAuth",
    "Project",
    "ProjectRole",
    "StatusReport",
    "UserGrant",
    "ZitadelAuthError",
    "ZitadelBadRequest",
    "ZitadelClient",
    "ZitadelConfigError",
    "ZitadelConflict",
    "ZitadelError",
    "ZitadelNotFound",
    "ZitadelRateLimited",
    "ZitadelSettings",
    "ZitadelUnavailable",
]

"""Constrained string types shared by the kinds: names, emails, scopes, secret references.

Each type carries its pattern into the JSON Schema, so editors and `cockpit validate` agree on
what a well-formed value is. Whether a name *resolves* is the semantic pass's business.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$"
EMAIL_PATTERN = r"^[^@\s:/]+@[^@\s:/]+\.[^@\s:/]+$"
DOMAIN_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
SECRET_REF_PATTERN = r"^\$\{(env:[A-Za-z_][A-Za-z0-9_]*|file:[^}]+)\}$"

_NAME = r"[a-z0-9][a-z0-9_.-]{0,62}"
_EMAIL = r"[^@\s:/]+@[^@\s:/]+\.[^@\s:/]+"
_ORG = rf"org:{_NAME}"
_TEAM = rf"team:{_NAME}/{_NAME}"
_USER = rf"user:{_EMAIL}"
_AGENT = rf"agent:{_NAME}"


def _scope_pattern(*alternatives: str) -> str:
    return "^(" + "|".join(alternatives) + ")$"


Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="Lower-case letters, digits, '.', '_' and '-'; starts with a letter or digit.",
    ),
]
ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN, description="A model of the catalog.")]
Email = Annotated[str, Field(pattern=EMAIL_PATTERN, description="An e-mail address.")]
EmailDomain = Annotated[str, Field(pattern=DOMAIN_PATTERN, description="A DNS domain, lower-case.")]
Credits = Annotated[float, Field(ge=0, description="Credits, to the hundredth.")]

SecretRef = Annotated[
    str,
    Field(
        pattern=SECRET_REF_PATTERN,
        description="A reference, never the value: ${env:NAME} or ${file:PATH}.",
        json_schema_extra={"x-cockpit-secret": True},
    ),
]

GrantScope = Annotated[
    str,
    Field(
        pattern=_scope_pattern("account", _ORG, _TEAM, _USER),
        description="account, org:ORG, team:ORG/TEAM or user:EMAIL.",
        json_schema_extra={"x-cockpit-scope": ["account", "org", "team", "user"]},
    ),
]
MemberScope = Annotated[
    str,
    Field(
        pattern=_scope_pattern(_ORG, _TEAM, _USER),
        description="org:ORG, team:ORG/TEAM or user:EMAIL.",
        json_schema_extra={"x-cockpit-scope": ["org", "team", "user"]},
    ),
]
AssignScope = Annotated[
    str,
    Field(
        pattern=_scope_pattern("account", _ORG, _TEAM, _USER, _AGENT),
        description="account, org:ORG, team:ORG/TEAM, user:EMAIL or agent:NAME.",
        json_schema_extra={"x-cockpit-scope": ["account", "org", "team", "user", "agent"]},
    ),
]
BudgetScope = Annotated[
    str,
    Field(
        pattern=_scope_pattern("pool", _ORG, _TEAM, _USER),
        description="pool, org:ORG, team:ORG/TEAM or user:EMAIL.",
        json_schema_extra={"x-cockpit-scope": ["pool", "org", "team", "user"]},
    ),
]
EntityRef = Annotated[
    str,
    Field(
        pattern=rf"^(agent|connection):{_NAME}$",
        description="agent:NAME or connection:NAME.",
    ),
]

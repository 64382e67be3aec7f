"""Zitadel → the actual side of an account's roles and grants, in a few paged searches.

Roles and grants of the project come in pages of 1,000; people are looked up by e-mail in
batches (or taken from the account's `zitadel.users`). Only what the account owns is kept:
the roles its mappings name (or that carry its prefix), the grants of its own people.
"""

from __future__ import annotations

from typing import Iterable

from cockpit.zitadel.desired import ActualGrant, ActualZitadel, ProjectTarget, RoleSpec
from cockpit.zitadel.client import ZitadelClient


def read_zitadel(client: ZitadelClient, target: ProjectTarget, emails: Iterable[str]) -> ActualZitadel:
    owned = target.owned_keys
    roles = {
        role.key: RoleSpec(role.key, role.display_name, role.group)
        for role in client.list_project_roles(target.project_id)
        if role.key in owned or (target.prefix and role.key.startswith(target.prefix))
    }
    wanted = sorted({email.lower() for email in emails})
    user_ids = {email: target.users[email] for email in wanted if email in target.users}
    missing = [email for email in wanted if email not in user_ids]
    if missing:
        user_ids.update({e.lower(): uid for e, uid in client.search_users_by_email(missing).items() if uid})
    by_user = {grant.user_id: grant for grant in client.list_user_grants(target.project_id)}
    grants = {
        email: ActualGrant(by_user[user_id].id, user_id, frozenset(by_user[user_id].role_keys))
        for email, user_id in user_ids.items()
        if user_id in by_user
    }
    return ActualZitadel(roles, user_ids, grants)

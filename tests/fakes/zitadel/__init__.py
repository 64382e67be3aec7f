"""A fake Zitadel on a loopback port, speaking the documented wire format.

Contract: `/work/shared/reference/zitadel-api.md` (wire format §1, auth §2–§3, endpoints §4,
pagination §4.7, consistency §6, fake checklist §8). A default org ("Acme",
`fake.default_org_id`, domain `acme.localhost`) exists from the start.

    with FakeZitadel(token_lifetime=43199) as fake:             # fake.url is the issuer
        # seeding (visible at once, not subject to search lag)
        org = fake.add_org("Other")                              # -> org id
        project = fake.add_project(org_id=org)                   # -> project id
        fake.add_role(project, "admin", "Administrator", group="ops")
        alice = fake.add_user("alice@acme.example", org_id=org)  # -> user id
        fake.add_grant(alice, project, ["admin"])                # -> grant id
        fake.add_service_account("cockpit", "s3cret")            # client_credentials; -> user id
        fake.add_service_account("limited", "x", orgs=[org])     # ORG_OWNER on `org` only
        key_file = fake.add_service_account_key("cockpit")       # JWT-profile key file
        fake.add_pat("pat-token", orgs=())                       # a PAT without permissions
        fake.add_api_app("api", "secret", project)               # may call /oauth/v2/introspect

        # tokens and keys
        fake.sign_token({"sub": alice, "aud": [project]})        # RS256, kid, iss = fake.url
        fake.user_token(alice, project)                          # with role claims from grants
        fake.roles_claim(alice, project); fake.kid; fake.jwks()
        fake.rotate_signing_key(); fake.expire_tokens(); fake.advance(3600)

        # switches (thread-safe)
        fake.fail_next(2, status=429, retry_after=1)             # next 2 requests, nothing done
        fake.fail_next(1, after_commit=True)                     # next write commits, answers 503
        fake.fail_ratio(0.2, statuses=(429, 503), seed=7, lost_response_ratio=0.1)
        fake.search_lag(2); fake.search_lag(seconds=5); fake.catch_up()
        fake.delay = 0.5
        fake.conflict_on_concurrent_writes = True
        fake.reset_faults()

        # inspection
        fake.roles(project); fake.grants(project)
        fake.requests                                            # [(method, path, status)]
        fake.count("POST", "/management/v1/projects/*", status=429)
        fake.stop(); fake.start()                                # down and up, same port

Modules: `store` (records, command/query sides, lag), `domain` (Zitadel's rules), `auth` (keys,
JWTs, tokens), `oidc` (discovery, JWKS, token, introspection), `faults` (fault injection),
`wire` (protojson conventions), `errors` (codes and body shapes), `routing`, `api_v1`
(Management v1 REST), `api_v2` (v2 REST and Connect), `app` (`FakeZitadel`).
"""

from .app import FakeZitadel
from .errors import decode_error_detail

__all__ = ["FakeZitadel", "decode_error_detail"]

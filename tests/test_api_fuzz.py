"""API fuzzing (hardening issue, "API fuzzing"): Schemathesis against the OpenAPI document of
`cockpit serve`, called in-process (ASGI) over a database migrated and applied with
`examples/acme` plus the `globex` tenant of `harness.tenants`.

Every operation the document lists (so routes added later are fuzzed without touching this
file; `EXCLUDED` names the ones that would call an upstream LLM) is called by every kind of
caller (`CALLERS`): nobody, garbage credentials, the master key with and without an account,
a virtual key of each role and domain, and Zitadel tokens signed by the fake's JWKS key.
Requests are generated from the document (valid data, and invalid data that must be refused),
with path and query parameters sometimes replaced by real names and ids of acme *and* globex,
so the fuzzer reaches stored rows and tries the other tenant's.

Each response must:
- not be a server error (5xx);
- have a status code, content type, headers and body the document declares for the operation;
- be a 4xx when the request broke the document (negative data);
- show nothing of globex (a name, an e-mail, an id) to a caller of acme; what the request
  itself sent is removed first, so an echo is no leak (the leak scan of `test_server_security`);
- not be a 2xx to a caller without a valid credential, outside the public routes.

- for a list (an operation taking `limit` and `offset`), be the `{"items": [...], "total": N}`
  envelope with at most `limit` items, unless the query named one thing (the document says
  only "an object" for most 200s).

The CI slice generates `COCKPIT_FUZZ_EXAMPLES` (default 2) requests per operation and
generation mode, each sent as every caller (invalid ones as `NEGATIVE_CALLERS`), with a fixed
seed (`COCKPIT_FUZZ_SEED`), on SQLite, and one per operation and mode, sent as five callers,
on PostgreSQL. A long
run: `COCKPIT_FUZZ_EXAMPLES=200 pytest tests/test_api_fuzz.py -k sqlite`, or
`python tests/bench/bench_api_fuzz.py --examples 200 [--json PATH]`, which prints the number
of requests, operations and failures.

Below the fuzzer, one test per problem it found, pinned without randomness.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup

from cockpit.keys import create_key
from cockpit.server.app import create_app
from cockpit.store.engine import create_engine_for
from cockpit.store.migrate import upgrade
from fakes.zitadel import FakeZitadel
from harness.cockpit import SECRET_KEY, Cockpit
from harness.tenants import GLOBEX_SECRETS, GLOBEX_WORDS, TenantRows, parameter_values, tenant_rows, write_tenants

EXAMPLES = int(os.environ.get("COCKPIT_FUZZ_EXAMPLES", "2"))
SEED = int(os.environ.get("COCKPIT_FUZZ_SEED", "7207"))
MASTER = "mk-api-fuzz-3c9e51d0b2"

EXCLUDED = frozenset({"POST /v1/chat/completions"})
"""Operations that call an upstream LLM: fuzzing them would send traffic out (or need a fake
upstream); the LLM proxy's own tests cover them."""

PUBLIC = frozenset({"/health", "/health/liveliness", "/health/readiness", "/v1/me/context", "/v1/auth/zitadel/status"})
"""Routes that answer 200 to anybody (with the empty context when there is no credential)."""

EDGE_STRINGS = ["\x00", "acme\x00", "%", "_", "'", "\\", "💥", "x" * 3000]
"""Mixed into every pool of real values: NUL (PostgreSQL refuses it in text), LIKE and quote
characters, a non-BMP character, a long string."""

GLOBAL_ROUTES = ("/v1/accounts", "/v1/super/", "/v1/budgets/account-allocation", "/metrics")
"""Super-admin routes over every account (and the platform's metrics): a super admin naming acme still sees globex there."""

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)


# -- the world: two tenants applied, keys issued, a fake Zitadel -----------------------------------


@dataclass(frozen=True)
class Caller:
    """Who calls: fixed headers, or headers drawn per request (`fuzzed`). `acme_only`: the
    caller must never see globex; `authenticated`: may see more than the public routes."""

    name: str
    headers: dict[str, str]
    acme_only: bool = True
    authenticated: bool = True
    super_admin: bool = False
    fuzzed: bool = False


@dataclass
class World:
    engine: sa.Engine
    app: Any
    acme: TenantRows
    globex: TenantRows
    callers: list[Caller]
    needles: set[str] = field(default_factory=set)
    values: dict[str, list[str]] = field(default_factory=dict)


KEYS = {
    # caller name: (user, domain, role)
    "key account_admin": ("ines.garcia@acme.com", None, None),
    "key account_admin console": ("ines.garcia@acme.com", "console", None),
    "key console_org_admin": ("rahul.mehta@acme.com", "console", "console_org_admin"),
    "key copilot_org_admin copilot": ("alice.nguyen@acme.com", "copilot", "copilot_org_admin"),
    "key console_team_admin console": ("dmitri.volkov@acme.com", "console", "console_team_admin"),
    "key copilot_team_admin copilot": ("dmitri.volkov@acme.com", "copilot", "copilot_team_admin"),
    "key end_user": ("grace.kim@acme.com", None, "end_user"),
}


def callers(engine: sa.Engine, fake: FakeZitadel) -> list[Caller]:
    found = [
        Caller("nobody", {}, authenticated=False),
        Caller("garbage credentials", {}, authenticated=False, fuzzed=True),
        Caller("master key", {"Authorization": f"Bearer {MASTER}"}, acme_only=False, super_admin=True),
        Caller("master key, X-Account-Id acme", {"Authorization": f"Bearer {MASTER}", "X-Account-Id": "acme"}, super_admin=True),
    ]
    for name, (user, domain, role) in KEYS.items():
        key = create_key(engine, "acme", user, domain=domain, role=role).key
        found.append(Caller(name, {"Authorization": f"Bearer {key}"}, fuzzed=True))
    zitadel = {
        "zitadel account_admin": {"sub": "u-ines", "alchemi:account_id": "acme", "urn:zitadel:iam:org:project:roles": {"acme_account_admin": {}}},
        "zitadel console account_admin": {
            "sub": "u-rahul", "alchemi:account_id": "acme", "roles": ["account_admin"], "product_domains_allowed": ["console"],
        },
        "zitadel copilot scope": {"sub": "u-alice", "alchemi:account_id": "acme", "scope": "openid copilot:admin"},
        "zitadel end_user": {"sub": "u-grace", "alchemi:account_id": "acme", "roles": ["end_user"]},
    }
    for name, claims in zitadel.items():
        found.append(Caller(name, {"Authorization": f"Bearer {fake.sign_token(claims)}"}, fuzzed=True))
    super_token = fake.sign_token({"sub": "u-root", "roles": ["super_admin"], "alchemi:account_id": "acme"})
    found.append(Caller("zitadel super_admin of acme", {"Authorization": f"Bearer {super_token}"}, super_admin=True))
    return found


def needles(acme: TenantRows, globex: TenantRows) -> set[str]:
    """What only globex's data holds: ids, e-mails, names not shared with acme, words, secrets."""
    acme_names = {n.lower() for names in acme.names_by_table.values() for n in names}
    names = {n.lower() for names in globex.names_by_table.values() for n in names} - acme_names - {"global"}
    found = globex.ids | {e.lower() for e in globex.emails} | names | {w.lower() for w in GLOBEX_WORDS}
    found |= {v.lower() for v in GLOBEX_SECRETS.values()}
    return {n for n in found if len(n) >= 5}


def known_values(acme: TenantRows, globex: TenantRows) -> dict[str, list[str]]:
    """Real values per parameter stem, of both tenants, for the fuzzer to mix in."""
    values: dict[str, list[str]] = {}
    for rows, name in ((acme, "acme"), (globex, "globex")):
        for stem, found in parameter_values(rows, name).items():
            values.setdefault(stem, []).extend(v for v in found if v not in values.get(stem, []))
    values |= {
        "domain": ["console", "copilot", "all", "iam", "billing"],
        "scope_type": ["account", "org", "team", "user", "agent", "pool"],
        "by": ["agent", "llm", "connection", "guardrail"],
        "entity_type": ["agent", "connection"],
        "status": ["active", "suspended"],
        "connection_type": ["openapi", "mcp", "composio", "integration"],
        "guard_type": ["pii", "globex-lair-guard"],
        "feature": ["image_generation", "create_agents"],
    }
    for pool in values.values():
        pool.extend(EDGE_STRINGS)
    values["preset"] = values.get("preset", []) + ["globex-lair-guard", "globex-console-guard"]
    values["listing"] = values.get("listing", []) + ["agent:volcano-lair-bot", "agent:helpdesk"]
    return values


@contextlib.contextmanager
def world_over(url: str, root: Path) -> Iterator[World]:
    """Migrate `url`, apply acme and globex from `root`, issue keys; the app over it, with a
    fake Zitadel as the token issuer."""
    root.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    with pytest.MonkeyPatch.context() as monkeypatch:
        cockpit = Cockpit(url, root, monkeypatch)
        write_tenants(cockpit.tenant)
        result = cockpit.apply()
        assert result.exit_code == 0, result.output
        engine = create_engine_for(url)
        try:
            with FakeZitadel() as fake:
                environ = {"COCKPIT_MASTER_KEY": MASTER, "ZITADEL_ISSUER": fake.url, "COCKPIT_SECRET_KEY": SECRET_KEY}
                app = create_app(engine, environ)
                acme, globex = tenant_rows(engine, "acme"), tenant_rows(engine, "globex")
                try:
                    yield World(engine, app, acme, globex, callers(engine, fake), needles(acme, globex), known_values(acme, globex))
                finally:
                    # Schemathesis started the app's lifespan (the proxy's background work) and
                    # keeps it for the process: end it with the world.
                    from schemathesis.python.asgi import shutdown_lifespans

                    shutdown_lifespans()
        finally:
            engine.dispose()


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh database on the test server (psycopg URL), dropped afterwards."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    from cockpit.store.engine import normalise_database_url

    server_url = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"cockpit_fuzz_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(normalise_database_url(server_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- the fuzzer -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    operation: str
    caller: str
    check: str
    status: int
    message: str
    request: str

    def key(self) -> tuple[str, str, str, str]:
        """Findings that differ only in generated values are one finding."""
        return (self.operation, self.check, str(self.status), re.sub(r"\s+", " ", self.message)[:120])

    def __str__(self) -> str:
        return f"{self.operation} as {self.caller} → {self.status}: [{self.check}] {self.message.strip()[:400]}\n    {self.request}"


@dataclass
class Report:
    requests: int = 0
    operations: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    distinct: dict[tuple[str, str, str, str], Finding] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)
        self.distinct.setdefault(finding.key(), finding)

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "operations": self.operations, "failures": len(self.distinct), "seconds": round(self.seconds, 1)}

    def text(self, limit: int = 60) -> str:
        shown = sorted(self.distinct.values(), key=lambda f: (f.check, f.operation, f.status))
        lines = [f"{len(self.distinct)} distinct failure(s) in {self.requests} requests ({len(self.findings)} failing requests):"]
        lines += [str(f) for f in shown[:limit]]
        return "\n".join(lines)


def stem(name: str) -> str:
    return re.sub(r"_(id|name|code)$", "", name) if name != "model_name" else name


def load_schema(app: Any) -> tuple[Any, list[Any], list[str]]:
    """The document as Schemathesis reads it, its fuzzable operations, and its errors."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations, errors = [], []
    for result in schema.get_all_operations():
        if not hasattr(result, "ok"):
            errors.append(str(result.err()))
            continue
        operation = result.ok()
        if f"{operation.method.upper()} {operation.path}" not in EXCLUDED:
            operations.append(operation)
    return schema, operations, errors


def with_known_values(case: Any, values: dict[str, list[str]]) -> st.SearchStrategy:
    """The case with each path and query parameter kept, or (half the time) replaced by a real
    value of either tenant."""
    replacements = {}
    for location in ("path", "query"):
        for name in (p.name for p in case.operation.iter_parameters() if p.location == location):
            pool = values.get(stem(name)) or values.get(name)
            if pool:
                replacements[(location, name)] = st.one_of(st.none(), st.sampled_from(pool))

    def apply(chosen: dict[tuple[str, str], str | None]) -> Any:
        for (location, name), value in chosen.items():
            if value is None:
                continue
            if location == "path":
                case.path_parameters = {**(case.path_parameters or {}), name: value}
            else:
                case.query = {**(case.query or {}), name: value}
        return case

    return st.fixed_dictionaries(replacements).map(apply)


HEADER_VALUE = re.compile(r"^[!-~\xa1-\xff][ -~\xa0-\xff]*$")
"""What an HTTP client sends as a header value: latin-1, no control characters, no leading space."""


def header_variants(world: World) -> st.SearchStrategy[tuple[str | None, dict[str, str]]]:
    """Per example: an X-Account-Id for the callers that hold a credential (none, globex or acme
    by name or id, or garbage) and made-up credentials for the `garbage credentials` caller, in
    each place a token is read."""
    latin = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f\x85"), min_size=1, max_size=60)
    latin = latin.filter(lambda v: HEADER_VALUE.match(v) is not None)
    account = st.one_of(
        st.sampled_from([None, "globex", str(world.globex.account_id), "acme", str(world.acme.account_id)]), latin
    )
    token = st.one_of(
        latin,
        st.sampled_from(["ck-", "ck-" + "A" * 43, MASTER + "x", MASTER.upper(), "Bearer", "eyJ.eyJ.x", "null", "ck-" + "é" * 40]),
        st.builds(lambda a, b, c: f"{a}.{b}.{c}", latin, latin, latin),
    )

    def garbage(place: str, value: str, prefix: bool, acc: str | None) -> dict[str, str]:
        headers = {"Cookie": f"token={value}"} if place == "Cookie" else {place: f"Bearer {value}" if prefix else value}
        return {**headers, **({"X-Account-Id": acc} if acc is not None else {})}

    made_up = st.builds(garbage, st.sampled_from(["Authorization", "x-litellm-api-key", "Cookie"]), token, st.booleans(), account)
    return st.tuples(account, made_up)


def caller_headers(caller: Caller, variant: tuple[str | None, dict[str, str]]) -> dict[str, str]:
    account, made_up = variant
    if not caller.fuzzed:
        return dict(caller.headers)
    if not caller.authenticated:
        return made_up
    return {**caller.headers, **({"X-Account-Id": account} if account is not None else {})}


def scan(body: str, sent: Sequence[str], secrets_: set[str]) -> list[str]:
    """The secrets in a body, after removing what the request itself sent (an echo is no leak)."""
    text = body.lower()
    for value in sorted({s for s in sent if s}, key=len, reverse=True):
        text = text.replace(value.lower(), "")
    return sorted(s for s in secrets_ if s in text)


def sent_values(case: Any, headers: dict[str, str]) -> list[str]:
    values: list[str] = []
    for container in (case.path_parameters or {}, case.query or {}):
        for value in container.values():
            values.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    values += [str(v) for v in headers.values()]
    values += case.formatted_path.split("/")
    return values


POSTGRES_CALLERS = ("nobody", "master key, X-Account-Id acme", "key account_admin", "key copilot_org_admin copilot", "zitadel console account_admin")
"""Who calls in the PostgreSQL slice of CI."""

NEGATIVE_CALLERS = ("nobody", "master key, X-Account-Id acme", "key account_admin", "zitadel account_admin")
"""Who sends the invalid requests: enough to pass and to fail every guard."""


def fuzz(world: World, *, examples: int = EXAMPLES, seed: int = SEED, modes: Sequence[GenerationMode] = tuple(GenerationMode),
         operations: Sequence[str] | None = None, callers: Sequence[str] | None = None,
         progress: Callable[[str], None] | None = None) -> Report:
    """Every operation (or those labelled in `operations`) in each generation mode, `examples`
    generated requests each, every request sent as every caller (or those named in `callers`;
    invalid requests as `NEGATIVE_CALLERS`)."""
    started = time.monotonic()
    _schema, found, errors = load_schema(world.app)
    chosen = [o for o in found if operations is None or f"{o.method.upper()} {o.path}" in operations]
    report = Report(operations=len(chosen))
    for error in errors:
        report.add(Finding("(document)", "-", "schema", 0, error, ""))
    checks = [getattr(schemathesis.checks, name) for name in CHECKS]
    for operation in chosen:
        label = f"{operation.method.upper()} {operation.path}"
        for mode in modes:
            senders = [c for c in world.callers if (callers is None or c.name in callers) and (mode.is_positive or c.name in NEGATIVE_CALLERS)]
            _fuzz_operation(world, report, operation, label, senders, mode, checks, examples, seed)
        if progress:
            progress(f"{label}: {report.requests} requests, {len(report.distinct)} distinct failures so far")
    report.seconds = time.monotonic() - started
    return report


def _fuzz_operation(world: World, report: Report, operation: Any, label: str, callers: Sequence[Caller], mode: GenerationMode,
                    checks: list[Any], examples: int, seed: int) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    if mode.is_positive:
        strategy = strategy.flatmap(lambda case: with_known_values(case, world.values))

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @hypothesis.given(case=strategy, variant=header_variants(world))
    def run(case: Any, variant: tuple[str | None, dict[str, str]]) -> None:
        for caller in callers:
            _send(world, report, operation, label, caller, case, caller_headers(caller, variant), checks)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        pass  # nothing to break: an operation without parameters has no invalid requests


def _send(world: World, report: Report, operation: Any, label: str, caller: Caller, case: Any, headers: dict[str, str], checks: list[Any]) -> None:
    report.requests += 1

    def add(check: str, status: int, message: str) -> None:
        report.add(Finding(label, caller.name, check, status, message, _curl(case, headers)))

    try:
        response = case.call(headers=headers)
    except Exception as exc:  # the app raised instead of answering: a server error
        add("exception", 0, f"{type(exc).__name__}: {exc}")
        return
    report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
    try:
        case.validate_response(response, checks=checks, headers=headers)
    except FailureGroup as group:
        for failure in group.exceptions:
            add(_check_name(failure), response.status_code, f"{failure.title}: {failure.message}")
    for check, message in _own_checks(world, caller, operation, case, headers, response):
        add(check, response.status_code, message)


def _check_name(failure: Failure) -> str:
    return (type(failure).checks or (type(failure).__name__,))[0]


def _curl(case: Any, headers: dict[str, str]) -> str:
    try:
        return case.as_curl_command(headers=headers)
    except Exception:  # pragma: no cover - a path that cannot be rendered
        return f"{case.method} {case.formatted_path} {case.query}"


def _own_checks(world: World, caller: Caller, operation: Any, case: Any, headers: dict[str, str], response: Any) -> Iterator[tuple[str, str]]:
    path = operation.path
    if caller.acme_only and not (caller.super_admin and path.startswith(GLOBAL_ROUTES)):
        found = scan(response.text, sent_values(case, headers), world.needles)
        if found:
            yield "tenant_isolation", f"a caller of acme sees globex's {found[:5]}: {response.text[:300]}"
    if not caller.authenticated and path not in PUBLIC and response.status_code < 400:
        yield "authentication", f"answered {response.status_code} without a valid credential: {response.text[:200]}"
    if response.status_code == 200 and {"limit", "offset"} <= {p.name for p in operation.iter_parameters()}:
        problem = _envelope_problem(response, case)
        if problem:
            yield "list_envelope", f"{problem}: {response.text[:200]}"


def _envelope_problem(response: Any, case: Any) -> str | None:
    """What is wrong with a list's `{"items": [...], "total": N}`, if anything."""
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    if not isinstance(body, dict):
        return "not an object"
    if "items" not in body:
        # One answer for a thing named in the query: `item` of /v1/budgets/account-allocation
        # with `account_id`, one decision of the effective views with `model_name`/`feature_code`.
        return None if body.get("item") is not None or "model_name" in body or "feature_code" in body else "no items list"
    items, total = body.get("items"), body.get("total")
    if not isinstance(items, list) or not isinstance(total, int) or isinstance(total, bool):
        return "no items list and total count"
    limit = (case.query or {}).get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool):
        if len(items) > max(1, min(limit, 1000)):
            return f"{len(items)} items for limit={limit}"
    if total < len(items):
        return f"total {total} < {len(items)} items shown"
    return None


# -- the tests ------------------------------------------------------------------------------------


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)],
)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        with world_over(f"sqlite:///{root / 'cockpit.db'}", root) as built:
            yield built
        return
    server = os.environ.get("COCKPIT_TEST_DATABASE_URL", "").strip()
    if not server:
        message = "COCKPIT_TEST_DATABASE_URL is not set: no PostgreSQL server to test against"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with postgres_database(server) as url, world_over(url, root) as built:
        yield built


def test_the_document_lists_every_route_and_the_fuzzer_reaches_them(world: World) -> None:
    _schema, operations, errors = load_schema(world.app)
    assert not errors, errors
    labels = {f"{o.method.upper()} {o.path}" for o in operations}
    assert len(labels) >= 50 and {"GET /v1/me/context", "GET /v1/copilot/agents/{agent}", "GET /v1/audit"} <= labels
    assert not labels & EXCLUDED
    assert {c.name for c in world.callers} >= {"nobody", "master key", *KEYS, "zitadel account_admin"}


def test_fuzz_every_operation_as_every_caller(world: World, request: pytest.FixtureRequest) -> None:
    on_sqlite = request.node.callspec.params["world"] == "sqlite"
    # PostgreSQL: what differs there is the database, so fewer requests, from callers who pass
    # the guards (and one who does not).
    report = fuzz(world, examples=EXAMPLES) if on_sqlite else fuzz(world, examples=max(1, EXAMPLES // 2), callers=POSTGRES_CALLERS)
    print(json.dumps(report.summary()), dict(sorted(report.statuses.items())))
    # Controls: the requests reached stored data (200s, and 404s for names no tenant has), and
    # the guards (403s), not only the parameter validation (422).
    assert report.statuses.get(200, 0) > report.requests // 10, report.statuses
    assert report.statuses.get(404, 0) and report.statuses.get(403, 0) and report.statuses.get(422, 0), report.statuses
    assert not report.distinct, report.text()


# -- what the fuzzer found, pinned ----------------------------------------------------------------

FOREIGN_TAGS = frozenset({"proxy"})
"""Operations that answer refusals in another shape (the LLM proxy speaks OpenAI's errors)."""


def test_every_guarded_route_documents_its_refusals() -> None:
    """Found by the fuzzer: the routes answered 403, 404 and 400 that the document did not list
    (only 200 and 422), so a client generated from it knew none of the refusals."""
    spec = create_app(sa.create_engine("sqlite://"), {}).openapi()
    refusal = {"$ref": "#/components/schemas/Refusal"}
    assert spec["components"]["schemas"]["Refusal"]["required"] == ["detail"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if FOREIGN_TAGS & set(operation.get("tags", ())):
                continue
            responses = operation["responses"]
            for status, answer in responses.items():
                if status in ("400", "403", "404"):
                    assert answer["content"]["application/json"]["schema"] == refusal, (method, path, status)
            if path not in PUBLIC:
                assert "403" in responses, f"{method.upper()} {path}: guarded, but 403 is not documented"
            if "{" in path:
                assert "404" in responses, f"{method.upper()} {path}: names a row, but 404 is not documented"
    for path, status in {"/v1/copilot/models/effective": "404", "/v1/features/effective": "400", "/v1/audit": "400", "/v1/budgets/copilot/alerts": "404"}.items():
        assert status in spec["paths"][path]["get"]["responses"], path


def test_an_offset_past_every_row_is_an_empty_page_not_a_server_error(migrated_url: str) -> None:
    """Found by the fuzzer: `offset=19346335694792306688` (past a signed 64-bit integer) made
    SQLite raise OverflowError and PostgreSQL `bigint out of range`: a 500."""
    app = create_app(create_engine_for(migrated_url), {"COCKPIT_MASTER_KEY": MASTER})
    client = TestClient(app)
    master = {"Authorization": f"Bearer {MASTER}"}
    for offset in (2**63 - 1, 2**63, 19346335694792306688, 10**40):
        for path in ("/v1/accounts", "/v1/super/models", "/v1/budgets/account-allocation"):
            response = client.get(path, params={"offset": offset}, headers=master)
            assert (response.status_code, response.json()["items"]) == (200, []), (path, offset, response.text)


def test_time_parameters_take_iso_8601_not_numbers() -> None:
    """Found by the fuzzer: `since=1.0971944111657122e-219` was accepted, as pydantic reads a
    number as seconds since 1970; the document says `format: date-time`, and `since=20240101`
    silently meant 1970-08-23."""
    client = TestClient(create_app(sa.create_engine("sqlite://"), {"COCKPIT_MASTER_KEY": MASTER}))
    master = {"Authorization": f"Bearer {MASTER}"}  # no account: a valid request stops at the guard (403)
    for path in ("/v1/audit", "/v1/costs/breakdown"):
        for name in ("since", "until"):
            for number in ("20240101", "1.0971944111657122e-219", "-5", "1700000000"):
                response = client.get(path, params={name: number}, headers=master)
                assert response.status_code == 422 and "not a number" in response.text, (path, name, number, response.text)
            for moment in ("2026-01-31T00:00:00Z", "2026-01-31T08:30:00+02:00", "2026-01-31T00:00:00"):
                response = client.get(path, params={name: moment}, headers=master)
                assert response.status_code == 403, (path, name, moment, response.text)
    spec = client.app.openapi()
    since = next(p for p in spec["paths"]["/v1/audit"]["get"]["parameters"] if p["name"] == "since")
    assert {"type": "string", "format": "date-time"} in since["schema"]["anyOf"]


def test_a_nul_character_in_a_parameter_is_refused_not_a_server_error(migrated_url: str) -> None:
    """Found by fuzzing on PostgreSQL: `%00` in any path or query parameter, or in the master
    key's X-Account-Id, reached PostgreSQL, which refuses NUL in text (DataError: a 500)."""
    app = create_app(create_engine_for(migrated_url), {"COCKPIT_MASTER_KEY": MASTER})
    client = TestClient(app)
    master = {"Authorization": f"Bearer {MASTER}"}
    for path, params in (
        ("/v1/accounts", {"status": "active\x00"}),
        ("/v1/accounts/acme%00", {}),
        ("/v1/budgets/account-allocation", {"account_id": "\x00"}),
        ("/v1/copilot/users", {"email": "a\x00@acme.com"}),
        ("/v1/audit", {"actor": "\x00"}),
    ):
        response = client.get(path, params=params, headers=master)
        assert response.status_code == 400 and "NUL" in response.json()["detail"], (path, response.text)
    # The account header goes through the tenant resolver, before any route.
    context = app.state.resolver.resolve(MASTER, "acme\x00")
    assert context.is_super_admin and context.account_id is None

"""What the tests share, in one place: start here when writing a test.

- `harness.cockpit`: `Cockpit` (the CLI run in a tenant directory against one database),
  `BASE` (a small tenant with every kind of resource), `EXAMPLES` (the `examples/` directory),
  `SECRET_KEY`, and `snapshot` (every row of every table: what "nothing was written"
  compares). Re-exported here: `from harness import BASE, Cockpit`.
- `harness.proxy`: the proxy's tenant (exact prices), `cockpit serve` in-process
  (`InProcessServer`) or as a subprocess (`ServeProcess`), virtual keys (`issue_key`), `chat`.
- `harness.tenants`: two tenants for the read API's isolation tests (`examples/acme` and
  `globex`), their rows, and `route_requests` (every GET route of the OpenAPI document).
- `harness.lists_api`, `harness.budgets_api`: the applied two-account worlds the read API's
  tests query (lists and effective answers; budgets, costs and audit), each with its `Api`.
- `harness.redis_db`: `REDIS_URL`, this run's own Redis database (runs on one machine do not
  flush each other's counters).
- `harness.crash`: crash-safety trials (`cockpit apply` SIGKILLed on PostgreSQL), shared by
  `test_crash_safety.py` and `bench/bench_crash.py`.

Elsewhere in `tests/`: `conftest.py` holds the shared fixtures (`database_url` runs a test on
SQLite and on PostgreSQL; `migrated_url`; `cockpit`; `upstream`, the fake OpenAI provider) and
the CI guard that PostgreSQL really ran; `fakes/` holds in-process fakes of the external
services (OpenAI, Zitadel, OpenObserve); `golden/` the expected plan renderings; `bench/`
benchmarks run on demand. `tests/` is on `sys.path` (pytest puts the directory of a rootdir
conftest without `__init__.py` there), so a test imports `harness.*` and `fakes.*` directly.
"""

from harness.cockpit import BASE, EXAMPLES, SECRET_KEY, Cockpit

__all__ = ["BASE", "EXAMPLES", "SECRET_KEY", "Cockpit"]

"""Audit events reach OpenObserve batched, complete and once; failures are reported, never raised.

Everything runs against `FakeOpenObserve`, a real HTTP server on loopback that answers as
OpenObserve's JSON ingestion API does; the shipping code runs its real httpx transport.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fakes.openobserve import FakeOpenObserve

from cockpit.audit import OpenObserveConfigError, OpenObserveSettings, ShipResult, ship

USER = "audit@acme.com"
PASSWORD = "s3cret-Pa55word-never-shown"
ORG = "acme_org"
STREAM = "cockpit_audit"
FAST = {"backoff": 0.01}


def audit_events(count: int, **extra: object) -> list[dict]:
    return [
        {
            "id": str(uuid.uuid4()),
            "created_at": f"2026-11-25T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "account": "acme",
            "domain": "copilot",
            "actor": "ci@acme.com",
            "action": "update",
            "kind": "Agent",
            "key": f"helpdesk-{i}",
            "before": {"description": "old"},
            "after": {"description": "new", "secret": "(sensitive)"},
            "plan_id": "plan-1",
            "run_id": "run-1",
            "commit": "47b1afd",
            **extra,
        }
        for i in range(count)
    ]


@pytest.fixture
def fake() -> Iterator[FakeOpenObserve]:
    with FakeOpenObserve(user=USER, password=PASSWORD) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def settings_for(fake: FakeOpenObserve, *, password: str = PASSWORD) -> OpenObserveSettings:
    return OpenObserveSettings(url=fake.url, user=USER, password=password, org=ORG, stream=STREAM)


def ids(records: list[dict]) -> list[str]:
    return [record["id"] for record in records]


# -- delivery ---------------------------------------------------------------------------------


def test_events_arrive_in_batches_complete_and_in_order(fake, client):
    events = audit_events(1200)

    result = ship(events, settings_for(fake), client=client, batch_size=500)

    assert result == ShipResult(sent=1200, failed=0, error=None, answered=1200)
    assert result.ok
    assert [(r.path, r.record_count, r.status) for r in fake.requests] == [
        (f"/api/{ORG}/{STREAM}/_json", 500, 200),
        (f"/api/{ORG}/{STREAM}/_json", 500, 200),
        (f"/api/{ORG}/{STREAM}/_json", 200, 200),
    ]
    assert fake.records(ORG, STREAM) == events


def test_without_a_client_ship_makes_and_closes_its_own(fake):
    events = audit_events(3)

    assert ship(events, settings_for(fake)) == ShipResult(sent=3, failed=0, answered=3)
    assert fake.records(ORG, STREAM) == events


def test_no_events_sends_nothing(fake, client):
    assert ship([], settings_for(fake), client=client) == ShipResult(sent=0, failed=0)
    assert fake.requests == []


def test_values_json_cannot_spell_are_sent_as_text(fake, client):
    when = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
    event_id = uuid.uuid4()
    events = audit_events(1, id=event_id, after={"renewed_at": when})

    assert ship(events, settings_for(fake), client=client).ok
    [record] = fake.records(ORG, STREAM)
    assert record["id"] == str(event_id)
    assert record["after"] == {"renewed_at": "2026-11-25T10:00:00+00:00"}


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 500, 502, 429])
def test_retries_overload_and_server_errors_then_succeeds_without_duplicates(fake, client, status):
    events = audit_events(700)
    fake.fail_next(2, status=status)

    result = ship(events, settings_for(fake), client=client, batch_size=500, **FAST)

    assert result == ShipResult(sent=700, failed=0, answered=700)
    assert [(r.record_count, r.status) for r in fake.requests] == [
        (None, status),
        (None, status),
        (500, 200),
        (200, 200),
    ]
    assert ids(fake.records(ORG, STREAM)) == ids(events)


def test_429_retry_after_is_honoured(fake, client):
    fake.fail_next(1, status=429, retry_after=1)

    started = time.monotonic()
    result = ship(audit_events(2), settings_for(fake), client=client, **FAST)

    assert result.ok
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in fake.requests] == [429, 200]


def test_gives_up_after_max_attempts_and_says_so(fake, client):
    fake.fail_next(10, status=503)
    events = audit_events(1200)

    result = ship(events, settings_for(fake), client=client, max_attempts=3, **FAST)

    assert len(fake.requests) == 3  # the first batch, three times; later batches not tried
    assert result.sent == 0 and result.failed == 1200
    assert result.error == (
        f"OpenObserve at {fake.url} answered HTTP 503 (Service Unavailable) (3 attempts); "
        "1200 audit events were not shipped; they are in the audit_events table"
    )


def test_failure_after_a_delivered_batch_counts_both(fake, client):
    events = audit_events(1200)
    fake.fail_next(5, status=503, after=1)

    result = ship(events, settings_for(fake), client=client, max_attempts=2, **FAST)

    assert (result.sent, result.failed, result.answered) == (500, 700, 500)
    assert [(r.record_count, r.status) for r in fake.requests] == [
        (500, 200),
        (None, 503),
        (None, 503),
    ]
    assert ids(fake.records(ORG, STREAM)) == ids(events[:500])
    assert result.error.endswith(
        "700 audit events were not shipped; they are in the audit_events table"
    )


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_other_client_errors_are_not_retried(fake, client, status):
    fake.fail_next(1, status=status)

    result = ship(audit_events(600), settings_for(fake), client=client, batch_size=500, **FAST)

    assert [r.status for r in fake.requests] == [status]
    assert (result.sent, result.failed) == (0, 600)
    assert f"HTTP {status}" in result.error
    assert result.error.endswith(
        "600 audit events were not shipped; they are in the audit_events table"
    )


def test_wrong_credentials_are_not_retried_and_name_the_variables(fake, client):
    settings = settings_for(fake, password="wrong-" + PASSWORD)

    result = ship(audit_events(1200), settings, client=client, **FAST)

    assert [r.status for r in fake.requests] == [401]
    assert (result.sent, result.failed) == (0, 1200)
    assert result.error == (
        f"OpenObserve at {fake.url} refused the credentials of user '{USER}' (HTTP 401); "
        "check OPENOBSERVE_USER and OPENOBSERVE_PASSWORD; "
        "1200 audit events were not shipped; they are in the audit_events table"
    )
    assert fake.records(ORG, STREAM) == []


# -- partial failures and outages -------------------------------------------------------------


def test_records_openobserve_rejects_are_counted_not_retried(fake, client):
    six_hours_ago = int((time.time() - 6 * 3600) * 1_000_000)
    fresh, stale = audit_events(7), audit_events(3, _timestamp=six_hours_ago)

    result = ship(fresh + stale, settings_for(fake), client=client, **FAST)

    assert (result.sent, result.failed) == (7, 3)
    assert len(fake.requests) == 1
    assert result.error.startswith(
        f"OpenObserve rejected 3 of 10 audit events in stream {ORG}/{STREAM}: Too old data"
    )
    assert result.error.endswith(
        "3 audit events were not shipped; they are in the audit_events table"
    )
    assert ids(fake.records(ORG, STREAM)) == ids(fresh)


def test_server_down_is_a_result_not_an_exception(fake, client):
    url = fake.url
    fake.stop()

    result = ship(audit_events(12), settings_for(fake), client=client, **FAST)

    assert (result.sent, result.failed) == (0, 12)
    assert result.error == (
        f"OpenObserve unreachable at {url} (connection refused) (4 attempts); "
        "12 audit events were not shipped; they are in the audit_events table"
    )


def test_events_kept_while_down_ship_once_it_is_back(fake, client):
    events = audit_events(12)
    fake.stop()
    assert ship(events, settings_for(fake), client=client, max_attempts=1).failed == 12

    fake.start()
    assert ship(events, settings_for(fake), client=client).ok
    assert ids(fake.records(ORG, STREAM)) == ids(events)


def test_a_slow_server_times_out_into_a_result(fake, client):
    fake.delay = 1.0

    result = ship(
        audit_events(5),
        settings_for(fake),
        client=client,
        max_attempts=2,
        timeout=httpx.Timeout(0.2, connect=3.0),
        **FAST,
    )

    assert (result.sent, result.failed) == (0, 5)
    assert result.error == (
        f"OpenObserve at {fake.url} did not answer within 0.2 s (read timeout) (2 attempts); "
        "5 audit events were not shipped; they are in the audit_events table"
    )


def test_default_timeouts_are_connect_3_read_10():
    from cockpit.audit.openobserve import TIMEOUT

    assert (TIMEOUT.connect, TIMEOUT.read) == (3.0, 10.0)


# -- settings ---------------------------------------------------------------------------------

ALL = {
    "OPENOBSERVE_URL": "http://127.0.0.1:5080/",
    "OPENOBSERVE_USER": USER,
    "OPENOBSERVE_PASSWORD": PASSWORD,
    "OPENOBSERVE_ORG": ORG,
    "OPENOBSERVE_STREAM": STREAM,
}


def test_settings_from_a_complete_environment():
    settings = OpenObserveSettings.from_environment({**ALL, "PATH": "/usr/bin"})

    assert settings == OpenObserveSettings(
        url="http://127.0.0.1:5080", user=USER, password=PASSWORD, org=ORG, stream=STREAM
    )
    assert settings.ingest_url == f"http://127.0.0.1:5080/api/{ORG}/{STREAM}/_json"


@pytest.mark.parametrize("environ", [{}, {"PATH": "/usr/bin"}, {name: " " for name in ALL}])
def test_no_settings_means_no_shipping(environ):
    assert OpenObserveSettings.from_environment(environ) is None


def test_a_partial_environment_names_what_is_missing():
    environ = {k: v for k, v in ALL.items() if k not in ("OPENOBSERVE_ORG", "OPENOBSERVE_STREAM")}

    with pytest.raises(OpenObserveConfigError) as caught:
        OpenObserveSettings.from_environment(environ)

    message = str(caught.value)
    assert message.startswith(
        "OpenObserve audit shipping is partly configured: "
        "OPENOBSERVE_ORG, OPENOBSERVE_STREAM are not set."
    )
    assert PASSWORD not in message


def test_a_single_missing_variable_reads_well():
    environ = {**ALL, "OPENOBSERVE_PASSWORD": ""}

    with pytest.raises(OpenObserveConfigError, match="OPENOBSERVE_PASSWORD is not set"):
        OpenObserveSettings.from_environment(environ)


def test_a_url_that_is_not_http_is_an_error():
    with pytest.raises(OpenObserveConfigError, match="must be an http:// or https:// URL"):
        OpenObserveSettings.from_environment({**ALL, "OPENOBSERVE_URL": "127.0.0.1:5080"})


# -- the password stays out of every text -----------------------------------------------------


def test_password_is_not_in_repr():
    settings = OpenObserveSettings.from_environment(ALL)

    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)


@pytest.mark.parametrize("scenario", ["wrong password", "down", "503", "partial", "echo"])
def test_password_is_in_no_error_text(fake, client, scenario):
    settings = settings_for(fake)
    events = audit_events(3)
    if scenario == "wrong password":
        settings = settings_for(fake, password=PASSWORD + "-old")
    elif scenario == "down":
        fake.stop()
    elif scenario == "503":
        fake.fail_next(10, status=503)
    elif scenario == "partial":
        events = audit_events(3, _timestamp=1)
    elif scenario == "echo":  # a server that repeats what it was given must not leak it either
        settings = OpenObserveSettings(
            url=fake.url, user=USER, password="Bad Request", org=ORG, stream=STREAM
        )
        fake.fail_next(1, status=400)

    result = ship(events, settings, client=client, max_attempts=2, **FAST)

    assert result.failed == 3 and result.error
    assert settings.password not in result.error
    assert settings.password not in repr(result)
    assert PASSWORD not in result.error


# -- the fake follows the documented API ------------------------------------------------------


def test_fake_answers_like_openobserve(fake, client):
    endpoint = f"{fake.url}/api/{ORG}/{STREAM}/_json"

    ok = client.post(endpoint, json=[{"a": 1}, {"b": 2}], auth=(USER, PASSWORD))
    not_array = client.post(endpoint, json={"a": 1}, auth=(USER, PASSWORD))
    not_json = client.post(endpoint, content=b"{", auth=(USER, PASSWORD))
    no_auth = client.post(endpoint, json=[{"a": 1}])
    wrong_auth = client.post(endpoint, json=[{"a": 1}], auth=(USER, "nope"))
    elsewhere = client.post(f"{fake.url}/api/{ORG}/_search", json={}, auth=(USER, PASSWORD))

    assert ok.json() == {
        "code": 200,
        "status": [{"name": STREAM, "successful": 2, "failed": 0}],
    }
    assert (not_array.status_code, not_json.status_code) == (400, 400)
    assert (no_auth.status_code, wrong_auth.status_code) == (401, 401)
    assert elsewhere.status_code == 404
    assert fake.records(ORG, STREAM) == [{"a": 1}, {"b": 2}]
    assert fake.records(ORG, "other") == []


# -- catching up: events that did not reach OpenObserve go later, once --------------------------


def _openobserve_environment(monkeypatch: pytest.MonkeyPatch, fake: FakeOpenObserve) -> None:
    for name, value in {"OPENOBSERVE_URL": fake.url, "OPENOBSERVE_USER": USER, "OPENOBSERVE_PASSWORD": PASSWORD, "OPENOBSERVE_ORG": ORG, "OPENOBSERVE_STREAM": STREAM}.items():
        monkeypatch.setenv(name, value)


def test_cockpit_audit_ship_sends_what_an_outage_left_behind_once(cockpit, fake, monkeypatch):
    from harness import BASE

    _openobserve_environment(monkeypatch, fake)
    fake.stop()
    cockpit.write(BASE)
    applied = cockpit.apply()
    assert applied.exit_code == 0 and "were not shipped" in applied.output, applied.output
    written = cockpit.scalar("SELECT count(*) FROM audit_events")
    assert cockpit.scalar("SELECT count(*) FROM audit_events WHERE shipped_at IS NULL") == written > 0

    still_down = cockpit.run("audit", "ship")  # OpenObserve still failing: exit 1, nothing marked
    assert still_down.exit_code == 1 and f"{written} audit events were not shipped" in still_down.output, still_down.output
    assert PASSWORD not in still_down.output
    assert cockpit.scalar("SELECT count(*) FROM audit_events WHERE shipped_at IS NULL") == written

    fake.start()
    shipped = cockpit.run("audit", "ship")
    assert shipped.exit_code == 0, shipped.output
    assert f"{written} audit event(s) shipped to OpenObserve" in shipped.output
    records = fake.records(ORG, STREAM)
    assert len(records) == len({r["id"] for r in records}) == written
    assert cockpit.scalar("SELECT count(*) FROM audit_events WHERE shipped_at IS NULL") == 0

    again = cockpit.run("audit", "ship")
    assert again.exit_code == 0 and "No audit events wait to be shipped." in again.output
    assert len(fake.records(ORG, STREAM)) == written


def test_cockpit_audit_ship_without_openobserve_says_how_to_configure_it(cockpit, monkeypatch):
    for name in ("OPENOBSERVE_URL", "OPENOBSERVE_USER", "OPENOBSERVE_PASSWORD", "OPENOBSERVE_ORG", "OPENOBSERVE_STREAM"):
        monkeypatch.delenv(name, raising=False)
    result = cockpit.run("audit", "ship")
    assert result.exit_code == 1
    assert "OpenObserve is not configured: set OPENOBSERVE_URL" in result.output

"""Ship audit events to OpenObserve's JSON ingestion API, without ever failing an apply.

The `audit_events` table is the record; OpenObserve is a copy for search and alerting. So
shipping reports what happened in a `ShipResult` instead of raising: an apply that committed
must still succeed, and say that its events were not shipped and where they are.

`POST {url}/api/{org}/{stream}/_json`, HTTP basic auth, a JSON array of records, batched.
OpenObserve answers `{"code": 200, "status": [{"name": stream, "successful": N, "failed": M,
"error": "..."}]}`; records it counts as failed are not retried (it would answer the same), and
neither are other 4xx answers. 429, 5xx and network errors are retried with jittered
exponential backoff (honouring `Retry-After`, capped). Delivery is at least once: a batch
retried after a read timeout may have been stored the first time, so events carry their `id`.
`OPENOBSERVE_TIMEOUT` (seconds, default 10) bounds each request, so a service that accepts
connections but never answers costs at most about 4 × that per apply.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

URL_VARIABLE = "OPENOBSERVE_URL"
USER_VARIABLE = "OPENOBSERVE_USER"
PASSWORD_VARIABLE = "OPENOBSERVE_PASSWORD"
ORG_VARIABLE = "OPENOBSERVE_ORG"
STREAM_VARIABLE = "OPENOBSERVE_STREAM"
VARIABLES = (URL_VARIABLE, USER_VARIABLE, PASSWORD_VARIABLE, ORG_VARIABLE, STREAM_VARIABLE)
TIMEOUT_VARIABLE = "OPENOBSERVE_TIMEOUT"  # optional; not one of the five that turn shipping on

TIMEOUT = httpx.Timeout(10.0, connect=3.0)
MAX_RETRY_DELAY = 10.0


class OpenObserveConfigError(Exception):
    """The OPENOBSERVE_* variables are set only in part, or name an unusable URL."""


@dataclass(frozen=True)
class OpenObserveSettings:
    """Where and as whom to ship; the password is kept out of repr and every message."""

    url: str
    user: str
    password: str = field(repr=False)
    org: str
    stream: str
    timeout: float | None = None
    """Seconds per request (`OPENOBSERVE_TIMEOUT`); None: connect 3 s, read 10 s."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> OpenObserveSettings | None:
        """Settings when all five variables are set, None when none is; anything between is an
        error, so a typo does not silently turn shipping off."""
        values = {name: environ.get(name, "").strip() for name in VARIABLES}
        missing = [name for name, value in values.items() if not value]
        if len(missing) == len(VARIABLES):
            return None
        if missing:
            raise OpenObserveConfigError(
                f"OpenObserve audit shipping is partly configured: {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set. Set all of "
                f"{', '.join(VARIABLES)} to ship audit events, or none to keep them only in "
                "the database."
            )
        settings = cls(
            url=values[URL_VARIABLE].rstrip("/"),
            user=values[USER_VARIABLE],
            password=values[PASSWORD_VARIABLE],
            org=values[ORG_VARIABLE],
            stream=values[STREAM_VARIABLE],
            timeout=_timeout_from(environ),
        )
        parts = urlsplit(settings.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OpenObserveConfigError(
                f"{URL_VARIABLE} must be an http:// or https:// URL such as "
                f"http://127.0.0.1:5080, not {settings.display_url!r}."
            )
        return settings

    @property
    def request_timeout(self) -> httpx.Timeout:
        if self.timeout is None:
            return TIMEOUT
        return httpx.Timeout(self.timeout, connect=min(TIMEOUT.connect or 3.0, self.timeout))

    @property
    def ingest_url(self) -> str:
        org, stream = quote(self.org, safe=""), quote(self.stream, safe="")
        return f"{self.url.rstrip('/')}/api/{org}/{stream}/_json"

    @property
    def display_url(self) -> str:
        """The base URL as messages show it: without user info, scrubbed."""
        parts = urlsplit(self.url.rstrip("/"))
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return self.scrub(parts._replace(netloc=netloc).geturl())

    def scrub(self, text: str) -> str:
        """`text` with the password masked: every value a message quotes passes through here
        (server answers, exception text, names), so the password cannot reach a message."""
        return text.replace(self.password, "***") if self.password else text


@dataclass(frozen=True)
class ShipResult:
    """How many events OpenObserve accepted and how many it did not; `error` says why."""

    sent: int
    failed: int
    error: str | None = None
    answered: int = 0
    """How many events, from the first, were in batches OpenObserve answered (accepted, or
    refused as records it will never take): the ones not to send again."""

    @property
    def ok(self) -> bool:
        return self.failed == 0


@dataclass(frozen=True)
class _BatchOutcome:
    accepted: int
    rejected: int
    problem: str | None = None
    give_up: bool = False  # the service cannot take events now; do not try later batches
    answered: bool = False  # OpenObserve took the batch (and judged its records)


def ship(
    events: Sequence[dict[str, Any]],
    settings: OpenObserveSettings,
    *,
    client: httpx.Client | None = None,
    batch_size: int = 500,
    max_attempts: int = 4,
    backoff: float = 0.2,
    timeout: httpx.Timeout | None = None,
) -> ShipResult:
    """Send `events` in batches; never raises for a network or HTTP failure.

    `client` lets the caller choose the transport (tests pass one bound to a fake server);
    auth and `timeout` (default: the settings', else connect 3 s, read 10 s) are applied per
    request either way. After a batch that could not be delivered at all, the remaining batches
    are not attempted.
    """
    if batch_size < 1 or max_attempts < 1:
        raise ValueError("batch_size and max_attempts must be at least 1")
    if timeout is None:
        timeout = settings.request_timeout
    if not events:
        return ShipResult(sent=0, failed=0)
    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=timeout)
    sent = failed = answered = 0
    problems: list[str] = []
    try:
        for start in range(0, len(events), batch_size):
            batch = events[start : start + batch_size]
            outcome = _ship_batch(http, batch, settings, max_attempts, backoff, timeout)
            sent += outcome.accepted
            failed += outcome.rejected
            if outcome.answered and answered == start:
                answered += len(batch)
            if outcome.problem:
                problems.append(outcome.problem)
            if outcome.give_up:
                failed += len(events) - start - len(batch)
                break
    finally:
        if own_client:
            http.close()
    if not failed:
        return ShipResult(sent=sent, failed=0, answered=answered)
    if failed == 1:
        summary = "1 audit event was not shipped; it is in the audit_events table"
    else:
        summary = f"{failed} audit events were not shipped; they are in the audit_events table"
    return ShipResult(sent=sent, failed=failed, error="; ".join([*problems, summary]), answered=answered)


def _ship_batch(
    http: httpx.Client,
    batch: Sequence[dict[str, Any]],
    settings: OpenObserveSettings,
    max_attempts: int,
    backoff: float,
    timeout: httpx.Timeout,
) -> _BatchOutcome:
    body = json.dumps(list(batch), default=_json_default, ensure_ascii=False).encode()
    where = settings.display_url
    for attempt in range(1, max_attempts + 1):
        retry_after: float | None = None
        try:
            response = http.post(
                settings.ingest_url,
                content=body,
                headers={"Content-Type": "application/json"},
                auth=httpx.BasicAuth(settings.user, settings.password),
                timeout=timeout,
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            problem = f"OpenObserve URL {where!r} is not usable ({settings.scrub(str(exc))})"
            return _BatchOutcome(0, len(batch), problem, give_up=True)
        except httpx.TransportError as exc:
            problem = _describe_transport_error(exc, settings, timeout)
        except httpx.HTTPError as exc:  # e.g. a redirect loop: retrying will not help
            problem = f"OpenObserve at {where} failed: {settings.scrub(str(exc))}"
            return _BatchOutcome(0, len(batch), problem, give_up=True)
        else:
            if response.is_success:
                return _read_ingestion_answer(response, len(batch), settings)
            status = response.status_code
            if status != 429 and status < 500:
                problem = _describe_refusal(response, settings)
                return _BatchOutcome(0, len(batch), problem, give_up=True)
            problem = f"OpenObserve at {where} answered HTTP {status}"
            problem += _message_of(response, settings)
            retry_after = _retry_after(response)
        if attempt < max_attempts:
            time.sleep(_delay(attempt, backoff, retry_after))
    tries = f"{max_attempts} attempt{'s' if max_attempts != 1 else ''}"
    return _BatchOutcome(0, len(batch), f"{problem} ({tries})", give_up=True)


def _read_ingestion_answer(
    response: httpx.Response, batch_length: int, settings: OpenObserveSettings
) -> _BatchOutcome:
    """Count the records OpenObserve says it rejected; a 2xx without a status list took all."""
    try:
        answer = response.json()
    except ValueError:
        return _BatchOutcome(batch_length, 0, answered=True)
    statuses = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(statuses, list):
        return _BatchOutcome(batch_length, 0, answered=True)
    entries = [entry for entry in statuses if isinstance(entry, dict)]
    rejected = min(max(sum(int(entry.get("failed") or 0) for entry in entries), 0), batch_length)
    if not rejected:
        return _BatchOutcome(batch_length, 0, answered=True)
    errors = (str(entry["error"]) for entry in entries if entry.get("error"))
    reasons = "; ".join(dict.fromkeys(errors))
    problem = settings.scrub(
        f"OpenObserve rejected {rejected} of {batch_length} audit events in stream "
        f"{settings.org}/{settings.stream}" + (f": {reasons}" if reasons else "")
    )
    return _BatchOutcome(batch_length - rejected, rejected, problem, answered=True)


def _describe_transport_error(
    exc: httpx.TransportError, settings: OpenObserveSettings, timeout: httpx.Timeout
) -> str:
    where = settings.display_url
    if isinstance(exc, httpx.ConnectTimeout):
        within = _seconds(timeout.connect)
        return f"OpenObserve unreachable at {where} (no connection within {within})"
    if isinstance(exc, httpx.ReadTimeout):
        within = _seconds(timeout.read)
        return f"OpenObserve at {where} did not answer within {within} (read timeout)"
    if isinstance(exc, httpx.TimeoutException):
        return f"OpenObserve at {where} timed out ({type(exc).__name__})"
    text = settings.scrub(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        lowered = text.lower()
        if "refused" in lowered:
            text = "connection refused"
        elif any(hint in lowered for hint in ("not known", "nodename nor servname", "getaddrinfo")):
            text = "host name not found"
        return f"OpenObserve unreachable at {where} ({text})"
    return f"OpenObserve at {where} dropped the connection ({text})"


def _describe_refusal(response: httpx.Response, settings: OpenObserveSettings) -> str:
    where, status = settings.display_url, response.status_code
    if status in (401, 403):
        return (
            f"OpenObserve at {where} refused the credentials of user "
            f"{settings.scrub(settings.user)!r} (HTTP {status}); "
            f"check {USER_VARIABLE} and {PASSWORD_VARIABLE}"
        )
    if status == 404:
        return (
            f"OpenObserve at {where} has no ingestion endpoint "
            f"{settings.scrub(response.request.url.path)} (HTTP 404); "
            f"check {URL_VARIABLE} and {ORG_VARIABLE}"
        )
    return (
        f"OpenObserve at {where} rejected the audit events with HTTP {status}"
        + _message_of(response, settings)
    )


def _message_of(response: httpx.Response, settings: OpenObserveSettings) -> str:
    """OpenObserve's error body is {"code": ..., "message": ...}: quote the message, briefly."""
    try:
        answer = response.json()
    except ValueError:
        message: Any = response.text
    else:
        message = answer.get("message") or answer.get("error") if isinstance(answer, dict) else None
    message = " ".join(str(message or "").split())
    if len(message) > 200:
        message = message[:197] + "..."
    return f" ({settings.scrub(message)})" if message else ""


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None  # an HTTP date, or nothing: fall back to our own backoff


def _delay(attempt: int, backoff: float, retry_after: float | None) -> float:
    """Exponential backoff with jitter, so many appliers do not retry in step."""
    delay = backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, MAX_RETRY_DELAY)


def _timeout_from(environ: Mapping[str, str]) -> float | None:
    text = environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 600:  # also false for nan
        raise OpenObserveConfigError(
            f"{TIMEOUT_VARIABLE} must be a number of seconds between 0 and 600, such as 10, "
            f"got {text!r}."
        )
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)  # UUID, Decimal and the like


def _seconds(value: float | None) -> str:
    return "an unlimited time" if value is None else f"{value:g} s"

"""The server's Prometheus metric families and one recording function per event.

Recording sits on the hot path of every request, so each function looks its labelled
children up in a dict of its own (one tuple key, no `labels()` call and its lock after the
first time) and then only increments or observes: prometheus-client's own value lock is the
only lock taken. Labels are names an operator chose (route templates, endpoints, domains,
catalog models, account names, refusal codes), never e-mail addresses or keys.

Several worker processes (`cockpit serve --workers N`) share one scrape through
prometheus-client's multiprocess mode: `cockpit serve` makes a fresh directory and names it in
`PROMETHEUS_MULTIPROC_DIR` before any worker imports this module, each worker writes its
values there, and `exposition` merges them. Gauges say how they merge (`multiprocess_mode`).
A worker that died without stopping (killed, out of memory; uvicorn starts another) leaves its
live gauges' files behind, and its holds in flight would count for ever: each scrape removes
the live files of processes that no longer exist first (prometheus-client's
`mark_process_dead`, which it leaves to the server to call).

Families computed when scraped (budgets, from the database) are not here: they are collectors
the server adds to each scrape (`cockpit.server.metrics`).
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from cockpit import processes

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

disable_created_metrics()  # the `_created` series double a scrape's size and no alert reads them

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Whole requests: a cached read answers in a millisecond, a long generation in minutes."""
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
"""The gateway's own time: the target is under a millisecond at p50."""

HTTP_REQUESTS = Counter("cockpit_http_requests", "HTTP requests answered, by route template, method and status.", ("route", "method", "status"))
HTTP_DURATION = Histogram("cockpit_http_request_duration_seconds", "Time from a request's arrival to the end of its answer (streams included), by route template.", ("route",), buckets=LATENCY_BUCKETS)

LLM_REQUESTS = Counter("cockpit_llm_requests", "Gateway calls, by endpoint, domain, catalog model and status.", ("endpoint", "domain", "model", "status"))
LLM_DURATION = Histogram("cockpit_llm_request_duration_seconds", "A gateway call from arrival to its last byte, by endpoint and model.", ("endpoint", "model"), buckets=LATENCY_BUCKETS)
LLM_OVERHEAD = Histogram("cockpit_gateway_overhead_seconds", "The gateway's own share of a call: total time minus the time spent waiting on the upstream.", ("endpoint",), buckets=OVERHEAD_BUCKETS)
LLM_FIRST_CHUNK = Histogram("cockpit_llm_time_to_first_chunk_seconds", "From a streamed call's arrival to its first chunk sent to the client, by model.", ("model",), buckets=LATENCY_BUCKETS)
UPSTREAM_ERRORS = Counter("cockpit_upstream_errors", "Upstream failures, by model and kind (timeout, connect, rate_limited, invalid_request, server_error, stream_broken, ...).", ("model", "kind"))
TOKENS = Counter("cockpit_llm_tokens", "Tokens billed by the upstream, by account, model and direction (input or output).", ("account", "model", "direction"))
CREDITS = Counter("cockpit_credits", "Credits charged (the ledger's `credits`), by account and model.", ("account", "model"))
REFUSALS = Counter("cockpit_refusals", "Calls refused before the upstream, by account and reason (rate_limited, guardrail_blocked, insufficient_quota, ...).", ("account", "reason"))
RESERVATIONS = Gauge("cockpit_budget_reservations_in_flight", "Budget holds of calls still running.", multiprocess_mode="livesum")
SPOOL_DEPTH = Gauge("cockpit_ledger_spool_depth", "Ledger rows queued and not yet written to the database.", multiprocess_mode="livesum")
LEDGER_FAILURES = Counter("cockpit_ledger_write_failures", "Ledger batch writes that failed (their rows stay queued and are written again).")
SNAPSHOT_CHECKED = Gauge("cockpit_snapshot_checked_timestamp_seconds", "When an account's cached snapshot was last loaded or found current against the database (Unix time; age = time() - this).", ("account",), multiprocess_mode="livemax")

_http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_calls: dict[tuple[str, str, str, int], tuple[Any, Any, Any]] = {}
_first_chunk: dict[str, Any] = {}
_upstream: dict[tuple[str, str], Any] = {}
_usage: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
_refusals: dict[tuple[str, str], Any] = {}
_snapshots: dict[str, Any] = {}


def record_http(route: str, method: str, status: int, seconds: float) -> None:
    """One answered HTTP request (the request middleware calls it for every route)."""
    key = (route, method, status)
    children = _http.get(key)
    if children is None:
        children = _http[key] = (HTTP_REQUESTS.labels(route, method, str(status)), HTTP_DURATION.labels(route))
    children[0].inc()
    children[1].observe(seconds)


def record_call(endpoint: str, domain: str, model: str, status: int, total_seconds: float, upstream_seconds: float | None = None) -> None:
    """One finished gateway call: counted, its duration, and its overhead when the upstream
    was called (`upstream_seconds`: time spent waiting on it; None for calls refused first)."""
    key = (endpoint, domain, model, status)
    children = _calls.get(key)
    if children is None:
        children = _calls[key] = (LLM_REQUESTS.labels(endpoint, domain, model, str(status)), LLM_DURATION.labels(endpoint, model), LLM_OVERHEAD.labels(endpoint))
    children[0].inc()
    children[1].observe(total_seconds)
    if upstream_seconds is not None:
        children[2].observe(max(0.0, total_seconds - upstream_seconds))


def record_first_chunk(model: str, seconds: float) -> None:
    """A streamed call's first chunk went to the client `seconds` after the call arrived."""
    child = _first_chunk.get(model)
    if child is None:
        child = _first_chunk[model] = LLM_FIRST_CHUNK.labels(model)
    child.observe(seconds)


def record_upstream_error(model: str, kind: str) -> None:
    key = (model, kind)
    child = _upstream.get(key)
    if child is None:
        child = _upstream[key] = UPSTREAM_ERRORS.labels(model, kind)
    child.inc()


def record_usage(account: str, model: str, input_tokens: int, output_tokens: int, credits: float) -> None:
    """What one settled call billed: tokens and the credits its ledger row says."""
    key = (account, model)
    children = _usage.get(key)
    if children is None:
        children = _usage[key] = (TOKENS.labels(account, model, "input"), TOKENS.labels(account, model, "output"), CREDITS.labels(account, model))
    if input_tokens:
        children[0].inc(input_tokens)
    if output_tokens:
        children[1].inc(output_tokens)
    if credits:
        children[2].inc(float(credits))


def record_refusal(account: str, reason: str) -> None:
    """A call refused before the upstream; `reason` is the error code the caller got."""
    key = (account, reason)
    child = _refusals.get(key)
    if child is None:
        child = _refusals[key] = REFUSALS.labels(account, reason)
    child.inc()


def reservation_opened() -> None:
    RESERVATIONS.inc()


def reservation_closed() -> None:
    RESERVATIONS.dec()


def set_spool_depth(rows: int) -> None:
    SPOOL_DEPTH.set(rows)


def record_ledger_write_failure() -> None:
    LEDGER_FAILURES.inc()


def record_snapshot_checked(account: str, at: float) -> None:
    """An account's snapshot was loaded, or found current, at `at` (Unix time)."""
    child = _snapshots.get(account)
    if child is None:
        child = _snapshots[account] = SNAPSHOT_CHECKED.labels(account)
    child.set(at)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_VARIABLE))


def exposition(extra: Iterable[Any] = ()) -> bytes:
    """The text a scrape gets: every worker's values (merged in multiprocess mode, this
    process's otherwise) and the `extra` collectors, computed now."""
    if multiprocess():
        forget_dead_workers(os.environ[MULTIPROC_VARIABLE])
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    scraped = CollectorRegistry()
    for collector in extra:
        scraped.register(collector)
    return text + generate_latest(scraped)


_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def forget_dead_workers(directory: str) -> None:
    """Remove the live gauges' files of processes that are gone. A pid the system gave to
    another process since keeps its files (counted until that one ends): never the other way."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for pid in {int(found.group(1)) for found in map(_LIVE_FILE.fullmatch, names) if found}:
        if processes.is_gone(pid):
            mark_process_dead(pid, directory)

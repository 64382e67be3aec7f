"""One HTTP session with Zitadel's management API: retries, paging, counting, translation.

Policy only; the transport given to the constructor does the I/O. Every failure leaves as a
`ZitadelError` (httpx exceptions are translated here). The contract's §7 decides what is retried:
429, 503, 504 and network errors always, 500 and 502 only for reads (a write may have happened;
its caller re-checks instead), never 400, 401, 403, 404 or 409.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx

from .errors import ZitadelError, ZitadelUnavailable, error_from_response

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the documented maximum; 1001 is refused with 400 INVALID_ARGUMENT
RETRY_ALWAYS = frozenset({429, 503, 504})
RETRY_READS = frozenset({500, 502})  # a write may have happened; only reads are replayed
MAX_RETRY_AFTER = 60.0


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class ManagementSession:
    """An `httpx.Client` for one instance and organization, with bounded jittered retries."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        *,
        transport: httpx.BaseTransport | None = None,
        org_id: str | None = None,
        max_attempts: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 8.0,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "cockpit"}
        if org_id:
            headers["x-zitadel-orgid"] = org_id
        self.base_url = base_url.rstrip("/")
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._random = random.Random()
        self._count_lock = threading.Lock()
        self.requests_made = 0
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            transport=transport,
            timeout=timeout,
            headers=headers,
            follow_redirects=False,
            event_hooks={"request": [self._count]},
        )

    def close(self) -> None:
        self._http.close()

    def _count(self, request: httpx.Request) -> None:
        with self._count_lock:
            self.requests_made += 1

    def search_all(
        self, path: str, queries: list[dict[str, Any]], *, key: str
    ) -> list[dict[str, Any]]:
        """All results of a v1 `_search`, paging until `offset + len(result) >= totalResult`."""
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = 0
        while True:
            body = {
                "query": {"offset": str(offset), "limit": PAGE_SIZE, "asc": True},
                "queries": queries,
            }
            page = self.call("POST", path, body, read=True)
            items = page.get("result") or []
            try:
                total = int((page.get("details") or {}).get("totalResult") or 0)
            except (TypeError, ValueError):
                total = 0
            for item in items:
                marker = str(item.get(key, ""))
                if marker and marker in seen:
                    continue  # a concurrent write shifted the pages
                seen.add(marker)
                results.append(item)
            offset += len(items)
            if not items or offset >= total:
                return results

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, read: bool = False
    ) -> dict[str, Any]:
        """One API call with bounded, jittered retries; returns the JSON body or raises."""
        endpoint = f"{method} {path}"
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(method, path, body, endpoint, read)
            if isinstance(outcome, dict):
                return outcome
            error = outcome
            if attempt >= self._max_attempts or not self._retryable(error, read):
                if attempt > 1:
                    error.message = f"{error.message} (gave up after {attempt} attempts)"
                    error.args = (error.message,)
                raise error
            delay = self._delay(attempt, error.retry_after)
            log.info("Zitadel %s: %s; retry %d in %.2f s", endpoint, error, attempt, delay)
            self._sleep(delay)

    def _attempt(
        self, method: str, path: str, body: dict[str, Any] | None, endpoint: str, read: bool
    ) -> dict[str, Any] | ZitadelError:
        """Send once; the decoded body, or the error (httpx's translated) for `call` to judge."""
        try:
            response = self._http.request(method, path, json=body)
        except ZitadelError as exc:  # from the auth flow: the token endpoint failed
            return exc
        except httpx.TimeoutException as exc:
            return ZitadelUnavailable(
                f"Zitadel did not answer in time ({type(exc).__name__})", endpoint=endpoint
            )
        except httpx.TransportError as exc:
            return ZitadelUnavailable(
                f"Zitadel at {self.base_url} could not be reached ({type(exc).__name__}: {exc})",
                endpoint=endpoint,
            )
        except httpx.HTTPError as exc:
            return ZitadelError(f"the request failed ({type(exc).__name__}: {exc})", endpoint=endpoint)
        if not 200 <= response.status_code < 300:
            return error_from_response(
                response.status_code,
                response.content,
                endpoint=endpoint,
                retry_after=_retry_after(response),
            )
        if not response.content.strip():
            return {}
        try:
            decoded = json.loads(response.content)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            return ZitadelError(
                "Zitadel answered with something other than a JSON object",
                status=response.status_code,
                endpoint=endpoint,
            )
        return decoded

    @staticmethod
    def _retryable(error: ZitadelError, read: bool) -> bool:
        if error.status is None:
            return error.transient  # network errors, timeouts, token endpoint 429/5xx
        if error.status in RETRY_ALWAYS:
            return True
        return read and error.status in RETRY_READS

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (half to full step); Retry-After, when sent, wins."""
        step = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        delay = step * (0.5 + self._random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay

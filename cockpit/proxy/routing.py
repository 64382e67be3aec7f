"""Which upstream serves a call: weighted deployments, per-deployment cooldowns, fallbacks.

Pure decisions, no HTTP: the gateway asks `Router.attempts` for an ordered plan, makes the
attempts in order, and reports each one's `Outcome` with `Router.finish`, which decides
whether to go on.

- **Choice**: among a model's healthy deployments, weighted random without replacement (the
  first attempt goes to a deployment with probability weight / total), skipping deployments
  that are cooling down or whose `rpm`/`tpm` this replica has used up in the current minute.
  Those counters are in-process, per replica: with R replicas a deployment may see up to
  R × its rpm (its own 429 then cools it down here). Declare per-replica figures, or lean on
  the upstream's 429.
- **Cooldown**: a deployment that answers 429 or 5xx, times out or refuses the connection is
  set aside alone — never the whole model — for 1 s, doubling with each further failure up to
  60 s; one success resets it. A 401, 403 or 404 is the deployment's configuration (its key,
  its upstream model name), not its health: it is reported (`config_errors`) and the call
  moves on, but nobody is cooled down for it. A request the upstream found invalid (400, 413,
  422) stops the plan: no other upstream would accept it either.
- **Plan**: healthy deployments of the model, then those of each fallback the caller may use,
  in order; then, as a last resort, deployments that are cooling down (soonest back first), so
  a cooldown alone never refuses a call; at most `max_attempts` in all.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BASE_COOLDOWN_SECONDS = 1.0
MAX_COOLDOWN_SECONDS = 60.0
MAX_ATTEMPTS = 4
SHORTHAND = "default"
"""The deployment name of a model declared with `litellm:` (one deployment)."""


@dataclass(frozen=True)
class Deployment:
    """One upstream of a catalog model."""

    model: str
    name: str
    weight: int = 1
    rpm: int | None = None
    tpm: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The deployment's litellm parameters (secrets are the caller's to add)."""

    @property
    def id(self) -> tuple[str, str]:
        return (self.model, self.name)


@dataclass(frozen=True)
class Route:
    """How a catalog model is served: its deployments, fallbacks and attempt timeout."""

    model: str
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...] = ()
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class Attempt:
    deployment: Deployment
    fallback: bool
    """Serves a fallback model, not the one asked for."""
    cooling: bool = False
    """A last resort: the deployment was cooling down when the plan was made."""

    @property
    def model(self) -> str:
        return self.deployment.model


class Outcome(enum.Enum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    MISCONFIGURED = "misconfigured"
    """401, 403 or 404: the deployment's key or upstream model name; a configuration error."""
    REJECTED = "rejected"
    """The request itself is invalid (400, 413, 422, …): no upstream would take it."""

    @property
    def cools_down(self) -> bool:
        return self in (Outcome.RATE_LIMITED, Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.UNREACHABLE)

    @property
    def try_next(self) -> bool:
        """Whether the next attempt of the plan should be made."""
        return self.cools_down or self is Outcome.MISCONFIGURED


def outcome_of(status: int | None = None, *, timeout: bool = False, unreachable: bool = False) -> Outcome:
    """The outcome of an upstream answer (`status`) or of a call that got none."""
    if timeout:
        return Outcome.TIMEOUT
    if unreachable or status is None:
        return Outcome.UNREACHABLE
    if status < 400:
        return Outcome.OK
    if status in (401, 403, 404):
        return Outcome.MISCONFIGURED
    if status in (408, 409, 429) or status >= 500:
        return Outcome.RATE_LIMITED if status == 429 else Outcome.SERVER_ERROR
    return Outcome.REJECTED


@dataclass
class _Health:
    failures: int = 0
    until: float = 0.0
    window: int = -1
    requests: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class ConfigError:
    """A deployment that refused our credentials or does not know its model (401, 403, 404):
    for logs and operators."""

    model: str
    deployment: str
    status: int | None
    at: float


class Router:
    """The routing state of one process: cooldowns and per-deployment minute counters."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        base_cooldown: float = BASE_COOLDOWN_SECONDS,
        max_cooldown: float = MAX_COOLDOWN_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.base_cooldown = base_cooldown
        self.max_cooldown = max_cooldown
        self.max_attempts = max_attempts
        self.config_errors: list[ConfigError] = []
        """The latest 401/403s (at most 100), newest last."""
        self._health: dict[tuple[str, str], _Health] = {}
        self._lock = threading.Lock()

    # -- the plan ---------------------------------------------------------------------------

    def attempts(
        self,
        model: str,
        routes: Mapping[str, Route],
        may_use: Callable[[str], bool],
        tokens_bound: int = 0,
    ) -> list[Attempt]:
        """The ordered attempts for a call to `model`: its healthy deployments by weight, then
        each usable fallback's, then cooling deployments as a last resort."""
        now, minute = self.clock(), self._minute()
        models = [model] + [name for name in routes[model].fallbacks if name != model and name in routes and may_use(name)]
        healthy: list[Attempt] = []
        cooling: list[tuple[float, Attempt]] = []
        with self._lock:
            for name in models:
                fallback = name != model
                ready = []
                for deployment in routes[name].deployments:
                    health = self._health.get(deployment.id)
                    if health is not None and health.until > now:
                        cooling.append((health.until, Attempt(deployment, fallback, cooling=True)))
                    elif self._has_room(deployment, health, minute, tokens_bound):
                        ready.append(deployment)
                healthy += [Attempt(d, fallback) for d in self._weighted_order(ready)]
        cooling.sort(key=lambda pair: pair[0])
        return (healthy + [attempt for _, attempt in cooling])[: self.max_attempts]

    def _weighted_order(self, deployments: Sequence[Deployment]) -> list[Deployment]:
        """Weighted sampling without replacement (Efraimidis–Spirakis): each deployment comes
        first with probability weight / total."""
        keyed = [(self.rng.random() ** (1.0 / max(1, d.weight)), d) for d in deployments]
        keyed.sort(key=lambda pair: pair[0], reverse=True)
        return [d for _, d in keyed]

    def _has_room(self, deployment: Deployment, health: _Health | None, minute: int, tokens_bound: int) -> bool:
        if health is None or health.window != minute:
            return True
        if deployment.rpm is not None and health.requests >= deployment.rpm:
            return False
        return deployment.tpm is None or health.tokens + tokens_bound <= deployment.tpm

    # -- what happened ----------------------------------------------------------------------

    def start(self, attempt: Attempt, tokens_bound: int = 0) -> None:
        """Count an attempt on its deployment's minute (request and token bound)."""
        minute = self._minute()
        with self._lock:
            health = self._health.setdefault(attempt.deployment.id, _Health())
            if health.window != minute:
                health.window, health.requests, health.tokens = minute, 0, 0
            health.requests += 1
            health.tokens += tokens_bound

    def finish(self, attempt: Attempt, outcome: Outcome, tokens_bound: int = 0, tokens: int | None = None, status: int | None = None) -> bool:
        """Record how an attempt ended; True when the next attempt of the plan should be made.
        `tokens` (the usage) replaces the bound counted by `start`."""
        with self._lock:
            health = self._health.setdefault(attempt.deployment.id, _Health())
            if tokens is not None and health.window == self._minute():
                health.tokens += tokens - tokens_bound
            if outcome is Outcome.OK:
                health.failures, health.until = 0, 0.0
            elif outcome.cools_down:
                health.failures += 1
                delay = min(self.max_cooldown, self.base_cooldown * 2 ** (health.failures - 1))
                health.until = self.clock() + delay
            elif outcome is Outcome.MISCONFIGURED:
                self.config_errors.append(ConfigError(attempt.model, attempt.deployment.name, status, self.wall_clock()))
                del self.config_errors[:-100]
        return outcome.try_next

    def cooldown(self, deployment: Deployment) -> float:
        """Seconds until `deployment` is tried again before others (0: healthy)."""
        with self._lock:
            health = self._health.get(deployment.id)
            return max(0.0, health.until - self.clock()) if health else 0.0

    def _minute(self) -> int:
        return int(self.wall_clock() // 60)


def route_of(
    model: str,
    litellm: Mapping[str, Any] | None,
    deployments: Sequence[Mapping[str, Any]] = (),
    fallbacks: Sequence[str] = (),
    timeout_seconds: float | None = None,
) -> Route:
    """A model's route from its catalog fields: `litellm` (the shorthand, one deployment named
    `default`) or `deployments` (each with name, litellm, weight, rpm, tpm)."""
    if deployments:
        chosen = tuple(
            Deployment(model, d["name"], int(d.get("weight") or 1), d.get("rpm"), d.get("tpm"), dict(d.get("litellm") or {}))
            for d in deployments
        )
    else:
        chosen = (Deployment(model, SHORTHAND, params=dict(litellm or {})),)
    return Route(model, chosen, tuple(fallbacks), timeout_seconds)

"""Deployment choice, cooldowns and fallbacks (`cockpit.proxy.routing`): pure, no HTTP."""

from __future__ import annotations

import random
from collections import Counter

from cockpit.proxy.routing import (
    SHORTHAND,
    Attempt,
    Outcome,
    Route,
    Router,
    outcome_of,
    route_of,
)


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _routes() -> dict[str, Route]:
    return {
        "gpt-4o": route_of(
            "gpt-4o", None,
            [
                {"name": "eu", "litellm": {"model": "azure/gpt-4o-eu"}, "weight": 3, "rpm": 5},
                {"name": "us", "litellm": {"model": "openai/gpt-4o"}, "weight": 1},
            ],
            fallbacks=["gpt-4o-mini", "claude"],
            timeout_seconds=60,
        ),
        "gpt-4o-mini": route_of("gpt-4o-mini", {"model": "openai/gpt-4o-mini"}),
        "claude": route_of("claude", {"model": "anthropic/claude"}),
    }


def _names(attempts: list[Attempt]) -> list[str]:
    return [f"{a.model}/{a.deployment.name}" for a in attempts]


def _router(clock: Clock | None = None, seed: int = 7, **options) -> Router:
    clock = clock or Clock()
    return Router(clock=clock, wall_clock=clock, rng=random.Random(seed), **options)


def test_weights_are_honoured_over_a_thousand_choices() -> None:
    router = _router(max_attempts=1)
    routes = _routes()
    first = Counter(router.attempts("gpt-4o", routes, lambda m: True)[0].deployment.name for _ in range(1000))
    assert first.keys() == {"eu", "us"}
    assert abs(first["eu"] / 1000 - 0.75) < 0.05, first


def test_plan_is_the_model_then_usable_fallbacks_in_order() -> None:
    router = _router(max_attempts=10)
    plan = router.attempts("gpt-4o", _routes(), lambda m: m != "claude")
    assert sorted(_names(plan)[:2]) == ["gpt-4o/eu", "gpt-4o/us"]
    assert _names(plan)[2:] == [f"gpt-4o-mini/{SHORTHAND}"]  # claude: the caller may not use it
    assert [a.fallback for a in plan] == [False, False, True]
    assert _names(_router(max_attempts=2).attempts("gpt-4o", _routes(), lambda m: True))[1].startswith("gpt-4o/")


def test_a_failing_deployment_is_cooled_down_alone_with_a_growing_bounded_delay() -> None:
    clock = Clock()
    router = _router(clock, max_attempts=10)
    routes = _routes()
    eu = routes["gpt-4o"].deployments[0]
    delays = []
    for _ in range(9):
        attempt = Attempt(eu, fallback=False)
        router.start(attempt)
        assert router.finish(attempt, outcome_of(503)) is True
        delays.append(router.cooldown(eu))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    for _ in range(50):  # while eu cools down, every plan starts with us; eu is a last resort
        plan = router.attempts("gpt-4o", routes, lambda m: True)
        assert _names(plan) == ["gpt-4o/us", "gpt-4o-mini/default", "claude/default", "gpt-4o/eu"]
        assert plan[-1].cooling
    clock.now += 61
    assert "gpt-4o/eu" in _names(router.attempts("gpt-4o", routes, lambda m: True))[:2]
    router.finish(Attempt(eu, False), Outcome.OK)
    assert router.cooldown(eu) == 0
    router.finish(Attempt(eu, False), outcome_of(429))
    assert router.cooldown(eu) == 1  # a success reset the count


def test_every_failure_that_is_the_upstreams_cools_down_and_moves_on() -> None:
    assert outcome_of(429) is Outcome.RATE_LIMITED and outcome_of(500) is Outcome.SERVER_ERROR
    assert outcome_of(timeout=True) is Outcome.TIMEOUT and outcome_of(unreachable=True) is Outcome.UNREACHABLE
    assert outcome_of(200) is Outcome.OK
    for outcome in (Outcome.RATE_LIMITED, Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.UNREACHABLE):
        assert outcome.cools_down and outcome.try_next


def test_unauthorized_is_reported_not_cooled_down() -> None:
    router = _router()
    us = _routes()["gpt-4o"].deployments[1]
    assert outcome_of(401) is Outcome.MISCONFIGURED and outcome_of(403) is Outcome.MISCONFIGURED
    assert router.finish(Attempt(us, False), outcome_of(401), status=401) is True
    assert router.cooldown(us) == 0
    assert [(e.model, e.deployment, e.status) for e in router.config_errors] == [("gpt-4o", "us", 401)]


def test_an_invalid_request_stops_the_plan() -> None:
    router = _router()
    us = _routes()["gpt-4o"].deployments[1]
    for status in (400, 413, 422):
        assert outcome_of(status) is Outcome.REJECTED
        assert router.finish(Attempt(us, False), outcome_of(status)) is False
    assert router.cooldown(us) == 0


def test_a_deployment_at_its_rpm_or_tpm_is_skipped_until_the_next_minute() -> None:
    clock = Clock(60 * 500 + 1)
    router = _router(clock, max_attempts=10)
    routes = _routes()
    eu = routes["gpt-4o"].deployments[0]
    for _ in range(5):  # eu takes rpm 5
        router.start(Attempt(eu, False), tokens_bound=10)
    assert "gpt-4o/eu" not in _names(router.attempts("gpt-4o", routes, lambda m: True))
    clock.now += 60
    assert "gpt-4o/eu" in _names(router.attempts("gpt-4o", routes, lambda m: True))

    limited = {"m": route_of("m", None, [{"name": "a", "litellm": {}, "tpm": 1000}, {"name": "b", "litellm": {}}])}
    a = limited["m"].deployments[0]
    router.start(Attempt(a, False), tokens_bound=800)
    assert _names(router.attempts("m", limited, lambda m: True, tokens_bound=300)) == ["m/b"]
    router.finish(Attempt(a, False), Outcome.OK, tokens_bound=800, tokens=100)  # usage replaces the bound
    assert sorted(_names(router.attempts("m", limited, lambda m: True, tokens_bound=300))) == ["m/a", "m/b"]


def test_route_of_the_shorthand_is_one_deployment() -> None:
    route = route_of("gpt-4o-mini", {"model": "openai/gpt-4o-mini"}, fallbacks=[], timeout_seconds=None)
    assert [(d.name, d.weight, d.params["model"]) for d in route.deployments] == [(SHORTHAND, 1, "openai/gpt-4o-mini")]

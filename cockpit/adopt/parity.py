"""Parity of effective access: what each user got from the old system's algorithms against what
Cockpit gives them from the imported config, computed for every user, with the reason for every
difference.

Cockpit's side is its own policy functions (`cockpit.policy`, the ones `cockpit explain` and the
proxy use) over the validated import; the old side is `old_policy`, once per context the old API
could be called with (one per team membership of the user). A difference is reported when any
context disagrees with Cockpit, with the reason found: membership expansion, the model-policy
ceiling, the feature-pack default or ceiling, a model missing from the catalog, or Cockpit's own
explanation of its answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cockpit.adopt import old_policy
from cockpit.adopt.console_cockpit import DOMAINS, AccountImport
from cockpit.adopt.old_policy import Context
from cockpit.adopt.report import Report
from cockpit.policy.features import effective_features, feature_access
from cockpit.policy.grants import usable_agent_names, usable_connection_names
from cockpit.policy.graph import AccountGraph, build_graphs
from cockpit.policy.guardrails import effective_guardrails
from cockpit.policy.marketplace import discoverable
from cockpit.policy.model_access import allowed_models, model_access
from cockpit.resources.desired import desired_state

MEMBERSHIP = (
    "membership expansion: the old API answered for the one team the caller passed; Cockpit "
    "resolves all of the user's teams and their orgs at once"
)


@dataclass(frozen=True)
class Aspect:
    name: str
    """`models`, `features`, `agents`, `connections`, `marketplace`, `guardrails`."""
    domain: str
    old: Callable[[Context], frozenset[str]]
    new: frozenset[str]
    reason: Callable[[str, bool], str | None]
    """(item, Cockpit's answer) → a specific reason, or None for the generic ones."""
    why: Callable[[str], str] | None = None
    """Cockpit's own explanation of its answer for an item, added to the entry."""


def check_parity(validation, imports: list[AccountImport], report: Report) -> None:
    """Add a parity entry to `report` for every user and item whose access differs."""
    state = desired_state(validation.tenant, fingerprint=lambda *args: None)
    graphs = build_graphs(state)
    for account in imports:
        graph = graphs.get(account.name)
        if graph is None:
            continue
        for domain in DOMAINS:
            for email in sorted(set(account.users[domain].values())):
                for aspect in _aspects(graph, account, domain, email):
                    _compare(account, domain, email, aspect, report)


def _aspects(graph: AccountGraph, account: AccountImport, domain: str, email: str) -> list[Aspect]:
    old = account.old
    aspects = [
        Aspect(
            "models", domain, lambda c: old_policy.allowed_models(old, domain, c), allowed_models(graph, domain, email),
            _model_reason(graph, domain), lambda m: model_access(graph, domain, email, m).why,
        ),
        Aspect(
            "features", domain, lambda c: old_policy.enabled_features(old, domain, c),
            frozenset(f.feature for f in effective_features(graph, domain, email) if f.enabled), _feature_reason(graph, domain, email),
        ),
    ]
    if domain == "copilot":
        aspects += [
            Aspect("agents", domain, lambda c: old_policy.agents(old, c), usable_agent_names(graph, email), _exists(graph.agents, "agent")),
            Aspect("connections", domain, lambda c: old_policy.connections(old, c), usable_connection_names(graph, email), _exists(graph.connections, "connection")),
            Aspect("marketplace", domain, lambda c: old_policy.discover(old, c), discoverable(graph, email), _exists(graph.listings, "listing")),
            Aspect(
                "guardrails", domain, lambda c: frozenset(old_policy.guardrails(old, c)),
                frozenset(g.code for g in effective_guardrails(graph, email, domain="copilot")), _exists(graph.presets, "preset"),
            ),
        ]
    return aspects


def _compare(account: AccountImport, domain: str, email: str, aspect: Aspect, report: Report) -> None:
    contexts = account.old.contexts(domain, email)
    answers = [(c, aspect.old(c)) for c in contexts]
    items = set(aspect.new).union(*(a for _, a in answers))
    for item in sorted(items):
        new = item in aspect.new
        olds = [(c, item in a) for c, a in answers]
        if all(o == new for _, o in olds):
            continue
        reason = aspect.reason(item, new)
        if reason is None:
            reason = MEMBERSHIP if len({o for _, o in olds}) > 1 or len(contexts) > 1 else "decided differently"
        elif len(contexts) > 1 and len({o for _, o in olds}) > 1:
            reason = f"{reason}; and {MEMBERSHIP}"
        cockpit_why = f" (Cockpit: {aspect.why(item)})" if aspect.why is not None else ""
        report.add(
            "parity", f"{account.name} user:{email}",
            f"{aspect.name} ({domain}): {item}: old {_old_text(olds)}; Cockpit {_yes(new)}. Why: {reason}{cockpit_why}",
        )


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _old_text(olds: list[tuple[Context, bool]]) -> str:
    if len({o for _, o in olds}) == 1:
        return _yes(olds[0][1])
    return ", ".join(f"{_yes(o)} {c}" for c, o in olds)


def _model_reason(graph: AccountGraph, domain: str) -> Callable[[str, bool], str | None]:
    allow, deny = graph.model_policy(domain)

    def reason(model: str, new: bool) -> str | None:
        if model not in graph.catalog:
            return "the model is not in the catalog, so its grants were not carried over"
        if not new and (model in deny or (allow and model not in allow)):
            return f"the model-policy ceiling: the account's {domain} model policy was stored only in the old system and is a ceiling in Cockpit"
        return None

    return reason


def _feature_reason(graph: AccountGraph, domain: str, email: str) -> Callable[[str, bool], str | None]:
    pack, _ = graph.feature_pack()

    def reason(feature: str, new: bool) -> str | None:
        if feature not in pack:
            return "the feature-pack ceiling: the feature is not in the account's feature pack, which Cockpit makes a ceiling (the old system never consulted the pack)"
        decision = feature_access(graph, domain, email, feature)
        if new and decision.level == "feature_pack":
            return "the feature-pack default: Cockpit enables the pack's features at account level when nothing more specific decides; the old system defaulted to off"
        return None

    return reason


def _exists(names, what: str) -> Callable[[str, bool], str | None]:
    def reason(item: str, new: bool) -> str | None:
        if item not in names:
            return f"the {what} was not carried over (see the entries above)"
        return None

    return reason

"""Effective state: pure functions over a state graph, shared by plan, explain, API and proxy.

Build the index once per state (`graph.build_graphs`, `graph.account_graph`), then ask:

- `model_access.model_access`, `effective_models`, `allowed_models`: models per domain;
- `guardrails.effective_guardrails`: presets for a user (and agent), with the levels;
- `features.feature_access`, `effective_features`: features per domain;
- `allocations.effective_allocation`, `budget_chain`: budgets, with optional usage;
- `marketplace.discover`: listings a user can see;
- `grants.usable_agents`, `usable_connections`: what a user may use;
- `impact.access_impact(before, after)`: who gains or loses what, for the plan.

Every answer carries its `provenance.Source`s and a `why` for people; nothing decides on those.
The credit arithmetic config validation shares is in `cockpit.credits`; the index itself is
`cockpit.resources.index`, and what each kind adds to it is declared with the kind.
"""

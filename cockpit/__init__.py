"""Cockpit: the config-as-code control plane of an AI-gateway suite.

Layers, highest first; a module imports only from layers below its own (`|`: siblings that do
not import each other). `lint-imports` checks it (pyproject.toml, tests/test_architecture.py).

    cli                                   the command line
    runner                                a plan-and-apply run from the command line
    workspace                             plan and apply over the database and Zitadel
    server                                the read API and the app that mounts the proxy
    proxy | explain                       the LLM proxy; what a user gets and why
    budgets                               counters, ledger, usage, cycle renewal
    runtime                               request identity and account snapshots, beneath the four above
    apply | export | keys                 the executor and Zitadel journal; adoption; virtual keys
    plan                                  the plan model, comparison and renderers
    zitadel | audit                       the identity provider (client, reader, desired state); audit sink
    policy | store                        effective access and impact; the database
    resources                             the state model and the desired state of a tenant
    config                                the config language: models, registry of kinds, scopes, validation
    memory | patterns | shipped | credits | observe  helpers with no cockpit imports; metrics, traces, logs
"""

__version__ = "0.1.0"

"""The policy index of every account of a State, built in one pass and then only read.

The index itself (`AccountGraph`, `Directory`) is in `cockpit.resources.index`, and what each
resource type adds to it is declared with its kind (`Kind.index`); this module runs that
declaration over a state. Types no kind indexes are skipped, except the global model catalog,
which every account's index shares. The same index serves desired and actual states: both are
plain `State`s.
"""

from __future__ import annotations

from cockpit.memory import paused_gc
from cockpit.resources.index import ACCOUNT, DOMAINS, POOL, AccountGraph, Directory, Level
from cockpit.resources.kinds import kind_registry
from cockpit.resources.state import Resource, State

__all__ = [
    "ACCOUNT", "DOMAINS", "POOL", "AccountGraph", "Directory", "Level", "account_graph", "build_graphs",
    "with_catalog",
]


def build_graphs(state: State) -> dict[str, AccountGraph]:
    """One index per account of the state, in a single pass over its resources (the cyclic
    collector paused: see `cockpit.memory`)."""
    with paused_gc():
        return _build(state)


def _build(state: State) -> dict[str, AccountGraph]:
    graphs: dict[str, AccountGraph] = {}
    catalog: dict[str, Resource] = {}
    deployments: dict[str, list[Resource]] = {}
    graph: AccountGraph | None = None
    handlers = kind_registry().index_handlers()
    for resource in state:
        handler = handlers.get(resource.type)
        if handler is None:
            if resource.type == "model":
                catalog[resource.key[0]] = resource
            elif resource.type == "model_deployment":
                deployments.setdefault(resource.key[0], []).append(resource)
            continue
        if graph is None or graph.name != resource.account:
            if resource.account is None:
                continue
            graph = graphs.get(resource.account)
            if graph is None:
                graph = graphs[resource.account] = AccountGraph(resource.account)
        handler(graph, resource)
    for graph in graphs.values():
        graph.catalog, graph.deployments = catalog, deployments
        for directory in graph.directories.values():
            directory._expand()
        graph.open_listings = frozenset(
            name for name, listing in graph.listings.items()
            if listing.fields.get("published") is not False and name not in graph.granted_listings
        )
    return graphs


def account_graph(state: State, account: str) -> AccountGraph:
    """The index of one account (an empty one when the state does not hold it)."""
    graph = build_graphs(state).get(account)
    if graph is None:
        graph = AccountGraph(account)
        with_catalog(graph, state)
    return graph


def with_catalog(graph: AccountGraph, state: State) -> AccountGraph:
    """Give an index built without any resource of its account the state's catalog."""
    graph.catalog = {r.key[0]: r for r in state.of_type("model")}
    deployments: dict[str, list[Resource]] = {}
    for resource in state.of_type("model_deployment"):
        deployments.setdefault(resource.key[0], []).append(resource)
    graph.deployments = deployments
    return graph

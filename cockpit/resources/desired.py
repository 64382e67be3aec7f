"""Config → desired state: each kind's documents expanded into resources by its expander.

The expanders are declared with their kinds (`cockpit.resources.kinds`); this engine walks the
tenant and never looks inside. Every resource remembers the file and line that declared it.
"""

from __future__ import annotations

from cockpit.config.tenant import Tenant
from cockpit.resources.builder import Builder, Fingerprint
from cockpit.resources.kinds import kind_registry
from cockpit.resources.kinds.directory import DEFAULT_GLOBAL_DESCRIPTION
from cockpit.resources.state import Resource, State

__all__ = ["Fingerprint", "desired_state"]


def desired_state(tenant: Tenant, fingerprint: Fingerprint) -> State:
    """The desired state of a validated tenant. Copilot's org `global` exists in every account."""
    kinds = kind_registry()
    state = State()
    for kind_name, declared_list in tenant.by_kind.items():
        kind = kinds.get(kind_name)
        types = kinds.types_of(kind_name)
        for declared in declared_list:
            account = declared.model.name if kind_name == "Account" else getattr(declared.model, "account", None)
            builder = Builder(declared, account, fingerprint, kind.descriptor, types)
            kind.expand(builder, declared.model)
            for resource in builder.resources:
                state.add(resource)
    for account in tenant.accounts:
        address = ("copilot_org", account, ("global",))
        if address not in state:
            state.add(Resource("copilot_org", account, ("global",), {"description": DEFAULT_GLOBAL_DESCRIPTION, "is_default_global": True}, origin="(built in)"))
    return state

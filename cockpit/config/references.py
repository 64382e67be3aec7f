"""Resolving names the config uses: accounts, catalog models, scopes, presets, entities.

Every failed lookup is an error at the node that names the missing thing, with the closest
existing name suggested.
"""

from __future__ import annotations

from cockpit.config.diagnostics import Diagnostics, did_you_mean
from cockpit.config.source import PathElement
from cockpit.config.tenant import Declared, Tenant
from cockpit.config.scopes import Scope, parse_scope


class Resolver:
    """Lookups over one tenant, reporting to one diagnostics collector."""

    def __init__(self, tenant: Tenant, diagnostics: Diagnostics) -> None:
        self.tenant = tenant
        self.diagnostics = diagnostics
        self._accounts = tenant.accounts
        self._catalog = tenant.catalog
        self._agents: dict[str, set[str]] = {}
        self._connections: dict[str, set[str]] = {}
        self._presets: dict[str, dict[str, str]] = {}
        for declared in tenant.of("Agent"):
            self._agents.setdefault(declared.model.account, set()).add(declared.model.name)
        for declared in tenant.of("Connection"):
            self._connections.setdefault(declared.model.account, set()).add(declared.model.name)
        for declared in tenant.of("GuardrailPreset"):
            preset = declared.model
            self._presets.setdefault(preset.account, {})[preset.code] = preset.domain

    def account(self, declared: Declared, path: tuple[PathElement, ...] = ("account",)) -> bool:
        """The document's account is declared; reports and returns False otherwise."""
        name = declared.model.account
        if name in self._accounts:
            return True
        if self.tenant.is_broken("Account", name) or self.unchecked():
            return False
        self.diagnostics.error(
            declared.at(*path),
            f"unknown account '{name}'; declare it in a document of kind Account"
            f"{did_you_mean(name, list(self._accounts))}",
        )
        return False

    def model(self, declared: Declared, path: tuple[PathElement, ...], name: str) -> bool:
        if name in self._catalog or self.tenant.is_broken("Model", name) or self.unchecked():
            return name in self._catalog
        self.diagnostics.error(
            declared.at(*path),
            f"model '{name}' is not in the catalog; declare it in a document of kind Model"
            f"{did_you_mean(name, list(self._catalog))}",
        )
        return False

    def scope(
        self,
        declared: Declared,
        path: tuple[PathElement, ...],
        text: str,
        domain: str = "copilot",
    ) -> Scope | None:
        """Resolve a scope in the directory of `domain`; None (after reporting) if it does not."""
        scope = parse_scope(text)
        account = declared.model.account
        if scope.type in ("account", "pool"):
            return scope
        if scope.type == "agent":
            known = self._agents.get(account, set())
            if self.tenant.is_broken("Agent", account, scope.key):
                return None
            if scope.key not in known:
                self._unknown(declared, path, "agent", scope.key, known, f"account '{account}'")
                return None
            return scope
        if self.tenant.is_broken("Directory", account, domain):
            return None
        directory = self.tenant.directory(account, domain)
        where = f"the {domain} directory of '{account}'"
        if scope.type == "team":
            org = scope.key.partition("/")[0]
            if org not in directory.orgs:
                self._unknown(declared, path, "org", org, directory.names("org"), where)
                return None
        if not directory.knows(scope):
            self._unknown(declared, path, scope.type, scope.key, directory.names(scope.type), where)
            return None
        return scope

    def preset(self, declared: Declared, path: tuple[PathElement, ...], code: str) -> str | None:
        """The domain of the preset `code` in the document's account, or None."""
        presets = self._presets.get(declared.model.account, {})
        if code in presets:
            return presets[code]
        if self.tenant.is_broken("GuardrailPreset", declared.model.account, code) or self.unchecked():
            return None
        self._unknown(
            declared, path, "guardrail preset", code, presets, f"account '{declared.model.account}'"
        )
        return None

    def entity(self, declared: Declared, path: tuple[PathElement, ...], text: str) -> bool:
        entity_type, _, name = text.partition(":")
        table = self._agents if entity_type == "agent" else self._connections
        known = table.get(declared.model.account, set())
        if name in known:
            return True
        if self.tenant.is_broken(entity_type.capitalize(), declared.model.account, name) or self.unchecked():
            return False
        self._unknown(declared, path, entity_type, name, known, f"account '{declared.model.account}'")
        return False

    def unchecked(self) -> bool:
        """A name that does not resolve while some file does not parse: that file may declare
        it, so it is counted (`Tenant.unchecked`), not reported as unknown."""
        if not self.tenant.unparsed:
            return False
        self.tenant.unchecked += 1
        return True

    def _unknown(self, declared, path, what: str, name: str, known, where: str) -> None:
        if self.unchecked():
            return
        self.diagnostics.error(
            declared.at(*path),
            f"unknown {what} '{name}' in {where}{did_you_mean(name, list(known))}",
        )


def report_duplicate(
    diagnostics: Diagnostics, declared: Declared, path: tuple[PathElement, ...], what: str, first
) -> None:
    diagnostics.error(
        declared.at(*path), f"duplicate {what} (first at {first}); remove one of them"
    )

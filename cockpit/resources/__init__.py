"""The resource registry: one descriptor per kind, asked by every stage (DESIGN.md, Layout)."""

from cockpit.resources.registry import Descriptor, Registry, RegistryError, build_registry

__all__ = ["Descriptor", "Registry", "RegistryError", "build_registry"]

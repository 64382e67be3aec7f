"""Cockpit: the config-as-code control plane of an AI-gateway suite."""

__version__ = "0.1.0"

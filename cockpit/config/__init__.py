"""The config language: documents and their models, the registry of kinds, scopes, role keys, and
validation (`cockpit.config.validate`). The lowest domain layer: it imports no other subpackage."""

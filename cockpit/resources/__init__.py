"""Resources: the state model every stage compares (`state`, `types`), the kinds that declare
how a document becomes resources and back (`kinds`, one module per kind, checked by `kind`),
the translation of a validated tenant into desired state (`desired`) and the per-account index
the policy rules read (`index`). The config-language facts of each kind are in
`cockpit.config.registry`."""

"""Resources: the state model every stage compares (`state`, `types`) and the translation of a
validated tenant into desired state (`desired`). The kinds themselves are described by the
registry in `cockpit.config.registry`."""

"""What the API server, the proxy, budgets and explain share at run time: the per-request
identity (`context`) and the cached applied state of an account (`snapshots`)."""

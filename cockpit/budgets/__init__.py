"""Credit budgets at run time: cycle windows, usage from the ledger, renewal, and the
proxy's counters. What the config says about budgets lives in `cockpit.policy`."""

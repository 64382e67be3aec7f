"""The reads the API makes beside the account snapshot, one module per area, each function
named for what it reads.

The snapshot (`cockpit.runtime.snapshots`) holds an account's configured resources, their row
ids and its policy graph; what it does not hold is read here: row timestamps and the database's
own order for lists, other accounts (super-admin views), the usage ledger, budget cycles and the
audit trail. Nothing here shapes JSON; `cockpit.server.wire` does.
"""

"""`cockpit serve`: the read-only REST API (and, later, the LLM proxy) over the applied state."""

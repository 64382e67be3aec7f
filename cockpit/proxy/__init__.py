"""The OpenAI-compatible LLM proxy of `cockpit serve`: who may call which model, within which
budget and guardrails, through litellm; and what each call cost, in the usage ledger."""

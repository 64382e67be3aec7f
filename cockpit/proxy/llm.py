"""The one module that imports litellm: offline settings, the Router, warm-up.

litellm fetches its model cost map from GitHub at import time unless told not to, and a
black-holed endpoint stalls the import by seconds (shared/reference/litellm-runtime.md), so
`LITELLM_OFFLINE_MODE` is set before the import. Prices come from our `Model` rows (every model
has one; validation refuses a model without), given to litellm per deployment so it computes
`response_cost` for any model. Importing litellm costs ~2 s and ~190 MiB, so only `cockpit
serve` imports this module, never `plan` or `apply`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402  (the environment above must be set first)
from litellm import Router  # noqa: E402

litellm.telemetry = False
litellm.suppress_debug_info = True
litellm.drop_params = True
for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
    logging.getLogger(_name).setLevel(logging.ERROR)

MILLION = Decimal(1_000_000)
DEFAULT_MAX_OUTPUT_TOKENS = 4096
"""What a request without `max_tokens` is assumed to produce at most, when the model's
`extra_body` names no `max_tokens` of its own (the reservation's upper bound)."""


@dataclass(frozen=True)
class CatalogModel:
    """What the proxy needs of one `Model` row."""

    name: str
    upstream: str
    input_per_million: Decimal
    output_per_million: Decimal
    max_output_tokens: int

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """The raw cost of a call, in the prices' currency (what litellm computes, exactly)."""
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / MILLION


def catalog_model(name: str, litellm_params: Mapping[str, Any], input_per_million: Any, output_per_million: Any) -> CatalogModel:
    extra = litellm_params.get("extra_body") or {}
    max_tokens = extra.get("max_tokens") if isinstance(extra, Mapping) else None
    return CatalogModel(
        name,
        str(litellm_params.get("model") or name),
        Decimal(str(input_per_million or 0)),
        Decimal(str(output_per_million or 0)),
        int(max_tokens) if isinstance(max_tokens, int) and max_tokens > 0 else DEFAULT_MAX_OUTPUT_TOKENS,
    )


def build_router(deployments: list[tuple[CatalogModel, Mapping[str, Any], str | None]]) -> Router:
    """A Router over (model, litellm params as stored, decrypted api key) triples."""
    model_list = []
    for model, params, api_key in deployments:
        litellm_params: dict[str, Any] = {k: v for k, v in params.items() if k not in ("api_key", "extra_body") and v is not None}
        if params.get("extra_body"):
            litellm_params["extra_body"] = dict(params["extra_body"])
        if api_key:
            litellm_params["api_key"] = api_key
        litellm_params["input_cost_per_token"] = float(model.input_per_million / MILLION)
        litellm_params["output_cost_per_token"] = float(model.output_per_million / MILLION)
        model_list.append({"model_name": model.name, "litellm_params": litellm_params})
    # One deployment per model: litellm's cooldown would turn an upstream's brief failure into
    # "no deployments available" for every caller, and its retries would hide the failure.
    return Router(model_list=model_list, num_retries=0, disable_cooldowns=True, set_verbose=False)


async def warm_up() -> None:
    """Run litellm's lazy imports (the first real call costs ~100–250 ms otherwise) without
    reaching any upstream: a mocked call, plain and streamed, through a throwaway Router."""
    model = CatalogModel("warm-up", "openai/warm-up", Decimal(1), Decimal(1), 16)
    router = build_router([(model, {"model": "openai/warm-up", "api_base": "http://127.0.0.1:9/v1"}, "warm-up")])
    messages = [{"role": "user", "content": "warm up"}]
    await router.acompletion(model="warm-up", messages=messages, mock_response="ok")
    stream = await router.acompletion(model="warm-up", messages=messages, mock_response="ok", stream=True, stream_options={"include_usage": True})
    async for _chunk in stream:
        pass


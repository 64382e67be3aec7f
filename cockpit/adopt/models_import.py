"""LiteLLM model entries (`model_list` of a config, or rows of `LiteLLM_ProxyModelTable`) → `Model`
documents in `models.yaml`, shared by both importers.

- `litellm_params.model` is the upstream model string; `api_version`, `timeout` and `extra_body`
  are kept; other parameters are reported (they have no field in `Model.litellm`), `rpm`/`tpm`
  as rate limits not yet carried over.
- `api_key: os.environ/NAME` becomes `${env:NAME}` (a reserved name such as `AWS_*` becomes
  `${env:TENANT_NAME}`, reported); a literal key goes to a file under `secrets/`.
- `api_base: os.environ/NAME`: Cockpit's `api_base` is a URL, not a reference, so the importer
  writes the value `NAME` has in its own environment and reports it (an endpoint that differs
  per environment needs one config per environment); when `NAME` is unset, `api_base` is left
  out and the report says to set it.
- per-token prices (`input_cost_per_token`, `output_cost_per_token`,
  `cache_read_input_token_cost`, in `model_info` or `litellm_params`) become per-million prices.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from cockpit.adopt.names import slug
from cockpit.adopt.output import TenantTree
from cockpit.adopt.report import row_at
from cockpit.adopt.values import json_object
from cockpit.config.models import API_VERSION
from cockpit.config.secrets import env_problem
from cockpit.config.types import MODEL_NAME_PATTERN

ENV_PREFIX = "os.environ/"
KEPT_PARAMS = ("model", "api_base", "api_key", "api_version", "timeout", "extra_body")
PRICE_KEYS = {
    "input_cost_per_token": "input_per_million",
    "output_cost_per_token": "output_per_million",
    "cache_read_input_token_cost": "cached_input_per_million",
}
RATE_KEYS = ("rpm", "tpm")
RATE_LIMITS_NOTE = "rate limits are not carried over yet: Cockpit's RateLimits kind is on its way; re-declare them there"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def model_document(
    name: str,
    params: Mapping[str, Any],
    info: Mapping[str, Any] | None,
    where: str,
    tree: TenantTree,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The `Model` document of one entry, or None (reported) when it cannot be one."""
    report = tree.report
    environ = os.environ if environ is None else environ
    info = dict(info or {})
    upstream = params.get("model")
    if not isinstance(upstream, str) or not upstream.strip():
        report.add("dropped", where, f"model {name!r} has no litellm_params.model (the upstream model)")
        return None
    litellm: dict[str, Any] = {"model": upstream}
    base = params.get("api_base")
    if isinstance(base, str) and base.startswith(ENV_PREFIX):
        variable = base[len(ENV_PREFIX):]
        value = environ.get(variable, "").strip()
        if re.match(r"^https?://\S+$", value):
            litellm["api_base"] = value
            report.add("review", where, f"model {name}: api_base was os.environ/{variable}; Cockpit's api_base is a URL, so the value {variable} has here ({value}) is written. Endpoints that differ per environment need one config per environment")
        else:
            report.add("review", where, f"model {name}: api_base was os.environ/{variable}, which is not set to a URL where the import ran; api_base is left out (the provider's default endpoint): ACTION: set litellm.api_base in models.yaml")
    elif isinstance(base, str) and base:
        litellm["api_base"] = base
    key = params.get("api_key")
    if isinstance(key, str) and key.startswith(ENV_PREFIX):
        variable = key[len(ENV_PREFIX):]
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", variable):
            report.add("dropped", where, f"model {name}: api_key names an environment variable that is not a plain name; set litellm.api_key by hand")
        else:
            if env_problem(variable, {}) is not None:
                renamed = f"TENANT_{variable}"
                report.add("changed", where, f"model {name}: api_key was os.environ/{variable}, a name Cockpit reserves for the host; written as ${{env:{renamed}}}: set {renamed} where Cockpit applies")
                variable = renamed
            litellm["api_key"] = "${env:" + variable + "}"
    elif key not in (None, ""):
        litellm["api_key"] = tree.secret("models.yaml", f"model-{slug(name, 'model')}-api-key", str(key))
    for field_name in ("api_version", "timeout", "extra_body"):
        if params.get(field_name) not in (None, "", {}):
            litellm[field_name] = params[field_name]
    rates = [k for k in RATE_KEYS if params.get(k) is not None]
    if rates:
        report.add("dropped", where, f"model {name}: {', '.join(f'{k} = {params[k]}' for k in rates)}: {RATE_LIMITS_NOTE}")
    other = sorted(set(params) - set(KEPT_PARAMS) - set(RATE_KEYS) - set(PRICE_KEYS))
    if other:
        report.add("dropped", where, f"model {name}: litellm_params {', '.join(other)} have no field in Model.litellm")
    pricing: dict[str, Any] = {}
    for source_key, target in PRICE_KEYS.items():
        value = info.pop(source_key, None)
        if value is None:
            value = params.get(source_key)
        if value is not None:
            pricing[target] = _per_million(float(value))
    for required in ("input_per_million", "output_per_million"):
        if required not in pricing:
            pricing[required] = 0
            report.add("review", where, f"model {name}: no {required.replace('_per_million', '_cost_per_token')}; priced at 0, so calls cost no credits until a price is set")
    leftover = sorted(k for k, v in info.items() if v not in (None, "", {}, []) and k not in ("id", "db_model", "display_name", "description"))
    if leftover:
        report.add("dropped", where, f"model {name}: model_info {', '.join(leftover)} have no field in Model")
    document: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "Model", "name": name, "litellm": litellm, "pricing": pricing}
    description = info.get("display_name") or info.get("description")
    if isinstance(description, str) and description.strip() and description != name:
        document["description"] = description.strip()
    return document


def model_name(wanted: Any, where: str, tree: TenantTree) -> str | None:
    """A catalog name for `wanted`, reporting a change; None when nothing usable is left."""
    text = str(wanted or "").strip()
    if _MODEL_NAME.match(text):
        return text
    name = re.sub(r"[^A-Za-z0-9_.:/@-]+", "-", text).strip("-")[:128]
    if not name or not _MODEL_NAME.match(name):
        tree.report.add("dropped", where, f"model name {text!r} cannot be a catalog name")
        return None
    tree.report.add("renamed", where, f"model {text!r} is named {name!r} (catalog names are letters, digits and . _ : / @ -)")
    return name


def catalog_models(rows: list[dict[str, Any]], tree: TenantTree) -> set[str]:
    """The old catalog (`LiteLLM_ProxyModelTable` rows with `account_id` NULL) into `models.yaml`;
    the catalog names. Rows of one account are reported: Cockpit's catalog is global."""
    names: set[str] = set()
    for row in rows:
        at = row_at("LiteLLM_ProxyModelTable", row, "model_id")
        if row.get("account_id") is not None:
            tree.report.add("dropped", at, f"model {row.get('model_name')!r} belongs to account id {row['account_id']}; Cockpit's catalog is global: declare it in models.yaml if the account needs it")
            continue
        name = model_name(row.get("model_name"), at, tree)
        if name is None:
            continue
        if name in names:
            tree.report.add("dropped", at, f"a second catalog row for model {name!r}: {DEPLOYMENTS_NOTE}")
            continue
        params, info = json_object(row.get("litellm_params")), json_object(row.get("model_info"))
        if info.get("is_active") is False:
            tree.report.add("review", at, f"model {name} was inactive in the old catalog; Cockpit has no inactive models, so it is declared: leave it out of model grants, or delete it from models.yaml")
        document = model_document(name, params, {k: v for k, v in info.items() if k != "is_active"}, at, tree)
        if document is not None:
            tree.add("models.yaml", document)
            names.add(name)
    return names


DEPLOYMENTS_NOTE = "several deployments of one model are not carried over yet (Model.deployments is on its way); the first one is kept"


def _per_million(per_token: float) -> float | int:
    value = round(per_token * 1_000_000, 6)
    return int(value) if value.is_integer() else value

"""LiteLLM model entries (`model_list` of a config, or rows of `LiteLLM_ProxyModelTable`) → `Model`
documents in `models.yaml`, shared by both importers.

- Entries of one `model_name` are LiteLLM's load-balanced deployments of one model group: they
  become the `deployments` of one `Model`, named after the upstream model (`azure/gpt-4o-eu` →
  `gpt-4o-eu`; `-2`, `-3`, … when two share it; `deployment-N` when nothing usable is left), each
  with LiteLLM's `weight` when it is a whole number, and the report names them. A model with one
  entry is written with the `litellm:` shorthand, unless the entry has `rpm`/`tpm`: then it is a
  one-entry `deployments` list, since rpm and tpm are a deployment's. A model is priced once:
  the first entry's prices are its prices, and a deployment priced differently is reported.
- `litellm_params.model` is the upstream model string; `api_version`, `timeout` and `extra_body`
  are kept, `rpm`/`tpm` become the deployment's; other parameters are reported (they have no
  field in `Model.litellm`).
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
from dataclasses import dataclass, field
from typing import Any

from cockpit.adopt.names import UniqueNames, slug
from cockpit.adopt.output import TenantTree
from cockpit.adopt.report import row_at
from cockpit.adopt.values import json_object
from cockpit.config.models import API_VERSION, RATE_MAX
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
_NOT_PARAMS = ("weight",)
"""Deployment fields LiteLLM keeps among `litellm_params`."""
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


@dataclass(frozen=True)
class Upstream:
    """One LiteLLM model entry: a deployment of the model group `name`."""

    name: str
    """The catalog name (already checked by `model_name`)."""
    params: Mapping[str, Any]
    info: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""


def add_models(entries: list[Upstream], tree: TenantTree, environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """One `Model` in `models.yaml` per name of `entries` (its entries its deployments, in
    order); the documents by name."""
    groups: dict[str, list[Upstream]] = {}
    for entry in entries:
        groups.setdefault(entry.name, []).append(entry)
    documents: dict[str, dict[str, Any]] = {}
    for name, group in groups.items():
        document = model_document(name, group, tree, environ)
        if document is not None:
            tree.add("models.yaml", document)
            documents[name] = document
    return documents


def model_document(
    name: str,
    group: list[Upstream],
    tree: TenantTree,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The `Model` document of the entries of one model name, or None (reported) when none of
    them can be a deployment."""
    report = tree.report
    environ = os.environ if environ is None else environ
    usable = []
    for entry in group:
        upstream = entry.params.get("model")
        if isinstance(upstream, str) and upstream.strip():
            usable.append(entry)
        else:
            report.add("dropped", entry.where, f"model {name!r} has no litellm_params.model (the upstream model){'' if len(group) == 1 else '; this entry is not one of its deployments'}")
    if not usable:
        return None
    several = len(usable) > 1
    deployments: list[dict[str, Any]] = []
    names = _deployment_names(usable)
    for entry, deployment_name in zip(usable, names):
        label = f"model {name} deployment {deployment_name}" if several else f"model {name}"
        key_file = f"model-{slug(name, 'model')}{'-' + deployment_name if several else ''}-api-key"
        deployment = {"name": deployment_name, "litellm": _litellm(label, entry, key_file, tree, environ)}
        weight = entry.params.get("weight")
        if weight is not None:
            whole = whole_number(weight, 1_000_000)
            if whole is None:
                report.add("dropped", entry.where, f"{label}: weight = {weight}: a Cockpit weight is a whole number from 1 to 1000000; the deployment takes weight 1")
            elif whole != 1:
                deployment["weight"] = whole
        for key in RATE_KEYS:
            if entry.params.get(key) is None:
                continue
            value = whole_number(entry.params[key], RATE_MAX)
            if value is None:
                report.add("dropped", entry.where, f"{label}: {key} = {entry.params[key]}: a deployment's {key} is a whole number from 1 to {RATE_MAX}")
            else:
                deployment[key] = value
        other = sorted(set(entry.params) - set(KEPT_PARAMS) - set(RATE_KEYS) - set(PRICE_KEYS) - set(_NOT_PARAMS))
        if other:
            report.add("dropped", entry.where, f"{label}: litellm_params {', '.join(other)} have no field in Model.litellm")
        deployments.append(deployment)
    if several:
        listed = ", ".join(f"{d['name']} ({', '.join([d['litellm']['model']] + [f'{k} {d[k]}' for k in ('weight', *RATE_KEYS) if k in d])})" for d in deployments)
        weights = "" if any("weight" in d for d in deployments) else "; each takes an equal share of the calls (weight 1), as with LiteLLM's default simple-shuffle"
        report.add("changed", usable[0].where, f"the {len(usable)} entries of model {name} ({', '.join(e.where for e in usable)}) are its deployments {listed}: deployment names are derived from the upstream model{weights}")
    pricing = _pricing(usable[0])
    for entry, deployment in zip(usable[1:], deployments[1:]):
        own = _pricing(entry)
        if own != pricing:
            report.add("changed", entry.where, f"model {name} deployment {deployment['name']}: {_prices(own)} in LiteLLM; Cockpit prices a model, not a deployment, so its calls cost what deployment {deployments[0]['name']}'s do: {', '.join(f'{k} {v}' for k, v in pricing.items()) or 'nothing until a price is set'}")
    for required in ("input_per_million", "output_per_million"):
        if required not in pricing:
            pricing[required] = 0
            report.add("review", usable[0].where, f"model {name}: no {required.replace('_per_million', '_cost_per_token')}; priced at 0, so calls cost no credits until a price is set")
    description = None
    for entry in usable:
        info = {k: v for k, v in entry.info.items() if k not in PRICE_KEYS}
        leftover = sorted(k for k, v in info.items() if v not in (None, "", {}, []) and k not in ("id", "db_model", "display_name", "description"))
        if leftover:
            report.add("dropped", entry.where, f"model {name}: model_info {', '.join(leftover)} have no field in Model")
        text = info.get("display_name") or info.get("description")
        if description is None and isinstance(text, str) and text.strip() and text.strip() != name:
            description = text.strip()
    document: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "Model", "name": name}
    if description is not None:
        document["description"] = description
    if several:
        document["deployments"] = deployments
    elif any(key in deployments[0] for key in RATE_KEYS):
        rates = ", ".join(f"{key} = {deployments[0][key]}" for key in RATE_KEYS if key in deployments[0])
        report.add("changed", usable[0].where, f"model {name}: {rates} is carried over as the {'limits' if ',' in rates else 'limit'} of its one deployment {deployments[0]['name']!r} (Cockpit states rpm and tpm per deployment, so the model is written with `deployments:`; the name is derived from the upstream model)")
        document["deployments"] = deployments
    else:
        document["litellm"] = deployments[0]["litellm"]
        if "weight" in deployments[0]:
            report.add("dropped", usable[0].where, f"model {name}: weight = {deployments[0]['weight']} of its only deployment changes nothing, so it is not written")
    document["pricing"] = pricing
    return document


def _litellm(label: str, entry: Upstream, key_file: str, tree: TenantTree, environ: Mapping[str, str]) -> dict[str, Any]:
    """`Model.litellm` (or a deployment's `litellm`) of one entry."""
    report, params, where = tree.report, entry.params, entry.where
    litellm: dict[str, Any] = {"model": params["model"]}
    base = params.get("api_base")
    if isinstance(base, str) and base.startswith(ENV_PREFIX):
        variable = base[len(ENV_PREFIX):]
        value = environ.get(variable, "").strip()
        if re.match(r"^https?://\S+$", value):
            litellm["api_base"] = value
            report.add("review", where, f"{label}: api_base was os.environ/{variable}; Cockpit's api_base is a URL, so the value {variable} has here ({value}) is written. Endpoints that differ per environment need one config per environment")
        else:
            report.add("review", where, f"{label}: api_base was os.environ/{variable}, which is not set to a URL where the import ran; api_base is left out (the provider's default endpoint): ACTION: set litellm.api_base in models.yaml")
    elif isinstance(base, str) and base:
        litellm["api_base"] = base
    key = params.get("api_key")
    if isinstance(key, str) and key.startswith(ENV_PREFIX):
        variable = key[len(ENV_PREFIX):]
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", variable):
            report.add("dropped", where, f"{label}: api_key names an environment variable that is not a plain name; set litellm.api_key by hand")
        else:
            if env_problem(variable, {}) is not None:
                renamed = f"TENANT_{variable}"
                report.add("changed", where, f"{label}: api_key was os.environ/{variable}, a name Cockpit reserves for the host; written as ${{env:{renamed}}}: set {renamed} where Cockpit applies")
                variable = renamed
            litellm["api_key"] = "${env:" + variable + "}"
    elif key not in (None, ""):
        litellm["api_key"] = tree.secret("models.yaml", key_file, str(key))
    for field_name in ("api_version", "timeout", "extra_body"):
        if params.get(field_name) not in (None, "", {}):
            litellm[field_name] = params[field_name]
    return litellm


def _pricing(entry: Upstream) -> dict[str, Any]:
    pricing: dict[str, Any] = {}
    for source_key, target in PRICE_KEYS.items():
        value = entry.info.get(source_key)
        if value is None:
            value = entry.params.get(source_key)
        if value is not None:
            pricing[target] = _per_million(float(value))
    return pricing


def _prices(pricing: dict[str, Any]) -> str:
    return "priced " + ", ".join(f"{k} {v}" for k, v in pricing.items()) if pricing else "no price of its own"


def _deployment_names(entries: list[Upstream]) -> list[str]:
    """A name per entry, from the last part of its upstream model (`azure/gpt-4o-eu` →
    `gpt-4o-eu`), unique within the model."""
    taken = UniqueNames()
    return [taken.claim(slug(str(e.params["model"]).rstrip("/").rsplit("/", 1)[-1], f"deployment-{i}")) for i, e in enumerate(entries, 1)]


def whole_number(value: Any, largest: int) -> int | None:
    """`value` as a whole number from 1 to `largest`, or None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and 1 <= number <= largest else None


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
    """The old catalog (`LiteLLM_ProxyModelTable` rows with `account_id` NULL) into `models.yaml`,
    rows of one name as the deployments of one model; the catalog names. Rows of one account are
    reported: Cockpit's catalog is global."""
    entries: list[Upstream] = []
    for row in rows:
        at = row_at("LiteLLM_ProxyModelTable", row, "model_id")
        if row.get("account_id") is not None:
            tree.report.add("dropped", at, f"model {row.get('model_name')!r} belongs to account id {row['account_id']}; Cockpit's catalog is global: declare it in models.yaml if the account needs it")
            continue
        name = model_name(row.get("model_name"), at, tree)
        if name is None:
            continue
        params, info = json_object(row.get("litellm_params")), json_object(row.get("model_info"))
        if info.get("is_active") is False:
            tree.report.add("review", at, f"model {name} was inactive in the old catalog; Cockpit has no inactive models or deployments, so it is declared: leave it out of model grants, or delete it (or this deployment of it) from models.yaml")
        entries.append(Upstream(name, params, {k: v for k, v in info.items() if k != "is_active"}, at))
    return set(add_models(entries, tree))


def _per_million(per_token: float) -> float | int:
    value = round(per_token * 1_000_000, 6)
    return int(value) if value.is_integer() else value

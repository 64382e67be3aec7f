"""Model: one entry of the workspace's model catalog (global, not an account's), with its
deployments (when it lists several), fallbacks and attempt timeout."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import MODEL
from cockpit.resources.builder import Builder
from cockpit.resources.documents import (
    AccountResources,
    Document,
    header,
    in_model_order,
    number,
    protect,
    put,
    without_defaults,
)
from cockpit.resources.kind import Kind
from cockpit.resources.rows import ParentRef, ResourceType

TYPES = (
    ResourceType(
        "model",
        kind="Model",
        table="models",
        key_columns=("name",),
        fields=(
            "description", "litellm", "input_per_million", "output_per_million",
            "cached_input_per_million", "fallbacks", "timeout_seconds",
        ),
        account_scoped=False,
        secret="api_key",
        secret_source={"litellm": "litellm"},
        protectable=True,
        scales={"input_per_million": 6, "output_per_million": 6, "cached_input_per_million": 6},
        audit_domain="iam",
    ),
    ResourceType(
        "model_deployment",
        kind="Model",
        table="model_deployments",
        key_columns=("name",),
        parents=(ParentRef("model_id", "model"),),
        fields=("litellm", "weight", "rpm", "tpm"),
        account_scoped=False,
        secret="api_key",
        secret_source={"litellm": "deployments.*.litellm"},
        audit_domain="iam",
        label="model deployment",
    ),
)


def expand(b: Builder, m: models.Model) -> None:
    b.add(
        "model", (m.name,), protect=m.protect, description=m.description,
        litellm=m.litellm.model_dump(mode="json", exclude_none=True) if m.litellm is not None else None,
        input_per_million=m.pricing.input_per_million, output_per_million=m.pricing.output_per_million,
        cached_input_per_million=m.pricing.cached_input_per_million,
        fallbacks=list(m.fallbacks), timeout_seconds=m.timeout_seconds,
    )
    for i, d in enumerate(m.deployments):
        b.add(
            "model_deployment", (m.name, d.name), ("deployments", i),
            litellm=d.litellm.model_dump(mode="json", exclude_none=True), weight=d.weight, rpm=d.rpm, tpm=d.tpm,
        )


def export(res: AccountResources) -> dict[str, list[Document]]:
    """The whole catalog: it belongs to the workspace, and the tree must validate alone."""
    return {"models.yaml": model_documents(res)}


def model_documents(res: AccountResources) -> list[Document]:
    documents = []
    for model in res.of("model"):
        document = header("Model")
        document["name"] = model.key[0]
        protect(document, model)
        put(document, models.Model, "description", model.fields["description"])
        if model.fields["litellm"] is not None:
            document["litellm"] = _litellm(model.fields["litellm"])
        deployments = [_deployment(d) for d in res.children("model_deployment", model.key)]
        put(document, models.Model, "deployments", deployments)
        put(document, models.Model, "fallbacks", list(model.fields.get("fallbacks") or []))
        put(document, models.Model, "timeout_seconds", number(model.fields.get("timeout_seconds")))
        document["pricing"] = {
            "input_per_million": number(model.fields["input_per_million"]),
            "output_per_million": number(model.fields["output_per_million"]),
        }
        if model.fields.get("cached_input_per_million") is not None:
            document["pricing"]["cached_input_per_million"] = number(model.fields["cached_input_per_million"])
        documents.append(document)
    return documents


def _litellm(stored: dict) -> dict:
    litellm = in_model_order(dict(stored), models.LitellmParams)
    if "timeout" in litellm:
        litellm["timeout"] = number(litellm["timeout"])  # a float field: 120 reads back as 120.0
    return without_defaults(litellm, models.LitellmParams)


def _deployment(deployment) -> dict:
    entry = {"name": deployment.key[-1], "litellm": _litellm(deployment.fields["litellm"])}
    for field in ("weight", "rpm", "tpm"):
        put(entry, models.Deployment, field, deployment.fields[field])
    return entry


KIND = Kind(MODEL, TYPES, expand=expand, export=export)

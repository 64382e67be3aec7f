"""Model: one entry of the workspace's model catalog (global, not an account's)."""

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
from cockpit.resources.rows import ResourceType

TYPES = (
    ResourceType(
        "model",
        kind="Model",
        table="models",
        key_columns=("name",),
        fields=("description", "litellm", "input_per_million", "output_per_million", "cached_input_per_million"),
        account_scoped=False,
        secret="api_key",
        secret_source={"litellm": "litellm"},
        protectable=True,
        scales={"input_per_million": 6, "output_per_million": 6, "cached_input_per_million": 6},
        audit_domain="iam",
    ),
)


def expand(b: Builder, m: models.Model) -> None:
    b.add(
        "model", (m.name,), protect=m.protect, description=m.description,
        litellm=m.litellm.model_dump(mode="json", exclude_none=True),
        input_per_million=m.pricing.input_per_million, output_per_million=m.pricing.output_per_million,
        cached_input_per_million=m.pricing.cached_input_per_million,
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
        litellm = in_model_order(dict(model.fields["litellm"]), models.LitellmParams)
        if "timeout" in litellm:
            litellm["timeout"] = number(litellm["timeout"])  # a float field: 120 reads back as 120.0
        document["litellm"] = without_defaults(litellm, models.LitellmParams)
        document["pricing"] = {
            "input_per_million": number(model.fields["input_per_million"]),
            "output_per_million": number(model.fields["output_per_million"]),
        }
        if model.fields.get("cached_input_per_million") is not None:
            document["pricing"]["cached_input_per_million"] = number(model.fields["cached_input_per_million"])
        documents.append(document)
    return documents


KIND = Kind(MODEL, TYPES, expand=expand, export=export)

"""The source registry: every source entity profilecast reads, declared once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from profilecast.config import connectors
from profilecast.sources.connectors.dialects import normalize_contact, normalize_web_event

CHUNK_ROWS = 100_000


META_COLUMNS = ("_extra", "_flags", "_record_ts", "_source_file", "_line")


class SourceError(RuntimeError):
    """A drop that cannot be read at all (missing required column, missing drop, ...)."""


@dataclass(frozen=True)
class EntitySpec:
    source: str
    entity: str
    columns: tuple[str, ...]
    #: a record needs at least one of these non-empty, or it is quarantined
    identifiers: tuple[str, ...]
    #: the watermark is the latest parseable value among these (empty: full snapshot)
    watermark: tuple[str, ...] = ()
    #: CSV drops must carry these columns in their header
    required_columns: tuple[str, ...] = ()
    timestamps: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    #: the record's own id; derived from a hash of the payload when absent
    record_id: str | None = None
    #: fields holding an email address: a value that is not one quarantines the record
    email_fields: tuple[str, ...] = ()
    #: maps other systems' shapes of this record onto ours (Salesforce, HubSpot, Snowplow)
    dialect: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: a published spec the records must follow ("segment": the Segment spec's calls)
    rules: str | None = None
    #: the API connector that can read this entity instead of drops ("stripe", "hubspot");
    #: it is used when PROFILECAST_CONNECTORS says api for the source
    api: str | None = None
    #: fields naming the person the record is about (dotted: inside a JSON object); a
    #: record whose value here belongs to an erased person is not loaded again
    person_fields: tuple[str, ...] = ()

    @property
    def table(self) -> str:
        return f"{self.source}__{self.entity}"


ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec(
        "crm", "contacts",
        ("contact_id", "email", "first_name", "last_name", "phone", "company", "job_title",
         "industry", "street", "city", "postcode", "state", "country", "birth_date",
         "lifecycle_stage", "created_at", "updated_at", "email_opt_in", "email_opt_in_at"),
        identifiers=("contact_id", "email"),
        watermark=("updated_at", "created_at"),
        required_columns=("contact_id", "email"),
        timestamps=("created_at", "updated_at", "email_opt_in_at"),
        dates=("birth_date",),
        record_id="contact_id",
        email_fields=("email",),
        dialect=normalize_contact,
        api="hubspot",
        person_fields=("contact_id", "email"),
    ),
    EntitySpec(
        "crm", "companies",
        ("company_id", "name", "domain", "industry", "employees", "country"),
        identifiers=("company_id",),
        required_columns=("company_id", "name"),
        record_id="company_id",
    ),
    EntitySpec(
        "crm", "tickets",
        ("ticket_id", "contact_id", "email", "subject", "body", "product", "status", "priority",
         "created_at", "updated_at", "messages"),
        identifiers=("ticket_id",),
        watermark=("updated_at", "created_at"),
        timestamps=("created_at", "updated_at"),
        record_id="ticket_id",
        email_fields=("email",),
        person_fields=("contact_id", "email"),
    ),
    EntitySpec(
        "billing", "customers",
        ("id", "email", "name", "phone", "currency", "created", "address", "metadata", "deleted",
         "updated"),
        identifiers=("id",), watermark=("updated", "created"), timestamps=("created", "updated"),
        record_id="id", email_fields=("email",), api="stripe",
        person_fields=("id", "email", "metadata.crm_contact_id"),
    ),
    EntitySpec(
        "billing", "subscriptions",
        ("id", "customer", "status", "created", "current_period_start", "current_period_end",
         "canceled_at", "currency", "items", "updated"),
        identifiers=("id",), watermark=("updated", "created", "canceled_at"),
        timestamps=("created", "current_period_start", "current_period_end", "canceled_at",
                    "updated"),
        record_id="id", api="stripe", person_fields=("customer",),
    ),
    EntitySpec(
        "billing", "invoices",
        ("id", "customer", "subscription", "status", "amount_due", "amount_paid", "currency",
         "created", "lines"),
        identifiers=("id",), watermark=("created",), timestamps=("created",), record_id="id",
        api="stripe", person_fields=("customer",),
    ),
    EntitySpec(
        "billing", "charges",
        ("id", "customer", "amount", "amount_refunded", "currency", "status", "paid", "invoice",
         "created", "metadata"),
        identifiers=("id",), watermark=("created",), timestamps=("created",), record_id="id",
        api="stripe", person_fields=("customer",),
    ),
    EntitySpec(
        "billing", "refunds",
        ("id", "charge", "amount", "currency", "status", "reason", "created"),
        identifiers=("id",), watermark=("created",), timestamps=("created",), record_id="id",
        api="stripe",
    ),
    EntitySpec(
        "web", "events",
        ("messageId", "type", "event", "name", "anonymousId", "userId", "timestamp",
         "receivedAt", "properties", "traits", "context"),
        identifiers=("anonymousId", "userId"),
        watermark=("timestamp", "receivedAt"),
        timestamps=("timestamp", "receivedAt"),
        record_id="messageId",
        dialect=normalize_web_event,
        rules="segment",
        person_fields=("anonymousId", "userId", "traits.email", "context.traits.email"),
    ),
    EntitySpec(
        "esp", "events",
        ("sg_event_id", "email", "event", "timestamp", "sg_message_id", "category", "url",
         "reason", "type", "asm_group_id", "frequency", "message_key", "campaign_id",
         "experiment_id", "variant", "sg_machine_open"),
        identifiers=("email",),
        watermark=("timestamp",),
        timestamps=("timestamp",),
        record_id="sg_event_id",
        email_fields=("email",),
        person_fields=("email",),
    ),
    # What profilecast itself sent (and held out): the export writes one file per batch, the
    # next run loads it, and the campaign results join ESP events and orders to it.
    EntitySpec(
        "sends", "messages",
        ("message_key", "campaign_id", "flow_step", "customer_id", "experiment_id", "variant",
         "status", "run_date", "sent_at", "send_at", "attribution_days"),
        identifiers=("message_key",),
        watermark=("sent_at",),
        timestamps=("sent_at", "send_at"),
        dates=("run_date",),
        record_id="message_key",
        person_fields=("customer_id",),
    ),
)  # fmt: skip


#: Every source, in the order the DAG extracts them (one extract task each).
SOURCE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(s.source for s in ENTITIES))


def spec_for(source: str, entity: str) -> EntitySpec:
    """The declaration of one entity (SourceError when there is none)."""
    for spec in ENTITIES:
        if spec.source == source and spec.entity == entity:
            return spec
    raise SourceError(f"no entity {source}.{entity} is declared in sources/catalog.py")


def specs_for(source: str) -> list[EntitySpec]:
    return [s for s in ENTITIES if s.source == source]


def connector_for(source: str) -> str:
    """``files`` (default) or ``api``, from PROFILECAST_CONNECTORS=billing=api,crm=api."""
    kind = connectors().get(source, "files")
    if kind not in ("files", "api"):
        raise SourceError(f"PROFILECAST_CONNECTORS: unknown connector {kind!r} for {source}")
    return kind

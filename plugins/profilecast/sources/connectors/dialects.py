"""Record dialects: other tools' shapes of the same entity, mapped onto profilecast's.

Real drops rarely arrive in one shape. Each function here recognises one foreign shape by its
keys and maps it to the fields the entity spec declares; fields it does not map are kept
(they land in ``_extra``). Detection is per record, so a folder may mix shapes.

* CRM contacts: Salesforce sObject records (``FirstName``, ``MailingCity``, ...), HubSpot
  API objects (``{"id", "properties": {...}}``) and HubSpot warehouse tables
  (``property_email``, ...).
* Web events: Snowplow enriched events (``event_id``, ``domain_userid``, ...) become
  Segment-spec events.
"""

from __future__ import annotations

import json
from typing import Any

SALESFORCE_CONTACT = {
    "Id": "contact_id",
    "External_Id__c": "contact_id",
    "Email": "email",
    "FirstName": "first_name",
    "LastName": "last_name",
    "MobilePhone": "phone",
    "Phone": "phone",
    "Title": "job_title",
    "MailingStreet": "street",
    "MailingCity": "city",
    "MailingPostalCode": "postcode",
    "MailingState": "state",
    "MailingCountry": "country",
    "Birthdate": "birth_date",
    "CreatedDate": "created_at",
    "LastModifiedDate": "updated_at",
    "LeadSource": "lead_source",
}

HUBSPOT_CONTACT = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "phone": "phone",
    "mobilephone": "phone",
    "company": "company",
    "jobtitle": "job_title",
    "industry": "industry",
    "address": "street",
    "city": "city",
    "zip": "postcode",
    "state": "state",
    "country": "country",
    "date_of_birth": "birth_date",
    "lifecyclestage": "lifecycle_stage",
    "createdate": "created_at",
    "lastmodifieddate": "updated_at",
}

SNOWPLOW_EVENT_TYPES = {
    "page_view": "page",
    "page_ping": "page",
    "struct": "track",
    "unstruct": "track",
}


def _map(record: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        target = mapping.get(key)
        if target and (out.get(target) in (None, "")):
            out[target] = value
        elif not target:
            out[key] = value
    return out


def _opted_out(out: dict[str, Any], flag: str) -> dict[str, Any]:
    """Salesforce's ``HasOptedOutOfEmail`` and HubSpot's ``hs_email_optout``, when true, are
    an explicit no to marketing email (``email_opt_in`` false). False only means "has not
    objected", which is not an opt-in, so it sets nothing."""
    value = out.get(flag)
    if str(value).strip().lower() in ("true", "1", "yes") and out.get("email_opt_in") in (None, ""):
        out["email_opt_in"] = "false"
    return out


def normalize_contact(record: dict[str, Any]) -> dict[str, Any]:
    if "attributes" in record and ("LastName" in record or "Email" in record):
        out = _map({k: v for k, v in record.items() if k != "attributes"}, SALESFORCE_CONTACT)
        out.setdefault("contact_id", (record.get("attributes") or {}).get("referenceId"))
        out["source_dialect"] = "salesforce"
        return _opted_out(out, "HasOptedOutOfEmail")
    if isinstance(record.get("properties"), dict) and "id" in record:
        props = record["properties"]
        out = _opted_out(_map(props, HUBSPOT_CONTACT), "hs_email_optout")
        out["contact_id"] = str(record["id"])
        out.setdefault("created_at", record.get("createdAt"))
        out["updated_at"] = record.get("updatedAt") or out.get("updated_at")
        if record.get("archived"):
            out["archived"] = record["archived"]
        out["source_dialect"] = "hubspot_api"
        return out
    if "property_email" in record or "property_firstname" in record:
        stripped = {
            (k[len("property_") :] if k.startswith("property_") else k): v
            for k, v in record.items()
        }
        out = _map(stripped, HUBSPOT_CONTACT)
        out["contact_id"] = str(record.get("id") or "")
        out.setdefault("updated_at", record.get("_fivetran_synced"))
        out["source_dialect"] = "hubspot_table"
        return _opted_out(out, "hs_email_optout")
    return record


def normalize_web_event(record: dict[str, Any]) -> dict[str, Any]:
    if "event_id" in record and ("collector_tstamp" in record or "domain_userid" in record):
        kind = SNOWPLOW_EVENT_TYPES.get(str(record.get("event") or ""), "track")
        props = {
            k: record.get(k)
            for k in ("page_url", "page_title", "page_referrer", "se_category", "se_action")
            if record.get(k)
        }
        if record.get("page_url"):
            props["url"] = record["page_url"]
        out: dict[str, Any] = {
            "messageId": record.get("event_id"),
            "type": kind,
            "event": record.get("event_name") or record.get("se_action") or record.get("event"),
            "name": record.get("page_title") if kind == "page" else None,
            "anonymousId": record.get("domain_userid") or record.get("network_userid"),
            "userId": record.get("user_id"),
            "timestamp": record.get("derived_tstamp")
            or record.get("dvce_created_tstamp")
            or record.get("collector_tstamp"),
            "receivedAt": record.get("collector_tstamp"),
            "properties": props,
            "context": {
                "snowplow": {"app_id": record.get("app_id"), "platform": record.get("platform")}
            },
            "source_dialect": "snowplow",
            # Every other non-empty column is kept (it lands in _extra), never dropped.
            "snowplow_fields": {k: v for k, v in record.items() if v not in (None, "")},
        }
        raw = record.get("unstruct_event")
        if raw:
            try:
                out["properties"]["unstruct_event"] = json.loads(raw)
            except (TypeError, ValueError):
                out["properties"]["unstruct_event"] = raw
        return out
    return record


def normalize(dialect: Any, record: Any) -> Any:
    """``record`` mapped by an entity's dialect (its ``EntitySpec.dialect``), if it has one."""
    if dialect is None or not isinstance(record, dict):
        return record
    return dialect(record)

"""ESP export formats, each with a versioned schema.

Every batch file is gzip JSON lines; what a line is depends on the format:

``jsonl`` (``profilecast.jsonl/1``)
    One message per line: ``message_key, campaign_id, customer_id, to, from, subject,
    subject_variant, experiment_id, variant, preheader, html, text, headers, fields``; up to
    1,000 per file.
``ses`` (``ses.SendBulkEmail/1``)
    One Amazon SES v2 ``SendBulkEmail`` request per line, at most 50 ``BulkEmailEntries``
    each. The default template passes each recipient's rendered subject/HTML/text through
    (``{{subject}}``, ``{{{html}}}``, ``{{{text}}}``); ``message_key``, ``campaign_id``,
    ``experiment_id`` and ``variant`` ride in ``ReplacementTags`` (SES returns them as the
    event's ``mail.tags``) and the unsubscribe headers in ``ReplacementHeaders``.
``sendgrid`` (``sendgrid.mail_send/1``)
    One SendGrid v3 ``mail/send`` body per line, at most 1,000 personalizations each; the
    rendered bodies travel as ``substitutions``; ``message_key``, ``campaign_id``,
    ``experiment_id`` and ``variant`` in ``custom_args`` (SendGrid's events echo them).

A campaign with ``send_time`` gives each message ``send_at`` (UTC, ``YYYY-MM-DD HH:MM:SS``):
every batch file then holds messages of one send time, and the manifest lists each batch's
``send_at``. SendGrid gets it per personalization (its unix ``send_at``: SendGrid schedules
up to 72 hours ahead); SES has no scheduling, so the loader sends each SES batch at its
manifest ``send_at``; a jsonl line carries the field itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

MESSAGES_PER_FILE = 1000
SES_ENTRIES_PER_REQUEST = 50
SENDGRID_PERSONALIZATIONS_PER_BODY = 1000
#: what each message carries to the ESP and back in its events (SES message tags, SendGrid
#: custom args): the results join ESP events to messages by message_key
TRACKED = ("message_key", "campaign_id", "experiment_id", "variant")


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ses_request(messages: list[dict[str, Any]]) -> dict[str, Any]:
    first = messages[0]
    return {
        "FromEmailAddress": first["from"],
        "DefaultEmailTags": [{"Name": "campaign_id", "Value": first["campaign_id"]}],
        "DefaultContent": {
            "Template": {
                "TemplateContent": {
                    "Subject": "{{subject}}",
                    "Html": "{{{html}}}",
                    "Text": "{{{text}}}",
                },
                "TemplateData": json.dumps({"subject": "", "html": "", "text": ""}),
            }
        },
        "BulkEmailEntries": [
            {
                "Destination": {"ToAddresses": [m["to"]]},
                "ReplacementTags": [
                    {"Name": k, "Value": str(m[k])} for k in TRACKED if m.get(k) is not None
                ],
                "ReplacementHeaders": [
                    {"Name": k, "Value": v}
                    for k, v in m["headers"].items()
                    if k.startswith("List-Unsubscribe")
                ],
                "ReplacementEmailContent": {
                    "ReplacementTemplate": {
                        "ReplacementTemplateData": json.dumps(
                            {"subject": m["subject"], "html": m["html"], "text": m["text"]},
                            ensure_ascii=False,
                        )
                    }
                },
            }
            for m in messages
        ],
    }


def _unix(send_at: str) -> int:
    """A ``send_at`` (UTC, ``YYYY-MM-DD HH:MM:SS``) as SendGrid's unix timestamp."""
    from datetime import UTC, datetime

    # fromisoformat reads "YYYY-MM-DD HH:MM:SS" too, and ten times faster than strptime
    return int(datetime.fromisoformat(send_at[:19]).replace(tzinfo=UTC).timestamp())


def sendgrid_body(messages: list[dict[str, Any]]) -> dict[str, Any]:
    first = messages[0]
    name, address = parseaddr(first["from"])
    sender = {"email": address, **({"name": name} if name else {})}
    return {
        "from": sender,
        "subject": first["subject"],
        "categories": [first["campaign_id"]],
        "content": [
            {"type": "text/plain", "value": "-body_text-"},
            {"type": "text/html", "value": "-body_html-"},
        ],
        "personalizations": [
            {
                "to": [{"email": m["to"]}],
                "subject": m["subject"],
                "headers": {
                    k: v for k, v in m["headers"].items() if k.startswith("List-Unsubscribe")
                },
                "substitutions": {"-body_html-": m["html"], "-body_text-": m["text"]},
                "custom_args": {k: str(m[k]) for k in TRACKED if m.get(k) is not None},
                **({"send_at": _unix(m["send_at"])} if m.get("send_at") else {}),
            }
            for m in messages
        ],
    }


@dataclass(frozen=True)
class ExportFormat:
    """One ESP format: its schema version, how many messages a batch file holds, and the
    lines a file's messages become. Adding a format is one entry in ``FORMATS``."""

    name: str
    schema: str
    lines: Callable[[list[dict[str, Any]]], list[str]]
    #: the ESP's side: one line's object back to its messages (message_key, to, subject,
    #: html, headers), for checks and for anyone consuming the batches
    read: Callable[[dict[str, Any]], list[dict[str, Any]]]
    #: at most this many messages per batch file (0: the shared MESSAGES_PER_FILE)
    messages_per_file: int = 0


def _jsonl_lines(chunk: list[dict[str, Any]]) -> list[str]:
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per line
    return [encode(m) for m in chunk]


def _ses_lines(chunk: list[dict[str, Any]]) -> list[str]:
    return [
        json.dumps(ses_request(part), ensure_ascii=False)
        for part in _chunks(chunk, SES_ENTRIES_PER_REQUEST)
    ]


def _sendgrid_lines(chunk: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(sendgrid_body(chunk), ensure_ascii=False)]


def _jsonl_read(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"message_key": obj["message_key"], "to": obj["to"], "subject": obj["subject"],
             "html": obj["html"], "headers": obj["headers"], "variant": obj.get("variant"),
             "experiment_id": obj.get("experiment_id")}]  # fmt: skip


def _ses_read(obj: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in obj["BulkEmailEntries"]:
        content = entry["ReplacementEmailContent"]["ReplacementTemplate"]
        data = json.loads(content["ReplacementTemplateData"])
        tags = {t["Name"]: t["Value"] for t in entry["ReplacementTags"]}
        headers = {h["Name"]: h["Value"] for h in entry["ReplacementHeaders"]}
        rows.append({"message_key": tags["message_key"], "to": entry["Destination"]["ToAddresses"][0],
                     "subject": data["subject"], "html": data["html"], "headers": headers,
                     "variant": tags.get("variant"),
                     "experiment_id": tags.get("experiment_id")})  # fmt: skip
    return rows


def _sendgrid_read(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"message_key": p["custom_args"]["message_key"], "to": p["to"][0]["email"],
         "subject": p["subject"], "html": p["substitutions"]["-body_html-"],
         "headers": p["headers"], "variant": p["custom_args"].get("variant"),
         "send_at": p.get("send_at"),
         "experiment_id": p["custom_args"].get("experiment_id")}
        for p in obj["personalizations"]
    ]  # fmt: skip


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("jsonl", "profilecast.jsonl/1", _jsonl_lines, _jsonl_read),
        ExportFormat("ses", "ses.SendBulkEmail/1", _ses_lines, _ses_read),
        ExportFormat(
            "sendgrid",
            "sendgrid.mail_send/1",
            _sendgrid_lines,
            _sendgrid_read,
            SENDGRID_PERSONALIZATIONS_PER_BODY,
        ),  # fmt: skip
    )
}
#: format name -> schema version (written into every manifest)
SCHEMAS = {name: f.schema for name, f in FORMATS.items()}


def batch_files(fmt: str, messages: list[dict[str, Any]]) -> Iterator[tuple[list[dict], list[str]]]:
    """(messages in the file, its lines) per batch file, for a sorted list of messages."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (use one of {sorted(FORMATS)})")
    spec = FORMATS[fmt]
    for chunk in _chunks(messages, spec.messages_per_file or MESSAGES_PER_FILE):
        yield chunk, spec.lines(chunk)


def validate_ses_request(request: dict[str, Any]) -> None:
    """Raise if botocore's own parameter validator rejects a SendBulkEmail request."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sesv2")
    report = ParamValidator().validate(request, model.operation_model("SendBulkEmail").input_shape)
    if report.has_errors():
        raise ValueError(report.generate_report())
    if len(request["BulkEmailEntries"]) > SES_ENTRIES_PER_REQUEST:
        raise ValueError("SendBulkEmail takes at most 50 entries")

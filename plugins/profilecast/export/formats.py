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

How a line is built: each message becomes one *entry* (the jsonl line itself, an SES
``BulkEmailEntries`` item, a SendGrid personalization), encoded to compact JSON on its own;
a request format puts up to ``per_line`` encoded entries into an *envelope* taken from the
first message, by joining bytes. So the per-message work (the costly part) can run in worker
processes that hand back bytes, and a batch file is a join (``export/prepare.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

import msgspec

MESSAGES_PER_FILE = 1000
SES_ENTRIES_PER_REQUEST = 50
SENDGRID_PERSONALIZATIONS_PER_BODY = 1000
#: what each message carries to the ESP and back in its events (SES message tags, SendGrid
#: custom args): the results join ESP events to messages by message_key
TRACKED = ("message_key", "campaign_id", "experiment_id", "variant")

_encode = msgspec.json.Encoder().encode


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _unsubscribe(m: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in m["headers"].items() if k.startswith("List-Unsubscribe")]


def ses_envelope(first: dict[str, Any]) -> dict[str, Any]:
    """A SendBulkEmail request without its ``BulkEmailEntries`` (the last key)."""
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
                "TemplateData": '{"subject": "", "html": "", "text": ""}',
            }
        },
    }


def ses_entry(m: dict[str, Any]) -> dict[str, Any]:
    """One recipient's ``BulkEmailEntries`` item."""
    data = {"subject": m["subject"], "html": m["html"], "text": m["text"]}
    return {
        "Destination": {"ToAddresses": [m["to"]]},
        "ReplacementTags": [
            {"Name": k, "Value": str(m[k])} for k in TRACKED if m.get(k) is not None
        ],
        "ReplacementHeaders": [{"Name": k, "Value": v} for k, v in _unsubscribe(m)],
        "ReplacementEmailContent": {
            "ReplacementTemplate": {"ReplacementTemplateData": _encode(data).decode()}
        },
    }


@lru_cache(maxsize=1024)
def _unix(send_at: str) -> int:
    """A ``send_at`` (UTC, ``YYYY-MM-DD HH:MM:SS``) as SendGrid's unix timestamp (send times
    are whole hours: a few distinct values per export)."""
    from datetime import UTC, datetime

    # fromisoformat reads "YYYY-MM-DD HH:MM:SS" too, and ten times faster than strptime
    return int(datetime.fromisoformat(send_at[:19]).replace(tzinfo=UTC).timestamp())


def sendgrid_envelope(first: dict[str, Any]) -> dict[str, Any]:
    """A ``mail/send`` body without its ``personalizations`` (the last key)."""
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
    }


def sendgrid_entry(m: dict[str, Any]) -> dict[str, Any]:
    """One recipient's personalization."""
    return {
        "to": [{"email": m["to"]}],
        "subject": m["subject"],
        "headers": dict(_unsubscribe(m)),
        "substitutions": {"-body_html-": m["html"], "-body_text-": m["text"]},
        "custom_args": {k: str(m[k]) for k in TRACKED if m.get(k) is not None},
        **({"send_at": _unix(m["send_at"])} if m.get("send_at") else {}),
    }


def _jsonl_entry(m: dict[str, Any]) -> dict[str, Any]:
    return m  # the message is the line


def _jsonl_read(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"message_key": obj["message_key"], "to": obj["to"], "subject": obj["subject"],
             "html": obj["html"], "headers": obj["headers"], "variant": obj.get("variant"),
             "experiment_id": obj.get("experiment_id")}]  # fmt: skip


def _ses_read(obj: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in obj["BulkEmailEntries"]:
        content = entry["ReplacementEmailContent"]["ReplacementTemplate"]
        data = msgspec.json.decode(content["ReplacementTemplateData"])
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


@dataclass(frozen=True)
class ExportFormat:
    """One ESP format: its schema version, what one message becomes (``entry``), and for a
    request format the request around its entries. Adding a format is one entry in
    ``FORMATS``."""

    name: str
    schema: str
    #: one message's part of a line, as JSON-ready data
    entry: Callable[[dict[str, Any]], Any]
    #: the ESP's side: one line's object back to its messages (message_key, to, subject,
    #: html, headers), for checks and for anyone consuming the batches
    read: Callable[[dict[str, Any]], list[dict[str, Any]]]
    #: a request format: the request without its entries, from the first message of a line
    envelope: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: the key (the envelope's last) holding the entries, and how many one line takes
    entries_key: str = ""
    per_line: int = 1
    #: at most this many messages per batch file (0: the shared MESSAGES_PER_FILE)
    messages_per_file: int = 0


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("jsonl", "profilecast.jsonl/1", _jsonl_entry, _jsonl_read),
        ExportFormat("ses", "ses.SendBulkEmail/1", ses_entry, _ses_read, ses_envelope,
                     "BulkEmailEntries", SES_ENTRIES_PER_REQUEST),
        ExportFormat("sendgrid", "sendgrid.mail_send/1", sendgrid_entry, _sendgrid_read,
                     sendgrid_envelope, "personalizations", SENDGRID_PERSONALIZATIONS_PER_BODY,
                     SENDGRID_PERSONALIZATIONS_PER_BODY),
    )
}  # fmt: skip
#: format name -> schema version (written into every manifest)
SCHEMAS = {name: f.schema for name, f in FORMATS.items()}


def spec(fmt: str) -> ExportFormat:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (use one of {sorted(FORMATS)})")
    return FORMATS[fmt]


def encode_entry(fmt: ExportFormat, message: dict[str, Any]) -> bytes:
    """One message's entry as compact JSON (a whole line for ``jsonl``)."""
    return _encode(fmt.entry(message))


def envelope_head(fmt: ExportFormat, first: dict[str, Any]) -> bytes:
    """A request's JSON up to where its entries start (``{...,"<entries_key>":[``), from
    the first message of its line; b"" for a one-message-per-line format."""
    if fmt.envelope is None:
        return b""
    return _encode(fmt.envelope(first))[:-1] + b',"' + fmt.entries_key.encode() + b'":['


def batch_data(fmt: ExportFormat, heads: list[bytes], entries: list[bytes]) -> tuple[bytes, int]:
    """A batch file's uncompressed bytes and its line count, from its messages' encoded
    entries and envelope heads (``heads[i]``: message ``i``'s; a line takes the head of its
    first message)."""
    if fmt.envelope is None:
        return b"\n".join(entries) + b"\n", len(entries)
    lines = [heads[start] + b",".join(entries[start : start + fmt.per_line]) + b"]}"
             for start in range(0, len(entries), fmt.per_line)]  # fmt: skip
    return b"\n".join(lines) + b"\n", len(lines)


def batch_files(
    fmt: str, messages: list[dict[str, Any]]
) -> Iterator[tuple[list[dict], bytes, int]]:
    """(messages in the file, its uncompressed bytes, its line count) per batch file, for a
    sorted list of messages (in one process: a campaign export prepares its entries in
    worker processes, ``export/prepare.py``)."""
    f = spec(fmt)
    for chunk in _chunks(messages, f.messages_per_file or MESSAGES_PER_FILE):
        heads = [envelope_head(f, m) if i % f.per_line == 0 else b""
                 for i, m in enumerate(chunk)]  # fmt: skip
        data, lines = batch_data(f, heads, [encode_entry(f, m) for m in chunk])
        yield chunk, data, lines


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

"""Read exported batches back, in every format, validating each request as the ESP would."""

from __future__ import annotations

import gzip
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from profilecast.export.formats import validate_ses_request

SENDGRID_SCHEMA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "external"
    / "esp_sendgrid"
    / "mail_send_request.schema.json"
)


@cache
def _sendgrid_validator():
    import jsonschema

    schema = json.loads(SENDGRID_SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def messages_in(folder: Path) -> list[dict[str, Any]]:
    """Every message of a <campaign>/<ds> folder, checking the manifest against the files."""
    manifest = json.loads((folder / "manifest.json").read_text())
    out: list[dict[str, Any]] = []
    for batch in manifest["batches"]:
        data = (folder / batch["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == batch["sha256"], batch["file"]
        found = []
        for line in gzip.decompress(data).decode().splitlines():
            found += _parse(batch["format"], json.loads(line))
        assert len(found) == batch["rows"], batch["file"]
        out += found
    assert len(out) == manifest["total_rows"]
    return out


def _parse(fmt: str, obj: dict[str, Any]) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        return [{"message_key": obj["message_key"], "to": obj["to"], "subject": obj["subject"],
                 "html": obj["html"], "headers": obj["headers"]}]  # fmt: skip
    if fmt == "ses":
        validate_ses_request(obj)
        assert len(obj["BulkEmailEntries"]) <= 50
        rows = []
        for entry in obj["BulkEmailEntries"]:
            data = json.loads(
                entry["ReplacementEmailContent"]["ReplacementTemplate"]["ReplacementTemplateData"]
            )
            tags = {t["Name"]: t["Value"] for t in entry["ReplacementTags"]}
            headers = {h["Name"]: h["Value"] for h in entry["ReplacementHeaders"]}
            rows.append({"message_key": tags["message_key"], "to": entry["Destination"]["ToAddresses"][0],
                         "subject": data["subject"], "html": data["html"], "headers": headers})  # fmt: skip
        return rows
    if fmt == "sendgrid":
        # The schema lives in ../shared/external (present in CI); elsewhere the structural
        # checks below still run and test_sendgrid_schema reports the skip.
        if SENDGRID_SCHEMA.exists():
            errors = sorted(_sendgrid_validator().iter_errors(obj), key=str)
            assert not errors, errors[0].message
        assert obj["from"]["email"] and obj["content"] and obj["subject"]
        assert len(obj["personalizations"]) <= 1000
        return [{"message_key": p["custom_args"]["message_key"], "to": p["to"][0]["email"],
                 "subject": p["subject"], "html": p["substitutions"]["-body_html-"],
                 "headers": p["headers"]} for p in obj["personalizations"]]  # fmt: skip
    raise AssertionError(f"unknown format {fmt}")

"""Read exported batches back, in every format, validating each request as the ESP would."""

from __future__ import annotations

import gzip
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from profilecast.export.formats import FORMATS, validate_ses_request

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
    """What an ESP reads from one line, after checking it with the ESP's own validator."""
    if fmt == "ses":
        validate_ses_request(obj)
        assert len(obj["BulkEmailEntries"]) <= 50
    elif fmt == "sendgrid":
        # The schema lives in ../shared/external (present in CI); elsewhere the structural
        # checks below still run and test_sendgrid_schema reports the skip.
        if SENDGRID_SCHEMA.exists():
            errors = sorted(_sendgrid_validator().iter_errors(obj), key=str)
            assert not errors, errors[0].message
        assert obj["from"]["email"] and obj["content"] and obj["subject"]
        assert len(obj["personalizations"]) <= 1000
    return FORMATS[fmt].read(obj)

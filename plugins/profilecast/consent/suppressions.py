"""Suppression lists: files of addresses or their SHA-256 that must never be mailed.

Drop files into ``PROFILECAST_SUPPRESSIONS`` (default ``$PROFILECAST_HOME/suppressions``):
- ``*.txt``: one address or SHA-256 per line, suppressed for everything marketing;
- ``*.csv`` with a header: ``email`` or ``email_sha256``, and optionally ``topic`` (empty:
  every marketing topic) and ``reason``.

Every render and flow step reads them. A row that cannot be read fails the render with its
file, line and reason: a suppression list is a safety control, so it fails closed rather
than send to someone it was meant to stop.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ALL = "*"


class SuppressionError(ValueError):
    """A suppression file has a row that cannot be used."""


def email_sha256(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


@dataclass
class Suppressions:
    #: topic (or ALL) -> SHA-256 of the suppressed addresses
    hashes: dict[str, set[str]] = field(default_factory=dict)
    files: int = 0
    #: people erased (consent.erasure.Forgotten): no mail of any kind, ever
    forgotten: Any = None

    def erased(self, *values: Any) -> bool:
        """Whether any of ``values`` (an address, a customer id) belongs to someone erased."""
        return bool(self.forgotten) and any(self.forgotten.has(v) for v in values)

    def __len__(self) -> int:
        return sum(len(v) for v in self.hashes.values())

    def stops(self, email: str | None, topic: str | None) -> bool:
        """Whether a marketing message on ``topic`` to ``email`` is suppressed."""
        if not email or not self.hashes:
            return False
        digest = email_sha256(email)
        return digest in self.hashes.get(ALL, ()) or (
            topic is not None and digest in self.hashes.get(topic, ()))  # fmt: skip


def _digest(value: str, where: str) -> str:
    value = value.strip().lower()
    if _HEX64.match(value):
        return value
    if _EMAIL.match(value):
        return email_sha256(value)
    raise SuppressionError(f"{where}: {value!r} is neither an email address nor a SHA-256")


def load_suppressions(folder: Path, topics: set[str]) -> Suppressions:
    out = Suppressions()
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if path.suffix == ".txt":
            out.files += 1
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    out.hashes.setdefault(ALL, set()).add(_digest(line, f"{path}:{n}"))
        elif path.suffix == ".csv":
            out.files += 1
            with path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                cols = set(reader.fieldnames or [])
                if not cols & {"email", "email_sha256"}:
                    raise SuppressionError(f"{path}:1: give an email or email_sha256 column")
                for n, row in enumerate(reader, 2):
                    where = f"{path}:{n}"
                    value = (row.get("email") or row.get("email_sha256") or "").strip()
                    if not value:
                        raise SuppressionError(f"{where}: no address or hash")
                    topic = (row.get("topic") or "").strip() or ALL
                    if topic != ALL and topic not in topics:
                        raise SuppressionError(f"{where}: topic {topic!r} is not declared "
                                               f"(known: {sorted(topics)})")  # fmt: skip
                    out.hashes.setdefault(topic, set()).add(_digest(value, where))
    return out


def current_suppressions() -> Suppressions:
    """The suppression lists as configured (read on every call: files change)."""
    from profilecast.config import load_settings, suppressions_dir, topics_path
    from profilecast.consent.erasure import forgotten
    from profilecast.consent.topics import load_topics

    out = load_suppressions(suppressions_dir(), set(load_topics(topics_path())))
    out.forgotten = forgotten(load_settings().home)
    return out

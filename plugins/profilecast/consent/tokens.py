"""Signed, encrypted one-click unsubscribe tokens (RFC 8058 links), with key rotation.

A token carries the message key, the customer, the address and the topic, encrypted and
authenticated with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``), so the address
never shows in a URL. Several keys may be active: the first signs, any verifies (rotate by
putting the new key first and dropping the old one once its links have expired). A token
older than the maximum age is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

DEMO_SECRET = "profilecast-demo-secret"


class TokenError(ValueError):
    """A token that was not made with an active key, was altered, or has expired."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


def _fernet_key(secret: str) -> bytes:
    return base64.urlsafe_b64encode(
        hashlib.sha256(b"profilecast-unsubscribe|" + secret.encode()).digest()
    )


@dataclass(frozen=True)
class Unsubscribe:
    message_key: str
    customer_id: str
    email: str
    topic: str | None


class Tokens:
    def __init__(self, secrets: tuple[str, ...], max_age_seconds: int) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        if not secrets:
            raise ValueError("no unsubscribe key configured")
        self.secrets = secrets
        self.max_age = max_age_seconds
        self._fernet = MultiFernet([Fernet(_fernet_key(s)) for s in secrets])

    @property
    def is_demo(self) -> bool:
        return self.secrets[0] == DEMO_SECRET

    def make(self, message_key: str, customer_id: str, email: str, topic: str | None) -> str:
        body = {"m": message_key, "c": customer_id, "e": email.strip().lower(), "t": topic}
        return self._fernet.encrypt(json.dumps(body, separators=(",", ":")).encode()).decode()

    def read(self, token: str) -> Unsubscribe:
        from cryptography.fernet import InvalidToken

        try:
            raw = self._fernet.decrypt(token.encode(), ttl=self.max_age)
        except InvalidToken:
            if self._valid_but_old(token):
                raise TokenError("this unsubscribe link has expired", 410) from None
            raise TokenError("this unsubscribe link is not valid", 403) from None
        body: dict[str, Any] = json.loads(raw)
        return Unsubscribe(str(body["m"]), str(body["c"]), str(body["e"]), body.get("t"))

    def _valid_but_old(self, token: str) -> bool:
        from cryptography.fernet import InvalidToken

        try:
            self._fernet.decrypt(token.encode())  # no TTL: authentic?
            return True
        except InvalidToken:
            return False

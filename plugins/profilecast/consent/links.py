"""The unsubscribe headers every marketing message carries (RFC 2369 and RFC 8058)."""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any

from profilecast.consent.tokens import Tokens


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"


def message_token(message: dict[str, Any], topic: str | None, tokens: Tokens, issued: str) -> str:
    """The sealed token of one message's links to ``topic`` (None: all marketing)."""
    return tokens.make(message["message_key"], str(message["customer_id"]), message["to"],
                       topic, issued)  # fmt: skip


def unsubscribe_headers(message: dict[str, Any], topic: str | None, tokens: Tokens,
                        base_url: str, issued: str, token: str | None = None) -> dict[str, str]:  # fmt: skip
    """``List-Unsubscribe`` with a per-recipient sealed link and ``List-Unsubscribe-Post``
    for one-click; the link leaves ``topic`` (or all marketing when None). ``issued`` (the
    message's day) starts the link's validity and keeps the token deterministic. ``token``:
    the message's token for ``topic``, when the caller made it already."""
    token = token or message_token(message, topic, tokens, issued)
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(base_url, token)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Profilecast-Message-Key": message["message_key"],
    }


def preferences_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/p/{token}"


_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@lru_cache(maxsize=8)
def _footer_parts(base_url: str) -> tuple[str, str, str, str]:
    """The HTML footer's fixed text around the two tokens, and the bare base, for one base
    URL. A token is URL-safe base64, which HTML escaping leaves as it is."""
    base = base_url.rstrip("/")
    esc = html.escape(base)
    return (f'<p style="font-size:12px;color:#666"><a href="{esc}/p/',
            f'">Email preferences</a> &middot; <a href="{esc}/u/',
            '">Unsubscribe</a></p>', base)  # fmt: skip


def add_footer(message: dict[str, Any], tokens: Tokens, base_url: str, issued: str,
               token: str | None = None) -> None:  # fmt: skip
    """Link the preference centre and a global unsubscribe from the message's body (HTML
    before ``</body>``, text at the end). The link's token carries no topic: the page shows
    them all (``token``: that token, when the caller made it already)."""
    token = token or message_token(message, None, tokens, issued)
    before_prefs, before_unsubscribe, after, base = _footer_parts(base_url)
    if message.get("html"):
        safe = html.escape(token)
        link = f"{before_prefs}{safe}{before_unsubscribe}{safe}{after}"
        body = message["html"]
        m = _BODY_END.search(body)
        message["html"] = body[: m.start()] + link + body[m.start() :] if m else body + link
    if message.get("text") is not None:
        message["text"] = (message["text"].rstrip("\n") + f"\n\n--\nEmail preferences: {base}/p/{token}\n"
                           f"Unsubscribe: {base}/u/{token}\n")  # fmt: skip


def link_settings() -> tuple[Tokens, str]:
    """The active tokens and the public base URL, refused when a public deployment (a
    ``PROFILECAST_PUBLIC_URL``) would sign with the demo key."""
    from profilecast.config import public_url, unsubscribe_keys, unsubscribe_max_age

    tokens = Tokens(unsubscribe_keys(), unsubscribe_max_age())
    base, explicit = public_url()
    if explicit and tokens.is_demo:
        raise RuntimeError(
            "PROFILECAST_PUBLIC_URL is set but unsubscribe links would be signed with the demo "
            "key: set PROFILECAST_UNSUBSCRIBE_KEYS (or PROFILECAST_UNSUBSCRIBE_SECRET) to a "
            "secret of your own before exporting"
        )
    return tokens, base

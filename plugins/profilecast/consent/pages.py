"""The pages an unsubscribe link shows: plain HTML that works without JavaScript."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem">
<h1>{title}</h1>
{body}
</body></html>"""


def _topic_words(topic: str | None) -> str:
    return f"{escape(topic)} emails" if topic else "marketing emails"


def confirm_page(action: str, topic: str | None, masked_email: str) -> str:
    """GET: ask first (mail scanners open links; only a POST changes anything)."""
    body = (f"<p>Stop sending {_topic_words(topic)} to <strong>{escape(masked_email)}</strong>?</p>"
            f'<form method="post" action="{escape(action)}">'
            '<button type="submit">Unsubscribe</button></form>')  # fmt: skip
    return _PAGE.format(title="Unsubscribe", body=body)


def done_page(action: str, topic: str | None, masked_email: str, resubscribed: bool) -> str:
    if resubscribed:
        return _PAGE.format(title="Welcome back", body=(
            f"<p>{escape(masked_email)} will receive {_topic_words(topic)} again.</p>"))  # fmt: skip
    again = (f'<form method="post" action="{escape(action)}/resubscribe">'
             '<button type="submit">I changed my mind: resubscribe</button></form>'
             if topic else "")  # fmt: skip
    body = (f"<p>Done: {escape(masked_email)} will not receive {_topic_words(topic)} any more."
            f"</p>{again}")  # fmt: skip
    return _PAGE.format(title="You are unsubscribed", body=body)


FREQUENCIES = (
    ("all", "Every email we send you"),
    ("weekly", "At most one email a week"),
    ("monthly", "At most one email a month"),
)


def preferences_page(action: str, masked_email: str, topics: list[tuple[str, str, bool]],
                     frequency: str, csrf: str, saved: bool = False) -> str:  # fmt: skip
    """The preference centre: one checkbox per marketing topic, how often, and Save. A
    plain form (labels, fieldsets, a real button), so it works with the keyboard alone and
    without JavaScript."""
    boxes = "".join(
        f'<p><input type="checkbox" name="topic" value="{escape(name)}" id="t-{escape(name)}"'
        f'{" checked" if on else ""}> <label for="t-{escape(name)}"><strong>'
        f"{escape(name.replace('_', ' ').capitalize())}</strong>: {escape(desc)}</label></p>"
        for name, desc, on in topics
    )
    radios = "".join(
        f'<p><input type="radio" name="frequency" value="{value}" id="f-{value}"'
        f'{" checked" if value == frequency else ""}> <label for="f-{value}">{label}</label></p>'
        for value, label in FREQUENCIES
    )
    note = '<p role="status" id="saved">Your choices are saved.</p>' if saved else ""
    body = (f"<p>Emails to <strong>{escape(masked_email)}</strong>.</p>{note}"
            f'<form method="post" action="{escape(action)}">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f"<fieldset><legend>What would you like to hear about?</legend>{boxes}</fieldset>"
            f"<fieldset><legend>How often?</legend>{radios}</fieldset>"
            '<p><button type="submit" id="save">Save my choices</button></p></form>'
            "<p>Order and account emails are not affected.</p>")  # fmt: skip
    return _PAGE.format(title="Your email preferences", body=body)


def error_page(reason: str) -> str:
    return _PAGE.format(title="This link does not work", body=f"<p>{escape(reason)}.</p>")


def mask(email: str) -> str:
    """a***@example.com: enough to recognise, not enough to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"

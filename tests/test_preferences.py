"""The preference centre in headless Chromium (Debian's, driven by Playwright, which never
downloads a browser here), against a real collector process: keyboard only, JavaScript
disabled, and cross-site requests refused."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from profilecast.collector.profiles import SCHEMA, email_hash
from profilecast.consent.tokens import Tokens
from profilecast.fresh.overlay import Overlay
from profilecast.fresh.store import FreshStore

from tests.collector_harness import start_collector
from tests.conftest import chromium_path

KEY = "pref-key-2026"
ANN = "ann@example.com"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _snapshot(home: Path) -> None:
    """A published build where Ann (in Germany, opt-in) has no opt-in for promotions."""
    path = home / "serving" / "profiles.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    body = {"customer_id": "C1", "email": ANN, "first_name": "Ann", "country": "DE",
            "email_frequency": "all",
            "consent_blocked": {"promotions": "has no opt-in for promotions (DE is opt_in)"}}  # fmt: skip
    conn.execute("insert into profiles values (?, ?, ?)", ("C1", email_hash(ANN), json.dumps(body)))
    conn.execute("insert into identifiers values ('C1', 'email', ?)", (ANN,))
    conn.executemany("insert into meta values (?, ?)", [
        ("profile_as_of", "2026-11-26 00:00:00"), ("facts_cutoff", "2026-11-20 00:00:00.000000"),
        ("api_fields", json.dumps(["customer_id", "first_name"])), ("run_date", "2026-11-25")])  # fmt: skip
    conn.commit()
    conn.close()


@pytest.fixture()
def centre(tmp_path):
    home = tmp_path / "home"
    _snapshot(home)
    col = start_collector(home, tmp_path / "drops", PROFILECAST_UNSUBSCRIBE_KEYS=KEY)
    token = Tokens((KEY,), 86400 * 30).make("mk-pref-1", "C1", ANN, None)
    yield col, f"{col.url}/p/{token}"
    col.stop()


def _overlay(home: Path) -> Overlay:
    store = FreshStore.open_for_reading(home / "fresh" / "facts.sqlite")
    try:
        return Overlay(store.facts_for([("email", ANN)], "0000"))
    finally:
        store.close()


def _state(page) -> dict[str, object]:
    return page.evaluate("""() => ({
        newsletter: document.getElementById('t-newsletter').checked,
        promotions: document.getElementById('t-promotions').checked,
        product_updates: document.getElementById('t-product_updates').checked,
        frequency: document.querySelector('input[name=frequency]:checked').value,
        saved: !!document.getElementById('saved')})""")


def test_the_preference_centre_works_with_the_keyboard_alone(centre, tmp_path):
    from playwright.sync_api import sync_playwright

    col, url = centre
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=FLAGS)
        page = browser.new_page(viewport={"width": 720, "height": 900})
        page.goto(url)
        assert "a***@example.com" in page.content() and ANN not in page.content()
        # Newsletter ticked (no choice, opt-out default of the page), promotions not (the
        # build found no opt-in in Germany).
        assert _state(page) == {"newsletter": True, "promotions": False,
                                "product_updates": True, "frequency": "all", "saved": False}  # fmt: skip
        # Keyboard only: Tab to each control, Space to toggle, arrows for the radio group,
        # Enter on the button.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "t-newsletter"
        page.keyboard.press("Space")  # leave the newsletter
        page.keyboard.press("Tab")
        page.keyboard.press("Space")  # opt in to promotions
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")  # into the radio group, on the checked "all"
        assert page.evaluate("document.activeElement.id") == "f-all"
        page.keyboard.press("ArrowDown")  # weekly
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "save"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert _state(page) == {"newsletter": False, "promotions": True,
                                "product_updates": True, "frequency": "weekly", "saved": True}  # fmt: skip
        shot = tmp_path / "preference-centre.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("PROFILECAST_TEST_ARTIFACTS"):
        shutil.copy(shot, Path(os.environ["PROFILECAST_TEST_ARTIFACTS"]) / shot.name)
    overlay = _overlay(col.home)  # journaled and applied before the answer
    assert overlay.suppression("marketing", "newsletter") == "unsubscribe"
    assert overlay.resubscribed_topics(["promotions", "newsletter"]) == ["promotions"]
    assert overlay.frequency() == "weekly"
    events = [e for e in col.journal("esp/events", sealed_only=False)
              if e.get("source") == "preference-centre"]  # fmt: skip
    assert sorted(e["event"] for e in events) == [
        "group_resubscribe", "group_unsubscribe", "preference"]  # fmt: skip
    assert {e["asm_group_id"] for e in events if e.get("topic")} == {101, 102}


def test_the_preference_centre_works_without_javascript(centre):
    from playwright.sync_api import sync_playwright

    col, url = centre
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=FLAGS)
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.goto(url)
        assert "<script" not in page.content()
        page.click("label[for=t-product_updates]")
        page.click("label[for=f-monthly]")
        with page.expect_navigation():
            page.click("#save")
        assert page.locator("#saved").count() == 1
        assert not page.locator("#t-product_updates").is_checked()
        assert page.locator("#f-monthly").is_checked()
        browser.close()
    overlay = _overlay(col.home)
    assert overlay.suppression("marketing", "product_updates") == "unsubscribe"
    assert overlay.suppression("marketing", "newsletter") is None
    assert overlay.frequency() == "monthly"


def test_a_cross_site_post_or_a_foreign_token_is_refused(centre):
    col, url = centre

    def post(target: str, body: bytes, cookie: str | None = None) -> int:
        """The status (a redirect is followed: 200 with the saved page)."""
        req = urllib.request.Request(target, data=body, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        if cookie:
            req.add_header("Cookie", cookie)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    # A form posted from elsewhere has neither the cookie nor a signed field.
    assert post(url, b"topic=newsletter&frequency=all") == 403
    # A real page's field and cookie, replayed against another person's link.
    with urllib.request.urlopen(url, timeout=30) as resp:
        cookie = resp.headers["Set-Cookie"].split(";")[0]
        html = resp.read().decode()
    csrf = html.split('name="csrf" value="')[1].split('"')[0]
    other = Tokens((KEY,), 86400).make("mk-x", "C9", "bob@example.com", None)
    body = f"csrf={csrf}&topic=newsletter&frequency=all".encode()
    assert post(f"{col.url}/p/{other}", body, cookie) == 403
    assert post(url, body, None) == 403  # the field without its cookie
    assert post(url, body, "pc_csrf=guess") == 403
    assert post(url, body, cookie) == 200  # both together: saved (303 to the saved page)
    forged = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(forged, timeout=30)
    assert exc.value.code == 403

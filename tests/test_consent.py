"""One-click unsubscribe against a real collector process: signed links, topics, rotation,
expiry and forgery, and the demo key refused for a public deployment."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from profilecast.consent.tokens import TokenError, Tokens
from profilecast.fresh.overlay import Overlay
from profilecast.fresh.store import FreshStore

from tests.collector_harness import start_collector


def _http(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _overlay(home, email: str) -> Overlay:
    store = FreshStore.open_for_reading(home / "fresh" / "facts.sqlite")
    try:
        return Overlay(store.facts_for([("email", email)], "0000"))
    finally:
        store.close()


ONE_CLICK = b"List-Unsubscribe=One-Click"


def test_one_click_leaves_one_topic_a_resubscribe_comes_back_and_bad_links_fail(tmp_path):
    old, new = "old-key-2026", "new-key-2027"
    col = start_collector(tmp_path / "home", tmp_path / "drops",
                          PROFILECAST_UNSUBSCRIBE_KEYS=f"{new},{old}")  # fmt: skip
    try:
        email = "ann@example.com"
        # Made with the key being rotated out: still honoured while it is listed.
        token = Tokens((old,), 3600).make("mk1", "C1", email, "promotions")
        status, page = _http(f"{col.url}/u/{token}")
        assert status == 200 and "<form" in page and "a***@example.com" in page
        assert email not in page and not _overlay(col.home, email).facts  # a GET changes nothing

        status, body = _http(f"{col.url}/u/{token}", "POST", ONE_CLICK)
        assert status == 200 and json.loads(body)["unsubscribed"] == "promotions"
        overlay = _overlay(col.home, email)  # committed before the answer
        assert overlay.suppression("marketing", "promotions") == "unsubscribe"
        assert overlay.suppression("marketing", "newsletter") is None  # that topic only
        assert overlay.suppression("transactional", "transactional") is None
        journaled = col.journal("esp/events", sealed_only=False)
        assert (
            journaled[-1]["event"] == "group_unsubscribe" and journaled[-1]["asm_group_id"] == 102
        )

        status, page = _http(f"{col.url}/u/{token}/resubscribe", "POST", b"")
        assert status == 200 and "Welcome back" in page
        assert _overlay(col.home, email).suppression("marketing", "promotions") is None

        # A global link (no topic) leaves every marketing topic.
        everything = Tokens((new,), 3600).make("mk2", "C1", email, None)
        assert _http(f"{col.url}/u/{everything}", "POST", ONE_CLICK)[0] == 200
        overlay = _overlay(col.home, email)
        assert overlay.suppression("marketing", "newsletter") == "unsubscribe"
        assert overlay.suppression("marketing", "promotions") == "unsubscribe"

        forged = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
        assert _http(f"{col.url}/u/{forged}", "POST", ONE_CLICK)[0] == 403
        stranger = Tokens(("someone-else",), 3600).make("mk3", "C9", "x@example.com", None)
        assert _http(f"{col.url}/u/{stranger}", "POST", ONE_CLICK)[0] == 403
        stale = Tokens((new,), 3600).make("mk4", "C1", email, None, issued="2026-01-01")
        status, page = _http(f"{col.url}/u/{stale}", "POST", ONE_CLICK)
        assert status == 410 and "expired" in page
        assert not [e for e in col.journal("esp/events", sealed_only=False)
                    if e.get("message_key") in ("mk3", "mk4")]  # fmt: skip
    finally:
        col.stop()


def test_tokens_hide_the_address_are_deterministic_and_refuse_other_keys():
    tokens = Tokens(("k1",), 3 * 86400)  # counted from the issue day
    token = tokens.make("mk", "C1", "Ann@Example.com", "newsletter")
    assert "example" not in token.lower()
    # The same message, the same day: the same token (re-run exports are byte-identical).
    assert token == tokens.make("mk", "C1", "ann@example.com", "newsletter")
    assert token != tokens.make("mk", "C1", "ann@example.com", "promotions")
    u = tokens.read(token)
    assert (u.message_key, u.customer_id, u.email, u.topic) == ("mk", "C1", "ann@example.com",
                                                                "newsletter")  # fmt: skip
    with pytest.raises(TokenError) as err:
        Tokens(("k2",), 3 * 86400).read(token)
    assert err.value.status == 403


def test_a_public_deployment_refuses_to_sign_with_the_demo_key(monkeypatch):
    from profilecast.consent.links import link_settings

    monkeypatch.delenv("PROFILECAST_UNSUBSCRIBE_KEYS", raising=False)
    monkeypatch.delenv("PROFILECAST_UNSUBSCRIBE_SECRET", raising=False)
    monkeypatch.delenv("PROFILECAST_PUBLIC_URL", raising=False)
    tokens, base = link_settings()  # the demo: links to the local collector
    assert tokens.is_demo and base == "http://127.0.0.1:8088"
    monkeypatch.setenv("PROFILECAST_PUBLIC_URL", "https://mail.shop.example.com")
    with pytest.raises(RuntimeError, match="demo key"):
        link_settings()
    monkeypatch.setenv("PROFILECAST_UNSUBSCRIBE_KEYS", "a-real-secret")
    tokens, base = link_settings()
    assert not tokens.is_demo and base == "https://mail.shop.example.com"


def test_suppression_files_are_read_per_topic_and_a_bad_row_fails_closed(tmp_path):
    from profilecast.consent.suppressions import SuppressionError, email_sha256, load_suppressions

    topics = {"newsletter", "promotions"}
    folder = tmp_path / "supp"
    folder.mkdir()
    (folder / "global.txt").write_text(
        f"# from the old ESP\nOld@Example.com\n{email_sha256('h@x.io')}\n"
    )
    (folder / "topics.csv").write_text("email,topic,reason\nann@example.com,promotions,asked\n"
                                       "bob@example.com,,complained by phone\n")  # fmt: skip
    s = load_suppressions(folder, topics)
    assert len(s) == 4 and s.files == 2
    assert s.stops("old@example.com", "newsletter") and s.stops("H@X.IO", None)
    assert s.stops("ann@example.com", "promotions") and not s.stops("ann@example.com", "newsletter")
    assert s.stops("bob@example.com", "newsletter") and not s.stops("eve@example.com", "promotions")
    (folder / "typo.csv").write_text("email,topic\ncarl@example.com,promotion\n")
    with pytest.raises(SuppressionError, match=r"typo\.csv:2: topic 'promotion' is not declared"):
        load_suppressions(folder, topics)
    (folder / "typo.csv").write_text("email_sha256\nnot-a-hash\n")
    with pytest.raises(SuppressionError, match=r"typo\.csv:2: 'not-a-hash' is neither"):
        load_suppressions(folder, topics)


def test_a_suppressed_address_leaves_the_flows_of_that_topic_only(tmp_path, monkeypatch):
    from datetime import timedelta

    from tests.test_flows import T0, World, _identify, _track

    folder = tmp_path / "supp"
    folder.mkdir()
    (folder / "list.csv").write_text("email,topic\nann@example.com,promotions\n")
    monkeypatch.setenv("PROFILECAST_SUPPRESSIONS", str(folder))
    w = World(tmp_path / "w")
    w.post(_track("u-ann", "Product Added", T0, 1, name="Tent"),
           _identify("u-zed", "zed@example.com", T0, 2))  # fmt: skip
    out = w.advance(T0 + timedelta(minutes=31))
    assert out.exited == {"suppression list": 1}  # the cart flow is promotions
    assert w.sends() == [("welcome_series", "hello", "web_user:u-zed")]


def test_crm_opt_out_flags_and_regimes_are_read_from_each_dialect(tmp_path):
    from profilecast.consent.topics import TopicError, load_regimes
    from profilecast.sources.connectors.dialects import normalize_contact

    sf = normalize_contact({"attributes": {"type": "Contact"}, "Id": "003A", "Email": "a@x.io",
                            "LastName": "A", "HasOptedOutOfEmail": True})  # fmt: skip
    hub = normalize_contact(
        {"id": "51", "properties": {"email": "b@x.io", "hs_email_optout": "true"}}
    )
    keep = normalize_contact(
        {"id": "52", "properties": {"email": "c@x.io", "hs_email_optout": "false"}}
    )
    assert sf["email_opt_in"] == "false" and hub["email_opt_in"] == "false"
    assert "email_opt_in" not in keep  # "has not objected" is not an opt-in
    path = tmp_path / "topics.yml"
    path.write_text("topics: {news: {kind: marketing}}\n"
                    "regimes: {default: opt_out, unknown: opt_in, countries: {de: opt_in, FR: soft_opt_in}}\n")  # fmt: skip
    regimes = load_regimes(path)
    assert [regimes.for_country(c) for c in ("DE", "fr", "US", None)] == [
        "opt_in", "soft_opt_in", "opt_out", "opt_in"]  # fmt: skip
    bad = tmp_path / "bad.yml"
    bad.write_text("topics: {news: {}}\nregimes: {countries: {DE: optin}}\n")
    with pytest.raises(TopicError, match="regimes.countries.DE: 'optin' is not one of"):
        load_regimes(bad)

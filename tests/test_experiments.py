"""Experiments: declaration, assignment, the statistics (against published values and
simulated worlds with a known lift, and A/A tests), the holdout kept out of every export
format while the variant reaches each one, and the results page in a real browser."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from profilecast.campaigns.definition import Campaign, message_key
from profilecast.campaigns.templates import CompiledCampaign
from profilecast.experiments.assign import assign
from profilecast.experiments.definition import ExperimentError, parse_experiment
from profilecast.experiments.report import html_report, text_table
from profilecast.experiments.results import summarise
from profilecast.experiments.stats import decide_winner, newcombe, wilson
from profilecast.export import formats
from profilecast.export.batches import export_campaign
from profilecast.storage import ObjectStore
from profilecast_dev.esp_world import Effects, outcome

from .conftest import chromium_path
from .test_export import _Wh

DS = "2026-10-31"
RAW = {
    "id": "exp1",
    "holdout": 0.1,
    "variants": [
        {"id": "a", "weight": 1, "subject": "A {{ first_name }}", "blocks": {"cta": "Go"}},
        {"id": "b", "weight": 3, "subject": "B {{ first_name }}", "preheader": "pre B",
         "blocks": {"cta": "<b>Now</b>"}},
    ],
    "winner": {"policy": "promote", "alpha": 0.01, "min_sample": 500},
}  # fmt: skip


def _experiment(raw=None):
    return parse_experiment(raw or RAW, "c1", [], "", "test")


def test_declarations_are_checked():
    for bad, why in (
        ({**RAW, "holdout": 1.5}, "holdout"),
        ({**RAW, "variants": [{"id": "holdout", "subject": "x"}]}, "holdout"),
        ({**RAW, "variants": [{"id": "a b", "subject": "x"}]}, "must match"),
        ({**RAW, "variants": [{"id": "a", "subject": "x"}, {"id": "a", "subject": "y"}]}, "repeat"),
        ({**RAW, "winner": {"policy": "bandit"}}, "winner policy"),
        ({**RAW, "variants": [{"id": "a"}]}, "no subject"),
    ):
        with pytest.raises(ExperimentError, match=why):
            _experiment(bad)
    plain = parse_experiment(None, "c1", ["one", "two"], "", "test")
    assert [v.variant_id for v in plain.variants] == ["v0", "v1"] and plain.holdout == 0


def test_assignment_is_stable_weighted_and_independent_between_experiments():
    exp = _experiment()
    other = _experiment({**RAW, "id": "exp2"})
    ids = [f"cus{i}" for i in range(40_000)]
    arms = [assign(exp, c) for c in ids]
    assert arms == [assign(exp, c) for c in ids]  # the same every day
    share = Counter(arms)
    assert abs(share["holdout"] / len(ids) - 0.10) < 0.01
    assert abs(share["b"] / (share["a"] + share["b"]) - 0.75) < 0.015
    # Independence: the holdout of exp2 is 10% inside exp1's holdout and outside it alike.
    joint = Counter((a, assign(other, c) == "holdout") for a, c in zip(arms, ids, strict=True))
    inside = joint[("holdout", True)] / share["holdout"]
    outside = (joint[("a", True)] + joint[("b", True)]) / (share["a"] + share["b"])
    assert abs(inside - 0.10) < 0.02 and abs(outside - 0.10) < 0.01
    assert assign(exp, "cus1", promoted="a") in ("a", "holdout")
    assert {assign(exp, c, promoted="a") for c in ids[:2000]} == {"a", "holdout"}


def test_intervals_match_published_values():
    # Newcombe (1998), Statistics in Medicine 17:857-872, table II: 56/70 - 48/80,
    # method 10 (hybrid score) gives 0.0524 to 0.3339; Wilson for 81/263: 0.2553 to 0.3662.
    d, lo, hi = newcombe(56, 70, 48, 80)
    assert round(d, 4) == 0.2 and round(lo, 4) == 0.0524 and round(hi, 4) == 0.3339
    lo, hi = wilson(81, 263)
    assert round(lo, 4) == 0.2553 and round(hi, 4) == 0.3662


def _world_rows(
    seed: int, n: int, effects: Effects, variants=("a", "b"), holdout=0.1
) -> list[dict]:
    """campaign_results-shaped rows drawn from the simulated world's rates (binomial draws
    with numpy: the per-message world is checked against the mart in test_simulate)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n, [holdout] + [(1 - holdout) / len(variants)] * len(variants))
    rows = []
    for arm, size in zip(("holdout", *variants), sizes, strict=True):
        size = int(size)
        sent = arm != "holdout"
        p_convert = effects.base_conversion + (
            effects.send_lift + effects.variant_lift.get(("exp1", arm), 0.0) if sent else 0.0
        )
        delivered = int(rng.binomial(size, effects.delivered)) if sent else 0
        opened = int(rng.binomial(delivered, effects.default_open))
        converted = int(rng.binomial(size, p_convert))
        rows.append({
            "campaign_id": "c1", "experiment_id": "exp1", "variant": arm, "send_date": DS,
            "attribution_complete": True, "recipients": size, "sent": size if sent else 0,
            "delivered": delivered, "opened": opened, "machine_opened_only": 0,
            "clicked": int(rng.binomial(opened, effects.click_given_open)),
            "unsubscribed": 0, "complained": 0, "bounced": (size - delivered) if sent else 0,
            "converted": converted, "revenue": 60.0 * converted,
        })  # fmt: skip
    return rows


def test_the_world_draws_what_its_effects_say():
    """The per-message world (used by the simulation) converts at its stated rates."""
    effects = Effects(variant_lift={("exp1", "b"): 0.03})
    by_arm: dict[str, list[int]] = {}
    for i in range(6000):
        arm = ("holdout", "a", "b")[i % 3]
        rec = {"message_key": f"k{i}", "campaign_id": "c1", "experiment_id": "exp1",
               "variant": arm, "status": "holdout" if arm == "holdout" else "sent",
               "customer_id": f"cus{i}"}  # fmt: skip
        by_arm.setdefault(arm, []).append(outcome(rec, effects, 1)["converted"])
    for arm, p in (("holdout", 0.04), ("a", 0.07), ("b", 0.10)):
        lo, hi = wilson(sum(by_arm[arm]), len(by_arm[arm]), 0.999)
        assert lo <= p <= hi, (arm, lo, hi)


def test_a_known_lift_is_recovered_within_its_interval():
    """The world converts 4% without email, 7% with variant a and 10% with b. Over 40 seeds
    the 95% intervals of b's lift over the holdout and of b over a hold the truth about as
    often as they should, and the winner rule picks b."""
    effects = Effects(variant_lift={("exp1", "b"): 0.03})
    exp = _experiment(
        {**RAW, "variants": [{"id": "a", "subject": "x"}, {"id": "b", "subject": "y"}]}
    )
    covered = winners = 0
    for seed in range(40):
        s = summarise("c1", exp, _world_rows(seed, 12_000, effects))
        b = next(a for a in s["arms"] if a["variant"] == "b")
        lift = b["lift_vs_holdout"]
        covered += lift["low"] <= 0.06 <= lift["high"]
        winners += s["winner"]["variant"] == "b"
        assert s["sending_vs_holdout"]["low"] > 0  # sending at all earns, every seed
    assert covered >= 35, covered  # nominal 95% of 40 = 38
    assert winners >= 30, winners


def test_an_aa_test_declares_no_winner_in_at_least_95_percent_of_seeds():
    effects = Effects()  # a and b identical
    exp = _experiment(
        {**RAW, "variants": [{"id": "a", "subject": "x"}, {"id": "b", "subject": "y"}]}
    )
    declared = sum(
        summarise("c1", exp, _world_rows(seed, 6_000, effects))["winner"]["variant"] is not None
        for seed in range(200)
    )
    assert declared <= 10, f"{declared} of 200 A/A seeds declared a winner"
    # Below the minimum sample nothing is declared, however large the difference.
    verdict = decide_winner({"a": (100, 50), "b": (100, 5)}, 0.01, 500)
    assert verdict.winner is None and "minimum sample" in verdict.reason


def _campaign() -> Campaign:
    return Campaign(
        campaign_id="c1", segments=["s"], kind="marketing", format="jsonl",
        from_address="Shop <shop@example.com>", subject_variants=["x"], preheader="pre",
        fields=["first_name"], topic="promotions", experiment=_experiment(),
        sources={"html": "<p>{{ first_name }}</p><a>{{ blocks.cta }}</a>",
                 "text": "{{ first_name }} {{ blocks.cta }}"},
    )  # fmt: skip


def test_each_variant_renders_its_subject_preheader_and_blocks():
    compiled = CompiledCampaign(_campaign())
    a = compiled.render({"first_name": "Ada"}, "k", "a")
    b = compiled.render({"first_name": "Ada"}, "k", "b")
    assert (a["subject"], a["preheader"], a["variant"]) == ("A Ada", "pre", "a")
    assert (b["subject"], b["preheader"], b["experiment_id"]) == ("B Ada", "pre B", "exp1")
    assert "<a>Go</a>" in a["html"] and "<a><b>Now</b></a>" in b["html"]
    assert b["text"].strip() == "Ada <b>Now</b>"


def _rendered_with_holdout(tmp_path: Path, n: int) -> tuple[Path, set[str]]:
    compiled = CompiledCampaign(_campaign())
    path = tmp_path / "c1.jsonl.gz"
    held = set()
    with gzip.open(path, "wt") as fh:
        for i in range(n):
            cid = f"cus{i}"
            key = message_key("c1", cid, DS)
            arm = compiled.arm(cid)
            if arm == "holdout":
                held.add(key)
                line = {"message_key": key, "campaign_id": "c1", "customer_id": cid,
                        "experiment_id": "exp1", "variant": "holdout"}  # fmt: skip
            else:
                line = {"message_key": key, "campaign_id": "c1", "customer_id": cid,
                        "to": f"p{i}@example.com", "from": "Shop <shop@example.com>",
                        **compiled.render({"first_name": "P"}, key, arm), "fields": {}}  # fmt: skip
            fh.write(json.dumps(line) + "\n")
    return path, held


@pytest.mark.parametrize("fmt", sorted(formats.FORMATS))
def test_the_holdout_is_never_exported_and_the_variant_reaches_every_format(tmp_path, fmt):
    wh = _Wh()
    rendered, held = _rendered_with_holdout(tmp_path, 400)
    target, sources = ObjectStore(str(tmp_path / "out")), ObjectStore(str(tmp_path / "src"))
    for attempt in (1, 2):  # a rerun neither exports nor records anything twice
        out = export_campaign(wh, target, "c1", DS, [rendered], f"run-{attempt}", fmt=fmt,
                              sent_at="2026-11-01 00:00:00", sources=sources)  # fmt: skip
        assert out["held_out"] == (len(held) if attempt == 1 else 0)
    assert 20 < len(held) < 70
    read = []
    for batch in sorted((tmp_path / "out" / "c1" / DS).glob("batch-*.jsonl.gz")):
        for line in gzip.decompress(batch.read_bytes()).decode().splitlines():
            obj = json.loads(line)
            if fmt == "ses":
                formats.validate_ses_request(obj)
            read += formats.FORMATS[fmt].read(obj)
    assert len(read) == 400 - len(held) and not {m["message_key"] for m in read} & held
    assert {m["variant"] for m in read} == {"a", "b"}
    assert {m["experiment_id"] for m in read} == {"exp1"}
    assert {m["subject"][0] for m in read if m["variant"] == "b"} == {"B"}
    recorded = {r[0] for r in wh.query("select message_key from experiment_holdouts")}
    assert recorded == held
    log = [json.loads(x) for p in sorted((tmp_path / "src" / "sends" / "messages").rglob("*.jsonl"))
           for x in p.read_text().splitlines()]  # fmt: skip
    assert Counter(r["status"] for r in log) == {"sent": 400 - len(held), "holdout": len(held)}
    assert all(r["sent_at"] == "2026-11-01 00:00:00" and r["attribution_days"] == 5 for r in log)


def test_ses_events_carry_the_message_tags():
    from profilecast.collector.webhooks import ses_events

    note = {"eventType": "Open", "mail": {"messageId": "m1", "timestamp": "2026-11-01T00:00:00Z",
            "destination": ["p@example.com"],
            "tags": {"message_key": ["k1"], "variant": ["b"], "campaign_id": ["c1"]}},
            "open": {"timestamp": "2026-11-01T02:00:00Z"}}  # fmt: skip
    [event] = ses_events(note)
    assert (event["message_key"], event["variant"], event["event"]) == ("k1", "b", "open")


def test_the_results_page_renders_in_a_real_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    exp = _experiment(
        {**RAW, "variants": [{"id": "a", "subject": "x"}, {"id": "b", "subject": "y"}]}
    )
    summary = summarise(
        "c1", exp, _world_rows(3, 12_000, Effects(variant_lift={("exp1", "b"): 0.03}))
    )
    text = text_table(summary)
    assert "holdout" in text and "winner on converted: b" in text
    page_path = tmp_path / "results.html"
    page_path.write_text(html_report([summary], DS))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(page_path.as_uri())
        assert page.locator("section.campaign h2").inner_text().startswith("c1")
        assert page.locator("table.funnel tr").count() == 4  # header, a, b, holdout
        plots = page.locator("svg.plot")
        assert plots.count() == 3
        bars = page.locator("svg.plot").first.locator("rect.bar")
        widths = {bars.nth(i).get_attribute("data-variant"): bars.nth(i).bounding_box()["width"]
                  for i in range(bars.count())}  # fmt: skip
        assert widths["b"] > widths["a"] > widths["holdout"] > 0
        assert page.locator("svg.plot").first.locator("line.interval").count() == 3
        assert "b" in page.locator("p.winner b").inner_text()
        page.screenshot(path=str(tmp_path / "results.png"), full_page=True)
        browser.close()


def test_send_at_is_the_next_chosen_local_hour_across_time_zones_and_dst():
    from datetime import UTC, datetime

    from profilecast.experiments.sendtime import SendTime, next_send_at, send_at_for

    end = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)  # an Airflow interval end
    assert next_send_at(end, "Europe/Berlin", 9) == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    assert next_send_at(end, "America/New_York", 9) == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    assert next_send_at(end, "Asia/Tokyo", 8) == datetime(2026, 11, 1, 23, 0, tzinfo=UTC)
    # 2026-03-29: Berlin skips 02:00; 01:30 UTC is 03:30 local, so 02:00 comes next day.
    spring = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert next_send_at(spring, "Europe/Berlin", 9) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert next_send_at(end, "Not/AZone", 9) == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    optimal = SendTime("optimal", 10)
    row = {"best_local_hour": 20, "time_zone": "Europe/Paris"}
    assert send_at_for(optimal, end, row) == "2026-11-01 19:00:00"
    assert send_at_for(optimal, end, {"best_local_hour": float("nan"), "time_zone": "UTC"}) == (
        "2026-11-01 10:00:00"
    )
    assert send_at_for(None, end, row) is None


def test_timed_messages_go_in_per_hour_batches_with_send_at_in_every_format(tmp_path):
    rendered = tmp_path / "c1.jsonl.gz"
    hours = ["2026-11-01 08:00:00", "2026-11-01 19:00:00", "2026-11-01 08:00:00"]
    with gzip.open(rendered, "wt") as fh:
        for i in range(30):
            key = message_key("c1", f"cus{i}", DS)
            fh.write(json.dumps({"message_key": key, "campaign_id": "c1", "customer_id": f"cus{i}",
                                 "to": f"p{i}@example.com", "from": "Shop <shop@example.com>",
                                 "subject": "s", "preheader": "", "html": "<p>x</p>", "text": "x",
                                 "variant": "a", "experiment_id": "exp1", "fields": {},
                                 "send_at": hours[i % 3]}) + "\n")  # fmt: skip
    for fmt in sorted(formats.FORMATS):
        target = ObjectStore(str(tmp_path / fmt))
        export_campaign(_Wh(), target, f"c-{fmt}", DS, [rendered], "run-1", fmt=fmt)
        manifest = json.loads((tmp_path / fmt / f"c-{fmt}" / DS / "manifest.json").read_text())
        assert [(b["send_at"], b["rows"]) for b in manifest["batches"]] == [
            ("2026-11-01 08:00:00", 20), ("2026-11-01 19:00:00", 10)]  # fmt: skip
        if fmt == "sendgrid":
            first = tmp_path / fmt / f"c-{fmt}" / DS / manifest["batches"][0]["file"]
            body = json.loads(gzip.decompress(first.read_bytes()))
            assert {p["send_at"] for p in body["personalizations"]} == {1793520000}


def test_a_flow_step_holdout_is_skipped_logged_and_the_variant_exported(tmp_path):
    import shutil
    from datetime import timedelta

    from .test_flows import FLOWS, T0, World, _identify, _track

    flows = tmp_path / "flows"
    shutil.copytree(FLOWS, flows)
    message = flows / "messages" / "cart_abandonment_1" / "campaign.yml"
    message.write_text(message.read_text() + (
        "experiment:\n  id: cart_flow_1\n  holdout: 0.3\n  variants:\n"
        "    - {id: plain, subject: 'Your cart is saved'}\n"
        "    - {id: named, subject: '{{ first_name | default(\"Hi\", true) }}, your cart'}\n"))  # fmt: skip
    w = World(tmp_path, flows)
    for i in range(40):
        w.post(_track(f"u-{i}", "Product Added", T0, w.next_id(), name="Stove"),
               _identify(f"u-{i}", f"p{i}@example.com", T0, w.next_id()))  # fmt: skip
    sources = ObjectStore(str(tmp_path / "src"))
    w.advance(T0 + timedelta(minutes=1), sources=sources)
    w.advance(T0 + timedelta(minutes=31), sources=sources)
    carts = [m for m in w.messages() if m["campaign_id"] == "cart_abandonment"]
    log = [json.loads(x) for p in sorted((tmp_path / "src" / "sends" / "messages" / "flows").rglob("*.jsonl"))
           for x in p.read_text().splitlines()]  # fmt: skip
    cart_log = [r for r in log if r["campaign_id"] == "cart_abandonment"]
    held = {r["message_key"] for r in cart_log if r["status"] == "holdout"}
    sent = {r["message_key"] for r in cart_log if r["status"] == "sent"}
    assert len(held) + len(sent) == 40 and 5 <= len(held) <= 20
    assert sent == {m["message_key"] for m in carts} and not held & sent
    assert {r["variant"] for r in cart_log if r["status"] == "sent"} == {"plain", "named"}
    assert all(
        r["experiment_id"] == "cart_flow_1" and r["flow_step"] == "reminder" for r in cart_log
    )
    # The held-out customers go on to the next step: the flow is measured, not cut short.
    held_subjects = {r["customer_id"] for r in cart_log if r["status"] == "holdout"}
    assert all(w.state("cart_abandonment", s)[:1] == ("active",) for s in held_subjects)
    w.advance(T0 + timedelta(minutes=32), sources=sources)  # rewrites nothing new
    again = [json.loads(x) for p in sorted((tmp_path / "src" / "sends" / "messages" / "flows").rglob("*.jsonl"))
             for x in p.read_text().splitlines()]  # fmt: skip
    assert sorted(r["message_key"] for r in again) == sorted(r["message_key"] for r in log)


def test_a_significant_winner_is_promoted_once_with_its_evidence(tmp_path):
    import pandas as pd
    from profilecast.experiments.decisions import decide_winners, decisions, promoted

    wh = _Wh()
    campaign = _campaign()
    rows = _world_rows(5, 20_000, Effects(variant_lift={("exp1", "b"): 0.04}))
    wh.con.register("r", pd.DataFrame(rows))
    wh.con.execute("create table campaign_results as select * from r")
    assert promoted(tmp_path, "exp1") is None
    taken = decide_winners(tmp_path, wh, [campaign], DS)
    assert [(d["winner"], d["action"]) for d in taken] == [("b", "promote")]
    assert taken[0]["evidence"]["tests"]["a"]["p"] < 0.01
    assert decide_winners(tmp_path, wh, [campaign], DS) == []  # decided once
    assert len(decisions(tmp_path)) == 1 and promoted(tmp_path, "exp1") == "b"
    compiled = CompiledCampaign(campaign, promoted(tmp_path, "exp1"))
    arms = Counter(compiled.arm(f"cus{i}") for i in range(2000))
    assert set(arms) == {"b", "holdout"}  # the holdout stays for measurement


def test_a_held_out_customer_is_frequency_capped_like_one_mailed():
    from profilecast.campaigns import build_audiences

    from .test_export import _audience_wh
    from .test_export import _campaign as _plain

    wh = _audience_wh()
    wh.execute("create table experiment_holdouts (message_key varchar, campaign_id varchar, "
               "customer_id varchar, experiment_id varchar, run_date date, recorded_at timestamp)")  # fmt: skip
    wh.execute("insert into experiment_holdouts values ('h', 'c', 'ok', 'e', '2026-10-30', null)")
    build_audiences(wh, [_plain("promo")], DS)
    got = {r[0] for r in wh.query("select customer_id from campaign_audiences")}
    assert "ok" not in got and "old_tent_complaint" in got

"""The pipeline steps on a real DuckDB warehouse, and the quality gate on real and corrupted data."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from profilecast import pipeline
from profilecast.quality.gate import QualityGateError, mask_emails, run_gate
from profilecast.warehouse import connect

from tests.conftest import chromium_path

START = datetime(2026, 10, 31, tzinfo=UTC)
END = START + timedelta(days=1)
DS = "2026-10-31"
AS_OF = "2026-11-01 00:00:00"


def _gate(settings, tmp_path):
    with connect(settings, read_only=True) as wh:
        return run_gate(wh, settings.expectations_dir, DS, AS_OF, tmp_path / "report")


def test_clean_warehouse_passes_and_reports(copy_of, tmp_path):
    outcomes = _gate(copy_of, tmp_path)
    assert outcomes and all(o.success or o.severity == "warning" for o in outcomes)
    assert (tmp_path / "report" / "validation.json").exists()
    assert (tmp_path / "report" / "index.html").read_text().count("<tr") > 10


def test_profiles_have_every_layer(copy_of):
    with connect(copy_of, read_only=True) as wh:
        row = wh.query(
            "select count(*), sum(case when is_emailable then 1 else 0 end), "
            "sum(case when orders_count > 0 then 1 else 0 end), "
            "sum(case when open_tickets > 0 then 1 else 0 end), "
            "sum(case when page_views_30d > 0 then 1 else 0 end), "
            "sum(case when opens_30d > 0 then 1 else 0 end) from customer_profiles"
        )[0]
        assert all(v > 0 for v in row), row
        # An unsubscribed person is never emailable and never in an audience.
        leaked = wh.query(
            "select count(*) from campaign_audiences a join customer_profiles p using (customer_id) "
            "where p.unsubscribed_at is not null or p.bounced_at is not null or not p.is_emailable"
        )[0][0]
        assert leaked == 0
        assert wh.query("select count(*) from campaign_audiences")[0][0] > 0


def test_a_topic_unsubscribe_leaves_that_topic_only(copy_of):
    """The generator's ESP feedback holds group unsubscribes of SendGrid group 101, which
    consent/topics.yml declares as the newsletter: those people leave the newsletter
    (welcome_series) and stay emailable for promotions unless something else stops them."""
    with connect(copy_of, read_only=True) as wh:
        left = {r[0] for r in wh.query(
            "select customer_id from customer_topic_consent "
            "where topic = 'newsletter' and status = 'unsubscribed' and changed_by = 'group_unsubscribe'")}  # fmt: skip
        assert left, "the sample has no group unsubscribe"
        promotions = dict(wh.query(
            "select customer_id, status from customer_topic_consent where topic = 'promotions'"))  # fmt: skip
        assert not [c for c in left if promotions.get(c) == "unsubscribed"
                    and wh.query("select unsubscribed_at from customer_profiles "
                                 "where customer_id = %s", (c,))[0][0] is None]  # fmt: skip
        still = wh.query(
            "select count(*) from customer_profiles p where p.is_emailable and p.customer_id in "
            "(select customer_id from customer_topic_consent where topic = 'newsletter' "
            "and changed_by = 'group_unsubscribe')")[0][0]  # fmt: skip
        assert still > 0  # a topic unsubscribe is no longer global
        audiences = wh.query("select campaign_id, customer_id from campaign_audiences")
        assert not [c for camp, c in audiences if camp == "welcome_series" and c in left]


@pytest.mark.parametrize(
    "corruption, expected",
    [
        ("insert into customer_profiles select * from customer_profiles limit 1",
         "expect_column_values_to_be_unique on customer_profiles.customer_id"),
        ("update customer_profiles set email = 'not-an-email' where customer_id = "
         "(select min(customer_id) from customer_profiles where is_emailable)",
         "expect_column_values_to_match_regex on emailable_profiles.email"),
        ("update customer_profiles set is_emailable = false where customer_id = "
         "(select min(customer_id) from campaign_audiences)",
         "expect_column_values_to_be_null on campaign_audiences.blocked_reason"),
        ("update customer_topic_consent set status = 'unsubscribed', may_email = false, "
         "changed_by = 'group_unsubscribe', blocked_reason = 'opted out of ' || topic "
         "where (customer_id, topic) in (select customer_id, topic from campaign_audiences "
         "where kind = 'marketing' order by customer_id limit 1)",
         "1 recipient opted out of "),
        ("update customer_topic_consent set status = 'no_choice', regime = 'opt_in', "
         "country = 'DE', may_email = false, "
         "blocked_reason = 'has no opt-in for ' || topic || ' (DE is opt_in)' "
         "where (customer_id, topic) in (select customer_id, topic from campaign_audiences "
         "where kind = 'marketing' order by customer_id limit 2)",
         "2 recipients has no opt-in for "),
        ("update customer_profiles set engagement_score = 11 where customer_id = "
         "(select min(customer_id) from customer_profiles)",
         "expect_column_values_to_be_between on customer_profiles.engagement_score"),
        ("update segment_runs set size = size + 1000, previous_size = 1, change_pct = 5000 "
         "where segment = 'cart_abandoners'",
         "expect_column_values_to_be_in_set on segment_sizes.is_within_band"),
        ("update load_batches set rows_loaded = rows_loaded - 1 where batch_id like 'crm__contacts%'",
         "expect_column_values_to_be_between on raw_layer.rows_unaccounted"),
    ],
    ids=["duplicate_id", "bad_email", "unsubscribed_in_audience", "opted_out_of_topic",
         "no_opt_in", "score_out_of_range",
         "segment_jump", "row_accounting"],
)  # fmt: skip
def test_gate_fails_on_each_corruption(copy_of, tmp_path, corruption, expected):
    with connect(copy_of) as wh:
        wh.execute(corruption)
    with pytest.raises(QualityGateError) as exc:
        _gate(copy_of, tmp_path)
    assert expected in str(exc.value)
    assert "[CRITICAL]" in str(exc.value)


def test_failure_message_masks_emails(copy_of, tmp_path):
    with connect(copy_of) as wh:
        wh.execute(
            "update customer_profiles set email = 'jane.doe@@example.com' where customer_id = "
            "(select min(customer_id) from customer_profiles where is_emailable)"
        )
    with pytest.raises(QualityGateError) as exc:
        _gate(copy_of, tmp_path)
    assert "jane.doe" not in str(exc.value)
    assert mask_emails("jane.doe@example.com") == "ja***@example.com"


def test_render_and_export_exactly_once(copy_of, tmp_path, monkeypatch):
    settings = replace(copy_of, export_url=(tmp_path / "exports").as_uri())
    rendered = [pipeline.render(c, START, settings) for c in pipeline.campaign_ids(settings)]
    assert sum(r["rendered"] for r in rendered) > 0
    first = pipeline.export(rendered, START, "run-1", settings)
    total = sum(e["exported"] for e in first)
    assert total == sum(r["rendered"] for r in rendered)
    # Files on disk match the manifest's counts and hashes; every request validates.
    from .esp_formats import messages_in

    seen = [
        m
        for e in first
        if e["exported"]
        for m in messages_in(tmp_path / "exports" / e["campaign_id"] / DS)
    ]
    assert len(seen) == total == len({m["message_key"] for m in seen})
    # Retried export and a re-render: nothing new.
    again = pipeline.export(rendered, START, "run-2", settings)
    assert sum(e["exported"] for e in again) == 0
    rerendered = [pipeline.render(c, START, settings) for c in pipeline.campaign_ids(settings)]
    assert sum(r["rendered"] for r in rerendered) == 0
    with connect(settings, read_only=True) as wh:
        n, distinct = wh.query("select count(*), count(distinct message_key) from send_ledger")[0]
    assert n == distinct == total


def test_gx_data_docs_are_rendered(copy_of, tmp_path):
    import json

    with connect(copy_of, read_only=True) as wh:
        run_gate(
            wh, copy_of.expectations_dir, DS, AS_OF, tmp_path / "report", docs_root=tmp_path / "gx"
        )
    report = json.loads((tmp_path / "report" / "validation.json").read_text())
    docs = report["data_docs"]
    assert docs and docs.endswith("index.html") and "customer_profiles" in open(docs).read()


def test_a_segment_band_can_be_widened(copy_of, tmp_path):
    with connect(copy_of) as wh:
        wh.execute(
            "update segment_runs set previous_size = 1, change_pct = 5000, max_change_pct = 10000 "
            "where segment = 'cart_abandoners'"
        )
    assert _gate(copy_of, tmp_path)


def test_validate_cli_exit_codes(copy_of, monkeypatch, capsys):
    from profilecast import cli

    monkeypatch.setenv("PROFILECAST_HOME", str(copy_of.home))
    assert cli.main(["validate", "--date", DS]) == 0
    assert "quality gate passed" in capsys.readouterr().out
    with connect(copy_of) as wh:
        wh.execute("insert into customer_profiles select * from customer_profiles limit 1")
    assert cli.main(["validate", "--date", DS]) == 1
    assert (
        "expect_column_values_to_be_unique on customer_profiles.customer_id"
        in capsys.readouterr().err
    )


def _browse(index, tmp_path, *extra):
    import subprocess

    cmd = [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'chrome-profile'}",
           "--allow-file-access-from-files", "--virtual-time-budget=5000", *extra, index.as_uri()]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_preview_renders_in_headless_chromium(copy_of, tmp_path, monkeypatch):
    import re

    from profilecast import cli

    monkeypatch.setenv("PROFILECAST_HOME", str(copy_of.home))
    out = tmp_path / "preview"
    assert cli.main(["preview", "--campaign", "cart_reminder", "--n", "20", "--out", str(out)]) == 0
    index = out / "index.html"
    assert len(list(out.glob("message-*.html"))) == 20
    dom = _browse(index, tmp_path, "--dump-dom").stdout
    check = re.search(r'data-check="([^"]+)"', dom)
    assert check, dom[-2000:]
    assert check.group(1) == "frames=20;images=20;broken=0;errors=0"
    shot = tmp_path / "preview.png"
    _browse(index, tmp_path, f"--screenshot={shot}", "--window-size=1024,1400")
    assert shot.exists() and shot.stat().st_size > 10_000


def test_preview_check_catches_a_broken_image(tmp_path):
    import re

    from profilecast.campaigns.preview import PREVIEW_SCRIPT

    (tmp_path / "m.html").write_text('<p>Hi</p><img src="file:///nonexistent/logo.png">')
    index = tmp_path / "index.html"
    index.write_text('<!doctype html><iframe src="m.html"></iframe>' + PREVIEW_SCRIPT)
    dom = _browse(index, tmp_path, "--dump-dom").stdout
    assert re.search(r'data-check="frames=1;images=1;broken=1;errors=0"', dom), dom[-1000:]


def test_render_shards_partition_the_audience(copy_of):
    import gzip
    import json

    def keys(item):  # every line: a message, or a holdout row (recorded, never sent)
        with gzip.open(item["path"], "rt") as fh:
            return {json.loads(line)["message_key"] for line in fh}

    whole = pipeline.render("cart_reminder", START, copy_of)
    parts = [pipeline.render("cart_reminder", START, copy_of, shard=k, shards=3) for k in range(3)]
    sets = [keys(p) for p in parts]
    assert whole["held_out"] > 0 and sum(p["held_out"] for p in parts) == whole["held_out"]
    assert all(sets) and sum(len(s) for s in sets) == len(keys(whole))
    assert len(keys(whole)) == whole["rendered"] + whole["held_out"]
    assert set().union(*sets) == keys(whole)
    # the rule the shards' SQL spells: the key's first eight hex digits, mod shards
    assert all(int(key[:8], 16) % 3 == k for k, part in enumerate(sets) for key in part)


def test_render_leaves_out_what_the_ledger_holds_for_the_date(copy_of):
    """A message the send ledger holds for the run date is not rendered again (a rerun);
    the ledger's rows of other dates are not read (a key holds its date)."""
    import gzip
    import json

    from profilecast.export.ledger import ensure_ledger_tables

    first = pipeline.render("cart_reminder", START, copy_of)
    with gzip.open(first["path"], "rt") as fh:
        sent = sorted(
            m["message_key"] for m in map(json.loads, fh) if m.get("variant") != "holdout"
        )
    assert len(sent) > 2
    with connect(copy_of) as wh:
        ensure_ledger_tables(wh)
        wh.execute(
            "insert into send_ledger (message_key, campaign_id, customer_id, run_date) "
            "values (%s, 'cart_reminder', 'x', %s), ('not-a-key', 'cart_reminder', 'y', %s)",
            (sent[0], DS, "2026-10-01"),
        )
    again = pipeline.render("cart_reminder", START, copy_of)
    with gzip.open(again["path"], "rt") as fh:
        rendered = {m["message_key"] for m in map(json.loads, fh)}
    assert sent[0] not in rendered and set(sent[1:]) <= rendered
    assert again["rendered"] == first["rendered"] - 1


def test_stale_data_stops_the_run_and_says_how_stale(copy_of, tmp_path, monkeypatch):
    """Freshness is critical: a run whose newest event is weeks old never reaches render."""
    monkeypatch.setenv("PROFILECAST_FRESHNESS_HOURS", "48")
    weeks_later = (END + timedelta(days=21)).strftime("%Y-%m-%d %H:%M:%S")
    with connect(copy_of, read_only=True) as wh:
        with pytest.raises(QualityGateError) as exc:
            run_gate(wh, copy_of.expectations_dir, DS, weeks_later, tmp_path / "report")
    message = str(exc.value)
    assert "[CRITICAL]" in message and "data is stale: the newest event is" in message
    assert "allowed: 48 hours" in message
    monkeypatch.setenv("PROFILECAST_FRESHNESS_HOURS", str(24 * 30))  # a wider allowance passes
    with connect(copy_of, read_only=True) as wh:
        run_gate(wh, copy_of.expectations_dir, DS, weeks_later, tmp_path / "report2")


def test_an_opt_in_country_customer_without_opt_in_gets_no_marketing(copy_of):
    """consent/topics.yml makes DE, AT and CA opt-in: the generated CRM gives most of their
    contacts an opt-in, not all. Those without one are in no marketing audience; those with
    one are mailed like anyone else; billing-only customers there have no opt-in at all."""
    with connect(copy_of, read_only=True) as wh:
        verdicts = wh.query(
            "select status, may_email, count(*) from customer_topic_consent "
            "where regime = 'opt_in' group by 1, 2")  # fmt: skip
        counts = {(s, m): n for s, m, n in verdicts}
        assert counts.get(("no_choice", False), 0) > 0, counts
        assert counts.get(("subscribed", True), 0) > 0, counts
        assert not [k for k in counts if k[0] == "no_choice" and k[1]]
        leaked = wh.query(
            "select a.campaign_id, a.customer_id, t.blocked_reason from campaign_audiences a "
            "join customer_topic_consent t on t.customer_id = a.customer_id and t.topic = a.topic "
            "where a.kind = 'marketing' and not t.may_email")  # fmt: skip
        assert leaked == []
        mailed = wh.query(
            "select count(*) from campaign_audiences a join customer_topic_consent t "
            "on t.customer_id = a.customer_id and t.topic = a.topic "
            "where a.kind = 'marketing' and t.regime = 'opt_in' and t.source = 'crm'")[0][0]  # fmt: skip
        assert mailed > 0
        reasons = {r[0] for r in wh.query(
            "select distinct blocked_reason from customer_topic_consent where regime = 'opt_in' "
            "and status = 'no_choice'")}  # fmt: skip
        assert reasons <= {f"has no opt-in for {t} ({c} is opt_in)"
                           for t in ("newsletter", "promotions", "product_updates")
                           for c in ("DE", "AT", "CA")}, reasons  # fmt: skip


def _dbt_test_failures(settings, selection: str) -> set[str]:
    """The data tests of `selection` that fail on the warehouse, as of END."""
    from profilecast.warehouse.connection import WarehouseError
    from profilecast.warehouse.dbt import run_dbt

    dbt_vars = {"as_of": AS_OF, "run_date": DS, **pipeline.build_vars(settings)}
    try:
        run_dbt(settings, "test", ["--select", selection, "--exclude-resource-type",
                                   "unit_test"], dbt_vars)  # fmt: skip
    except WarehouseError as exc:
        failed = set(re.findall(r"Failure in test (\S+)", str(exc)))
        if not failed:  # dbt failed otherwise (a compile error): not a test's finding
            raise
        return failed
    return set()


def test_the_large_incremental_tables_are_tested_on_the_rows_the_build_wrote(copy_of):
    """The identified event tables (web and ESP) are tested on the rows written as of the
    build's as_of, the fuzzy pairs on those of the newest comparison, the staged events
    and sent messages on those the newest build staged (macros/test_scope.sql): a doubled
    key among them fails; one among rows an earlier build wrote is not read."""
    web, esp = "int_web_events_identified", "int_esp_events_identified"
    pairs = "int_identity_pairs_compared"
    #: staging table -> its key
    staged = {"stg_web__events": "event_id", "stg_esp__events": "esp_event_id",
              "stg_sends__messages": "message_key"}  # fmt: skip
    selection = f"{web} {esp} {pairs} {' '.join(staged)}"
    assert _dbt_test_failures(copy_of, selection) == set()
    newest = f"(select max(_compared_at) from {pairs})"
    with connect(copy_of) as wh:  # written by this build: every test must fail
        # Nothing was sent before this warehouse's build: two messages, staged now.
        wh.execute("insert into stg_sends__messages (message_key, status, _staged_at) values "
                   "('scope-a', 'sent', current_timestamp), ('scope-b', 'sent', current_timestamp)")  # fmt: skip
        for table in staged:
            assert wh.query(f"select count(*) from {table}")[0][0] > 0, table
            wh.execute(f"insert into {table} select * from {table} "
                       f"where _staged_at = (select max(_staged_at) from {table}) limit 1")  # fmt: skip
        wh.execute(f"insert into {web} select * from {web} limit 1")
        wh.execute(f"insert into {esp} select * from {esp} limit 1")
        wh.execute(f"insert into {pairs} select * from {pairs} where _compared_at = {newest} "
                   "limit 1")  # fmt: skip
    failed = _dbt_test_failures(copy_of, selection)
    assert any(f"unique_{web}_event_id" in t for t in failed), failed
    assert any(f"unique_{esp}_esp_event_id" in t for t in failed), failed
    assert any(f"unique_combination_{pairs}" in t for t in failed), failed
    for table, key in staged.items():
        assert any(f"unique_{table}_{key}" in t for t in failed), (table, failed)
    with connect(copy_of) as wh:  # the same doubles, as if an earlier build wrote them
        wh.execute(f"update {web} set _as_of = _as_of - interval 1 day where event_id in "
                   f"(select event_id from {web} group by 1 having count(*) > 1)")  # fmt: skip
        wh.execute(f"update {esp} set _as_of = _as_of - interval 1 day where esp_event_id in "
                   f"(select esp_event_id from {esp} group by 1 having count(*) > 1)")  # fmt: skip
        wh.execute(f"update {pairs} set _compared_at = _compared_at - interval 1 day "
                   f"where (node_a, node_b) in (select node_a, node_b from {pairs} "
                   "group by all having count(*) > 1)")  # fmt: skip
        for table, key in staged.items():
            wh.execute(f"update {table} set _staged_at = _staged_at - interval 1 day "
                       f"where {key} in (select {key} from {table} group by 1 "
                       "having count(*) > 1)")  # fmt: skip
    assert _dbt_test_failures(copy_of, selection) == set()

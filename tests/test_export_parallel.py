"""Export in worker processes: the same batches as one process, every message once, and the
fast encoders writing what the old ones wrote."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from profilecast.campaigns import message_key
from profilecast.export import prepare
from profilecast.export.batches import export_campaign
from profilecast.storage import ObjectStore

from .esp_formats import messages_in
from .test_export import DS, _Wh


def _render(path: Path, campaign: str, customers: range) -> list[dict]:
    """A rendered file with what real ones hold: holdouts, two send times, non-ASCII and a
    DEL in names and bodies, an HTML body with and without </body>."""
    rows = []
    for i in customers:
        rows.append({
            "message_key": message_key(campaign, f"cus{i}", DS), "campaign_id": campaign,
            "customer_id": f"cus{i}", "to": f"Zoë{i}@Example.com" if i % 7 == 0 else f"p{i}@example.com",
            "from": "Shop Ünïcode <shop@example.com>", "subject": f"Hi {i} \u2603",
            "subject_variant": "a" if i % 2 else "b", "preheader": "",
            "experiment_id": "exp1", "variant": "holdout" if i % 11 == 0 else ("a" if i % 2 else "b"),
            "html": f"<html><body><p>{i} \x7f é</p></BODY></html>" if i % 3 else f"<p>{i}</p>",
            "text": f"{i}\n", "fields": {"n": i, "x": [1.5, None]},
            "send_at": "2026-11-01 09:00:00" if i % 4 == 0 else None,
        })  # fmt: skip
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return rows


def _export(tmp_path: Path, name: str, files: list[Path], fmt: str, workers: int) -> Path:
    out = tmp_path / name
    wh = _Wh()
    result = export_campaign(wh, ObjectStore((out / "esp").as_uri()), "c1", DS, files, "run-1",
                             fmt=fmt, sources=ObjectStore((out / "src").as_uri()),
                             workers=workers)  # fmt: skip
    held = wh.query("select count(*) from experiment_holdouts")[0][0]
    assert result["held_out"] == held
    ledger = wh.query("select count(*), count(distinct message_key) from send_ledger")[0]
    assert ledger[0] == ledger[1] == result["exported"]
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "ses", "sendgrid"])
def test_worker_processes_write_the_batches_one_process_writes(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(prepare, "PART_BYTES", 20_000)  # several parts per file
    files, rows = [], []
    for n, customers in enumerate((range(0, 230), range(230, 300), range(300, 301))):
        files.append(tmp_path / f"shard-{n}.jsonl.gz")
        rows += _render(files[-1], "c1", customers)
    assert len(prepare.jobs_for(files)) > len(files)
    one = _export(tmp_path, "one", files, fmt, workers=1)
    two = _export(tmp_path, "two", files, fmt, workers=2)

    def content(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "manifest.json"}  # fmt: skip

    assert content(one) == content(two)
    shas = [[b["sha256"] for b in json.loads(m.read_text())["batches"]]
            for m in (one / "esp/c1" / DS / "manifest.json", two / "esp/c1" / DS / "manifest.json")]  # fmt: skip
    assert shas[0] == shas[1]

    # Every message that is not a holdout exactly once, none of the holdouts; each batch
    # file holds one send time; the footer went into the HTML before </body>.
    sent = messages_in(one / "esp/c1" / DS)
    expected = {r["message_key"] for r in rows if r["variant"] != "holdout"}
    assert sorted(m["message_key"] for m in sent) == sorted(expected)
    by_key = {r["message_key"]: r for r in rows}
    for m in sent:
        html = m["html"]
        assert "Unsubscribe</a></p>" in html
        if "</BODY>" in by_key[m["message_key"]]["html"]:
            assert html.index("Unsubscribe</a></p>") < html.index("</BODY>")
    manifest = json.loads((one / "esp/c1" / DS / "manifest.json").read_text())
    timed = [b for b in manifest["batches"] if b.get("send_at")]
    assert timed and sum(b["rows"] for b in timed) == sum(
        1 for r in rows if r["send_at"] and r["variant"] != "holdout"
    )
    log = [json.loads(line) for p in sorted((one / "src").rglob("*.jsonl"))
           for line in p.read_text().splitlines()]  # fmt: skip
    assert len(log) == len(rows)  # sent and held out, each logged once
    assert {r["message_key"] for r in log} == set(by_key)


def test_a_message_rendered_twice_is_an_error(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    _render(a, "c1", range(0, 5))
    _render(b, "c1", range(4, 8))
    with pytest.raises(ValueError, match="rendered twice"):
        export_campaign(_Wh(), ObjectStore((tmp_path / "esp").as_uri()), "c1", DS, [a, b],
                        "run-1", workers=1)  # fmt: skip
    # twice in one file, too: nothing is silently dropped
    again = tmp_path / "again.jsonl.gz"
    again.write_bytes(gzip.compress(gzip.decompress(a.read_bytes()) * 2))
    with pytest.raises(ValueError, match="rendered twice in .*again"):
        export_campaign(_Wh(), ObjectStore((tmp_path / "esp2").as_uri()), "c1", DS, [again],
                        "run-1", workers=1)  # fmt: skip


def test_token_bodies_and_log_lines_are_what_json_writes():
    from profilecast.consent.tokens import _COMPACT, _body_bytes
    from profilecast.export.message_log import log_line, log_record, message_line

    for value in ("plain", "Zoë", "a\x7fb", 'quote"back\\slash', "ctl\x01\n", "☃", ""):
        body = {"m": value, "c": "cus1", "e": value.lower(), "t": None, "i": DS}
        assert _body_bytes(body) == _COMPACT.encode(body).encode()
        msg = {"message_key": value, "campaign_id": "c1", "customer_id": value, "variant": None,
               "subject_variant": "a", "send_at": None, "flow_step": value or None}  # fmt: skip
        record = log_record(msg, DS, f"{DS} 00:00:00", 5)
        assert message_line(msg, DS, f"{DS} 00:00:00", 5) == log_line(record)
        assert json.loads(log_line(record)) == json.loads(json.dumps(record, sort_keys=True))


def test_one_pool_for_several_campaigns_writes_what_each_alone_writes(tmp_path, monkeypatch):
    """The export stage makes every campaign's batches in one pool (each campaign with its own
    format, topic and ledger keys): the files are those of each campaign exported alone, in
    one process, and each campaign's result comes back in the order asked."""
    from profilecast.export.batches import CampaignExport, export_campaigns

    monkeypatch.setattr(prepare, "PART_BYTES", 20_000)
    asks = [("c1", "ses", "promotions"), ("c2", "jsonl", None), ("c3", "sendgrid", "news")]
    requests = []
    for n, (cid, fmt, topic) in enumerate(asks):
        files = [tmp_path / f"{cid}-{k}.jsonl.gz" for k in range(2)]
        _render(files[0], cid, range(n * 100, n * 100 + 150))
        _render(files[1], cid, range(n * 100 + 150, n * 100 + 180))
        requests.append(CampaignExport(cid, files, fmt, topic, attribution_days=3 + n))
    alone = tmp_path / "alone"
    for r in requests:
        export_campaign(_Wh(), ObjectStore((alone / "esp").as_uri()), r.campaign_id, DS,
                        r.rendered_files, "run-1", fmt=r.fmt, topic=r.topic,
                        attribution_days=r.attribution_days,
                        sources=ObjectStore((alone / "src").as_uri()), workers=1)  # fmt: skip
    pools = []

    class Counted(prepare.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(prepare, "ProcessPoolExecutor", Counted)
    pooled = tmp_path / "pooled"
    results = list(export_campaigns(_Wh(), ObjectStore((pooled / "esp").as_uri()), requests, DS,
                                    "run-1", sources=ObjectStore((pooled / "src").as_uri()),
                                    workers=2))  # fmt: skip
    assert [r["campaign_id"] for r in results] == ["c1", "c2", "c3"]
    assert pools == [2]  # one pool of two workers for the three campaigns
    assert all(r["exported"] > 0 and r["held_out"] > 0 for r in results)

    def content(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "manifest.json"}  # fmt: skip

    assert content(alone) == content(pooled)
    with pytest.raises(ValueError, match="asked for twice"):
        list(export_campaigns(_Wh(), ObjectStore((tmp_path / "x").as_uri()),
                              [requests[0], requests[0]], DS, "run-1"))  # fmt: skip
    assert {p.split("/")[1] for p in content(pooled) if p.startswith("esp/")} == {"c1", "c2", "c3"}


def test_the_stage_exports_the_largest_campaign_first_and_reports_by_campaign(
    tmp_path, monkeypatch, pc_env
):
    """While the export commits the largest campaign, the workers make the smaller ones'
    batches: so it goes first. The stage's results still come back by campaign id."""
    from profilecast.export import batches, service
    from profilecast.interval import Interval

    sizes = {"cart_reminder": 40, "vip_thank_you": 400, "welcome_series": 4}
    rendered = []
    for cid, n in sizes.items():
        for shard in range(2):
            path = tmp_path / f"{cid}-{shard}.jsonl.gz"
            _render(path, cid, range(shard * 1000, shard * 1000 + n))
            rendered.append({"campaign_id": cid, "path": str(path), "format": "jsonl"})
    asked = []

    def fake(wh, target, requests, *args, **kwargs):
        asked.extend(r.campaign_id for r in requests)
        for r in requests:
            yield {"campaign_id": r.campaign_id, "exported": 0}

    monkeypatch.setattr(batches, "export_campaigns", fake)
    monkeypatch.setattr("profilecast.flows.service.record_campaign_contacts", lambda *a: 0)
    interval = Interval.of(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    results = service.export_rendered(rendered, interval, "run-1", pc_env)
    assert asked == ["vip_thank_you", "cart_reminder", "welcome_series"]
    assert [r["campaign_id"] for r in results] == sorted(sizes)

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date

from profilecast_dev.generate import generate


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_arguments_give_identical_output(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, contacts=150, seed=3)
    generate(b, contacts=150, seed=3)
    generate(c, contacts=150, seed=4)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_every_source_has_work_and_truth_covers_records(sample_dir):
    for rel in ["crm/contacts.csv", "crm/companies.csv", "crm/tickets.jsonl",
                "billing/customers.jsonl", "billing/subscriptions.jsonl", "billing/invoices.jsonl",
                "billing/charges.jsonl", "web/events.jsonl", "esp/events.jsonl"]:  # fmt: skip
        assert (sample_dir / rel).stat().st_size > 0, rel
    with (sample_dir / "crm/contacts.csv").open(newline="") as fh:
        contacts = [r for r in csv.DictReader(fh)]
    truth = {}
    with (sample_dir / "truth/records.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            truth[(r["source"], r["entity"], r["source_record_id"])] = r["person_id"]
    with_id = [c for c in contacts if c["contact_id"]]
    assert all(("crm", "contacts", c["contact_id"]) in truth for c in with_id)
    # Duplicates exist on purpose: more CRM records than distinct people behind them.
    people = {truth[("crm", "contacts", c["contact_id"])] for c in with_id}
    assert len(with_id) > len(people)
    events = [json.loads(line) for line in (sample_dir / "esp/events.jsonl").open()]
    kinds = {e["event"] for e in events}
    assert {"delivered", "open", "click"} <= kinds
    web_types = set()
    for line in (sample_dir / "web/events.jsonl").open():
        try:
            web_types.add(json.loads(line)["type"])
        except json.JSONDecodeError:
            pass
    assert {"identify", "page", "track"} <= web_types


def test_history_ends_on_the_end_date(tmp_path):
    generate(tmp_path, contacts=80, seed=1, days=30, end_date=date(2026, 3, 31))
    with (tmp_path / "crm/contacts.csv").open(newline="") as fh:
        stamps = [r["updated_at"] for r in csv.DictReader(fh) if r["updated_at"]]
    assert max(stamps) < "2026-04-01"
    assert min(stamps) >= "2026-03-02"


def test_daily_increments_keep_the_history_truth(tmp_path):
    """New people added by the daily increments get truth rows of their own; the history's
    truth is not overwritten (it was, before: --days-of-change lost every base person)."""
    import csv

    from profilecast_dev.generate import read_truth

    generate(tmp_path, contacts=60, seed=3, days=30, days_of_change=3)
    rows = list(read_truth(tmp_path))
    people = {r["person_id"] for r in rows}
    with (tmp_path / "truth" / "changes.csv").open(newline="") as fh:
        added = {c["person_id"] for c in csv.DictReader(fh) if c["kind"] == "new_contact"}
    assert added and added <= people
    assert len(people - added) >= 55  # the history's people (a few have no record at all)
    crm = {r["source_record_id"] for r in rows if r["source"] == "crm"}
    with (tmp_path / "crm" / "contacts.csv").open(newline="") as fh:
        ids = {r["contact_id"] for r in csv.DictReader(fh) if r["contact_id"]}
    assert ids <= crm

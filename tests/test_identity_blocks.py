"""Incremental blocking gives the pairs that enumerating every pair again gives.

``int_identity_pairs_compared`` keeps the last build's blocking beside it and blocks again
only around the records that changed (``macros/identity_blocks.sql``). Here the model runs
alone over a hand-written ``int_identity_records_unioned`` with a block cap of 4, so that
blocks cross the cap in both directions, through rounds of changes (records renamed, moved,
gone, added, leaving and joining the fuzzy population). After each round the incremental
table must equal a ``--full-refresh`` build of a copy, and so must the kept blocking.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from datetime import date

import duckdb
import pytest
from profilecast.activation.segments import segment_model_names
from profilecast.config import load_settings
from profilecast.warehouse.dbt import run_dbt

CAP = 4
MODEL = "int_identity_pairs_compared"
STATE = (f"{MODEL}__block_records", f"{MODEL}__block_members")
COLUMNS = (
    "record_key", "source", "source_record_id", "email_normalized", "crm_contact_id",
    "linked_user_id", "first_name_key", "last_name_key", "phone_key", "birth_date",
    "postcode_key", "city_key", "employer_domain_key", "observed_at", "is_fuzzy_candidate",
)  # fmt: skip
FIRST = ("ann", "bob", "cara", "dev", "eve")
LAST = ("lee", "smith", "quinn", "haddad")
CITY = ("leeds", "york", "bath")
DOB = (date(1980, 1, 1), date(1990, 5, 5), date(1975, 3, 3))


def _record(rng: random.Random, key: int) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return {
        "record_key": f"crm:{key}", "source": "crm", "source_record_id": str(key),
        "email_normalized": f"{first}.{last}{rng.randint(1, 3)}@example.com",
        "crm_contact_id": str(key), "linked_user_id": None, "first_name_key": first,
        "last_name_key": last, "phone_key": rng.choice([None, None, "770090012", "770090013"]),
        "birth_date": rng.choice((None, *DOB)),
        "postcode_key": rng.choice([None, "LS11AA", "YO12BB"]), "city_key": rng.choice(CITY),
        "employer_domain_key": rng.choice([None, "acme.com"]),
        "observed_at": "2026-10-01 00:00:00", "is_fuzzy_candidate": True,
    }  # fmt: skip


def _write(path, records: dict[str, dict]) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "create or replace table int_identity_records_unioned (record_key varchar, "
            "source varchar, source_record_id varchar, email_normalized varchar, "
            "crm_contact_id varchar, linked_user_id varchar, first_name_key varchar, "
            "last_name_key varchar, phone_key varchar, birth_date date, postcode_key varchar, "
            "city_key varchar, employer_domain_key varchar, observed_at timestamp, "
            "is_fuzzy_candidate boolean)"
        )
        con.executemany(
            f"insert into int_identity_records_unioned values ({', '.join('?' * len(COLUMNS))})",
            [[r[c] for c in COLUMNS] for r in records.values()],
        )
    finally:
        con.close()


def _build(settings, full_refresh: bool = False) -> None:
    dbt_vars = {
        "identity_block_size_cap": CAP,
        "segment_models": segment_model_names(settings.dbt_project_dir),
    }
    args = ["--select", MODEL, *(["--full-refresh"] if full_refresh else [])]
    run_dbt(settings, "run", args, dbt_vars)


def _rows(path, table: str, skip: tuple[str, ...] = ()) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = [r[0] for r in con.execute(f"describe {table}").fetchall() if r[0] not in skip]
        return sorted(con.execute(f"select {', '.join(cols)} from {table}").fetchall(), key=repr)
    finally:
        con.close()


def _change(rng: random.Random, records: dict[str, dict], next_key: int) -> int:
    """One day of changes: renames and moves, records gone, new ones, fuzzy-tier flips."""
    keys = sorted(k for k in records if not 100 <= int(k.split(":")[1]) < 200)  # not the crafted
    for key in rng.sample(keys, 6):
        records[key]["last_name_key"] = rng.choice(LAST)
        records[key]["city_key"] = rng.choice(CITY)
    for key in rng.sample(keys, 4):
        records.pop(key, None)
    for key in rng.sample([k for k in keys if k in records], 2):
        records[key]["is_fuzzy_candidate"] = not records[key]["is_fuzzy_candidate"]
    for _ in range(5):
        records[f"crm:{next_key}"] = _record(rng, next_key)
        next_key += 1
    return next_key


@pytest.mark.timeout(900)
def test_incremental_blocking_matches_enumerating_every_pair(tmp_path, monkeypatch):
    monkeypatch.setenv("PROFILECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROFILECAST_DBT_TARGET", "duckdb")
    settings = load_settings()
    settings.home.mkdir(parents=True)
    rng = random.Random(20261127)
    records = {f"crm:{k}": _record(rng, k) for k in range(40)}
    # One block exactly at the cap and one just over it: the rounds push both across.
    for k, first in enumerate(("zoe", "zoe", "zoe", "zoe", "yan", "yan", "yan", "yan", "yan")):
        key = 100 + k
        records[f"crm:{key}"] = {**_record(rng, key), "first_name_key": first, "city_key": "ely"}
    _write(settings.warehouse_path, records)
    _build(settings)
    assert all(_rows(settings.warehouse_path, t) for t in STATE), "the blocking was not kept"

    next_key = 201
    seen_removed = seen_kept = 0
    for day in range(3):
        before = {r[:2]: r for r in _rows(settings.warehouse_path, MODEL)}
        next_key = _change(rng, records, next_key)
        if day == 0:  # crosses: "zoe" over the cap, "yan" back under it
            records["crm:200"] = {**_record(rng, 200), "first_name_key": "zoe", "city_key": "ely"}
            assert "crm:104" in records
            records.pop("crm:104")
        _write(settings.warehouse_path, records)
        _build(settings)
        compiled = settings.home / "dbt" / "target" / "compiled" / "profilecast" / "models"
        sql = (compiled / "intermediate" / f"{MODEL}.sql").read_text()
        assert "old_members" in sql, "the build did not take the incremental blocking path"

        full_home = tmp_path / f"full-{day}"
        shutil.copytree(settings.home, full_home)
        full = replace(settings, home=full_home)
        _build(full, full_refresh=True)
        compared = ("_compared_at",)
        assert _rows(settings.warehouse_path, MODEL, compared) == _rows(
            full.warehouse_path, MODEL, compared
        ), f"day {day}: the pairs differ from enumerating every pair"
        for table in STATE:
            assert _rows(settings.warehouse_path, table) == _rows(full.warehouse_path, table)

        after = {r[:2]: r for r in _rows(settings.warehouse_path, MODEL)}
        seen_removed += len(set(before) - set(after))
        seen_kept += sum(1 for k in set(before) & set(after) if before[k] == after[k])
    # The rounds did remove pairs, and left untouched pairs as they were (not compared again).
    assert seen_removed > 0 and seen_kept > 0

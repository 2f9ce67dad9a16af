"""Drops read from a real S3 endpoint (moto server) and from Parquet files."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from profilecast import sources
from profilecast.interval import Interval
from profilecast.sources import History

START = datetime(2026, 10, 31, tzinfo=UTC)
END = START + timedelta(days=1)


def test_drop_on_s3_loads_like_the_local_one(pc_env, s3_env, sample_dir, tmp_path):
    from dataclasses import replace

    bucket = f"drops-{uuid.uuid4().hex[:8]}"
    s3_env.create_bucket(Bucket=bucket)
    for path in (sample_dir / "crm").iterdir():
        s3_env.upload_file(str(path), bucket, f"team/crm/{path.name}")
    remote = replace(pc_env, sources=f"s3://{bucket}/team", home=tmp_path / "s3home")
    local = replace(pc_env, home=tmp_path / "localhome")
    got = {
        r["entity"]: r
        for r in sources.extract_source(remote, "crm", Interval(START, END), History())
    }
    want = {
        r["entity"]: r
        for r in sources.extract_source(local, "crm", Interval(START, END), History())
    }
    for entity in ("contacts", "companies", "tickets"):
        assert got[entity]["rows_loaded"] == want[entity]["rows_loaded"] > 0
        assert got[entity]["rows_quarantined"] == want[entity]["rows_quarantined"]
        assert all(f.startswith(f"s3://{bucket}/team/crm/") for f in got[entity]["files"])


def test_parquet_drop_and_folder_of_parts(pc_env, sample_dir, tmp_path):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pcsv.read_csv(
        sample_dir / "crm" / "contacts.csv",
        convert_options=pcsv.ConvertOptions(
            column_types={"contact_id": "string", "postcode": "string"}
        ),
    )
    folder = tmp_path / "drop" / "crm" / "contacts"
    folder.mkdir(parents=True)
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), folder / "part-0.parquet")
    pq.write_table(table.slice(half), folder / "part-1.parquet")
    files = sources.list_drop_files(str(tmp_path / "drop"), "crm", "contacts")
    assert len(files) == 2
    spec = next(s for s in sources.ENTITIES if s.table == "crm__contacts")
    r = sources.extract_entity(pc_env, spec, Interval(START, END), files=files)
    assert r.rows_read == table.num_rows
    assert r.rows_loaded + r.rows_quarantined == table.num_rows
    landed = pq.read_table(f"{r.landing_dir}/part-00000.parquet").to_pylist()
    # Typed timestamps survive (normalised to UTC text), not flagged as invalid.
    assert all(row["updated_at"] for row in landed)
    assert not any("invalid_timestamp" in (row["_flags"] or "") for row in landed)


def test_landing_zone_on_s3(pc_env, s3_env, sample_dir, monkeypatch):
    from profilecast.warehouse import connect

    bucket = f"landing-{uuid.uuid4().hex[:8]}"
    s3_env.create_bucket(Bucket=bucket)
    monkeypatch.setenv("PROFILECAST_LANDING_URL", f"s3://{bucket}/lz")
    manifests = sources.extract_source(pc_env, "crm", Interval(START, END), History())
    contacts = next(m for m in manifests if m["entity"] == "contacts")
    assert contacts["landing_dir"] == f"s3://{bucket}/lz/source=crm/entity=contacts/date=2026-10-31"
    keys = {o["Key"] for o in s3_env.list_objects_v2(Bucket=bucket)["Contents"]}
    assert "lz/source=crm/entity=contacts/date=2026-10-31/part-00000.parquet" in keys
    assert "lz/source=crm/entity=contacts/date=2026-10-31/manifest.json" in keys
    with connect(pc_env) as wh:
        sources.ensure_raw_tables(wh)
        sources.load_raw(wh, manifests, END)
        assert (
            wh.query("select count(*) from raw.crm__contacts")[0][0] == contacts["rows_loaded"] > 0
        )
        assert wh.query("select count(*) from quarantine")[0][0] == contacts["rows_quarantined"]

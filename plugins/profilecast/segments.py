"""Segment tables built from whatever models live in ``dbt_project/models/segments/``.

After ``dbt build``, the manifest lists the segment models and their ``config(meta=...)``.
This module unions them into ``customer_segments`` (current membership), keeps
``segment_membership_history`` (one row per entry, closed on exit) and ``segment_runs``
(size per run and the change against the previous run). No registry to edit: adding a
segment file is enough, and removing one retires it (its history is closed, not deleted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEGMENTS_PATH_PREFIX = "models/segments/"


@dataclass(frozen=True)
class Segment:
    name: str
    relation: str
    description: str = ""
    owner: str = "unassigned"
    priority: int = 50
    kind: str = "marketing"  # or "transactional"
    tags: tuple[str, ...] = field(default_factory=tuple)
    sql: str = ""
    min_change_pct: float = -50.0
    max_change_pct: float = 100.0
    #: a change of at most this many members passes whatever its percentage (2 -> 5 is +150%)
    band_min_rows: int = 50


def segments_from_manifest(manifest: dict[str, Any]) -> list[Segment]:
    """Every model under models/segments/, with defaults for missing metadata."""
    found = []
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        if not str(node.get("original_file_path", "")).startswith(SEGMENTS_PATH_PREFIX):
            continue
        meta = {**(node.get("meta") or {}), **((node.get("config") or {}).get("meta") or {})}
        kind = str(meta.get("kind", "marketing")).lower()
        if kind not in ("marketing", "transactional"):
            raise ValueError(f"segment {node['name']}: kind must be marketing or transactional")
        found.append(
            Segment(
                name=node["name"],
                relation=node.get("alias") or node["name"],
                description=str(meta.get("description") or node.get("description") or ""),
                owner=str(meta.get("owner", "unassigned")),
                priority=int(meta.get("priority", 50)),
                kind=kind,
                tags=tuple(str(t) for t in meta.get("segment_tags", []) or []),
                sql=str(node.get("raw_code") or ""),
                min_change_pct=float(meta.get("min_change_pct", -50.0)),
                max_change_pct=float(meta.get("max_change_pct", 100.0)),
                band_min_rows=int(meta.get("band_min_rows", 50)),
            )
        )
    return sorted(found, key=lambda s: s.name)


def build_segment_tables(wh: Any, segments: list[Segment], run_date: str) -> list[dict[str, Any]]:
    """(Re)build customer_segments and update history and run sizes for ``run_date``.

    Idempotent for a run date: rerunning it yields the same tables.
    """
    import pandas as pd

    schema = wh.schema
    frames = []
    for seg in segments:
        ids = wh.df(f"select distinct customer_id from {schema}.{seg.relation}")
        ids["segment"] = seg.name
        ids["tags"] = "|".join(seg.tags)
        ids["kind"] = seg.kind
        frames.append(ids)
    current = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["customer_id", "segment", "tags", "kind"])
    )

    types = {"entered_at": "date", "exited_at": "date", "run_date": "date"}
    if not wh.table_exists("segment_membership_history"):
        wh.execute(
            "create table segment_membership_history ("
            "customer_id varchar, segment varchar, entered_at date, exited_at date)"
        )
    # Undo anything a previous attempt of this same run date recorded, then apply it again.
    wh.execute("delete from segment_membership_history where entered_at = %s", (run_date,))
    wh.execute(
        "update segment_membership_history set exited_at = null where exited_at = %s",
        (run_date,),
    )
    open_rows = wh.df(
        "select customer_id, segment, entered_at from segment_membership_history "
        "where exited_at is null"
    )
    cur_keys = set(zip(current["customer_id"], current["segment"], strict=True))
    open_keys = set(zip(open_rows["customer_id"], open_rows["segment"], strict=True))
    exits = open_keys - cur_keys
    entries = cur_keys - open_keys
    wh.begin()
    try:
        for cid, seg in exits:
            wh.execute(
                "update segment_membership_history set exited_at = %s "
                "where customer_id = %s and segment = %s and exited_at is null",
                (run_date, cid, seg),
            )
        if entries:
            new = pd.DataFrame(sorted(entries), columns=["customer_id", "segment"])
            new["entered_at"] = run_date
            new["exited_at"] = None
            wh._insert_frame("segment_membership_history", new)
        wh.commit()
    except Exception:
        wh.rollback()
        raise

    entered = wh.df(
        "select customer_id, segment, entered_at from segment_membership_history "
        "where exited_at is null"
    )
    membership = current.merge(entered, on=["customer_id", "segment"], how="left")
    membership["entered_at"] = membership["entered_at"].astype(str)
    _replace_all(
        wh,
        "customer_segments",
        membership[["customer_id", "segment", "tags", "kind", "entered_at"]],
        types,
    )

    _replace_all(wh, "customer_tags", customer_tags(current), {})

    # Sizes per run and change against the previous run of each segment.
    previous = {}
    if wh.table_exists("segment_runs"):
        rows = wh.query(
            "select segment, size from segment_runs r where run_date = ("
            "select max(run_date) from segment_runs p where p.segment = r.segment "
            "and p.run_date < %s)",
            (run_date,),
        )
        previous = {seg: size for seg, size in rows}
    sizes = current.groupby("segment").size().to_dict() if len(current) else {}
    meta = {s.name: s for s in segments}
    run_rows = []
    for name in sorted(set(meta) | set(previous)):
        size = int(sizes.get(name, 0))
        prev = previous.get(name)
        change = None if not prev else round((size - prev) / prev * 100, 2)
        run_rows.append(
            {
                "run_date": run_date,
                "segment": name,
                "size": size,
                "previous_size": prev,
                "change_pct": change,
                "is_retired": name not in meta,
                "kind": meta[name].kind if name in meta else None,
                "owner": meta[name].owner if name in meta else None,
                "description": meta[name].description if name in meta else None,
                "min_change_pct": meta[name].min_change_pct if name in meta else None,
                "max_change_pct": meta[name].max_change_pct if name in meta else None,
                "band_min_rows": meta[name].band_min_rows if name in meta else None,
            }
        )
    wh.replace_rows(
        "segment_runs",
        "run_date",
        run_date,
        pd.DataFrame(run_rows),
        column_types={
            "run_date": "date",
            "size": "bigint",
            "previous_size": "bigint",
            "change_pct": "double precision",
            "min_change_pct": "double precision",
            "max_change_pct": "double precision",
            "band_min_rows": "integer",
            "is_retired": "boolean",
        },
    )
    return run_rows


def _replace_all(wh: Any, table: str, frame: Any, types: dict[str, str]) -> None:
    if wh.table_exists(table):
        wh.execute(f"drop table {table}")
    cols = ", ".join(f'"{c}" {types.get(c, "varchar")}' for c in frame.columns)
    wh.execute(f"create table {table} ({cols})")
    if len(frame):
        wh._insert_frame(table, frame)


def customer_tags(membership: Any) -> Any:
    """Hierarchical tags per customer from their segments' ``segment_tags``.

    ``"LoyalCustomer > HighSpender"`` yields the main tag ``LoyalCustomer`` and the sub-tag
    ``HighSpender``; a sub-tag always brings its main tag along. One row per customer and
    tag path, with the segments that assigned it.
    """
    import pandas as pd

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for cid, seg, tags in zip(
        membership["customer_id"], membership["segment"], membership["tags"], strict=True
    ):
        for tag in filter(None, str(tags or "").split("|")):
            parts = [p.strip() for p in tag.split(">") if p.strip()]
            for depth in range(1, len(parts) + 1):
                path = " > ".join(parts[:depth])
                row = rows.setdefault(
                    (cid, path),
                    {
                        "customer_id": cid,
                        "tag_path": path,
                        "main_tag": parts[0],
                        "tag": parts[depth - 1],
                        "parent_tag": parts[depth - 2] if depth > 1 else None,
                        "segments": set(),
                    },
                )
                row["segments"].add(seg)
    out = [{**r, "segments": ",".join(sorted(r["segments"]))} for r in rows.values()]
    cols = ["customer_id", "tag_path", "main_tag", "tag", "parent_tag", "segments"]
    return pd.DataFrame(out, columns=cols)


def explain(wh: Any, segments: list[Segment], customer_id: str) -> list[str]:
    """Lines saying, per segment, whether the customer is in it and the profile values its
    rule reads (the profile columns its SQL names)."""
    import re

    profile = wh.df("select * from customer_profiles where customer_id = %s", (customer_id,))
    if profile.empty:
        return [f"no profile with customer_id {customer_id}"]
    values = profile.iloc[0].to_dict()
    member = {
        seg: entered
        for seg, entered in wh.query(
            "select segment, entered_at from customer_segments where customer_id = %s",
            (customer_id,),
        )
    }
    lines = [
        f"customer {customer_id}: {values.get('first_name') or ''} {values.get('last_name') or ''}"
        f" <{values.get('email') or 'no email'}>  emailable={values.get('is_emailable')}"
    ]
    for seg in segments:
        state = f"IN  (since {member[seg.name]})" if seg.name in member else "OUT"
        lines.append(f"{state:22s} {seg.name}: {seg.description}")
        used = [c for c in values if re.search(rf"\b{re.escape(c)}\b", seg.sql)]
        for col in used:
            if col != "customer_id":
                lines.append(f"{'':26s}{col} = {values[col]}")
    tags = (
        wh.query(
            "select tag_path from customer_tags where customer_id = %s order by tag_path",
            (customer_id,),
        )
        if wh.table_exists("customer_tags")
        else []
    )
    lines.append("tags: " + (", ".join(t for (t,) in tags) or "none"))
    return lines

"""Segments: the models in ``dbt_project/models/segments/``, one segment per file.

dbt builds everything about them (``models/activation/``): ``customer_segments`` (current
membership), ``segment_membership_history`` (one row per stay, closed on exit),
``segment_runs`` (size per run and the change against the previous run) and
``customer_tags``. The pipeline passes the folder's list of files to dbt on each build, so
adding a segment file is enough, and removing one retires it (its history is closed, not
deleted). This module lists the files, reads their metadata from dbt's manifest, and
explains one customer's membership.
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
                # compiled: a rule written with a macro still names the columns it reads
                sql=str(node.get("compiled_code") or node.get("raw_code") or ""),
                min_change_pct=float(meta.get("min_change_pct", -50.0)),
                max_change_pct=float(meta.get("max_change_pct", 100.0)),
                band_min_rows=int(meta.get("band_min_rows", 50)),
            )
        )
    return sorted(found, key=lambda s: s.name)


def segment_model_names(dbt_project_dir: Any) -> list[str]:
    """The segment models: every ``.sql`` file under ``models/segments/`` (dbt names a model
    after its file). Passed to dbt as var ``segment_models`` on every build."""
    from pathlib import Path

    folder = Path(dbt_project_dir) / SEGMENTS_PATH_PREFIX
    return sorted(p.stem for p in folder.rglob("*.sql"))


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

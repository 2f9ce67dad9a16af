"""Campaigns, audiences and personalised rendering.

* A campaign is a folder under ``campaigns/`` (``campaign.yml`` + ``body.html.j2`` +
  ``body.txt.j2``). Templates are compiled once per run in Jinja2's
  ``ImmutableSandboxedEnvironment`` (HTML autoescaped), and the profile fields they use are
  found from Jinja's own AST: a field outside the campaign's ``fields`` allow-list fails
  validation before anything renders, and only allow-listed fields leave the warehouse.
* :func:`build_audiences` writes ``campaign_audiences`` for a run date: segment members,
  minus excluded segments, minus non-emailable profiles (marketing), minus the frequency cap,
  one campaign per customer per day (highest priority wins), each with a deterministic
  ``message_key``. The quality gate checks this table before anything renders.
* :func:`render_campaign` renders the audience rows not yet in the send ledger.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATE_FILES = {"html": "body.html.j2", "text": "body.txt.j2"}
FORMATS = ("jsonl", "ses", "sendgrid")


class CampaignError(ValueError):
    """A campaign definition or template is invalid."""


@dataclass
class Campaign:
    campaign_id: str
    segments: list[str]
    kind: str
    format: str
    from_address: str
    subject_variants: list[str]
    preheader: str
    fields: list[str]
    priority: int = 50
    frequency_cap_days: int = 0
    exclude_segments: list[str] = field(default_factory=list)
    description: str = ""
    #: a product this campaign promotes: customers who complained about it lately are skipped
    promoted_product: str | None = None
    complaint_window_days: int = 30
    folder: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)


def message_key(campaign_id: str, customer_id: str, ds: str) -> str:
    """Deterministic per (campaign, customer, date): the exactly-once key."""
    return hashlib.sha256(f"{campaign_id}|{customer_id}|{ds}".encode()).hexdigest()[:32]


def load_campaigns(directory: Path) -> list[Campaign]:
    import yaml

    campaigns = []
    for cfg_path in sorted(directory.glob("*/campaign.yml")):
        raw = yaml.safe_load(cfg_path.read_text()) or {}
        cid = raw.get("campaign_id") or cfg_path.parent.name
        if cid != cfg_path.parent.name:
            raise CampaignError(f"{cfg_path}: campaign_id must match its folder name")
        missing = [k for k in ("segments", "from", "subject_variants", "fields") if not raw.get(k)]
        if missing:
            raise CampaignError(f"{cfg_path}: missing {', '.join(missing)}")
        fmt = raw.get("format", "jsonl")
        if fmt not in FORMATS:
            raise CampaignError(f"{cfg_path}: format {fmt!r} not supported (use {FORMATS})")
        kind = raw.get("kind", "marketing")
        if kind not in ("marketing", "transactional"):
            raise CampaignError(f"{cfg_path}: kind must be marketing or transactional")
        sources = {}
        for key, name in TEMPLATE_FILES.items():
            tpl = cfg_path.parent / name
            if not tpl.exists():
                raise CampaignError(f"{cfg_path.parent}: missing {name}")
            sources[key] = tpl.read_text()
        campaigns.append(
            Campaign(
                campaign_id=cid,
                segments=list(raw["segments"]),
                exclude_segments=list(raw.get("exclude_segments") or []),
                kind=kind,
                format=fmt,
                from_address=raw["from"],
                subject_variants=list(raw["subject_variants"]),
                preheader=raw.get("preheader", ""),
                fields=list(raw["fields"]),
                priority=int(raw.get("priority", 50)),
                frequency_cap_days=int(raw.get("frequency_cap_days", 0)),
                description=raw.get("description", ""),
                promoted_product=raw.get("promoted_product"),
                complaint_window_days=int(raw.get("complaint_window_days", 30)),
                folder=cfg_path.parent,
                sources=sources,
            )
        )
    return sorted(campaigns, key=lambda c: (-c.priority, c.campaign_id))


class CompiledCampaign:
    """A campaign's templates compiled once, with the fields they reference."""

    def __init__(self, campaign: Campaign) -> None:
        from jinja2 import StrictUndefined, meta
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.campaign = campaign
        html_env = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
        text_env = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
        sources = {
            "html": (html_env, campaign.sources["html"]),
            "text": (text_env, campaign.sources["text"]),
            "preheader": (text_env, campaign.preheader),
            **{f"subject_{i}": (text_env, s) for i, s in enumerate(campaign.subject_variants)},
        }
        used: set[str] = set()
        self.templates = {}
        for name, (env, src) in sources.items():
            try:
                ast = env.parse(src)
            except Exception as exc:  # noqa: BLE001 - re-raised with the campaign named
                raise CampaignError(f"{campaign.campaign_id}/{name}: {exc}") from exc
            used |= meta.find_undeclared_variables(ast)
            self.templates[name] = env.from_string(src)
        outside = sorted(used - set(campaign.fields))
        if outside:
            raise CampaignError(
                f"campaign {campaign.campaign_id}: template uses field(s) {', '.join(outside)} "
                f"outside its allow-list ({', '.join(campaign.fields)})"
            )
        self.fields = sorted(used)

    def render(self, profile: dict[str, Any], key: str) -> dict[str, str]:
        ctx = {f: _clean(profile.get(f)) for f in self.campaign.fields}
        variant = int(key[:8], 16) % len(self.campaign.subject_variants)
        return {
            "subject": " ".join(self.templates[f"subject_{variant}"].render(ctx).split()),
            "subject_variant": str(variant),
            "preheader": " ".join(self.templates["preheader"].render(ctx).split()),
            "html": self.templates["html"].render(ctx),
            "text": self.templates["text"].render(ctx).strip() + "\n",
        }


def _clean(value: Any) -> Any:
    """None, NaN and blank strings render as empty (so ``default(..., true)`` applies)."""
    if value is None:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, str) and value.strip().lower() in ("", "none", "null", "nan"):
        return ""
    if hasattr(value, "item"):
        return value.item()
    return value


def build_audiences(wh: Any, campaigns: list[Campaign], run_date: str) -> dict[str, int]:
    """Write ``campaign_audiences`` rows for ``run_date`` (replacing a previous attempt)."""
    import pandas as pd

    members = wh.df("select customer_id, segment from customer_segments")
    profiles = wh.df(
        "select customer_id, is_emailable, "
        "(email is not null and bounced_at is null and complained_at is null) as is_reachable, "
        "last_complaint_product, last_complaint_at "
        "from customer_profiles"
    )
    emailable = set(profiles.loc[profiles["is_emailable"].astype(bool), "customer_id"])
    # Transactional mail (receipts, account notices) ignores marketing opt-outs but never
    # goes to an address that bounced or complained, or to no address at all.
    reachable = set(profiles.loc[profiles["is_reachable"].astype(bool), "customer_id"])
    # Days from run_date to each customer's nearest send on another date, before or after:
    # a backfill or a rerun of an earlier day must respect sends made by later days too.
    nearest: dict[str, int] = {}
    if wh.table_exists("send_ledger"):
        for cid, days in wh.query(
            "select customer_id, min(abs(cast(run_date as date) - cast(%s as date))) "
            "from send_ledger where cast(run_date as date) <> cast(%s as date) group by 1",
            (run_date, run_date),
        ):
            nearest[cid] = int(days)
    by_segment = members.groupby("segment")["customer_id"].apply(set).to_dict()
    taken: set[str] = set()
    rows = []
    counts = {}
    for c in campaigns:  # highest priority first
        audience: set[str] = set()
        for seg in c.segments:
            audience |= by_segment.get(seg, set())
        for seg in c.exclude_segments:
            audience -= by_segment.get(seg, set())
        audience &= emailable if c.kind == "marketing" else reachable
        if c.promoted_product:
            audience -= complained_about(
                profiles, c.promoted_product, run_date, c.complaint_window_days
            )
        if c.frequency_cap_days:
            audience = {
                cid
                for cid in audience
                if cid not in nearest or nearest[cid] >= c.frequency_cap_days
            }
        audience -= taken
        taken |= audience
        counts[c.campaign_id] = len(audience)
        rows += [
            {
                "run_date": run_date,
                "campaign_id": c.campaign_id,
                "customer_id": cid,
                "message_key": message_key(c.campaign_id, cid, run_date),
                "kind": c.kind,
            }
            for cid in sorted(audience)
        ]
    frame = pd.DataFrame(
        rows, columns=["run_date", "campaign_id", "customer_id", "message_key", "kind"]
    )
    wh.replace_rows(
        "campaign_audiences", "run_date", run_date, frame, column_types={"run_date": "date"}
    )
    return counts


def complained_about(profiles: Any, product: str, run_date: str, window_days: int) -> set[str]:
    """Customers whose latest complaint, within the window, is about ``product``."""
    import pandas as pd

    cutoff = pd.Timestamp(run_date) - pd.Timedelta(days=window_days)
    hit = (profiles["last_complaint_product"].fillna("").str.lower() == product.lower()) & (
        pd.to_datetime(profiles["last_complaint_at"]) >= cutoff
    )
    return set(profiles.loc[hit, "customer_id"])


def rendered_path(rendered_dir: Path, run_date: str, campaign_id: str) -> Path:
    return rendered_dir / run_date / f"{campaign_id}.jsonl.gz"


def render_campaign(
    wh: Any, campaign: Campaign, run_date: str, rendered_dir: Path, shard: int = 0, shards: int = 1
) -> dict[str, Any]:
    """Render this campaign's audience (keys not yet exported) into a gzip JSON-lines file."""
    compiled = CompiledCampaign(campaign)
    cols = ", ".join(f"p.{f}" for f in sorted(set(campaign.fields) | {"email"}))
    ledger_filter = ""
    if wh.table_exists("send_ledger"):
        ledger_filter = "and a.message_key not in (select message_key from send_ledger)"
    frame = wh.df(
        f"select a.message_key, a.customer_id, {cols} from campaign_audiences a "
        f"join customer_profiles p on p.customer_id = a.customer_id "
        f"where a.run_date = %s and a.campaign_id = %s {ledger_filter} "
        f"order by a.message_key",
        (run_date, campaign.campaign_id),
    )
    path = rendered_path(rendered_dir, run_date, campaign.campaign_id)
    if shards > 1:
        path = path.with_name(f"{campaign.campaign_id}.shard-{shard:03d}.jsonl.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n = 0
    with gzip.open(tmp, "wt", encoding="utf-8") as out:
        for rec in frame.to_dict("records"):
            if shards > 1 and int(rec["message_key"][:8], 16) % shards != shard:
                continue
            content = compiled.render(rec, rec["message_key"])
            out.write(
                json.dumps(
                    {
                        "message_key": rec["message_key"],
                        "campaign_id": campaign.campaign_id,
                        "customer_id": rec["customer_id"],
                        "to": rec["email"],
                        "from": campaign.from_address,
                        **content,
                        "fields": {f: _clean(rec.get(f)) for f in compiled.fields},
                    },
                    ensure_ascii=False,
                    default=str,
                )
                + "\n"
            )
            n += 1
    tmp.replace(path)
    return {"campaign_id": campaign.campaign_id, "rendered": n, "path": str(path),
            "format": campaign.format}  # fmt: skip


PREVIEW_SCRIPT = """<script>
window.addEventListener('load', function () {
  var frames = Array.prototype.slice.call(document.querySelectorAll('iframe'));
  var broken = 0, images = 0, errors = 0;
  frames.forEach(function (f) {
    var doc = f.contentDocument;
    Array.prototype.forEach.call(doc.images, function (img) {
      images += 1;
      if (!img.complete || img.naturalWidth === 0) { broken += 1; }
    });
    if (/\\{\\{|\\{%|Undefined|None\\b/.test(doc.body.innerText)) { errors += 1; }
  });
  document.body.setAttribute('data-check',
    'frames=' + frames.length + ';images=' + images + ';broken=' + broken + ';errors=' + errors);
});
</script>"""


def write_preview(wh: Any, campaign: Campaign, out_dir: Path, n: int = 20) -> Path:
    """Render ``n`` sample messages of a campaign (its latest audience, else its segments)
    into ``out_dir`` with an index page that checks images and leftover template syntax."""
    import html as html_lib

    compiled = CompiledCampaign(campaign)
    cols = ", ".join(f"p.{f}" for f in sorted(set(campaign.fields) | {"email"}))
    seg_list = ", ".join("'" + s.replace("'", "''") + "'" for s in campaign.segments)
    frame = wh.df(
        f"select p.customer_id, {cols} from customer_profiles p "
        f"where p.customer_id in (select customer_id from customer_segments where segment in ({seg_list})) "
        f"and p.is_emailable order by p.customer_id limit {int(n)}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for i, rec in enumerate(frame.to_dict("records")):
        key = message_key(campaign.campaign_id, rec["customer_id"], "preview")
        content = compiled.render(rec, key)
        name = f"message-{i:03d}.html"
        (out_dir / name).write_text(content["html"], encoding="utf-8")
        items.append(
            f"<section><h2>{html_lib.escape(content['subject'])}</h2>"
            f"<p><em>{html_lib.escape(content['preheader'])}</em> &middot; customer "
            f"{html_lib.escape(rec['customer_id'])}</p>"
            f'<iframe src="{name}" width="640" height="320"></iframe></section>'
        )
    index = out_dir / "index.html"
    index.write_text(
        "<!doctype html><meta charset=utf-8>"
        f"<title>Preview: {html_lib.escape(campaign.campaign_id)}</title>"
        "<style>body{font-family:sans-serif}iframe{border:1px solid #ccc}</style>"
        f"<h1>{html_lib.escape(campaign.campaign_id)}: {len(items)} sample(s)</h1>"
        + "".join(items)
        + PREVIEW_SCRIPT,
        encoding="utf-8",
    )
    return index

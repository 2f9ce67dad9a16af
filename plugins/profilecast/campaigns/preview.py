"""A static HTML preview of a campaign for a handful of real profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from profilecast.campaigns.definition import Campaign, message_key
from profilecast.campaigns.templates import CompiledCampaign

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

"""Results as people read them: a text table for ``profilecast results`` and
``reports/<ds>/results.html`` (per campaign the funnel, and each variant's rates with their
intervals drawn as plots: inline SVG, no script, no network)."""

from __future__ import annotations

from html import escape
from typing import Any

FUNNEL = ("recipients", "delivered", "opened", "clicked", "converted")
PLOTTED = (("conversion_rate", "Conversion (per recipient)"), ("open_rate", "Opens (per delivered)"),
           ("click_rate", "Clicks (per delivered)"))  # fmt: skip


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def _interval(r: dict[str, Any]) -> str:
    if r.get("rate") is None:
        return "-"
    return f"{_pct(r['rate'])} [{_pct(r['low'])}, {_pct(r['high'])}]"


def _lift_text(lift: dict[str, Any] | None) -> str:
    if not lift:
        return "-"
    return (f"{100 * lift['difference']:+.2f} pts [{100 * lift['low']:+.2f}, "
            f"{100 * lift['high']:+.2f}] p={lift['p_value']:.3g}")  # fmt: skip


def text_table(summary: dict[str, Any]) -> str:
    """The results of one campaign as a table (rich renders it for the terminal)."""
    from rich.console import Console
    from rich.table import Table

    conf = int(round(100 * summary["confidence"]))
    table = Table(title=f"{summary['campaign_id']} ({summary['experiment_id']}), "
                        f"{len(summary['days'])} send day(s)")  # fmt: skip
    for col in ("variant", *FUNNEL, f"open rate ({conf}%)", f"conversion ({conf}%)", "revenue",
                "conversion lift vs holdout"):  # fmt: skip
        table.add_column(col, justify="left" if col == "variant" else "right")
    for a in summary["arms"]:
        table.add_row(a["variant"], *[f"{a[c]:,}" for c in FUNNEL], _interval(a["open_rate"]),
                      _interval(a["conversion_rate"]), f"{a['revenue']:,.2f}",
                      _lift_text(a.get("lift_vs_holdout")))  # fmt: skip
    console = Console(record=True, width=200)
    with console.capture() as cap:
        console.print(table)
    lines = [cap.get().rstrip()]
    if "sending_vs_holdout" in summary:
        lines.append(f"sending at all vs holdout: {_lift_text(summary['sending_vs_holdout'])}")
    w = summary["winner"]
    lines.append(f"winner on {w['metric']}: {w['variant'] or 'none'} ({w['reason']})")
    if not summary["attribution_complete"]:
        lines.append("attribution window still open for the newest sends: conversions may grow")
    return "\n".join(lines)


def _rate_plot(summary: dict[str, Any], rate: str, title: str) -> str:
    """Horizontal bars with the interval as a whisker, one row per arm."""
    arms = [a for a in summary["arms"] if a[rate]["rate"] is not None]
    if not arms:
        return ""
    top = max(max(a[rate]["high"] for a in arms), 0.01)
    width, left, row = 420, 90, 26
    scale = (width - left - 60) / top
    parts = [f'<svg class="plot" role="img" aria-label="{escape(title)}" width="{width}" '
             f'height="{row * len(arms) + 30}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="14" font-size="13" font-weight="bold">{escape(title)}</text>']  # fmt: skip
    for i, a in enumerate(arms):
        y = 24 + i * row
        r = a[rate]
        colour = "#999" if a["variant"] == "holdout" else "#3b6ea8"
        parts += [
            f'<text x="0" y="{y + 14}" font-size="12">{escape(a["variant"])}</text>',
            f'<rect class="bar" data-variant="{escape(a["variant"])}" x="{left}" y="{y + 3}" '
            f'width="{r["rate"] * scale:.1f}" height="14" fill="{colour}"/>',
            f'<line class="interval" x1="{left + r["low"] * scale:.1f}" y1="{y + 10}" '
            f'x2="{left + r["high"] * scale:.1f}" y2="{y + 10}" stroke="#000" stroke-width="1.5"/>',
            f'<text x="{left + r["high"] * scale + 6:.1f}" y="{y + 14}" font-size="11">'
            f'{_pct(r["rate"])}</text>',
        ]  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _funnel(summary: dict[str, Any]) -> str:
    head = "".join(f"<th>{c}</th>" for c in ("variant", *FUNNEL, "revenue", "lift vs holdout"))
    rows = []
    for a in summary["arms"]:
        cells = "".join(f"<td>{a[c]:,}</td>" for c in FUNNEL)
        rows.append(f'<tr data-variant="{escape(a["variant"])}"><td>{escape(a["variant"])}</td>'
                    f"{cells}<td>{a['revenue']:,.2f}</td>"
                    f"<td>{escape(_lift_text(a.get('lift_vs_holdout')))}</td></tr>")  # fmt: skip
    return f'<table class="funnel"><tr>{head}</tr>{"".join(rows)}</table>'


def html_report(summaries: list[dict[str, Any]], ds: str) -> str:
    sections = []
    for s in summaries:
        w = s["winner"]
        plots = "".join(_rate_plot(s, rate, title) for rate, title in PLOTTED)
        sending = s.get("sending_vs_holdout")
        sections.append(
            f'<section class="campaign" id="{escape(s["campaign_id"])}">'
            f'<h2>{escape(s["campaign_id"])} <small>{escape(str(s["experiment_id"]))}</small></h2>'
            f"<p>{len(s['days'])} send day(s): {escape(', '.join(s['days']))}. Intervals: "
            f"{int(round(100 * s['confidence']))}% (Wilson; lift: Newcombe).</p>"
            f"{_funnel(s)}<div class='plots'>{plots}</div>"
            + (f"<p class='sending'>Sending at all vs holdout: {escape(_lift_text(sending))}</p>"
               if sending else "")
            + f"<p class='winner'>Winner on {escape(w['metric'])}: "
            f"<b>{escape(str(w['variant'] or 'none'))}</b> ({escape(w['reason'])})</p></section>"
        )  # fmt: skip
    body = "".join(sections) or "<p>No campaign has results yet.</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>profilecast results {escape(ds)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        ".plots{display:flex;flex-wrap:wrap;gap:24px;margin:12px 0}</style></head>"
        f"<body><h1>Campaign results, {escape(ds)}</h1>{body}</body></html>"
    )

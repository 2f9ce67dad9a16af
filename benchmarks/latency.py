"""Triggered-flow latency under ``profilecast up``: from the moment a step is due to the
moment its message is committed in an exported batch.

    .venv/bin/python benchmarks/latency.py --rate 2 --seconds 120 --out /tmp/pc-latency

It starts ``profilecast up`` on the embedded default (SQLite metadata, LocalExecutor, the
machine's Redis for wake-ups) in a fresh home, with the flows fallback schedule at every
minute, and posts events for new customers at a steady rate: an identify with a new email
(the welcome series' first step, due at once: the wake-up path) and a cart add (the cart
flow's first step; here its delay is shortened to ``--cart-delay`` minutes so that it comes
due during the run: the scheduled path). The export folder is watched; a message's latency
is its batch file's write time minus its due moment. Results: ``results.json`` and
``results.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WRITE_KEY = "bench-key"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0
    )


def bench_flows(target: Path, cart_delay: float) -> Path:
    """The repository's flows, with the cart flow's first delay shortened."""
    shutil.copytree(REPO / "flows", target)
    cart = target / "cart_abandonment.yml"
    cart.write_text(
        cart.read_text().replace("delay: {minutes: 30}", f"delay: {{minutes: {cart_delay}}}")
    )
    for f in target.glob("*.yml"):  # quiet hours would hold messages whatever the hour
        f.write_text(
            "\n".join(
                line for line in f.read_text().splitlines() if not line.startswith("quiet_hours")
            )
        )
    return target


def post(port: int, body: dict) -> None:
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/batch", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": auth},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def read_batches(
    exports: Path, seen: dict[Path, float], found: dict[str, tuple[str, float]]
) -> None:
    """Record each new batch file's messages: message_key -> (flow, file write time)."""
    from profilecast.export.formats import FORMATS

    for f in exports.rglob("batch-*.jsonl.gz"):
        if f in seen:
            continue
        written = f.stat().st_mtime
        seen[f] = written
        for line in gzip.decompress(f.read_bytes()).decode().splitlines():
            rec = json.loads(line)
            fmt = (
                "ses"
                if "BulkEmailEntries" in rec
                else "sendgrid"
                if "personalizations" in rec
                else "jsonl"
            )
            for m in FORMATS[fmt].read(rec):
                found[m["to"] + "|" + f.parts[-3]] = (f.parts[-3], written)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=2.0, help="new customers per second")
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--cart-delay", type=float, default=2.0, help="minutes")
    p.add_argument("--out", default="/tmp/pc-latency")
    args = p.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    port, af_port = _port(), _port()
    env = {
        **os.environ, "PROFILECAST_HOME": str(out / "home"), "PROFILECAST_SOURCES": str(out / "drops"),
        "PROFILECAST_WRITE_KEYS": WRITE_KEY, "PROFILECAST_COLLECTOR_RATE": "1000000",
        "PROFILECAST_WAKE_URL": "redis://127.0.0.1:6379/0",
        "PROFILECAST_WAKE_CHANNEL": f"profilecast.bench.{uuid.uuid4().hex[:8]}",
        "PROFILECAST_FLOWS": str(bench_flows(out / "flows", args.cart_delay)),
        "PROFILECAST_FLOWS_FALLBACK_CRON": "* * * * *",
    }  # fmt: skip
    env.pop("PROFILECAST_CLOCK_FILE", None)
    log = open(out / "up.log", "wb")  # noqa: SIM115
    exe = str(Path(sys.executable).with_name("profilecast"))
    proc = subprocess.Popen([exe, "up", "--port", str(port), "--airflow-port", str(af_port),
                             "--unpause", "customer_flows"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    due: dict[str, tuple[str, float]] = {}
    found: dict[str, tuple[str, float]] = {}
    seen: dict[Path, float] = {}
    exports = out / "home" / "exports" / "flows"
    try:
        deadline = time.monotonic() + 300
        while "unpaused" not in (out / "up.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                print((out / "up.log").read_text()[-3000:])
                return 1
            time.sleep(1)
        print(f"up; posting {args.rate}/s for {args.seconds:.0f}s", flush=True)
        start, n = time.monotonic(), 0
        while time.monotonic() - start < args.seconds:
            now = datetime.now(UTC)
            stamp = now.isoformat().replace("+00:00", "Z")
            user, email = f"u{n}", f"bench{n}@example.com"
            post(port, {"batch": [
                {"type": "identify", "userId": user, "timestamp": stamp, "traits": {"email": email}},
                {"type": "track", "userId": user, "event": "Product Added", "timestamp": stamp,
                 "properties": {"name": "Tent"}},
            ]})  # fmt: skip
            t = now.timestamp()
            due[f"{email}|welcome_series"] = ("welcome_series/hello", t)
            due[f"{email}|cart_abandonment"] = (
                "cart_abandonment/reminder",
                t + args.cart_delay * 60,
            )
            n += 1
            read_batches(exports, seen, found) if exports.exists() else None
            time.sleep(max(0.0, start + n / args.rate - time.monotonic()))
        last_due = max(t for _, t in due.values())
        print(f"posted {n}; waiting for the last due step", flush=True)
        while time.time() < last_due + 240 and len(found.keys() & due.keys()) < len(due):
            read_batches(exports, seen, found) if exports.exists() else None
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)
    rows, series = [], {}
    first_due = min(t for _, t in due.values())
    for step in sorted({s for s, _ in due.values()}):
        keys = sorted((k for k, (s, _) in due.items() if s == step), key=lambda k: due[k][1])
        lat = [found[k][1] - due[k][1] for k in keys if k in found]
        # The first minute includes the DAG's first parse and the triggerer's first listen.
        steady = [found[k][1] - due[k][1] for k in keys
                  if k in found and due[k][1] - first_due >= 60]  # fmt: skip
        series[step] = [[round(due[k][1] - first_due, 1), round(found[k][1] - due[k][1], 2)]
                        for k in keys if k in found]  # fmt: skip
        rows.append({
            "step": step, "due": len(keys), "exported": len(lat),
            "p50_s": round(_pct(lat, 50), 2), "p95_s": round(_pct(lat, 95), 2),
            "max_s": round(max(lat), 2) if lat else None,
            "after_first_minute_p95_s": round(_pct(steady, 95), 2) if steady else None,
        })  # fmt: skip
    (out / "series.json").write_text(json.dumps(series))
    result = {"rate_per_s": args.rate, "seconds": args.seconds, "customers": n,
              "cart_delay_min": args.cart_delay, "batches": len(seen), "steps": rows,
              "measured_at": datetime.now(UTC).isoformat()}  # fmt: skip
    (out / "results.json").write_text(json.dumps(result, indent=2))
    md = [
        "| flow step | due | exported | p50 (s) | p95 (s) | max (s) | p95 after the first minute (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    md += [f"| {r['step']} | {r['due']} | {r['exported']} | {r['p50_s']} | {r['p95_s']} | "
           f"{r['max_s']} | {r['after_first_minute_p95_s']} |" for r in rows]  # fmt: skip
    (out / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if all(r["exported"] == r["due"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

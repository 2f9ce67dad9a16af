"""The collector's three figures: accepted events per second (durability on) with the p99
acknowledgement, the delay from an accepted event to a render that reflects it, and the
profile API's latency at a fixed request rate.

    .venv/bin/python benchmarks/collector_latency.py --contacts 3000 --out /tmp/pc-collector

It builds a warehouse from a generated sample with the real pipeline, starts
``profilecast serve`` as its own process (uvicorn, one worker: one core for the app), and
loads it from this process with asyncio + httpx. Results: ``results.json`` and
``results.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

WRITE_KEY, TOKEN = "bench-key", "bench-token"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0
    )


def build(home: Path, contacts: int) -> None:
    from profilecast import pipeline
    from profilecast.config import load_settings
    from profilecast_dev.generate import generate

    os.environ["PROFILECAST_HOME"] = str(home)
    os.environ["PROFILECAST_SOURCES"] = str(home / "sample")
    if not (home / "warehouse.duckdb").exists():
        generate(home / "sample", contacts=contacts, seed=11)
        settings = load_settings()
        start, end = datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
        manifests = [
            pipeline.extract(s, start, end, settings) for s in ("crm", "billing", "web", "esp")
        ]
        pipeline.load(manifests, end, settings)
        pipeline.transform(start, end, settings)
        pipeline.audiences(start, settings)
    pipeline.publish_profiles(load_settings())


def start_collector(home: Path, sendgrid_public: str) -> tuple[subprocess.Popen, str]:
    port = _port()
    env = {**os.environ, "PROFILECAST_WRITE_KEYS": WRITE_KEY, "PROFILECAST_API_TOKENS": TOKEN,
           "PROFILECAST_COLLECTOR_RATE": "1000000000",
           "PROFILECAST_SENDGRID_WEBHOOK_KEY": sendgrid_public}  # fmt: skip
    exe = str(Path(sys.executable).with_name("profilecast"))
    log = open(home / "collector.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("collector did not start")


class _Conn:
    """A bare keep-alive HTTP/1.1 connection (httpx costs more CPU per request than the
    collector does, and both share this machine's two cores)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> _Conn:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(
        self, path: str, body: bytes, auth: str, method: str = "POST"
    ) -> tuple[int, bytes]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


async def ingest(url: str, pid: int, batch: int, clients: int, seconds: float) -> dict:
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    latencies: list[float] = []
    events = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal events
        conn = await _Conn.open(url)
        i = 0
        while time.perf_counter() < deadline:
            items = [{"type": "track", "userId": f"bench-{n}", "event": "Product Viewed",
                      "messageId": f"b{batch}-{n}-{i}-{k}", "properties": {"name": "Tent"}}
                     for k in range(batch)]  # fmt: skip
            path, body = ("/v1/batch", {"batch": items}) if batch > 1 else ("/v1/track", items[0])
            t = time.perf_counter()
            status, answer = await conn.post(path, json.dumps(body).encode(), auth)
            latencies.append(time.perf_counter() - t)
            if status == 200:
                events += json.loads(answer)["accepted"]
            i += 1
        conn.writer.close()

    cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds(pid) - cpu0
    return {"events_per_request": batch, "clients": clients, "seconds": round(wall, 1),
            "events": events, "events_per_s": round(events / wall),
            "collector_cores_used": round(cpu / wall, 2),
            "events_per_cpu_s": round(events / cpu) if cpu else None,
            "ack_p50_ms": round(_pct(latencies, 50) * 1000, 2),
            "ack_p99_ms": round(_pct(latencies, 99) * 1000, 2)}  # fmt: skip


def freshness(url: str, key, samples: int) -> dict:
    """Post a purchase (or a signed unsubscribe), start a render the moment it is
    acknowledged, and check the customer is out of it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from profilecast import pipeline
    from profilecast.config import load_settings
    from profilecast.warehouse import connect

    settings = load_settings()
    with connect(settings, read_only=True) as wh:
        rows = wh.query(
            "select a.customer_id, min(m.source_record_id), min(p.email) from campaign_audiences a "
            "join customer_identity_map m on m.customer_id = a.customer_id and m.source = 'web_user' "
            "join customer_profiles p on p.customer_id = a.customer_id "
            "where a.campaign_id = 'cart_reminder' group by 1 order by 1"
        )[: samples * 2]
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    start = datetime(2026, 10, 31, tzinfo=UTC)
    results = []
    http = httpx.Client(timeout=30)  # one client: building one costs ~100 ms (its TLS context)
    http.get(url + "/healthz")  # connect before the clock starts
    for i, (cid, user, email) in enumerate(rows):
        t0 = time.perf_counter()
        if i % 2 == 0:
            r = http.post(url + "/v1/track", headers={"Authorization": auth}, json={
                "userId": user, "event": "Order Completed", "messageId": f"fresh-{cid}",
                "properties": {"products": [{"name": "Tent"}]}})  # fmt: skip
        else:
            body = json.dumps([{"email": email, "event": "unsubscribe", "sg_event_id": f"u-{cid}",
                                "timestamp": int(time.time())}]).encode()  # fmt: skip
            ts = str(int(time.time()))
            sig = base64.b64encode(key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
            r = http.post(url + "/webhooks/sendgrid", content=body, headers={
                "X-Twilio-Email-Event-Webhook-Signature": sig,
                "X-Twilio-Email-Event-Webhook-Timestamp": ts})  # fmt: skip
        acked = time.perf_counter()
        assert r.status_code == 200, r.text
        result = pipeline.render("cart_reminder", start, settings)
        import gzip

        with gzip.open(result["path"], "rt") as fh:
            excluded = all(json.loads(line)["customer_id"] != cid for line in fh)
        results.append({"ack_ms": (acked - t0) * 1000, "excluded": excluded,
                        "render_s": time.perf_counter() - acked})  # fmt: skip
    return {"samples": len(results), "excluded": sum(r["excluded"] for r in results),
            "event_to_ack_p99_ms": round(_pct([r["ack_ms"] for r in results], 99), 2),
            "ack_to_excluded_s": "0 (the fact is committed before the ack; the next render sees it)",
            "render_seconds_p50": round(_pct([r["render_s"] for r in results], 50), 3)}  # fmt: skip


async def profile_api(url: str, customers: list[str], rate: int, seconds: float) -> dict:
    """Open loop: a request every 1/rate seconds whatever the answers do, over a pool of
    keep-alive connections."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    pool: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await _Conn.open(url))

    async def one(cid: str) -> None:
        conn = await pool.get()
        t = time.perf_counter()
        status, _ = await conn.post(f"/v1/profiles/{cid}", b"", f"Bearer {TOKEN}", method="GET")
        latencies.append(time.perf_counter() - t)
        statuses[status] = statuses.get(status, 0) + 1
        pool.put_nowait(conn)

    tasks = []
    t0 = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(customers[i % len(customers)])))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    return {"rate_per_s": rate, "requests": len(latencies), "achieved_per_s": round(len(latencies) / wall),
            "statuses": statuses, "p50_ms": round(_pct(latencies, 50) * 1000, 2),
            "p99_ms": round(_pct(latencies, 99) * 1000, 2), "max_ms": round(max(latencies) * 1000, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--out", default="/tmp/pc-collector-bench")
    args = ap.parse_args()
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    out = Path(args.out)
    home = out / "home"
    home.mkdir(parents=True, exist_ok=True)
    build(home, args.contacts)
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    proc, url = start_collector(home, public)
    try:
        report = {"contacts": args.contacts, "cpus": os.cpu_count(), "ingest": []}
        for batch, clients in ((1, 16), (100, 8)):
            report["ingest"].append(
                asyncio.run(ingest(url, proc.pid, batch, clients, args.seconds))
            )
        report["freshness"] = freshness(url, key, samples=10)
        import sqlite3

        snapshot = home / "serving" / "profiles.sqlite"
        customers = [
            r[0] for r in sqlite3.connect(snapshot).execute("select customer_id from profiles")
        ]
        report["profile_api"] = asyncio.run(profile_api(url, customers, 200, args.seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    (out / "results.json").write_text(json.dumps(report, indent=2))
    lines = ["| measure | value |", "|---|---|"]
    for row in report["ingest"]:
        lines.append(f"| ingest, {row['events_per_request']} event(s)/request, {row['clients']} clients | "
                     f"{row['events_per_s']:,} events/s ({row['events_per_cpu_s']:,} per collector CPU-second), ack p50 {row['ack_p50_ms']} ms, p99 {row['ack_p99_ms']} ms, "
                     f"collector {row['collector_cores_used']} cores |")  # fmt: skip
    f = report["freshness"]
    lines.append(f"| freshness | {f['excluded']}/{f['samples']} excluded from a render started at the ack; "
                 f"event to ack p99 {f['event_to_ack_p99_ms']} ms |")  # fmt: skip
    p = report["profile_api"]
    lines.append(f"| profile API at {p['rate_per_s']}/s ({p['achieved_per_s']}/s achieved) | p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, "
                 f"max {p['max_ms']} ms, statuses {p['statuses']} |")  # fmt: skip
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

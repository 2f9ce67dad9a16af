"""Start ``profilecast serve`` as a real process on a free port, and talk to it."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import clean_env, venv_bin

WRITE_KEY = "wk_test_123"
API_TOKEN = "tok_test_456"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Answer:
    status: int
    body: dict[str, Any]


@dataclass
class Collector:
    proc: subprocess.Popen
    url: str
    home: Path
    drops: Path
    env: dict[str, str]

    def post(self, path: str, payload: Any = None, raw: bytes | None = None,
             key: str | None = WRITE_KEY, headers: dict[str, str] | None = None) -> Answer:  # fmt: skip
        data = raw if raw is not None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        if key is not None:
            req.add_header(
                "Authorization", "Basic " + base64.b64encode(f"{key}:".encode()).decode()
            )
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        return _send(req)

    def get(self, path: str, token: str | None = API_TOKEN) -> Answer:
        req = urllib.request.Request(self.url + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        return _send(req)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def journal(self, stream: str, sealed_only: bool = True) -> list[dict[str, Any]]:
        pattern = "*.jsonl" if sealed_only else "*.jsonl*"
        lines = []
        for path in sorted((self.drops / stream / "collector").rglob(pattern)):
            lines += [json.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
        return lines


def _send(req: urllib.request.Request) -> Answer:
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Answer(resp.status, json.loads(resp.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return Answer(exc.code, json.loads(body) if body else {})


def start_collector(home: Path, drops: Path, **env: str) -> Collector:
    port = free_port()
    full = clean_env(
        PROFILECAST_HOME=str(home), PROFILECAST_SOURCES=str(drops),
        PROFILECAST_WRITE_KEYS=WRITE_KEY, PROFILECAST_API_TOKENS=API_TOKEN, **env,
    )  # fmt: skip
    log = open(home.parent / f"collector-{port}.log", "ab")  # noqa: SIM115
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [venv_bin("profilecast"), "serve", "--port", str(port)], env=full, stdout=log, stderr=log
    )
    col = Collector(proc, f"http://127.0.0.1:{port}", home, drops, full)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"collector exited: {(home.parent / f'collector-{port}.log').read_text()}"
            )
        try:
            if col.get("/healthz", token=None).status == 200:
                return col
        except (ConnectionError, urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("collector did not become healthy in 60 s")

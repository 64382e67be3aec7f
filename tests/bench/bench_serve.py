"""Benchmark: `cockpit serve` (one uvicorn worker) over a tenant of 20,000 users on PostgreSQL.

Run on demand: `python tests/bench/bench_serve.py [--users N --duration S --connections C]`.
It creates and drops its own database on the server named by COCKPIT_TEST_DATABASE_URL
(default postgresql://postgres@127.0.0.1:5432/postgres), applies a tenant written by
`examples/generate.py`, issues a virtual key for the tenant's admin, starts
`cockpit serve --workers 1 --no-access-log` on a free loopback port, and measures:

- `GET /v1/me/context` with the virtual key (target: at least 2,000 requests/s);
- `GET /v1/copilot/models/effective?user_id=EMAIL`, the effective models of one user, a
  different user on every request (target: p99 under 20 ms), when that route exists.

Each is loaded twice: with `--connections` open connections (throughput; latency there is
mostly queueing behind one worker) and with 4 (the latency of one lookup under light load).

The load comes from Debian's `wrk` (install it with `apt-get install -y wrk`); without it, a
raw-asyncio HTTP/1.1 keep-alive client in this file does the same job, somewhat slower (so
its figures are a lower bound). httpx tops out near 350 requests/s here and is not used.

`--json PATH` also writes the figures to PATH (for tests/bench/run_all.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from generate import generate  # noqa: E402

from cockpit.keys import create_key  # noqa: E402
from cockpit.store.engine import create_engine_for, normalise_database_url  # noqa: E402
from cockpit.store.migrate import upgrade  # noqa: E402
from cockpit.store.secrets import SecretBox  # noqa: E402
from cockpit.workspace import ApplyOptions, PlanInputs, apply_plan, make_plan  # noqa: E402

SERVER = os.environ.get("COCKPIT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"
ENVIRON = {"OPENAI_API_KEY": "sk-bench-not-a-secret"}
ACCOUNT = "bench"
DOMAIN = "bench.example.com"
LIGHT_CONNECTIONS = 4


def create_database() -> str:
    name = f"cockpit_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine_for(normalise_database_url(SERVER), foreign_keys=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def drop_database(name: str) -> None:
    admin = create_engine_for(normalise_database_url(SERVER), foreign_keys=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, port: int) -> subprocess.Popen:
    environ = {**os.environ, "DATABASE_URL": url, "COCKPIT_SECRET_KEY": SECRET_KEY}
    command = [sys.executable, "-c", "from cockpit.cli import main; main()", "serve", "--port", str(port), "--workers", "1", "--no-access-log"]
    server = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"cockpit serve exited: {server.stderr.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("cockpit serve did not answer /health within 30 s")


def get(port: int, path: str, key: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- load generators ----------------------------------------------------------------------------

WRK_SCRIPT = """
paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1], {["Authorization"] = "Bearer %(key)s"})
end
"""


def run_wrk(port: int, paths: list[str], key: str, connections: int, duration: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        script = Path(tmp) / "rotate.lua"
        script.write_text(WRK_SCRIPT % {"paths": listing, "key": key})
        threads = min(2, connections)
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": _wrk_ms(re.search(r"\s50%\s+([\d.]+\w+)", output).group(1)),
        "p99": _wrk_ms(re.search(r"\s99%\s+([\d.]+\w+)", output).group(1)),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_asyncio(port: int, paths: list[str], key: str, connections: int, duration: int) -> dict[str, float]:
    """HTTP/1.1 keep-alive GETs on `connections` sockets for `duration` seconds, no library."""

    async def connection(index: int, deadline: float, latencies: list[float], errors: list[int]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        counter = index
        while time.perf_counter() < deadline:
            path = paths[counter % len(paths)]
            counter += connections
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 2"):
                errors.append(1)
        writer.close()

    async def load() -> tuple[list[float], list[int], float]:
        latencies: list[float] = []
        errors: list[int] = []
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(connection(i, deadline, latencies, errors) for i in range(connections)))
        return latencies, errors, time.perf_counter() - started

    latencies, errors, elapsed = asyncio.run(load())
    ordered = sorted(latencies)
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "errors": float(len(errors)),
    }


def measure(load, port: int, name: str, paths: list[str], key: str, connections: int, duration: int) -> dict[str, float]:
    load(port, paths, key, connections, max(1, duration // 5))  # warm up (caches, connections)
    figures = load(port, paths, key, connections, duration)
    print(
        f"  {name:<40} c={connections:<3} {figures['rps']:>8,.0f} req/s   p50 {figures['p50']:6.2f} ms   "
        f"p99 {figures['p99']:6.2f} ms" + (f"   NON-2XX {figures['errors']:.0f}" if figures["errors"] else ""),
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--teams", type=int, default=500)
    parser.add_argument("--grants", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=10, help="Seconds per measurement.")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--client", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="Write the figures here.")
    args = parser.parse_args()
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    if args.client == "wrk" and not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk (or --client asyncio)", file=sys.stderr)
        return 1
    load = run_wrk if use_wrk else run_asyncio
    if args.client == "auto" and not use_wrk:
        print("note: wrk not found (apt-get install -y wrk); using the built-in asyncio client, "
              "whose own cost lowers the figures", file=sys.stderr)

    database = create_database()
    url = normalise_database_url(SERVER.rsplit("/", 1)[0] + "/" + database)
    server = None
    try:
        upgrade(url)
        engine = create_engine_for(url)
        box = SecretBox(SECRET_KEY)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            generate(Path(tmp), users=args.users, teams=args.teams, grants=args.grants, account=ACCOUNT)
            planned = make_plan(engine, box, PlanInputs(Path(tmp), "bench"), ENVIRON)
            apply_plan(engine, box, planned.plan, ApplyOptions(actor="bench"), ENVIRON)
        applied = time.perf_counter() - started
        print(f"tenant: {args.users:,} users, {args.teams:,} teams, {args.grants:,} grants; "
              f"applied in {applied:.1f} s")
        key = create_key(engine, ACCOUNT, f"admin@{DOMAIN}").key
        engine.dispose()

        port = free_port()
        server = start_server(url, port)
        print(f"cockpit serve: 1 worker on 127.0.0.1:{port}; load from {'wrk' if use_wrk else 'asyncio client'}; "
              f"{args.duration} s per measurement")
        status, body = get(port, "/v1/me/context", key)
        assert status == 200 and b'"virtual_key"' in body, (status, body[:200])
        results = {}
        first = None
        for connections in (args.connections, LIGHT_CONNECTIONS):
            results[("me", connections)] = measure(load, port, "/v1/me/context", ["/v1/me/context"], key, connections, args.duration)

        users = [f"user-{u:06d}@{DOMAIN}" for u in range(0, args.users, max(1, args.users // 1000))]
        effective = [f"/v1/copilot/models/effective?user_id={email}" for email in users]
        started = time.perf_counter()
        status, body = get(port, effective[0], key)
        first = time.perf_counter() - started
        if status == 404 and b"Not Found" in body:
            print("  /v1/copilot/models/effective: no such route yet; skipped")
        else:
            assert status == 200, (status, body[:300])
            print(f"  first effective lookup (loads the account's snapshot): {first * 1000:.0f} ms")
            for connections in (args.connections, LIGHT_CONNECTIONS):
                results[("effective", connections)] = measure(
                    load, port, "/v1/copilot/models/effective?user_id=…", effective, key, connections, args.duration
                )

        me = results[("me", args.connections)]
        print(f"target /v1/me/context >= 2,000 req/s: {'met' if me['rps'] >= 2000 else 'MISSED'} ({me['rps']:,.0f})")
        if ("effective", LIGHT_CONNECTIONS) in results:
            light = results[("effective", LIGHT_CONNECTIONS)]
            print(f"target effective models p99 < 20 ms (c={LIGHT_CONNECTIONS}): "
                  f"{'met' if light['p99'] < 20 else 'MISSED'} ({light['p99']:.2f} ms)")
        if args.json is not None:
            figures = {
                "benchmark": "serve",
                "tenant": {"users": args.users, "teams": args.teams, "grants": args.grants},
                "apply_seconds": applied,
                "client": "wrk" if use_wrk else "asyncio",
                "duration_seconds": args.duration,
                "connections": args.connections,
                "light_connections": LIGHT_CONNECTIONS,
                "first_effective_ms": None if first is None or ("effective", LIGHT_CONNECTIONS) not in results else first * 1000,
                "measurements": [
                    {"route": route, "connections": connections, **figures}
                    for (route, connections), figures in results.items()
                ],
                "targets": {"me_rps": 2000.0, "effective_p99_ms": 20.0},
            }
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        drop_database(database)
    return 0


if __name__ == "__main__":
    sys.exit(main())

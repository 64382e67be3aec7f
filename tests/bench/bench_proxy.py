"""Benchmark: Cockpit's LLM proxy against LiteLLM's proxy, Portkey's gateway and the bare upstream, in one run.

Run on demand (needs the dev venv: litellm, aiohttp; node and npm for Portkey):

    python tests/bench/bench_proxy.py [--requests N] [--stream-requests N]
        [--concurrency 1,10,50] [--stream-concurrency 1,20]
        [--only direct,cockpit,litellm,portkey] [--endpoints chat,embeddings,responses,messages,translated]
        [--postgres] [--redis] [--json PATH] [--profile DIR]
        [--rounds 3] [--interleave] [--wait-idle S] [--nice -5]

Every contender talks to the SAME fake OpenAI upstream (`tests/fakes/openai.py`, started here;
for `--endpoints messages` also the fake Anthropic upstream, `tests/fakes/anthropic.py`):

- `direct`: the client calls the fake upstream itself (the floor);
- `relay`: `relay.py`, a byte relay on uvloop that parses nothing, pinned like a gateway: its
  added latency is what the machine charges any process between client and upstream (a hop
  to CPU 0 and back, twice), the floor of every gateway's added figures;
- `cockpit`: `cockpit serve --workers 1` over its own fresh database (a SQLite file in a temp
  dir), with a small tenant applied: one catalog model pointing at the fake upstream (and, with
  `messages`, a second one, `bench-claude`, an `anthropic/` model at the fake Anthropic), a
  copilot user granted them, a generous budget allocation and a guardrail preset on the account;
  the client authenticates with a virtual key from `cockpit keys create`;
  `--postgres` adds `cockpit-pg` (a fresh database on COCKPIT_TEST_DATABASE_URL's server, dropped
  afterwards), `--redis` adds `cockpit-redis` (SQLite + budget counters in Redis at
  BENCH_REDIS_URL, default redis://127.0.0.1:6379/11), both add `cockpit-pg-redis`;
- `litellm`: LiteLLM's proxy, `litellm[proxy]==1.106.12` (the newest patch whose `[proxy]`
  extra installs from PyPI), installed by this script into its own venv under
  ~/.cache/cockpit-bench/litellm-proxy-1.106.12 (reused when present; never a project
  dependency) and started as `litellm --config CFG --port P --num_workers 1` with a master key,
  the same model(s), no DATABASE_URL (so no Prisma), LITELLM_OFFLINE_MODE and
  LITELLM_LOCAL_MODEL_COST_MAP set;
- `portkey`: Portkey's open-source gateway, npm `@portkey-ai/gateway@1.15.2`, installed by this
  script with the machine's npm into ~/.cache/cockpit-bench/portkey-gateway-1.15.2 (reused when
  present) and started as `node build/start-server.js --port=P --headless` (its package's `bin`;
  one Node process: Node's event loop is its one worker). Its transitive `@hono/node-server` is
  pinned to 1.13.8 (an npm `overrides` in that dir's package.json): with the 1.19.x that npm
  picks by default, every answer Portkey passes through unmapped (streams, embeddings, streamed
  responses) fails with `TypeError: immutable` and HTTP 500 "Something went wrong" on Node 20
  (Portkey-AI/gateway issues 1389 and 1550; only non-streamed chat works). No config: the client
  routes each request with `x-portkey-provider: openai` and `x-portkey-custom-host:
  http://127.0.0.1:<upstream>/v1` (for `messages`: `anthropic` and the fake Anthropic) and
  the upstream key as `Authorization: Bearer`, and asks for the upstream's model name. Portkey
  passes `stream_options.include_usage` through and keeps the usage chunk, so its streams are
  checked like the others'. It is in the default set when `node` and `npm` are on PATH.

`--endpoints` (default `chat`) picks the APIs each contender is loaded on, each with its own
body and shape check: `chat` (`/v1/chat/completions`, `choices[0].message.content` and usage;
stream: `data:` chunks, a usage chunk, `[DONE]`), `embeddings` (`/v1/embeddings` {model, input}:
`data[0].embedding` a list of numbers and usage; not streamed), `responses` (`/v1/responses`
{model, input, max_output_tokens}: `output` with text and usage; stream: named events from
`response.created` to `response.completed` with usage), `messages` (`/v1/messages` {model,
max_tokens, messages} with `anthropic-version` and `x-api-key`: `content` text and usage;
stream: `message_start` ... `message_stop`, with usage), `translated` (`/v1/chat/completions`
for the Anthropic model: each gateway translates the call to Anthropic's Messages API and the
answer back, and is checked as `chat`). `direct` calls the fake upstream at the same path (the
fake Anthropic's `/v1/messages` for `messages` and `translated`: the floor of a translated call
is the upstream's own API); Cockpit, LiteLLM and Portkey ask for the OpenAI model on the first
three and the Anthropic one on `messages` and `translated`. An endpoint whose first
request fails on a contender is skipped for it with a printed note (`skipped` in the JSON).

Each server under test is one worker pinned to CPU 0 (`taskset -c 0`); the fake upstreams and
this process (the load generator: aiohttp, keep-alive) are pinned to CPU 1. Loads, per
endpoint, after a warm-up: non-stream requests at concurrency 1 (latency p50/p99) and at 10 and
50 (throughput), streamed requests (chat with `stream_options.include_usage`) at concurrency 1
(total and time to first chunk) and 20 (throughput). Any non-200 answer, malformed body or
malformed stream (no `[DONE]`, no usage chunk, no final event, unparsable `data:` line) counts
as an error and is printed.

The report opens with the command line that was run, the machine's load average and CPU
count. Then: rps, p50, p99 per contender, endpoint and load (chat rows are labelled
`non-stream c=N` / `stream c=N`, the others `embeddings c=N`, `responses stream c=N`, ...); the
latency each proxy ADDS to the direct call (p50/p99 minus direct's on the same endpoint and
load); server CPU per request, RSS and start-up time; the ratio cockpit rps / litellm rps on
one worker (target >= 1.5), the ratio cockpit rps / portkey rps, and whether Cockpit's added
p50 and p99 are lower than LiteLLM's and Portkey's. `--json PATH` writes all of it (flat keys
`direct_rps`, `cockpit_rps`, `litellm_rps`, `portkey_rps`, `cockpit_added_p50_ms`,
`litellm_added_p50_ms`, `portkey_added_p50_ms`, `ratio`, `ratio_portkey`,
`cockpit_added_p50_lower_than_portkey`, ... for chat; the same with the endpoint after the
contender for the others, e.g. `cockpit_embeddings_rps`, `ratio_embeddings`,
`ratio_portkey_embeddings`; `command`, `load_average` and the full `table`). A contender's
`_rps` is its best non-stream throughput over the loads with concurrency > 1. `--profile DIR`
then puts each Cockpit server under py-spy (`--gil`: Python CPU) for two extra chat loads that
are not in the table (non-stream c=10, stream c=20) and prints where its time goes by component
and function (py-spy is installed into the bench cache when missing). Processes, temp dirs and
benchmark databases are cleaned up at exit, Ctrl-C included.

The machine may be shared: each load row records how much CPU OTHER processes used meanwhile
(`others%`; a warning is printed above 10%). Before each load the script waits up to
`--wait-idle` seconds for a quiet machine; `--rounds N` keeps the best of N runs of each load;
`--interleave` starts every contender first and runs each load's rounds contender by contender
in turn (round 1 on each, then round 2 on each, ...), so a host whose speed wanders within the
hour slows every contender alike instead of whichever ran then; the idle contenders stay up
meanwhile, stopped with SIGSTOP while another one runs (left running, the idle ones raised
`others%` from under 1% to 4-9% of the machine: LiteLLM's background jobs, Cockpit's absorbs).
`--nice -5` (root) gives the benchmark's processes priority. Server CPU time per request
(`cpu/req`, from /proc) is the figure least disturbed by neighbours; `cpu_ratio` is LiteLLM's
over Cockpit's, `cpu_ratio_portkey` Portkey's over Cockpit's.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FAKE_UPSTREAM = ROOT / "tests" / "fakes" / "openai.py"
FAKE_ANTHROPIC = ROOT / "tests" / "fakes" / "anthropic.py"
RELAY = ROOT / "tests" / "bench" / "relay.py"
CACHE = Path(os.environ.get("COCKPIT_BENCH_CACHE", Path.home() / ".cache" / "cockpit-bench"))
LITELLM_PROXY_VERSION = "1.106.12"
LITELLM_VENV = CACHE / f"litellm-proxy-{LITELLM_PROXY_VERSION}"
PORTKEY_VERSION = "1.15.2"
PORTKEY_DIR = CACHE / f"portkey-gateway-{PORTKEY_VERSION}"
PORTKEY_HONO_NODE_SERVER = "1.13.8"
"""The @hono/node-server Portkey runs on (npm overrides): newer ones break its pass-through answers."""
PG_SERVER = os.environ.get("COCKPIT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")

UPSTREAM_KEY = os.environ.get("BENCH_UPSTREAM_API_KEY", "sk-fake-upstream")
UPSTREAM_MODEL = "gpt-4o-mini"
"""The model id the upstream sees (all contenders send this one upstream)."""
PUBLIC_MODEL = "bench-gpt"
"""The model name the clients of Cockpit and LiteLLM ask for."""
ANTHROPIC_KEY = os.environ.get("BENCH_ANTHROPIC_API_KEY", "sk-ant-fake-upstream")
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"
"""The model id the fake Anthropic upstream sees (`messages`)."""
PUBLIC_CLAUDE = "bench-claude"
"""The Anthropic model's name at Cockpit and LiteLLM."""
ANTHROPIC_VERSION = "2023-06-01"
LITELLM_MASTER_KEY = "sk-bench-litellm-master-key"
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"
ACCOUNT = "bench"
DOMAIN = "bench.example.com"
USER = f"copilot-user@{DOMAIN}"

SERVER_CPU = "0"
CLIENT_CPU = "1"
OFFLINE_ENV = {"LITELLM_OFFLINE_MODE": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
PROMPT = "Say hello to the benchmark in a few words, please."
MAX_TOKENS = 32
ALL_CONTENDERS = ("direct", "relay", "cockpit", "cockpit-pg", "cockpit-redis", "cockpit-pg-redis", "litellm", "portkey")
RIVALS = ("litellm", "portkey")
"""The other gateways Cockpit's figures are compared with."""


# -- process, port and cleanup helpers ---------------------------------------------------------


class Cleanup:
    """Everything to undo at exit: processes (killed by process group), temp dirs, databases."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []
        self.dirs: list[Path] = []
        self.databases: list[str] = []
        self.done = False

    def popen(self, command: list[str], **kwargs) -> subprocess.Popen:
        # A session of its own: Ctrl-C in the terminal reaches only us, and we stop the group.
        process = subprocess.Popen(command, start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 10) -> None:
        if process.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # Stragglers of the group (workers a server forked), if any.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        if process in self.processes:
            self.processes.remove(process)

    def tempdir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.dirs.append(path)
        return path

    def run(self) -> None:
        if self.done:
            return
        self.done = True
        for process in list(reversed(self.processes)):
            try:
                self.stop(process, timeout=5)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                print(f"cleanup: could not stop pid {process.pid}: {exc}", file=sys.stderr)
        for name in self.databases:
            try:
                _drop_database(name)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                print(f"cleanup: could not drop database {name}: {exc}", file=sys.stderr)
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)


CLEANUP = Cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: str, command: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *command] if pin and shutil.which("taskset") else command


def wait_http(url: str, process: subprocess.Popen, what: str, timeout: float, headers: dict | None = None, data: bytes | None = None) -> float:
    """Seconds until `url` answers 200 (a GET, or a POST of `data`); raises with the log."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(process)}")
        try:
            request = urllib.request.Request(url, data=data, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except urllib.error.HTTPError:
            pass
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s:\n{_tail(process)}")


def _tail(process: subprocess.Popen, lines: int = 40) -> str:
    log = getattr(process, "log_path", None)
    if log and Path(log).exists():
        return "\n".join(Path(log).read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # field 5 (pgrp); fields[0] is field 3 (state)
                pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _group_pids(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def group_rss_mib(pgid: int) -> float:
    total = 0
    for pid in _group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total / 1024


def _system_busy_ticks() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


def _own_ticks() -> int:
    """CPU ticks of this process and of every process group it started (servers, upstream)."""
    groups = {p.pid for p in CLEANUP.processes}
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(entry) == os.getpid() or int(fields[2]) in groups:
            total += int(fields[11]) + int(fields[12])
    return total


class ForeignCpu:
    """How busy the machine was with OTHER processes while a load ran, in % of all CPUs: the
    machine is shared, and a busy neighbour slows every figure down."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.busy = _system_busy_ticks()
        self.own = _own_ticks()

    def percent(self) -> float:
        elapsed_ticks = (time.monotonic() - self.started) * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        foreign = (_system_busy_ticks() - self.busy) - (_own_ticks() - self.own)
        return round(max(0.0, 100 * foreign / elapsed_ticks), 1) if elapsed_ticks > 0 else 0.0


def wait_for_quiet(limit: float, threshold: float = 10.0) -> float:
    """Wait up to `limit` seconds until other processes use < threshold % of the machine over a
    2-second window; returns the last window's figure."""
    deadline = time.monotonic() + limit
    while True:
        meter = ForeignCpu()
        time.sleep(2)
        busy = meter.percent()
        if busy < threshold or time.monotonic() >= deadline:
            return busy
        print(f"  (machine busy: other processes use {busy:.0f}% of the CPUs; waiting)", flush=True)


def start_logged(command: list[str], env: dict[str, str], log_dir: Path, name: str, cwd: Path | None = None) -> subprocess.Popen:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
        process = CLEANUP.popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    process.log_path = log_path  # type: ignore[attr-defined]
    return process


def base_env() -> dict[str, str]:
    """The environment of a server under test: ours without database, Redis or Cockpit settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS", "COCKPIT_", "LITELLM_", "OPENAI_"))}
    env.update(OFFLINE_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- the contenders' servers ---------------------------------------------------------------------


@dataclass
class Route:
    """How one endpoint of a contender differs from its defaults (`messages` goes to Anthropic)."""

    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    api: Api | None = None
    """The endpoint called instead (direct: a translated chat call's floor is Anthropic's own
    Messages API)."""


@dataclass
class Target:
    name: str
    base_url: str
    api_key: str
    model: str
    process: subprocess.Popen | None = None
    startup_s: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers on every request (Portkey's routing headers)."""
    routes: dict[str, Route] = field(default_factory=dict)
    """Per endpoint name, what differs from the above."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Endpoints not measured on this contender, and why (their first request failed)."""

    def request(self, api: Api) -> tuple[str, dict[str, str], str, Api]:
        """The URL, headers, model and endpoint of a request to `api`."""
        route = self.routes.get(api.name, Route())
        api = route.api or api
        key = route.api_key or self.api_key
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **self.headers, **route.headers}
        if api.name == "messages":
            headers.update({"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION})
        return f"{route.base_url or self.base_url}{api.path}", headers, route.model or self.model, api


def start_upstream(log_dir: Path, pin: bool) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = pinned(CLIENT_CPU, [sys.executable, str(FAKE_UPSTREAM), "--port", str(port)], pin)
    env = {**base_env(), "PYTHONPATH": str(ROOT)}
    process = start_logged(command, env, log_dir, "fake-upstream", cwd=ROOT)
    wait_http(f"http://127.0.0.1:{port}/v1/models", process, "the fake upstream", 30, {"Authorization": f"Bearer {UPSTREAM_KEY}"})
    return process, port


def start_relay(upstream_port: int, log_dir: Path, pin: bool, anthropic_port: int | None = None) -> Target:
    """The byte relay (`relay.py`) pinned like a gateway: the machine's own cost of a hop."""
    port = free_port()
    listen = ["--listen", f"{port}=127.0.0.1:{upstream_port}"]
    routes = {}
    if anthropic_port:
        relayed = free_port()
        listen += ["--listen", f"{relayed}=127.0.0.1:{anthropic_port}"]
        routes = {"messages": Route(f"http://127.0.0.1:{relayed}", ANTHROPIC_KEY, ANTHROPIC_MODEL),
                  "translated": Route(f"http://127.0.0.1:{relayed}", ANTHROPIC_KEY, ANTHROPIC_MODEL, api=APIS["messages"])}
    started = time.monotonic()
    process = start_logged(pinned(SERVER_CPU, [sys.executable, str(RELAY), *listen], pin), base_env(), log_dir, "relay")
    wait_http(f"http://127.0.0.1:{port}/v1/models", process, "the relay", 30, {"Authorization": f"Bearer {UPSTREAM_KEY}"})
    target = Target("relay", f"http://127.0.0.1:{port}", UPSTREAM_KEY, UPSTREAM_MODEL, process, routes=routes)
    target.startup_s = time.monotonic() - started
    target.info = {"relay": "bytes both ways, nothing parsed"}
    return target


def start_anthropic(log_dir: Path, pin: bool) -> tuple[subprocess.Popen, int]:
    """The fake Anthropic upstream (`messages`), under uvicorn like the OpenAI one."""
    port = free_port()
    command = pinned(CLIENT_CPU, [sys.executable, str(FAKE_ANTHROPIC), "--port", str(port), "--api-key", ANTHROPIC_KEY], pin)
    env = {**base_env(), "PYTHONPATH": str(ROOT)}
    process = start_logged(command, env, log_dir, "fake-anthropic", cwd=ROOT)
    probe = json.dumps({"model": ANTHROPIC_MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}).encode()
    wait_http(f"http://127.0.0.1:{port}/v1/messages", process, "the fake Anthropic upstream", 30,
              {"x-api-key": ANTHROPIC_KEY, "anthropic-version": ANTHROPIC_VERSION, "Content-Type": "application/json"}, probe)
    return process, port


TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: {account}
alias: Proxy benchmark
email_domain: {domain}
status: active
admins:
  - {{email: admin@{domain}, role: account_admin}}
allocation: {{monthly_credits: 1000000000, credit_factor: 1.25}}
feature_pack: {{features: [model_access], config: {{}}}}
model_policy: {{console: {{allow: [], deny: []}}, copilot: {{allow: [], deny: []}}}}
---
apiVersion: cockpit/v1
kind: Model
name: {model}
description: The fake OpenAI upstream of the proxy benchmark
litellm:
  model: openai/{upstream_model}
  api_base: "http://127.0.0.1:{upstream_port}/v1"
  api_key: "${{env:BENCH_UPSTREAM_API_KEY}}"
  timeout: 60
pricing: {{input_per_million: 0.15, output_per_million: 0.6}}
---
apiVersion: cockpit/v1
kind: Directory
account: {account}
domain: copilot
users:
  - {{email: {user}, display_name: Copilot Bench User}}
orgs:
  - name: bench-org
    teams:
      - name: bench-team
        members: [{{user: {user}}}]
---
apiVersion: cockpit/v1
kind: ModelAccess
account: {account}
domain: copilot
grants:
  - {{model: {model}, scope: user:{user}}}{claude_grant}
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: {account}
name: bench-plan
cycle: monthly
active: true
allocations:
  - {{scope: user:{user}, credits: 500000000}}
"""

GUARDRAIL = """\
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: {account}
code: bench-pii
name: Bench PII
domain: copilot
config: {{mode: pre_call}}
patterns:
  - {{name: us-ssn, regex: '\\b\\d{{3}}-\\d{{2}}-\\d{{4}}\\b', type: block}}
  - {{name: aws-key, regex: '\\bAKIA[0-9A-Z]{{16}}\\b', type: block}}
  - {{name: email-address, regex: '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{{2,}}', type: detect}}
assign: [account]
"""


CLAUDE_MODEL = """\
---
apiVersion: cockpit/v1
kind: Model
name: {claude}
description: The fake Anthropic upstream of the proxy benchmark
litellm:
  model: anthropic/{anthropic_model}
  api_base: "http://127.0.0.1:{anthropic_port}"
  api_key: "${{env:BENCH_ANTHROPIC_API_KEY}}"
  timeout: 60
pricing: {{input_per_million: 0.8, output_per_million: 4.0}}
"""


def cockpit_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cockpit.cli import main; main()", *args]


def run_cockpit(env: dict[str, str], cwd: Path, *args: str) -> str:
    result = subprocess.run(cockpit_command(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"cockpit {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _admin_engine():
    import sqlalchemy as sa  # noqa: F401

    from cockpit.store.engine import create_engine_for, normalise_database_url

    return create_engine_for(normalise_database_url(PG_SERVER), foreign_keys=False)


def _create_database() -> str:
    import sqlalchemy as sa

    name = f"cockpit_bench_proxy_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    CLEANUP.databases.append(name)
    return name


def _drop_database(name: str) -> None:
    import sqlalchemy as sa

    admin = _admin_engine()
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def start_cockpit(name: str, upstream_port: int, log_dir: Path, pin: bool, postgres: bool, redis: bool, guardrails: bool,
                  anthropic_port: int | None = None) -> Target:
    work = CLEANUP.tempdir(f"bench-{name}-")
    tenant = work / "tenant"
    tenant.mkdir()
    values = {"account": ACCOUNT, "domain": DOMAIN, "user": USER, "model": PUBLIC_MODEL, "upstream_model": UPSTREAM_MODEL,
              "upstream_port": upstream_port, "claude": PUBLIC_CLAUDE, "anthropic_model": ANTHROPIC_MODEL, "anthropic_port": anthropic_port,
              "claude_grant": f"\n  - {{model: {PUBLIC_CLAUDE}, scope: user:{USER}}}" if anthropic_port else ""}
    text = TENANT.format(**values) + (GUARDRAIL.format(**values) if guardrails else "") + (CLAUDE_MODEL.format(**values) if anthropic_port else "")
    (tenant / "tenant.yaml").write_text(text)
    if postgres:
        url = PG_SERVER.rsplit("/", 1)[0] + "/" + _create_database()
    else:
        url = f"sqlite:///{work / 'cockpit.db'}"
    env = {**base_env(), "DATABASE_URL": url, "COCKPIT_SECRET_KEY": SECRET_KEY, "BENCH_UPSTREAM_API_KEY": UPSTREAM_KEY, "BENCH_ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    if redis:
        env["REDIS_URL"] = REDIS_URL
    run_cockpit(env, work, "db", "upgrade")
    run_cockpit(env, work, "apply", str(tenant), "--auto-approve", "--actor", "bench")
    key = run_cockpit(env, work, "keys", "create", "--account", ACCOUNT, "--user", USER, "--domain", "copilot").strip().splitlines()[-1].strip()
    port = free_port()
    command = pinned(SERVER_CPU, cockpit_command("serve", "--port", str(port), "--workers", "1", "--no-access-log"), pin)
    started = time.monotonic()
    process = start_logged(command, env, log_dir, name, cwd=work)
    wait_http(f"http://127.0.0.1:{port}/health", process, f"cockpit serve ({name})", 60)
    target = Target(name, f"http://127.0.0.1:{port}", key, PUBLIC_MODEL, process, routes={"messages": Route(model=PUBLIC_CLAUDE), "translated": Route(model=PUBLIC_CLAUDE)})
    # Ready = the proxy answers a model list for the key (the route exists and the key works).
    deadline = time.monotonic() + 30
    while True:
        status, body = http_get(f"{target.base_url}/v1/models", key)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if status != 200:
        raise RuntimeError(f"cockpit ({name}) GET /v1/models answered {status}: {body[:300]!r} (has the proxy landed?)")
    target.startup_s = time.monotonic() - started
    target.info = {"database": "postgresql" if postgres else "sqlite", "redis": redis, "guardrails": guardrails, "litellm": _version("litellm")}
    return target


def ensure_litellm_proxy() -> Path:
    """The `litellm` CLI of litellm[proxy]==1.106.12 in the bench cache, installed when missing."""
    marker = LITELLM_VENV / ".bench-complete"
    cli = LITELLM_VENV / "bin" / "litellm"
    if marker.exists() and cli.exists():
        return cli
    print(f"installing litellm[proxy]=={LITELLM_PROXY_VERSION} into {LITELLM_VENV} (once; about a minute)...", flush=True)
    shutil.rmtree(LITELLM_VENV, ignore_errors=True)
    LITELLM_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    result = subprocess.run(
        [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_PROXY_VERSION}"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0 or not cli.exists():
        raise RuntimeError(f"installing litellm[proxy]=={LITELLM_PROXY_VERSION} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    marker.write_text(f"litellm[proxy]=={LITELLM_PROXY_VERSION}\n")
    return cli


LITELLM_CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{upstream_model}
      api_base: "http://127.0.0.1:{upstream_port}/v1"
      api_key: os.environ/BENCH_UPSTREAM_API_KEY
      timeout: 60
{claude}general_settings:
  master_key: {master_key}
"""
LITELLM_CLAUDE = """\
  - model_name: {claude}
    litellm_params:
      model: anthropic/{anthropic_model}
      api_base: "http://127.0.0.1:{anthropic_port}"
      api_key: os.environ/BENCH_ANTHROPIC_API_KEY
      timeout: 60
"""


def start_litellm(upstream_port: int, log_dir: Path, pin: bool, anthropic_port: int | None = None) -> Target:
    cli = ensure_litellm_proxy()
    work = CLEANUP.tempdir("bench-litellm-")
    config = work / "config.yaml"
    claude = LITELLM_CLAUDE.format(claude=PUBLIC_CLAUDE, anthropic_model=ANTHROPIC_MODEL, anthropic_port=anthropic_port) if anthropic_port else ""
    config.write_text(LITELLM_CONFIG.format(model=PUBLIC_MODEL, upstream_model=UPSTREAM_MODEL, upstream_port=upstream_port, master_key=LITELLM_MASTER_KEY, claude=claude))
    env = {**base_env(), "BENCH_UPSTREAM_API_KEY": UPSTREAM_KEY, "BENCH_ANTHROPIC_API_KEY": ANTHROPIC_KEY}  # no DATABASE_URL: no Prisma
    port = free_port()
    command = pinned(SERVER_CPU, [str(cli), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"], pin)
    started = time.monotonic()
    process = start_logged(command, env, log_dir, "litellm", cwd=work)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", process, "litellm proxy", 120)
    target = Target("litellm", f"http://127.0.0.1:{port}", LITELLM_MASTER_KEY, PUBLIC_MODEL, process, routes={"messages": Route(model=PUBLIC_CLAUDE), "translated": Route(model=PUBLIC_CLAUDE)})
    status, body = http_get(f"{target.base_url}/v1/models", LITELLM_MASTER_KEY)
    if status != 200:
        raise RuntimeError(f"litellm proxy GET /v1/models answered {status}: {body[:300]!r}")
    target.startup_s = time.monotonic() - started
    version = subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, env=env, check=False).stdout.strip()
    target.info = {"litellm": version, "auth": "master key", "database": None}
    return target


def ensure_portkey() -> Path:
    """Portkey's gateway (npm @portkey-ai/gateway@1.15.2) in the bench cache, installed when
    missing; returns its entry point (the package's `bin`, build/start-server.js)."""
    marker = PORTKEY_DIR / ".bench-complete"
    entry = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if marker.exists() and entry.exists():
        return entry
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        raise RuntimeError("portkey needs node and npm on PATH")
    print(f"installing @portkey-ai/gateway@{PORTKEY_VERSION} into {PORTKEY_DIR} (once; a few seconds)...", flush=True)
    shutil.rmtree(PORTKEY_DIR, ignore_errors=True)
    PORTKEY_DIR.mkdir(parents=True)
    # The override must be in place before the install: see the docstring (TypeError: immutable).
    (PORTKEY_DIR / "package.json").write_text(json.dumps(
        {"name": "cockpit-bench-portkey", "private": True, "overrides": {"@hono/node-server": PORTKEY_HONO_NODE_SERVER}}, indent=2) + "\n")
    result = subprocess.run(
        [npm, "install", "--prefix", str(PORTKEY_DIR), "--no-audit", "--no-fund", f"@portkey-ai/gateway@{PORTKEY_VERSION}"],
        capture_output=True, text=True, cwd=PORTKEY_DIR, check=False,
    )
    if result.returncode != 0 or not entry.exists():
        raise RuntimeError(f"installing @portkey-ai/gateway@{PORTKEY_VERSION} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    marker.write_text(f"@portkey-ai/gateway@{PORTKEY_VERSION} with @hono/node-server@{PORTKEY_HONO_NODE_SERVER}\n")
    return entry


def start_portkey(upstream_port: int, log_dir: Path, pin: bool, anthropic_port: int | None = None) -> Target:
    entry = ensure_portkey()
    work = CLEANUP.tempdir("bench-portkey-")
    port = free_port()
    # `--port=P` is the only way to set its port (start-server.js reads argv; no PORT variable);
    # --headless: no UI routes, no log stream for the UI.
    command = pinned(SERVER_CPU, ["node", str(entry), f"--port={port}", "--headless"], pin)
    started = time.monotonic()
    process = start_logged(command, base_env(), log_dir, "portkey", cwd=work)
    wait_http(f"http://127.0.0.1:{port}/", process, "portkey gateway", 60)
    routing = {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1"}
    routes = {}
    if anthropic_port:
        routes["messages"] = routes["translated"] = Route(api_key=ANTHROPIC_KEY, model=ANTHROPIC_MODEL, headers={
            "x-portkey-provider": "anthropic", "x-portkey-custom-host": f"http://127.0.0.1:{anthropic_port}/v1"})
    target = Target("portkey", f"http://127.0.0.1:{port}", UPSTREAM_KEY, UPSTREAM_MODEL, process, headers=routing, routes=routes)
    target.startup_s = time.monotonic() - started
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    target.info = {"portkey": PORTKEY_VERSION, "node": node, "hono_node_server": PORTKEY_HONO_NODE_SERVER, "config": "headers"}
    return target


def http_get(url: str, key: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return 0, str(exc).encode()


def _version(package: str) -> str | None:
    try:
        import importlib.metadata

        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- the load generator ------------------------------------------------------------------------


@dataclass
class Result:
    latencies: list[float]
    ttfc: list[float]
    errors: list[str]
    elapsed: float
    requests: int

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        ttfc = sorted(self.ttfc)
        return {
            "requests": self.requests,
            "ok": len(ordered),
            "errors": len(self.errors),
            "rps": round(len(ordered) / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(_pct(ordered, 50) * 1000, 3) if ordered else None,
            "p99_ms": round(_pct(ordered, 99) * 1000, 3) if ordered else None,
            "mean_ms": round(statistics.fmean(ordered) * 1000, 3) if ordered else None,
            "ttfc_p50_ms": round(_pct(ttfc, 50) * 1000, 3) if ttfc else None,
            "ttfc_p99_ms": round(_pct(ttfc, 99) * 1000, 3) if ttfc else None,
        }


def _pct(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def chat_body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def embeddings_body(model: str, stream: bool) -> dict[str, Any]:
    return {"model": model, "input": PROMPT}


def responses_body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": PROMPT, "max_output_tokens": MAX_TOKENS}
    if stream:
        body["stream"] = True
    return body


def messages_body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    return body


class Malformed(ValueError):
    """An answer or a stream of the wrong shape (counted as an error, like any ValueError)."""


def check_chat(data: dict[str, Any]) -> None:
    if not isinstance(data["choices"][0]["message"]["content"], str):
        raise Malformed("completion without text")
    data["usage"]["total_tokens"]


def check_embeddings(data: dict[str, Any]) -> None:
    vector = data["data"][0]["embedding"]
    if not isinstance(vector, list) or not vector or not all(isinstance(x, (int, float)) for x in vector):
        raise Malformed("embedding is not a list of numbers")
    data["usage"]["prompt_tokens"]


def check_responses(data: dict[str, Any]) -> None:
    texts = [part.get("text") for item in data["output"] if item.get("type") == "message" for part in item["content"]]
    if not texts or not all(isinstance(text, str) for text in texts):
        raise ValueError("response without output text")
    data["usage"]["total_tokens"]


def check_messages(data: dict[str, Any]) -> None:
    if data.get("type") != "message" or not isinstance(data["content"][0]["text"], str):
        raise ValueError("message without text")
    data["usage"]["input_tokens"], data["usage"]["output_tokens"]


class ChatStream:
    """`data:` chunks (no event names), one with usage, then `data: [DONE]`."""

    def __init__(self) -> None:
        self.done = self.usage = False
        self.chunks = 0

    def feed(self, event: str | None, data: bytes) -> None:
        if data == b"[DONE]":
            self.done = True
            return
        if self.done:
            raise ValueError("data after [DONE]")
        chunk = _chunk(data)
        if "error" in chunk:
            raise ValueError(f"error in stream: {data[:200]!r}")
        self.chunks += 1
        if chunk.get("usage"):
            self.usage = True

    def finish(self) -> None:
        if not self.done:
            raise ValueError(f"stream ended without [DONE] after {self.chunks} chunks")
        if not self.usage:
            raise ValueError(f"stream without a usage chunk ({self.chunks} chunks)")


class ResponsesStream:
    """The Responses API's named events: `response.created` first, `response.completed` (with
    the usage) last; a trailing `data: [DONE]` is tolerated (some gateways add one)."""

    def __init__(self) -> None:
        self.types: list[str] = []
        self.usage = self.completed = False

    def feed(self, event: str | None, data: bytes) -> None:
        if data == b"[DONE]" and self.completed:
            return
        if self.completed:
            raise ValueError(f"data after response.completed: {data[:120]!r}")
        chunk = _chunk(data)
        kind = chunk.get("type")
        if not isinstance(kind, str) or (event is not None and event != kind):
            raise ValueError(f"event {event!r} with type {kind!r}")
        if kind in ("error", "response.failed") or chunk.get("error"):
            raise ValueError(f"error in stream: {data[:200]!r}")
        if not self.types and kind != "response.created":
            raise ValueError(f"stream opens with {kind!r}, not response.created")
        self.types.append(kind)
        if kind == "response.completed":
            self.completed = True
            self.usage = bool((chunk.get("response") or {}).get("usage"))

    def finish(self) -> None:
        if not self.completed:
            raise ValueError(f"stream ended without response.completed after {len(self.types)} events (last {self.types[-1:]})")
        if not self.usage:
            raise ValueError("response.completed without usage")


class MessagesStream:
    """Anthropic's events: `message_start` (input usage) ... `message_delta` (output usage) ...
    `message_stop` last."""

    def __init__(self) -> None:
        self.types: list[str] = []
        self.usage = self.stopped = False

    def feed(self, event: str | None, data: bytes) -> None:
        if self.stopped:
            raise ValueError(f"data after message_stop: {data[:120]!r}")
        chunk = _chunk(data)
        kind = chunk.get("type")
        if not isinstance(kind, str) or (event is not None and event != kind):
            raise ValueError(f"event {event!r} with type {kind!r}")
        if kind == "error":
            raise ValueError(f"error in stream: {data[:200]!r}")
        if not self.types and kind != "message_start":
            raise ValueError(f"stream opens with {kind!r}, not message_start")
        self.types.append(kind)
        if kind == "message_start":
            self.usage = bool(chunk["message"].get("usage"))
        elif kind == "message_delta":
            self.usage = self.usage and bool(chunk.get("usage"))
        elif kind == "message_stop":
            self.stopped = True

    def finish(self) -> None:
        if not self.stopped:
            raise ValueError(f"stream ended without message_stop after {len(self.types)} events (last {self.types[-1:]})")
        if not self.usage or "message_delta" not in self.types:
            raise ValueError("stream without usage in message_start and message_delta")


def _chunk(data: bytes) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise ValueError(f"unparsable stream chunk: {data[:120]!r}") from None
    if not isinstance(chunk, dict):
        raise Malformed(f"stream chunk is not an object: {data[:120]!r}")
    return chunk


@dataclass(frozen=True)
class Api:
    """One endpoint under load: its path, its request body, and the checks of its answers."""

    name: str
    path: str
    body: Callable[[str, bool], dict[str, Any]]
    check: Callable[[dict[str, Any]], None]
    stream: Callable[[], Any] | None  # a checker with feed(event, data) and finish(); None: not streamed

    def label(self, stream: bool, concurrency: int) -> str:
        """The load's name in the report: chat keeps the historical `non-stream c=N`."""
        if self.name == "chat":
            return f"{'stream' if stream else 'non-stream'} c={concurrency}"
        return f"{self.name}{' stream' if stream else ''} c={concurrency}"


CHAT = Api("chat", "/v1/chat/completions", chat_body, check_chat, ChatStream)
APIS = {
    "chat": CHAT,
    "embeddings": Api("embeddings", "/v1/embeddings", embeddings_body, check_embeddings, None),
    "responses": Api("responses", "/v1/responses", responses_body, check_responses, ResponsesStream),
    "messages": Api("messages", "/v1/messages", messages_body, check_messages, MessagesStream),
    "translated": Api("translated", "/v1/chat/completions", chat_body, check_chat, ChatStream),
}
ANTHROPIC_APIS = ("messages", "translated")
"""The endpoints that need the fake Anthropic upstream."""


async def _one(session, url: str, headers: dict, payload: bytes, stream: bool, api: Api = CHAT) -> tuple[float, float | None]:
    """One request; returns (total seconds, time to first chunk) or raises ValueError(reason)."""
    started = time.perf_counter()
    first = None
    async with session.post(url, data=payload, headers=headers) as response:
        if not stream:
            raw = await response.read()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}: {raw[:200]!r}")
            try:
                api.check(json.loads(raw))
            except ValueError as exc:
                raise ValueError(f"malformed {api.name} answer ({exc}): {raw[:200]!r}") from None
            except (KeyError, IndexError, TypeError, AttributeError):
                raise ValueError(f"malformed {api.name} answer: {raw[:200]!r}") from None
            return time.perf_counter() - started, None
        if response.status != 200:
            raw = await response.read()
            raise ValueError(f"HTTP {response.status}: {raw[:200]!r}")
        checker = api.stream()
        event: str | None = None
        async for line in response.content:
            line = line.strip()
            if not line:
                event = None  # an event ends at a blank line
                continue
            if line.startswith(b"event:"):
                event = line[6:].strip().decode(errors="replace")
                continue
            if not line.startswith(b"data:"):
                if line.startswith(b":"):  # an SSE comment
                    continue
                raise ValueError(f"malformed stream line: {line[:120]!r}")
            if first is None:
                first = time.perf_counter() - started
            checker.feed(event, line[5:].strip())
        checker.finish()
        return time.perf_counter() - started, first


async def _load(target: Target, stream: bool, concurrency: int, requests: int, api: Api = CHAT) -> Result:
    import aiohttp

    url, headers, model, api = target.request(api)
    payload = json.dumps(api.body(model, stream)).encode()
    latencies: list[float] = []
    ttfc: list[float] = []
    errors: list[str] = []
    remaining = requests
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                try:
                    total, first = await _one(session, url, headers, payload, stream, api)
                except ValueError as exc:
                    errors.append(str(exc))
                    continue
                except (TimeoutError, aiohttp.ClientError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(total)
                if first is not None:
                    ttfc.append(first)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result(latencies, ttfc, errors, elapsed, requests)


def run_load(target: Target, stream: bool, concurrency: int, requests: int, api: Api = CHAT) -> Result:
    return asyncio.run(_load(target, stream, concurrency, requests, api))


def print_errors(name: str, errors: list[str]) -> None:
    if not errors:
        return
    counts = collections.Counter(errors)
    print(f"    {len(errors)} error(s) from {name}:")
    for message, count in counts.most_common(5):
        print(f"      {count} x {message[:300]}")


# -- profiling (py-spy) -----------------------------------------------------------------------


def find_py_spy() -> str:
    found = shutil.which("py-spy")
    if found:
        return found
    tools = CACHE / "tools"
    cli = tools / "bin" / "py-spy"
    if not cli.exists():
        print(f"installing py-spy into {tools} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True)
        subprocess.run([str(tools / "bin" / "pip"), "install", "-q", "py-spy"], check=True)
    return str(cli)


def summarise_profile(collapsed: Path, top: int = 20) -> str:
    """Where a server's Python time went, from py-spy's raw (collapsed) stacks sampled with
    --gil (only the thread holding the GIL, i.e. Python CPU): per component (cockpit/proxy,
    cockpit/budgets, litellm, sqlalchemy, starlette, ...) the share of samples whose innermost
    frame is in it (self) and whose stack passes through it (inclusive), then the functions."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    comp_self: collections.Counter[str] = collections.Counter()
    comp_incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame_name(f) for f in stack.split(";") if f]
        for name in set(frames):
            inclusive[name] += n
        for component in {_component(f) for f in frames}:
            comp_incl[component] += n
        if frames:
            own[frames[-1]] += n
            comp_self[_component(frames[-1])] += n
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples (GIL holder); by component, self % / inclusive %:"]
    for component, n in comp_self.most_common(14):
        lines.append(f"  {100 * n / total:5.1f}% / {100 * comp_incl[component] / total:5.1f}%  {component}")
    lines.append("  functions of cockpit and litellm, inclusive % (self %):")
    shown = 0
    for name, n in inclusive.most_common():
        if shown >= top:
            break
        if name.startswith(("cockpit/", "litellm/")):
            lines.append(f"  {100 * n / total:5.1f}% ({100 * own[name] / total:4.1f}%)  {name}")
            shown += 1
    lines.append("  top self time (any code):")
    for name, n in own.most_common(15):
        lines.append(f"  {100 * n / total:5.1f}%  {name}")
    return "\n".join(lines)


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame.strip())
    if not match:
        return frame.strip()
    function, path = match.groups()
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        stdlib = re.search(r"/lib/python3\.\d+/(.*)", path)
        if stdlib:
            path = "stdlib/" + stdlib.group(1)
    return f"{path}:{function}"


def _component(name: str) -> str:
    parts = name.split(":", 1)[0].split("/")
    if parts[0] in ("cockpit", "litellm") and len(parts) > 2:
        return "/".join(parts[:2])
    if parts[0] == "stdlib":
        return "stdlib/" + parts[1].removesuffix(".py") if len(parts) > 1 else "stdlib"
    return parts[0]


# -- the run ------------------------------------------------------------------------------------


def prepare(target: Target, api: Api, args) -> bool:
    """Smoke and warm-up: one of each kind, so a broken contender fails loudly before the timed
    loads; an endpoint other than chat that fails is skipped for this contender (False), with a
    note."""
    streams = (False, True) if api.stream else (False,)
    for stream in streams:
        smoke = run_load(target, stream, 1, 1, api)
        if smoke.errors:
            print_errors(f"{target.name} ({api.name})", smoke.errors)
            failed = f"the first {api.name} {'stream' if stream else 'non-stream'} request failed: {smoke.errors[0][:200]}"
            if api is CHAT:
                raise RuntimeError(f"{target.name}: {failed}")
            target.skipped[api.name] = failed
            print(f"  note: {target.name} {api.name}: SKIPPED ({failed})", flush=True)
            return False
    warm = run_load(target, False, 10, args.warmup, api)
    warm_stream = run_load(target, True, 5, max(10, args.warmup // 4), api) if api.stream else None
    print_errors(f"{target.name} {api.name} (warm-up)", warm.errors + (warm_stream.errors if warm_stream else []))
    return True


def load_plan(api: Api, args) -> list[tuple[bool, int, int]]:
    """(streamed, concurrency, requests) of every timed load of `api`."""
    plan = [(False, c, args.requests) for c in args.concurrency]
    if api.stream:
        plan += [(True, c, args.stream_requests) for c in args.stream_concurrency]
    return plan


Round = tuple["Result", float, "float | None", "float | None"]
"""One run of a load: its result, other processes' CPU %, server CPU seconds before and after."""


def measure_round(target: Target, api: Api, stream: bool, concurrency: int, requests: int, args) -> Round:
    pgid = target.process.pid if target.process else None
    if args.wait_idle:
        wait_for_quiet(args.wait_idle)
    meter = ForeignCpu()
    cpu_before = group_cpu_seconds(pgid) if pgid else None
    result = run_load(target, stream, concurrency, requests, api)
    cpu_after = group_cpu_seconds(pgid) if pgid else None
    return result, meter.percent(), cpu_before, cpu_after


def load_row(target: Target, api: Api, stream: bool, concurrency: int, rounds: list[Round]) -> dict[str, Any]:
    """The row of a load: the best of its rounds (noise only ever slows a run down: the highest
    throughput), printed."""
    result, foreign, cpu_before, cpu_after = max(rounds, key=lambda r: len(r[0].latencies) / r[0].elapsed if r[0].elapsed else 0)
    row = {"contender": target.name, "endpoint": api.name, "mode": "stream" if stream else "non-stream", "concurrency": concurrency,
           "load": api.label(stream, concurrency), **result.figures()}
    row["foreign_cpu_pct"] = foreign
    row["errors"] = sum(len(r[0].errors) for r in rounds)
    if len(rounds) > 1:
        row["rounds_rps"] = [round(len(r[0].latencies) / r[0].elapsed, 1) for r in rounds]
    if cpu_before is not None and result.latencies:
        row["server_cpu_ms_per_request"] = round((cpu_after - cpu_before) * 1000 / len(result.latencies), 3)
    extra = f"   ttfc p50 {row['ttfc_p50_ms']:7.2f} ms" if row["ttfc_p50_ms"] is not None else ""
    cpu = f"   cpu {row['server_cpu_ms_per_request']:5.2f} ms/req" if "server_cpu_ms_per_request" in row else ""
    print(
        f"  {target.name:<17} {row['load']:<22} {row['rps']:>9,.1f} rps   p50 {_ms(row['p50_ms'])}   "
        f"p99 {_ms(row['p99_ms'])}{extra}{cpu}   others {foreign:4.1f}% cpu" + (f"   ERRORS {row['errors']}" if row["errors"] else ""),
        flush=True,
    )
    print_errors(target.name, [e for r in rounds for e in r[0].errors])
    return row


def finish_target(target: Target, args, profile_dir: Path | None) -> None:
    if target.process:
        target.info["rss_mib_after"] = round(group_rss_mib(target.process.pid), 1)
    if profile_dir and target.name.startswith("cockpit") and target.process:
        profile_target(target, args, profile_dir)


def measure_target(target: Target, args, profile_dir: Path | None) -> list[dict[str, Any]]:
    """Every load of one contender, each load's rounds one after another."""
    rows: list[dict[str, Any]] = []
    for api in (APIS[name] for name in args.endpoints):
        if not prepare(target, api, args):
            continue
        for stream, concurrency, requests in load_plan(api, args):
            rounds = [measure_round(target, api, stream, concurrency, requests, args) for _ in range(args.rounds)]
            rows.append(load_row(target, api, stream, concurrency, rounds))
    finish_target(target, args, profile_dir)
    return rows


def _prepared(target: Target, api: Api, args) -> bool:
    try:
        return prepare(target, api, args)
    except RuntimeError as exc:  # one broken contender costs its rows, not the others'
        print(f"{target.name}: NOT MEASURED: {exc}", file=sys.stderr, flush=True)
        return False


@contextlib.contextmanager
def paused(targets: Any) -> Any:
    """The servers of `targets` stopped (SIGSTOP to each process group) while the block runs:
    an idle gateway's timers (LiteLLM's background jobs, Cockpit's absorbs) take no CPU from
    the one measured. Their connections stay open; they go on where they were after SIGCONT."""
    groups = [target.process.pid for target in targets if target.process is not None and target.process.poll() is None]
    for group in groups:
        os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        for group in groups:
            try:
                os.killpg(group, signal.SIGCONT)
            except ProcessLookupError:
                pass


def measure_interleaved(targets: list[Target], args, profile_dir: Path | None) -> list[dict[str, Any]]:
    """Every load of every contender, round by round: round 1 of a load on each contender in
    turn, then round 2, ... So a machine whose speed wanders (a shared host) slows every
    contender's rounds alike, and the best of each contender's rounds come from the same
    stretches of time. All contenders are up meanwhile, the idle ones stopped (`paused`)."""
    rows: list[dict[str, Any]] = []
    for api in (APIS[name] for name in args.endpoints):
        ready = [target for target in targets if _prepared(target, api, args)]
        for stream, concurrency, requests in load_plan(api, args):
            rounds: dict[str, list[Round]] = {target.name: [] for target in ready}
            for _ in range(args.rounds):
                for target in ready:
                    with paused(other for other in targets if other is not target):
                        rounds[target.name].append(measure_round(target, api, stream, concurrency, requests, args))
            rows += [load_row(target, api, stream, concurrency, rounds[target.name]) for target in ready]
    for target in targets:
        finish_target(target, args, profile_dir)
    return rows


PROFILED_LOADS = ((False, 10), (True, 20))


def profile_target(target: Target, args, profile_dir: Path) -> None:
    """Extra loads, not in the table (sampling slows the server down), under py-spy."""
    for stream, concurrency in PROFILED_LOADS:
        label = f"{target.name}-{'stream' if stream else 'nonstream'}-c{concurrency}"
        raw = profile_dir / f"{label}.txt"
        profiler = CLEANUP.popen(
            [find_py_spy(), "record", "--pid", str(target.process.pid), "--format", "raw", "--rate", "200", "--gil",
             "--full-filenames", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(1.0)
        result = run_load(target, stream, concurrency, args.stream_requests if stream else args.requests)
        print_errors(f"{target.name} (profiled load)", result.errors)
        try:
            os.killpg(profiler.pid, signal.SIGINT)
            profiler.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        error = profiler.stderr.read() if profiler.stderr and profiler.poll() is not None else ""
        CLEANUP.stop(profiler)
        if not raw.exists():
            print(f"  py-spy wrote no profile for {label}: {error[-500:]}")
            continue
        summary = summarise_profile(raw)
        (profile_dir / f"{label}-summary.txt").write_text(summary + "\n")
        print(f"  profile of {target.name}, {'stream' if stream else 'non-stream'} c={concurrency} "
              f"({len(result.latencies)} requests under py-spy --gil; raw stacks {raw}):\n{summary}", flush=True)


def _ms(value: float | None) -> str:
    return f"{value:7.2f} ms" if value is not None else "    -   "


def summarise(rows: list[dict[str, Any]], targets: dict[str, Target], args) -> dict[str, Any]:
    direct = {(r["endpoint"], r["mode"], r["concurrency"]): r for r in rows if r["contender"] == "direct"}
    for row in rows:
        base = direct.get((row["endpoint"], row["mode"], row["concurrency"]))
        for key in ("p50_ms", "p99_ms", "ttfc_p50_ms"):
            if base and row["contender"] != "direct" and row.get(key) is not None and base.get(key) is not None:
                row[f"added_{key}"] = round(row[key] - base[key], 3)
    out: dict[str, Any] = {}
    names = [n for n in ALL_CONTENDERS if any(r["contender"] == n for r in rows)]
    endpoints = [e for e in APIS if any(r["endpoint"] == e for r in rows)]
    for name in names:
        key = name.replace("-", "_")
        for endpoint in endpoints:
            # chat keeps the historical flat keys (cockpit_rps); the others name the endpoint (cockpit_embeddings_rps)
            prefix = key if endpoint == "chat" else f"{key}_{endpoint}"
            mine = [r for r in rows if r["contender"] == name and r["endpoint"] == endpoint]
            if not mine:
                continue
            throughput = [r["rps"] for r in mine if r["mode"] == "non-stream" and r["concurrency"] > 1]
            stream_tp = [r["rps"] for r in mine if r["mode"] == "stream" and r["concurrency"] > 1]
            c1 = next((r for r in mine if r["mode"] == "non-stream" and r["concurrency"] == 1), None)
            s1 = next((r for r in mine if r["mode"] == "stream" and r["concurrency"] == 1), None)
            out[f"{prefix}_rps"] = max(throughput) if throughput else None
            out[f"{prefix}_stream_rps"] = max(stream_tp) if stream_tp else None
            for r in mine:
                out[f"{prefix}_{'stream_' if r['mode'] == 'stream' else ''}c{r['concurrency']}_rps"] = r["rps"]
            if c1:
                out[f"{prefix}_p50_ms"], out[f"{prefix}_p99_ms"] = c1["p50_ms"], c1["p99_ms"]
                if name != "direct":
                    out[f"{prefix}_added_p50_ms"] = c1.get("added_p50_ms")
                    out[f"{prefix}_added_p99_ms"] = c1.get("added_p99_ms")
            if s1:
                out[f"{prefix}_stream_p50_ms"], out[f"{prefix}_stream_p99_ms"] = s1["p50_ms"], s1["p99_ms"]
                out[f"{prefix}_ttfc_p50_ms"] = s1["ttfc_p50_ms"]
                if name != "direct":
                    out[f"{prefix}_stream_added_p50_ms"] = s1.get("added_p50_ms")
                    out[f"{prefix}_added_ttfc_p50_ms"] = s1.get("added_ttfc_p50_ms")
            cpu = [r["server_cpu_ms_per_request"] for r in mine if r["mode"] == "non-stream" and r["concurrency"] > 1 and "server_cpu_ms_per_request" in r]
            if cpu:
                out[f"{prefix}_cpu_ms_per_request"] = min(cpu)
                out[f"{prefix}_cpu_bound_rps"] = round(1000 / min(cpu), 1)  # what one fully busy core would serve
        target = targets.get(name)
        if target and target.startup_s is not None:
            out[f"{key}_startup_s"] = round(target.startup_s, 2)
        if target and "rss_mib_after" in target.info:
            out[f"{key}_rss_mib"] = target.info["rss_mib_after"]
        out[f"{key}_errors"] = sum(r["errors"] for r in rows if r["contender"] == name)
    for endpoint in endpoints:
        _compare(out, endpoint)
    out["errors"] = sum(r["errors"] for r in rows)
    out["max_foreign_cpu_pct"] = max((r.get("foreign_cpu_pct", 0.0) for r in rows), default=0.0)
    out["skipped"] = {f"{n}/{e}": why for n, t in targets.items() for e, why in t.skipped.items()}
    out["table"] = rows
    out["servers"] = {n: {"startup_s": t.startup_s and round(t.startup_s, 2), **t.info} for n, t in targets.items()}
    out["config"] = {
        "requests": args.requests, "stream_requests": args.stream_requests, "warmup": args.warmup,
        "concurrency": args.concurrency, "stream_concurrency": args.stream_concurrency, "endpoints": args.endpoints,
        "contenders": names, "pinned": args.pin, "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU,
        "client": f"aiohttp {_version('aiohttp')}", "python": platform.python_version(), "cpus": os.cpu_count(),
        "upstream": "tests/fakes/openai.py", "upstream_model": UPSTREAM_MODEL, "max_tokens": MAX_TOKENS,
        "guardrails": args.guardrails, "rounds": args.rounds, "nice": args.nice, "wait_idle_s": args.wait_idle, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return out


def _compare(out: dict[str, Any], endpoint: str) -> None:
    """Cockpit's figures on one endpoint against each rival's (LiteLLM, Portkey): the throughput
    ratio, CPU per request, stream throughput and whether the added p50/p99 are lower. LiteLLM's
    chat figures keep their historical keys (`ratio`, `cpu_ratio`, `cockpit_added_p50_lower`);
    Portkey's end in `_portkey` / `_than_portkey`; other endpoints add `_<endpoint>`."""
    at = "" if endpoint == "chat" else f"_{endpoint}"

    def fig(contender: str, name: str) -> Any:
        return out.get(f"{contender}{at}_{name}")

    for rival in RIVALS:
        vs = "" if rival == "litellm" else f"_{rival}"
        than = "" if rival == "litellm" else f"_than_{rival}"
        if fig("cockpit", "rps") and fig(rival, "rps"):
            out[f"ratio{vs}{at}"] = round(fig("cockpit", "rps") / fig(rival, "rps"), 3)
            if rival == "litellm" and endpoint == "chat":
                out["ratio_target"] = 1.5
                out["ratio_met"] = out["ratio"] >= 1.5
        for variant in ("cockpit_pg", "cockpit_redis", "cockpit_pg_redis"):  # the same figures per variant
            if fig(variant, "rps") and fig(rival, "rps"):
                out[f"{variant}_ratio{vs}{at}"] = round(fig(variant, "rps") / fig(rival, "rps"), 3)
            if fig(variant, "added_p50_ms") is not None and fig(rival, "added_p50_ms") is not None:
                out[f"{variant}{at}_added_p50_lower{than}"] = fig(variant, "added_p50_ms") < fig(rival, "added_p50_ms")
        if fig("cockpit", "cpu_ms_per_request") and fig(rival, "cpu_ms_per_request"):
            out[f"cpu_ratio{vs}{at}"] = round(fig(rival, "cpu_ms_per_request") / fig("cockpit", "cpu_ms_per_request"), 3)
        if fig("cockpit", "stream_rps") and fig(rival, "stream_rps"):
            out[f"stream_ratio{vs}{at}"] = round(fig("cockpit", "stream_rps") / fig(rival, "stream_rps"), 3)
        for q in ("p50", "p99"):
            if fig("cockpit", f"added_{q}_ms") is not None and fig(rival, f"added_{q}_ms") is not None:
                out[f"cockpit{at}_added_{q}_lower{than}"] = fig("cockpit", f"added_{q}_ms") < fig(rival, f"added_{q}_ms")


def machine_lines(summary: dict[str, Any]) -> list[str]:
    """The command that was run and how loaded the machine was, to quote figures with."""
    config = summary["config"]
    start, end = config.get("load_average_start"), config.get("load_average_end")
    load = f"load average {' '.join(f'{x:.2f}' for x in start)} (1/5/15 min) at start" if start else "load average -"
    if end:
        load += f", {' '.join(f'{x:.2f}' for x in end)} at the end"
    return [f"command: {config.get('command', '-')}",
            f"machine: {config.get('cpus')} CPUs ({config.get('cpu_model') or platform.machine()}), {load}"]


def print_report(summary: dict[str, Any]) -> None:
    rows = summary["table"]
    print("\n== results (one worker each on CPU 0; upstream and client on CPU 1) ==")
    for line in machine_lines(summary):
        print(line)
    width = max([14, *(len(r["load"]) for r in rows)])
    header = (f"{'contender':<17} {'load':<{width}} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} {'ttfc50':>7} "
              f"{'cpu/req':>7} {'others%':>7} {'err':>4}")
    print(header)
    print("-" * len(header))
    for r in rows:
        def f(v, w=8, d=2):
            return f"{v:>{w}.{d}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"
        print(
            f"{r['contender']:<17} {r['load']:<{width}} {r['rps']:>9,.1f} {f(r['p50_ms'])} {f(r['p99_ms'])} "
            f"{f(r.get('added_p50_ms'))} {f(r.get('added_p99_ms'))} {f(r.get('ttfc_p50_ms'), 7)} "
            f"{f(r.get('server_cpu_ms_per_request'), 7)} {f(r.get('foreign_cpu_pct'), 7, 1)} {r['errors']:>4}"
        )
    print()
    for name, info in summary["servers"].items():
        if info.get("startup_s") is None:
            continue
        print(f"{name:<17} start-up {info.get('startup_s')} s, RSS after {info.get('rss_mib_after', '-')} MiB, "
              + ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("startup_s", "rss_mib_after")))
    for where, why in summary.get("skipped", {}).items():
        print(f"note: {where} not measured: {why}")
    for endpoint in [e for e in APIS if any(r["endpoint"] == e for r in rows)]:
        _print_comparison(summary, endpoint)
    if summary["max_foreign_cpu_pct"] > 10:
        print(f"warning: other processes used up to {summary['max_foreign_cpu_pct']:.0f}% of the machine during a load "
              "(column others%); those figures are depressed: rerun on a quiet machine or with --rounds 3")
    if summary["errors"]:
        print(f"ERRORS: {summary['errors']} (see above)")


def _print_comparison(summary: dict[str, Any], endpoint: str) -> None:
    at = "" if endpoint == "chat" else f"_{endpoint}"
    title = "" if endpoint == "chat" else f"[{endpoint}] "
    for rival in RIVALS:
        vs = "" if rival == "litellm" else f"_{rival}"
        than = "" if rival == "litellm" else f"_than_{rival}"
        if f"ratio{vs}{at}" in summary:
            line = (f"\n{title}ratio cockpit rps / {rival} rps per worker: {summary[f'ratio{vs}{at}']:.2f} "
                    f"({summary[f'cockpit{at}_rps']:,.1f} vs {summary[f'{rival}{at}_rps']:,.1f}")
            if rival == "litellm" and endpoint == "chat":
                line += f"; target >= 1.5: {'met' if summary['ratio_met'] else 'MISSED'}"
            print(line + ")")
        for variant in ("cockpit_pg", "cockpit_redis", "cockpit_pg_redis"):
            if f"{variant}_ratio{vs}{at}" in summary:
                lower = summary.get(f"{variant}{at}_added_p50_lower{than}")
                print(f"{title}{variant.replace('_', '-')}: ratio vs {rival} {summary[f'{variant}_ratio{vs}{at}']:.2f} "
                      f"({summary[f'{variant}{at}_rps']:,.1f} rps)"
                      + (f", added p50 {summary[f'{variant}{at}_added_p50_ms']:.2f} ms ({'lower' if lower else 'NOT lower'} than {rival}'s)"
                         if lower is not None else ""))
        if f"cpu_ratio{vs}{at}" in summary:
            print(f"{title}server CPU per request (best non-stream load): cockpit {summary[f'cockpit{at}_cpu_ms_per_request']:.2f} ms, "
                  f"{rival} {summary[f'{rival}{at}_cpu_ms_per_request']:.2f} ms: {rival}/cockpit {summary[f'cpu_ratio{vs}{at}']:.2f} "
                  "(the ratio a quiet, saturated core would show)")
        if f"stream_ratio{vs}{at}" in summary:
            print(f"{title}stream ratio cockpit / {rival}: {summary[f'stream_ratio{vs}{at}']:.2f} "
                  f"({summary[f'cockpit{at}_stream_rps']:,.1f} vs {summary[f'{rival}{at}_stream_rps']:,.1f} streams/s)")
        for q in ("p50", "p99"):
            if f"cockpit{at}_added_{q}_lower{than}" in summary:
                print(f"{title}cockpit added {q} {summary[f'cockpit{at}_added_{q}_ms']:.2f} ms vs {rival} "
                      f"{summary[f'{rival}{at}_added_{q}_ms']:.2f} ms: {'lower' if summary[f'cockpit{at}_added_{q}_lower{than}'] else 'NOT lower'}")


def parse_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_endpoints(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in APIS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown endpoint(s) {unknown}; choose from {', '.join(APIS)}")
    return [n for n in APIS if n in names]


def command_line() -> str:
    """This run's command, as it could be typed again (with the variables that change what runs)."""
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in ("PYTHONPATH", "COCKPIT_BENCH_CACHE") if os.environ.get(k)]
    return " ".join([*env, shlex.join([sys.executable, *sys.argv])])


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=textwrap.dedent(__doc__.split("\n\n", 1)[1]))
    parser.add_argument("--requests", type=int, default=2000, help="Non-stream requests per load (default 2000).")
    parser.add_argument("--stream-requests", type=int, default=None, help="Streamed requests per load (default requests/4, at least 100).")
    parser.add_argument("--warmup", type=int, default=200, help="Warm-up requests per contender (default 200).")
    parser.add_argument("--concurrency", type=parse_list, default=[1, 10, 50], help="Non-stream concurrencies (default 1,10,50).")
    parser.add_argument("--stream-concurrency", type=parse_list, default=[1, 20], help="Stream concurrencies (default 1,20).")
    parser.add_argument("--only", default=None, help=f"Comma-separated contenders among {', '.join(ALL_CONTENDERS)} "
                        "(default: direct,cockpit,litellm + variants, and portkey when node and npm are on PATH).")
    parser.add_argument("--endpoints", type=parse_endpoints, default=["chat"], metavar="LIST",
                        help=f"Comma-separated endpoints to load among {', '.join(APIS)} (default chat).")
    parser.add_argument("--postgres", action="store_true", help="Add cockpit-pg (fresh PostgreSQL database).")
    parser.add_argument("--redis", action="store_true", help="Add cockpit-redis (budget counters in Redis); with --postgres also cockpit-pg-redis.")
    parser.add_argument("--rounds", type=int, default=1, help="Run each load N times and keep the best (default 1).")
    parser.add_argument("--interleave", action="store_true",
                        help="Start every contender first, then run each load's rounds contender by contender in turn "
                             "(round 1 on each, round 2 on each, ...), so a machine whose speed wanders slows all alike.")
    parser.add_argument("--wait-idle", type=float, default=30, metavar="S",
                        help="Before each load, wait up to S seconds for other processes to go below 10%% CPU (default 30; 0: never).")
    parser.add_argument("--no-guardrails", dest="guardrails", action="store_false", help="No guardrail preset in Cockpit's tenant.")
    parser.add_argument("--nice", type=int, default=0, metavar="N",
                        help="Run this process and all it starts at nice N (e.g. -5 as root, to be less disturbed by other work on a shared machine).")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="Do not pin processes to CPUs.")
    parser.add_argument("--json", type=Path, default=None, help="Write all figures as JSON to this path.")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR", help="Profile each Cockpit server with py-spy after its loads; raw stacks and summaries to DIR.")
    parser.add_argument("--logs", type=Path, default=None, metavar="DIR", help="Keep the servers' logs in DIR (default: a temp dir, removed).")
    args = parser.parse_args()
    if args.stream_requests is None:
        args.stream_requests = max(100, args.requests // 4)
    if args.only:
        contenders = [c.strip() for c in args.only.split(",") if c.strip()]
        unknown = [c for c in contenders if c not in ALL_CONTENDERS]
        if unknown:
            parser.error(f"unknown contender(s) {unknown}; choose from {', '.join(ALL_CONTENDERS)}")
    else:
        contenders = ["direct", "relay", "cockpit"]
        if args.postgres:
            contenders.append("cockpit-pg")
        if args.redis:
            contenders.append("cockpit-redis")
        if args.postgres and args.redis:
            contenders.append("cockpit-pg-redis")
        contenders.append("litellm")
        if shutil.which("node") and shutil.which("npm"):
            contenders.append("portkey")
    contenders = [c for c in ALL_CONTENDERS if c in contenders]
    command = command_line()
    load_start = os.getloadavg()
    if not FAKE_UPSTREAM.exists():
        print(f"the fake upstream {FAKE_UPSTREAM.relative_to(ROOT)} is missing", file=sys.stderr)
        return 1
    if args.pin:
        if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
            print("note: fewer than 2 CPUs or no taskset; not pinning", file=sys.stderr)
            args.pin = False
        else:
            os.sched_setaffinity(0, {int(CLIENT_CPU)})  # the load generator (and what we start, unless re-pinned)

    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by the servers and the upstream

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)  # explicitly: a background job starts with SIGINT ignored
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    targets: dict[str, Target] = {}
    rows: list[dict[str, Any]] = []
    try:
        log_dir = args.logs or CLEANUP.tempdir("bench-proxy-logs-")
        log_dir.mkdir(parents=True, exist_ok=True)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            find_py_spy()
        if "litellm" in contenders:
            ensure_litellm_proxy()
        print(f"command: {command}\nmachine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in load_start)} (1/5/15 min)", flush=True)
        _upstream, upstream_port = start_upstream(log_dir, args.pin)
        anthropic_port = start_anthropic(log_dir, args.pin)[1] if set(ANTHROPIC_APIS) & set(args.endpoints) else None
        print(f"fake upstream on 127.0.0.1:{upstream_port}" + (f", fake Anthropic on 127.0.0.1:{anthropic_port}" if anthropic_port else "")
              + f" (CPU {CLIENT_CPU}); contenders: {', '.join(contenders)}; endpoints: {', '.join(args.endpoints)}; "
              f"{args.requests} non-stream requests per load at c={args.concurrency}, {args.stream_requests} streamed at "
              f"c={args.stream_concurrency}; warm-up {args.warmup}", flush=True)
        unavailable: dict[str, str] = {}
        for name in contenders:
            target = None
            try:
                if name == "direct":
                    routes = {"messages": Route(f"http://127.0.0.1:{anthropic_port}", ANTHROPIC_KEY, ANTHROPIC_MODEL),
                              "translated": Route(f"http://127.0.0.1:{anthropic_port}", ANTHROPIC_KEY, ANTHROPIC_MODEL, api=APIS["messages"])} if anthropic_port else {}
                    target = Target("direct", f"http://127.0.0.1:{upstream_port}", UPSTREAM_KEY, UPSTREAM_MODEL, routes=routes)
                elif name == "relay":
                    target = start_relay(upstream_port, log_dir, args.pin, anthropic_port)
                elif name == "litellm":
                    target = start_litellm(upstream_port, log_dir, args.pin, anthropic_port)
                elif name == "portkey":
                    target = start_portkey(upstream_port, log_dir, args.pin, anthropic_port)
                else:
                    target = start_cockpit(name, upstream_port, log_dir, args.pin, postgres="pg" in name, redis="redis" in name, guardrails=args.guardrails,
                                           anthropic_port=anthropic_port)
                if target.startup_s is not None:
                    print(f"{name}: up in {target.startup_s:.1f} s on {target.base_url} ({', '.join(f'{k} {v}' for k, v in target.info.items())})", flush=True)
                if args.interleave:
                    targets[name] = target  # measured below, with the others
                    continue
                rows.extend(measure_target(target, args, args.profile))
                targets[name] = target
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                # One broken contender costs its rows, not the others' (use --only to leave it out).
                unavailable[name] = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                print(f"{name}: NOT MEASURED: {exc}", file=sys.stderr, flush=True)
            if not args.interleave and target is not None and target.process is not None:
                CLEANUP.stop(target.process)
        if args.interleave:
            rows.extend(measure_interleaved(list(targets.values()), args, args.profile))
            for target in targets.values():
                if target.process is not None:
                    CLEANUP.stop(target.process)
        summary = summarise(rows, targets, args)
        summary["unavailable"] = unavailable
        summary["command"] = summary["config"]["command"] = command
        summary["load_average"] = summary["config"]["load_average_start"] = [round(x, 2) for x in load_start]
        summary["config"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        summary["config"]["cpu_model"] = _cpu_model()
        if unavailable:
            print("not measured: " + "; ".join(f"{n} ({why})" for n, why in unavailable.items()))
        print_report(summary)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
            print(f"wrote {args.json}")
        # A skipped endpoint fails the run only on our own side (Cockpit, the bare upstream).
        ours = [k for k in summary["skipped"] if k.split("/")[0] not in RIVALS]
        return 1 if summary["errors"] or unavailable or ours else 0
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        CLEANUP.run()


if __name__ == "__main__":
    sys.exit(main())

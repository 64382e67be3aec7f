"""A tenant for the proxy's tests, and `cockpit serve` running it on loopback.

Prices are chosen so every charge is exact: model `chat` costs nothing per prompt token and 1
per completion token, so with `max_tokens: 2` a request costs 2 × 1.25 (the credit factor) =
2.5 credits, reserved and charged alike (the fake upstream answers one token per word).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from cockpit.store.engine import create_engine_for
from cockpit.keys import create_key

TENANT = """\
apiVersion: cockpit/v1
kind: Account
name: acme
email_domain: acme.com
allocation: {monthly_credits: 1000, credit_factor: 1.25}
admins: [{email: admin@acme.com}]
---
apiVersion: cockpit/v1
kind: Model
name: chat
litellm: {model: openai/chat-model, api_base: "UPSTREAM", api_key: "${env:FAKE_OPENAI_KEY}"}
pricing: {input_per_million: 0, output_per_million: 1000000}
---
apiVersion: cockpit/v1
kind: Model
name: priced
litellm: {model: openai/priced-model, api_base: "UPSTREAM", api_key: "${env:FAKE_OPENAI_KEY}"}
pricing: {input_per_million: 2.5, output_per_million: 10}
---
apiVersion: cockpit/v1
kind: Model
name: locked
litellm: {model: openai/locked-model, api_base: "UPSTREAM", api_key: "${env:FAKE_OPENAI_KEY}"}
pricing: {input_per_million: 1, output_per_million: 1}
---
apiVersion: cockpit/v1
kind: Directory
account: acme
domain: copilot
users: [{email: alice@acme.com}, {email: bob@acme.com}, {email: dave@acme.com}]
orgs:
  - name: research
    teams:
      - name: ml
        members: [{user: alice@acme.com}, {user: bob@acme.com}]
---
apiVersion: cockpit/v1
kind: Directory
account: acme
domain: console
users: [{email: carol@acme.com}]
orgs: [{name: ops, teams: [{name: sre, members: [{user: carol@acme.com}]}]}]
---
apiVersion: cockpit/v1
kind: ModelAccess
account: acme
domain: copilot
grants:
  - {model: chat, scope: org:research}
  - {model: priced, scope: org:research}
  - {model: chat, scope: user:dave@acme.com}
---
apiVersion: cockpit/v1
kind: ModelAccess
account: acme
domain: console
grants: [{model: chat, scope: user:carol@acme.com}]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: acme
code: pii
name: PII
patterns:
  - {name: ssn, regex: '\\d{3}-\\d{2}-\\d{4}', type: block}
  - {name: test-ssn, regex: '^000-00-0000$', type: allow}
assign: [account]
---
apiVersion: cockpit/v1
kind: GuardrailPreset
account: acme
code: leaks
name: Key leaks
patterns: [{name: api-key, regex: 'sk-[a-z0-9]{8}', type: detect}]
assign: [account]
---
apiVersion: cockpit/v1
kind: BudgetPlan
account: acme
name: q4
allocations:
  - {scope: team:research/ml, credits: 25}
  - {scope: user:alice@acme.com, credits: 5}
  - {scope: pool, credits: 10}
"""


def tenant(upstream: str) -> str:
    return TENANT.replace("UPSTREAM", upstream)


def issue_key(url: str, user: str, domain: str | None = "copilot", agent: str | None = None) -> str:
    engine = create_engine_for(url)
    try:
        return create_key(engine, "acme", user, domain=domain, agent=agent).key
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class InProcessServer:
    """`create_app` under a real uvicorn in a thread (lifespan included: warm-up, ledger
    flush at shutdown), so concurrent requests really overlap."""

    def __init__(self, url: str, environ: dict[str, str] | None = None) -> None:
        from cockpit.server.app import create_app

        self.engine = create_engine_for(url)
        self.app = create_app(self.engine, {**os.environ, **(environ or {})})
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("cockpit serve did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.engine.dispose()

    def flush(self) -> None:
        """Wait for the queued ledger rows (the writer batches them)."""
        assert self.app.state.proxy.flush()


class ServeProcess:
    """`cockpit serve` as its own process (for several replicas on one database)."""

    def __init__(self, environ: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "cockpit"), "serve", "--port", str(self.port), "--no-access-log"],
            env=environ, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServeProcess:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cockpit serve exited: {self.process.stdout.read().decode(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("cockpit serve did not start")

    def __exit__(self, *exc: Any) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def chat(base: str, key: str, model: str = "chat", content: str = "hello there", **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": content}], **extra},
        timeout=30,
    )


async def chat_many(bases: list[str], key: str, count: int, **extra: Any) -> list[int]:
    """`count` requests at once, spread over `bases`; their status codes."""
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as client:
        async def one(i: int) -> int:
            response = await client.post(
                f"{bases[i % len(bases)]}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "chat", "messages": [{"role": "user", "content": f"request {i}"}], **extra},
            )
            return response.status_code

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def counters(url: str) -> dict[str, tuple[Decimal, Decimal]]:
    """(used, reserved) per scope of the database's budget counters, to the hundredth."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT scope, used, reserved FROM budget_counters")).all()
    finally:
        engine.dispose()
    return {row.scope: (Decimal(str(row.used)).quantize(Decimal("0.01")), Decimal(str(row.reserved)).quantize(Decimal("0.01"))) for row in rows}


LEDGER_PLACES = Decimal("0.00000001")
"""The ledger keeps raw costs and credits to 8 places."""


def ledger_rows(url: str) -> list[Any]:
    """The ledger's rows, oldest first, with `metadata` as a dict on both databases."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM usage_ledger ORDER BY created_at")).all()
    finally:
        engine.dispose()
    return [SimpleNamespace(**{**row._asdict(), "metadata": row.metadata if isinstance(row.metadata, dict) else json.loads(row.metadata)}) for row in rows]

"""Attacks on `cockpit serve` from the security review, each against a real uvicorn.

- request heads: a 64 MB header, a 64 MB URL, thousands of small headers and 150 headers, sent
  on raw sockets to `cockpit serve` with each HTTP parser (httptools, h11): refused (431, or the
  connection closed) while the server's peak RSS (/proc/PID/status VmHWM, reset through
  clear_refs) stays within a few MiB;
- request bodies: a Content-Length of 300 MB refused before a byte is read, a chunked body of
  up to 300 MB cut off at the limit with bounded memory, `COCKPIT_MAX_BODY_BYTES` honoured;
- cross-site POSTs: `text/plain`, form and multipart bodies refused with 415, the `token`
  cookie ignored on POST (honoured on GET);
- Zitadel tokens whose `exp`, `nbf` or `iat` is `Infinity`, `NaN`, absurd or in the future;
- suspended directory users and accounts: no key issued, existing keys and Zitadel tokens
  refused with a 403 that says why, a directory that suspends a user drops its domain.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cockpit.store.migrate import upgrade
from fakes.openai import FakeOpenAI, serve_openai
from fakes.zitadel import FakeZitadel
from harness.cockpit import Cockpit
from harness.proxy import InProcessServer, free_port, issue_key, tenant

MIB = 1024 * 1024
HEAD_BOUND = 24 * MIB
"""How much a server's peak RSS may grow while it is attacked: the limits hold 64 KiB a connection
(plus a 256 KiB read); the unbounded server grew by hundreds of MiB."""
SERVED = (200, 429)
"""A request that reached the proxy: answered, or refused by alice's budget (shared by the module's tests)."""


# -- `cockpit serve` as its own process, so its memory can be measured ----------------------------


class Serve:
    """`cockpit serve [--http H]` on a free port; `pid` is the server's process."""

    def __init__(self, environ: dict[str, str], cwd: Path, http: str) -> None:
        self.port = free_port()
        command = [str(Path(sys.executable).parent / "cockpit"), "serve", "--port", str(self.port), "--no-access-log"]
        if http != "auto":
            command += ["--http", http]
        self.process = subprocess.Popen(command, env=environ, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Serve:
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

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) in bytes."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024
        return values

    def reset_peak(self) -> int:
        """Reset the peak RSS to the current RSS (Linux clear_refs 5); returns it."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self.memory()["VmHWM"]


@dataclass
class Served:
    server: Serve
    key: str
    http: str


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = serve_openai()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def applied_tenant(tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI) -> Iterator[tuple[str, Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("attacks")
    url = f"sqlite:///{root / 'cockpit.db'}"
    upgrade(url)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
        runner = Cockpit(url, root, monkeypatch)
        runner.write(tenant(upstream.url))
        result = runner.apply()
        assert result.exit_code == 0, result.output
        yield url, root, {**os.environ, "REDIS_URL": ""}


@pytest.fixture(scope="module", params=["auto", "h11"], ids=["httptools", "h11"])
def served(request: pytest.FixtureRequest, applied_tenant: tuple[str, Path, dict[str, str]]) -> Iterator[Served]:
    url, root, environ = applied_tenant
    server = Serve(environ, root, request.param).start()
    try:
        yield Served(server, issue_key(url, "alice@acme.com"), request.param)
    finally:
        server.stop()


# -- raw sockets ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    sent: int
    response: bytes
    error: str | None

    @property
    def status(self) -> int | None:
        line = self.response.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 and line[1].isdigit() else None

    def json(self) -> dict:
        return json.loads(self.response.split(b"\r\n\r\n", 1)[1])


def attack(port: int, pieces: Iterator[bytes], read_timeout: float = 10.0) -> Outcome:
    """Send `pieces` until the server stops taking them, then read what it answered."""
    sent = 0
    error = None
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as conn:
        try:
            for piece in pieces:
                conn.sendall(piece)
                sent += len(piece)
        except OSError as exc:  # the server closed the connection: what we want
            error = type(exc).__name__
        response = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                response += data
                if b"\r\n\r\n" in response and _complete(response):
                    break
        except OSError as exc:
            error = error or type(exc).__name__
    return Outcome(sent, response, error)


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def repeated(prefix: bytes, size: int, suffix: bytes, piece: int = 256 * 1024) -> Iterator[bytes]:
    yield prefix
    filler = b"a" * piece
    for _ in range(size // piece):
        yield filler
    yield suffix


def in_parallel(count: int, run) -> list[Outcome]:
    results: list[Outcome | None] = [None] * count

    def one(i: int) -> None:
        results[i] = run()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return [r for r in results if r is not None]


def refused(outcome: Outcome) -> bool:
    """431/400 answered, or the connection cut: anything but the request being served."""
    return outcome.status in (400, 431) or (outcome.status is None and (outcome.error is not None or outcome.response == b""))


# -- request heads ----------------------------------------------------------------------------------


def test_four_64_mb_headers_are_refused_without_buffering(served: Served) -> None:
    server = served.server
    before = server.reset_peak()
    head = b"GET /v1/me/context HTTP/1.1\r\nHost: cockpit\r\nX-Big: "
    outcomes = in_parallel(4, lambda: attack(server.port, repeated(head, 64 * MIB, b"\r\n\r\n")))
    grown = server.memory()["VmHWM"] - before
    print(f"{served.http}: 4 x 64 MB headers: peak RSS +{grown / MIB:.1f} MiB, sent {[o.sent for o in outcomes]}, answers {[o.status for o in outcomes]}")
    assert len(outcomes) == 4
    assert all(refused(o) for o in outcomes), [(o.status, o.error, o.sent) for o in outcomes]
    assert all(o.sent < 64 * MIB for o in outcomes), "the server read a whole 64 MB header"
    assert grown < HEAD_BOUND, f"peak RSS grew by {grown / MIB:.1f} MiB"
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_64_mb_url_is_refused(served: Served) -> None:
    server = served.server
    before = server.reset_peak()
    outcome = attack(server.port, repeated(b"GET /health?q=", 64 * MIB, b" HTTP/1.1\r\nHost: cockpit\r\n\r\n"))
    grown = server.memory()["VmHWM"] - before
    print(f"{served.http}: 64 MB URL: peak RSS +{grown / MIB:.1f} MiB, sent {outcome.sent / MIB:.1f} MiB, answer {outcome.status}")
    assert refused(outcome), (outcome.status, outcome.error)
    assert outcome.sent < 64 * MIB and grown < HEAD_BOUND, f"sent {outcome.sent}, peak RSS grew by {grown / MIB:.1f} MiB"


def test_too_many_headers_are_refused(served: Served) -> None:
    server = served.server
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(20_000))  # ~200 KB of small headers
    flood = attack(server.port, iter([b"GET /health HTTP/1.1\r\nHost: cockpit\r\n", many, b"\r\n"]))
    assert refused(flood), (flood.status, flood.error)
    # 150 fields in 2 KB: under the byte bound, over the count bound
    some = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    counted = attack(server.port, iter([b"GET /v1/models HTTP/1.1\r\nHost: cockpit\r\n", some, b"\r\n"]))
    assert counted.status == 431, counted.response[:300]
    assert counted.json()["error"]["code"] == "too_many_headers"
    # under both bounds: served
    fine = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 500) for i in range(60))
    served_ok = attack(server.port, iter([b"GET /health HTTP/1.1\r\nHost: cockpit\r\nConnection: close\r\n", fine, b"\r\n"]))
    assert served_ok.status == 200, served_ok.response[:300]


# -- request bodies ---------------------------------------------------------------------------------


def _post_head(key: str, extra: str) -> bytes:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: cockpit\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_a_300_mb_content_length_is_refused_before_reading(served: Served) -> None:
    server = served.server
    for size in (300 * MIB, 4 * MIB + 1):
        outcome = attack(server.port, iter([_post_head(served.key, f"Content-Length: {size}\r\n")]), read_timeout=5)
        assert outcome.status == 413, (size, outcome.response[:300], outcome.error)
        error = outcome.json()["error"]
        assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error" and set(error) == {"message", "type", "param", "code"}
        assert "COCKPIT_MAX_BODY_BYTES" in error["message"]
    # a body under the limit is served (a 1 MiB message)
    content = "word " * (MIB // 5)
    ok = httpx.post(f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {served.key}"},
                    json={"model": "chat", "messages": [{"role": "user", "content": content}], "max_tokens": 1}, timeout=30)
    assert ok.status_code in SERVED, ok.text


def test_a_chunked_300_mb_body_is_cut_off_at_the_limit(served: Served) -> None:
    server = served.server
    before = server.reset_peak()
    chunk = b"a" * MIB

    def pieces() -> Iterator[bytes]:
        yield _post_head(served.key, "Transfer-Encoding: chunked\r\n")
        prefix = b'{"model": "chat", "messages": [{"role": "user", "content": "'
        yield b"%x\r\n%s\r\n" % (len(prefix), prefix)
        for _ in range(300):
            yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
        yield b'4\r\n"}]}\r\n0\r\n\r\n'

    outcome = attack(server.port, pieces(), read_timeout=20)
    grown = server.memory()["VmHWM"] - before
    print(f"{served.http}: chunked 300 MB body: peak RSS +{grown / MIB:.1f} MiB, sent {outcome.sent / MIB:.1f} MiB, answer {outcome.status}")
    assert outcome.status in (413, None), outcome.response[:300]
    if outcome.status == 413:
        assert outcome.json()["error"]["code"] == "request_too_large"
    else:
        assert outcome.error is not None, "neither refused nor cut off"
    assert outcome.sent < 300 * MIB, "the server read the whole 300 MB body"
    assert grown < 40 * MIB, f"peak RSS grew by {grown / MIB:.1f} MiB"
    # a small chunked body is served
    small = attack(server.port, iter([_post_head(served.key, "Transfer-Encoding: chunked\r\nConnection: close\r\n"),
                                      b"%x\r\n%s\r\n0\r\n\r\n" % (len(body := json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).encode()), body)]))
    assert small.status in SERVED, small.response[:400]


def test_max_body_bytes_comes_from_the_environment(applied_tenant: tuple[str, Path, dict[str, str]]) -> None:
    url, root, environ = applied_tenant
    key = issue_key(url, "alice@acme.com")
    payload = {"model": "chat", "messages": [{"role": "user", "content": "x" * 3000}], "max_tokens": 1}
    with InProcessServer(url, {"REDIS_URL": "", "COCKPIT_MAX_BODY_BYTES": "2048"}) as running:
        big = httpx.post(f"{running.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=payload, timeout=30)
        assert big.status_code == 413 and "2048 bytes" in big.json()["error"]["message"]
        payload["messages"][0]["content"] = "x" * 100
        small = httpx.post(f"{running.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=payload, timeout=30)
        assert small.status_code in SERVED, small.text
    bad = subprocess.run([str(Path(sys.executable).parent / "cockpit"), "serve", "--port", str(free_port())],
                         env={**environ, "COCKPIT_MAX_BODY_BYTES": "4MB"}, cwd=root, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "COCKPIT_MAX_BODY_BYTES must be a whole number of bytes" in bad.stderr, bad.stderr


# -- cross-site POSTs ---------------------------------------------------------------------------------


def test_cross_site_posts_are_refused(applied_tenant: tuple[str, Path, dict[str, str]]) -> None:
    url, _root, _environ = applied_tenant
    key = issue_key(url, "alice@acme.com")
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
    chat = "/v1/chat/completions"
    with InProcessServer(url, {"REDIS_URL": ""}) as running:
        def post(headers: dict[str, str], content: bytes | str = body) -> httpx.Response:
            return httpx.post(f"{running.url}{chat}", headers=headers, content=content, timeout=30)

        # what a form or a no-cors fetch can send, with the cookie a browser attaches
        for kind in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            for credential in ({"Cookie": f"token={key}"}, {"Authorization": f"Bearer {key}"}):
                response = post({"Content-Type": kind, **credential})
                assert response.status_code == 415, (kind, credential.keys(), response.text)
                error = response.json()["error"]
                assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]
        # a body with no type at all (a fetch of a Blob)
        assert post({"Cookie": f"token={key}"}).status_code == 415
        # the cookie is no credential on a POST, even with a JSON body
        cookie_json = post({"Cookie": f"token={key}", "Content-Type": "application/json"})
        assert cookie_json.status_code == 401, cookie_json.text
        # but it still is on GET, and the Authorization header works on POST
        assert httpx.get(f"{running.url}/v1/models", headers={"Cookie": f"token={key}"}).status_code == 200
        json_post = post({"Authorization": f"Bearer {key}", "Content-Type": "application/json; charset=utf-8"})
        assert json_post.status_code in SERVED, json_post.text


# -- Zitadel tokens with absurd times ----------------------------------------------------------------


def test_tokens_with_infinite_nan_or_absurd_times_are_refused(applied_tenant: tuple[str, Path, dict[str, str]]) -> None:
    url, _root, _environ = applied_tenant
    with FakeZitadel() as fake, InProcessServer(url, {"REDIS_URL": "", "ZITADEL_ISSUER": fake.url}) as running:
        def me(token: str) -> httpx.Response:
            return httpx.get(f"{running.url}/v1/me/context", headers={"Authorization": f"Bearer {token}"}, timeout=30)

        base = {"sub": "u-alice", "email": "alice@acme.com", "alchemi:account_id": "acme", "roles": ["account_admin"]}
        assert me(fake.sign_token(base)).json()["auth_provider"] == "zitadel"  # control
        now = int(time.time())
        bad = {
            "exp Infinity": {"exp": math.inf},
            "exp NaN": {"exp": math.nan},
            "exp 1e300": {"exp": 1e300},
            "exp year 3e9": {"exp": 10**17},
            "nbf NaN": {"nbf": math.nan},
            "iat Infinity": {"iat": math.inf},
            "iat in a day": {"iat": now + 86400},
            "exp negative": {"exp": -1.0},
        }
        for name, times in bad.items():
            response = me(fake.sign_token({**base, **times}))
            assert response.status_code == 200 and response.json()["auth_provider"] is None, (name, response.text)
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)  # to write a 5,000-digit exp; the server reads with the default limit
        try:
            huge = fake.sign_token({**base, "exp": 10**5000})
        finally:
            sys.set_int_max_str_digits(limit)
        response = me(huge)
        assert response.status_code == 200 and response.json()["auth_provider"] is None, response.text[:300]


# -- suspended users and accounts ---------------------------------------------------------------------


SUSPENSIONS = """\
apiVersion: cockpit/v1
kind: Account
name: acme
email_domain: acme.com
admins: [{email: admin@acme.com}]
---
apiVersion: cockpit/v1
kind: Account
name: dormant
email_domain: dormant.test
status: suspended
admins: [{email: boss@dormant.test}]
---
apiVersion: cockpit/v1
kind: Directory
account: acme
domain: copilot
users:
  - {email: alice@acme.com, status: ALICE}
  - {email: sam@acme.com, status: suspended}
  - {email: pat@acme.com, status: suspended}
  - {email: admin@acme.com, status: suspended}
orgs: [{name: research, teams: [{name: ml, members: [{user: alice@acme.com}, {user: sam@acme.com}]}]}]
---
apiVersion: cockpit/v1
kind: Directory
account: acme
domain: console
users: [{email: pat@acme.com}, {email: zoe@acme.com, status: suspended}]
orgs: [{name: ops, teams: [{name: sre, members: [{user: pat@acme.com}]}]}]
"""


@pytest.fixture
def suspensions(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cockpit:
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    runner.write(SUSPENSIONS.replace("ALICE", "active"))
    result = runner.apply()
    assert result.exit_code == 0, result.output
    return runner


def test_keys_are_not_issued_to_suspended_users_or_accounts(suspensions: Cockpit) -> None:
    def create(user: str, *domain: str, account: str = "acme"):
        return suspensions.run("keys", "create", "--account", account, "--user", user, *domain)

    refusals = {
        ("sam@acme.com", "--domain", "copilot"): "sam@acme.com is suspended in the copilot directory of account 'acme'",
        ("sam@acme.com",): "sam@acme.com is suspended in every directory that lists them (copilot) of account 'acme'",
        ("pat@acme.com", "--domain", "copilot"): "pat@acme.com is suspended in the copilot directory",
        ("zoe@acme.com",): "zoe@acme.com is suspended in every directory that lists them (console)",
        ("admin@acme.com", "--domain", "copilot"): "admin@acme.com is suspended in the copilot directory",
    }
    for args, message in refusals.items():
        result = create(*args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert "set their status to active in the config and apply it" in result.output
        assert "ck-" not in result.stdout
    dormant = create("boss@dormant.test", account="dormant")
    assert dormant.exit_code == 1 and "account 'dormant' is suspended: no keys are issued in it" in dormant.output
    # active somewhere, or an account admin: issued
    for args in (("pat@acme.com",), ("pat@acme.com", "--domain", "console"), ("admin@acme.com",), ("alice@acme.com", "--domain", "copilot")):
        result = create(*args)
        assert result.exit_code == 0 and result.stdout.startswith("ck-"), (args, result.output)


def test_keys_stop_working_when_their_user_or_account_is_suspended(suspensions: Cockpit) -> None:
    alice = issue_key(suspensions.url, "alice@acme.com")
    pat = issue_key(suspensions.url, "pat@acme.com", domain=None)
    admin = issue_key(suspensions.url, "admin@acme.com", domain=None)
    with InProcessServer(suspensions.url, {"REDIS_URL": ""}) as running:
        def get(path: str, key: str) -> httpx.Response:
            return httpx.get(f"{running.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)

        assert get("/v1/me/context", alice).status_code == 200
        assert get("/v1/me/context", pat).json()["product_domains_allowed"] == ["console"]  # copilot suspends pat
        assert get("/v1/me/context", admin).json()["product_domains_allowed"] == ["console"]
        suspensions.write(SUSPENSIONS.replace("ALICE", "suspended"))
        assert suspensions.apply().exit_code == 0
        deadline = time.monotonic() + 8  # the identity cache holds a key for 5 s
        while (response := get("/v1/me/context", alice)).status_code == 200:
            assert time.monotonic() < deadline, "a suspended user's key still serves"
            time.sleep(0.5)
        assert response.status_code == 403
        assert response.json()["detail"] == (
            "User alice@acme.com is suspended in the copilot directory of account 'acme': their keys serve nothing until the config makes them active again."
        )
        proxy = httpx.post(f"{running.url}/v1/chat/completions", headers={"Authorization": f"Bearer {alice}"},
                           json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        assert proxy.status_code == 403 and proxy.json()["error"]["code"] == "user_suspended"
        assert get("/v1/models", alice).status_code == 403


def test_suspended_account_keys_are_refused_with_a_reason(suspensions: Cockpit) -> None:
    from cockpit.keys import create_key
    from cockpit.store.engine import create_engine_for

    key = issue_key(suspensions.url, "admin@acme.com", domain=None)
    text = SUSPENSIONS.replace("ALICE", "active").replace("email_domain: acme.com\n", "email_domain: acme.com\nstatus: suspended\n", 1)
    suspensions.write(text)
    assert suspensions.apply().exit_code == 0
    with InProcessServer(suspensions.url, {"REDIS_URL": ""}) as running:
        for path in ("/v1/me/context", "/v1/models"):
            response = httpx.get(f"{running.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            assert response.status_code == 403, (path, response.text)
            assert response.json()["error"]["message"] == "Account 'acme' is suspended: its keys serve nothing until the config makes it active again."
            assert response.json()["error"]["code"] == "account_suspended"
    engine = create_engine_for(suspensions.url)
    try:
        with pytest.raises(Exception, match="account 'acme' is suspended"):
            create_key(engine, "acme", "admin@acme.com")
    finally:
        engine.dispose()


def test_zitadel_tokens_of_suspended_users_and_accounts_get_no_service(suspensions: Cockpit) -> None:
    with FakeZitadel() as fake, InProcessServer(suspensions.url, {"REDIS_URL": "", "ZITADEL_ISSUER": fake.url}) as running:
        def me(email: str, account: str = "acme", **claims: object) -> httpx.Response:
            token = fake.sign_token({"sub": f"u-{email}", "email": email, "alchemi:account_id": account, "roles": ["end_user"], **claims})
            return httpx.get(f"{running.url}/v1/me/context", headers={"Authorization": f"Bearer {token}"}, timeout=30)

        assert me("alice@acme.com").json()["auth_provider"] == "zitadel"
        for email in ("sam@acme.com", "zoe@acme.com", "SAM@acme.com"):
            response = me(email)
            assert response.status_code == 403, (email, response.text)
            assert response.json()["detail"] == f"User {email.lower()} is suspended in account 'acme': they get no service until the config makes them active again."
        assert me("pat@acme.com").json()["product_domains_allowed"] == ["console"]
        copilot_only = me("pat@acme.com", product_domains_allowed=["copilot"])
        assert copilot_only.status_code == 403 and "for every domain their token allows" in copilot_only.json()["detail"]
        assert me("admin@acme.com").json()["product_domains_allowed"] == ["console"]
        dormant = me("boss@dormant.test", "dormant")
        assert dormant.status_code == 403 and "Account 'dormant' is suspended" in dormant.json()["detail"]

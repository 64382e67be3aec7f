"""The deployment files of `examples/deploy/` say what production needs, and their commands run.

No container engine can run images on this machine (no registry to pull a base image from),
so the image is not built here; instead the files are parsed and their commands run directly:
the migration of the compose file and of the Kubernetes Job against a fresh PostgreSQL
database, then the server with the compose file's (and the Deployment's) arguments, probed at
the paths the Deployment's probes name and with the Dockerfile's and compose file's health
check commands, scraped across its two workers, and stopped as an orchestrator stops it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from dotenv import dotenv_values
from prometheus_client.parser import text_string_to_metric_families

from harness.proxy import free_port
from harness.redis_db import REDIS_URL

DEPLOY = Path(__file__).resolve().parents[1] / "examples" / "deploy"
BIN = str(Path(sys.executable).parent)
"""First on PATH, as /opt/cockpit/bin is in the image: the files' commands say just `cockpit`."""


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def manifests() -> dict[str, dict[str, Any]]:
    """The Kubernetes objects by kind (one of each here)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, f"two {document['kind']} objects"
            found[document["kind"]] = document
    return found


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def container(kind: str) -> dict[str, Any]:
    spec = manifests()[kind]["spec"]["template"]["spec"]
    (found,) = spec["containers"]
    return found


def json_args(text: str) -> list[str]:
    """An instruction's exec form (`["a", "b"]`)."""
    return json.loads(text)


def test_the_files_declare_what_production_needs() -> None:
    steps = dockerfile()
    stages = [args for op, args in steps if op == "FROM"]
    assert stages == ["python:3.11-slim AS build", "python:3.11-slim"]  # multi-stage: the build stays behind
    assert any(op == "COPY" and args.startswith("--from=build") for op, args in steps)
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("EXPOSE", "4000") in steps
    entrypoint = json_args(next(args for op, args in steps if op == "ENTRYPOINT"))
    command = json_args(next(args for op, args in steps if op == "CMD"))
    assert entrypoint == ["cockpit"] and command[:1] == ["serve"] and command[command.index("--port") + 1] == "4000"
    assert "/health/liveliness" in next(args for op, args in steps if op == "HEALTHCHECK")

    services = compose()["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["serve"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["serve"]["deploy"]["replicas"] == 2
    assert all("healthcheck" in services[name] for name in ("postgres", "redis", "serve"))
    assert all(services[name]["env_file"] == ["cockpit.env"] for name in ("migrate", "serve"))
    assert set(dotenv_values(DEPLOY / "cockpit.env.example")) >= {"DATABASE_URL", "REDIS_URL", "COCKPIT_SECRET_KEY", "COCKPIT_MASTER_KEY", "COCKPIT_METRICS_TOKEN"}

    objects = manifests()
    job, server = container("Job"), container("Deployment")
    assert job["command"] == ["cockpit", "db", "upgrade"]
    assert server["command"] + server["args"] == ["cockpit", *services["serve"]["command"]]  # one serve command everywhere
    assert server["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    (port,) = server["ports"]
    assert port["containerPort"] == int(server["args"][server["args"].index("--port") + 1])
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] == port["name"]
    assert objects["Service"]["spec"]["selector"] == objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert objects["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
    sources = {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in server["envFrom"]}
    assert sources == {objects["ConfigMap"]["metadata"]["name"], objects["Secret"]["metadata"]["name"]}
    assert set(objects["Kustomization"]["resources"]) == {path.name for path in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}


def test_the_commands_migrate_serve_and_answer_the_probes(postgres_database_url: str, tmp_path: Path) -> None:
    environ = {**os.environ, **dotenv_values(DEPLOY / "cockpit.env.example"), "DATABASE_URL": postgres_database_url, "REDIS_URL": REDIS_URL, "TMPDIR": str(tmp_path), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    services = compose()["services"]

    for command in (["cockpit", *services["migrate"]["command"]], container("Job")["command"]):  # the second finds nothing to do
        migrated = subprocess.run(command, env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stdout.startswith("database at revision")

    port = free_port()
    args = ["cockpit", *services["serve"]["command"]]
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    base = f"http://127.0.0.1:{port}"
    probes = container("Deployment")
    readiness, liveness = probes["readinessProbe"]["httpGet"]["path"], probes["livenessProbe"]["httpGet"]["path"]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen([shutil.which("cockpit", path=environ["PATH"]), *args[1:]], env=environ, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(base + readiness, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert httpx.get(base + liveness, timeout=5).json() == {"status": "alive"}
        for check in (json_args(next(a for op, a in dockerfile() if op == "HEALTHCHECK").split("CMD", 1)[1].strip()), services["serve"]["healthcheck"]["test"][1:]):
            probe = [part.replace("127.0.0.1:4000", f"127.0.0.1:{port}") for part in check]
            probe[0] = sys.executable if probe[0] == "python" else probe[0]
            assert subprocess.run(probe, timeout=30).returncode == 0, shlex.join(probe)

        with httpx.Client(base_url=base, timeout=10) as client:  # new connections: both workers take some
            for _ in range(20):
                assert client.get(liveness, headers={"Connection": "close"}).status_code == 200
            scraped = client.get("/metrics", headers={"Authorization": f"Bearer {environ['COCKPIT_METRICS_TOKEN']}"})
        assert scraped.status_code == 200
        counts = {
            tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(scraped.text) for sample in family.samples
            if sample.name == "cockpit_http_requests_total"
        }
        assert counts[(("method", "GET"), ("route", liveness), ("status", "200"))] == 22  # the 20, the probe before them, the Dockerfile's health check
        assert list(tmp_path.glob("cockpit-metrics-*")), "serve --workers 2 keeps its metrics in a directory of its own"
    finally:
        server.send_signal(signal.SIGTERM)  # as Kubernetes and compose stop a container
        stopped = server.wait(60)
    assert stopped == 0, log.read_text()
    assert not list(tmp_path.glob("cockpit-metrics-*")), "the metrics directory outlived the server"

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(entries) >= 20 and len(entries) >= len(lines) - 2, "--log-format json writes JSON lines (a warning before logging starts may not be)"
    access = [entry for entry in entries if entry["logger"] == "uvicorn.access" and liveness in entry["message"]]
    assert len(access) >= 20 and all(entry.get("request_id") for entry in access)
    assert len({entry["request_id"] for entry in access}) == len(access)
    assert environ["COCKPIT_MASTER_KEY"] not in log.read_text() and environ["COCKPIT_METRICS_TOKEN"] not in log.read_text()

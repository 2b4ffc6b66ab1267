"""The deployment files agree with the code: compose, Dockerfile, .env.example and CI."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from dotenv import dotenv_values

from watcher.core.settings import SECRETS, VARIABLES, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


@cache
def _yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name} is not a YAML mapping"
    return data


def _service(name: str) -> dict[str, Any]:
    service = _yaml("docker-compose.yml")["services"][name]
    assert isinstance(service, dict)
    return service


def _mongo_healthcheck() -> str:
    test = _service("mongo")["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def _watcher_uri() -> str:
    uri = _service("watcher")["environment"]["MONGO_URI"]
    assert isinstance(uri, str)
    return uri


@cache
def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per build stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages: list[list[tuple[str, str]]] = [[]]
    for line in re.sub(r"\\\n", " ", text).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def _final(keyword: str) -> list[str]:
    """Arguments of every ``keyword`` instruction in the final (runtime) stage."""
    return [args for k, args in _dockerfile_stages()[-1] if k == keyword]


def _anywhere(keyword: str) -> list[str]:
    return [args for stage in _dockerfile_stages() for k, args in stage if k == keyword]


def _exec_form(keyword: str) -> list[str]:
    """The last ``keyword`` instruction, which must be in exec (JSON array) form."""
    form = json.loads(_final(keyword)[-1])
    assert isinstance(form, list)
    return [str(part) for part in form]


def _env_example_lines() -> list[tuple[str, str]]:
    """Every ``NAME=value`` line of .env.example, commented out or not."""
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    return [(m[1], m[2]) for m in map(ENV_LINE.match, lines) if m]


def _ci_job(name: str) -> dict[str, Any]:
    job = _yaml(".github/workflows/ci.yml")["jobs"][name]
    assert isinstance(job, dict)
    return job


def _ci_script(name: str) -> str:
    return "\n".join(str(step.get("run", "")) for step in _ci_job(name)["steps"])


def test_mongo_runs_as_a_replica_set() -> None:
    """MongoDB starts with --replSet rs0, so change streams are available."""
    command = _service("mongo")["command"]
    assert "--replSet" in command
    assert command[command.index("--replSet") + 1] == "rs0"


def test_mongo_healthcheck_initiates_and_waits_for_a_primary() -> None:
    """The health check initiates the replica set and is healthy only with a primary."""
    check = _mongo_healthcheck()
    assert "rs.initiate" in check
    assert "isWritablePrimary" in check
    assert "rs0" in check


def test_replica_set_member_is_the_host_the_worker_connects_to() -> None:
    """The member name in rs.initiate is the host and set name in the worker's MONGO_URI."""
    uri = urlsplit(_watcher_uri())
    assert f"host: '{uri.netloc}'" in _mongo_healthcheck()
    assert parse_qs(uri.query)["replicaSet"] == ["rs0"]


def test_watcher_waits_for_a_healthy_mongo() -> None:
    """The worker starts only once MongoDB reports a writable primary."""
    assert _service("watcher")["depends_on"]["mongo"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["mongo", "watcher"])
def test_services_restart_unless_stopped(service: str) -> None:
    """Both services come back after a crash or a reboot."""
    assert _service(service)["restart"] == "unless-stopped"


def test_the_container_log_is_a_log() -> None:
    """No tty: the worker writes plain log lines, not console redraws, into `compose logs`."""
    watcher = _service("watcher")
    assert "tty" not in watcher and "stdin_open" not in watcher
    assert "--no-console" not in str(watcher.get("command", ""))  # no need: no terminal


def test_watcher_mounts_the_data_folder() -> None:
    """./data on the host is /app/data in the container, where the worker's folders live."""
    assert "./data:/app/data" in _service("watcher")["volumes"]


def test_watcher_mongo_uri_is_valid_for_the_settings() -> None:
    """The compose MONGO_URI names the replica set and passes the worker's own validation."""
    uri = _watcher_uri()
    assert "replicaSet=rs0" in uri
    assert load_settings({"MONGO_URI": uri}).mongo_uri == uri


def test_a_published_metrics_port_reaches_the_worker() -> None:
    """Inside a container loopback is the container's own: the image and compose listen on
    every interface (compose's setting wins over a .env copied from .env.example)."""
    assert _service("watcher")["environment"]["METRICS_HOST"] == "0.0.0.0"
    assert any("METRICS_HOST=0.0.0.0" in line for line in _final("ENV"))
    assert load_settings({"METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"


def test_env_file_is_optional() -> None:
    """compose reads .env when present and starts without one."""
    assert {"path": ".env", "required": False} in _service("watcher")["env_file"]


def test_compose_documents_the_polling_switch() -> None:
    """The polling switch named in docker-compose.yml is a variable the worker reads."""
    assert "WATCHFILES_FORCE_POLLING" in (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "WATCHFILES_FORCE_POLLING" in VARIABLES


def test_env_example_names_exactly_the_settings_variables() -> None:
    """Every variable in .env.example is read by the worker, and every one is documented
    (with the ``*_FILE`` form of each secret)."""
    files = {f"{name}_FILE" for name in SECRETS}
    assert {name for name, _ in _env_example_lines()} == set(VARIABLES) | files


def test_env_example_loads_to_the_defaults() -> None:
    """.env.example is valid for python-dotenv and its values are the code's defaults."""
    values = {k: v for k, v in dotenv_values(ROOT / ".env.example").items() if v is not None}
    assert load_settings(values) == Settings()


def test_env_example_leaves_the_embedded_store_on() -> None:
    """MONGO_URI is only commented out in .env.example: a copy of it runs on SQLite."""
    assert "MONGO_URI" not in dotenv_values(ROOT / ".env.example")


def test_env_example_connection_strings_are_accepted() -> None:
    """Every example MONGO_URI in .env.example passes the worker's validation."""
    examples = [value for name, value in _env_example_lines() if name == "MONGO_URI"]
    assert len(examples) >= 3
    for uri in examples:
        assert load_settings({"MONGO_URI": uri}).mongo_uri == uri


def test_dockerfile_healthcheck_runs_watcher_health() -> None:
    """The container health check is `watcher health`, in exec form."""
    (healthcheck,) = _final("HEALTHCHECK")
    assert json.loads(healthcheck.partition("CMD")[2]) == ["watcher", "health"]


def test_dockerfile_runs_as_non_root() -> None:
    """The final stage switches to a user that is not root."""
    user = _final("USER")[-1].partition(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_installs_the_locked_dependencies() -> None:
    """Dependencies come from uv.lock as locked (--frozen), without the dev group."""
    syncs = [shlex.split(run) for run in _anywhere("RUN") if "uv sync" in run]
    assert syncs
    for words in syncs:
        assert "--frozen" in words
        assert "--no-dev" in words


def test_the_image_and_the_scripts_install_bytecode() -> None:
    """The image runs with PYTHONDONTWRITEBYTECODE=1, so the build writes every .pyc
    (UV_COMPILE_BYTECODE=1 for uv sync); the scripts sync with --compile-bytecode."""
    assert any("UV_COMPILE_BYTECODE=1" in env.split() for env in _anywhere("ENV"))
    uv = (ROOT / "scripts" / "_uv.sh").read_text()
    assert "sync --frozen --quiet --compile-bytecode" in uv and "compileall" in uv
    for script in ("run", "test", "bench", "check"):
        assert 'source "$(dirname "$0")/_uv.sh"' in (ROOT / "scripts" / script).read_text()


def test_dockerfile_runs_the_worker_as_pid_1() -> None:
    """ENTRYPOINT and CMD in exec form make up `watcher run`, with unbuffered output."""
    assert _exec_form("ENTRYPOINT") + _exec_form("CMD") == ["watcher", "run"]
    assert any("PYTHONUNBUFFERED=1" in env.split() for env in _final("ENV"))


def test_default_folders_land_on_the_volume() -> None:
    """Every default folder is relative and under data/, the volume below the working dir."""
    workdir = PurePosixPath(_final("WORKDIR")[-1])
    volumes = [v for args in _final("VOLUME") for v in json.loads(args)]
    assert str(workdir / "data") in volumes
    defaults = Settings()
    for folder in (
        defaults.inbound_dir,
        defaults.outbound_dir,
        defaults.archive_dir,
        defaults.failed_dir,
        defaults.state_dir,
    ):
        assert not folder.is_absolute()
        assert folder.parts[0] == "data"


def test_ci_has_the_three_jobs() -> None:
    """CI runs the checks, the MongoDB suite and the compose stack."""
    assert set(_yaml(".github/workflows/ci.yml")["jobs"]) == {"checks", "mongodb", "compose"}


@pytest.mark.parametrize(
    ("job", "commands"),
    [
        ("checks", ["./scripts/check", "./scripts/test"]),
        ("mongodb", ["./scripts/test"]),
    ],
)
def test_ci_jobs_use_the_project_scripts(job: str, commands: list[str]) -> None:
    """CI calls the same scripts a developer runs."""
    for command in commands:
        assert command in _ci_script(job)


@pytest.mark.parametrize("job", ["checks", "mongodb"])
def test_ci_tests_on_python_311(job: str) -> None:
    """The suites run on Python 3.11, the oldest the project supports."""
    versions = [s["with"]["python-version"] for s in _ci_job(job)["steps"] if "with" in s]
    assert versions == ["3.11"]


def test_ci_mongo_job_runs_the_mongodb_tests() -> None:
    """Job 2 starts a replica set and names it in WATCHER_TEST_MONGO_URI."""
    uri = _ci_job("mongodb")["env"]["WATCHER_TEST_MONGO_URI"]
    assert "replicaSet=rs0" in uri
    assert "directConnection=true" in uri
    script = _ci_script("mongodb")
    assert "--replSet rs0" in script
    assert "rs.initiate" in script


def test_ci_compose_job_runs_the_stack_end_to_end() -> None:
    """Job 3 validates, starts, seeds, waits for sync, and always tears down."""
    job = _ci_job("compose")
    script = _ci_script("compose")
    for command in (
        "docker compose config",
        "docker compose up",
        "--wait",
        "watcher seed",
        "watcher status --json",
        "docker compose logs",
    ):
        assert command in script
    teardown = job["steps"][-1]
    assert teardown["if"] == "always()"
    assert "docker compose down --volumes" in teardown["run"]


DOCS = (
    "README.md",
    "Dockerfile",
    "docker-compose.yml",
    ".env.example",
    *sorted(str(page.relative_to(ROOT)) for page in (ROOT / "docs").glob("*.md")),
)
MONGO_URIS = re.compile(r"mongodb://[^\s`'\"]+")


def test_no_file_points_at_a_document_that_does_not_exist() -> None:
    """Every ``something.md`` that the docs and deployment files name is in the repository
    (named from the repository's root, or from the naming file's folder)."""
    for name in DOCS:
        for target in re.findall(r"[\w./-]+\.md\b", (ROOT / name).read_text()):
            found = (ROOT / target).exists() or ((ROOT / name).parent / target).exists()
            assert found, f"{name} points at {target}, which does not exist"


def test_the_compose_mongodb_has_one_spelling_per_side() -> None:
    """Inside compose: the service name; from the host: localhost with directConnection."""
    inside = _service("watcher")["environment"]["MONGO_URI"]
    for name in DOCS:
        for uri in MONGO_URIS.findall((ROOT / name).read_text()):
            host = urlsplit(uri).hostname
            if host == "mongo":
                assert uri == inside, f"{name}: {uri} differs from the compose file's {inside}"
            if host == "localhost":
                options = parse_qs(urlsplit(uri).query)
                assert options.get("directConnection") == ["true"], f"{name}: {uri}"
                assert options.get("replicaSet") == ["rs0"], f"{name}: {uri}"


def test_the_metrics_port_example_is_the_same_everywhere() -> None:
    """One example port (9108) in the README, .env.example and the compose file."""
    ports = {
        port
        for name in DOCS
        for port in re.findall(r"(?:METRICS_PORT\D{0,12}|:)(9\d{3})\b", (ROOT / name).read_text())
    }
    assert ports - {"9090"} == {"9108"}  # 9090: Prometheus itself (profile monitoring)


def test_compose_waits_for_the_stop_grace() -> None:
    """Compose's stop_grace_period leaves the worker its STOP_GRACE_SECONDS plus a second
    to exit before SIGKILL."""
    period = _service("watcher")["stop_grace_period"]
    assert period.endswith("s")
    assert float(period.removesuffix("s")) > Settings().stop_grace_seconds + 1


def test_the_monitoring_profile_mounts_what_ships() -> None:
    """Prometheus and Grafana come up only with --profile monitoring, with the shipped
    rules, scrape configuration, provisioning and dashboard."""
    for name in ("prometheus", "grafana"):
        service = _service(name)
        assert service["profiles"] == ["monitoring"]
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            assert not source.startswith(".") or (ROOT / source).exists(), volume


def test_uv_is_found_in_tools_without_reinstalling(tmp_path: Path) -> None:
    """With uv only in .tools/bin (installed there once), the scripts use it and say nothing."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "_uv.sh", tmp_path / "scripts" / "_uv.sh")
    fake_uv = tmp_path / ".tools" / "bin" / "uv"
    fake_uv.parent.mkdir(parents=True)
    fake_uv.write_text('#!/bin/sh\necho "uv $*" >> "$(dirname "$0")/calls"\n')
    fake_uv.chmod(0o755)
    bare_path = "/usr/bin:/bin"  # no uv, and a python3 without the uv module
    result = subprocess.run(
        ["bash", "-c", 'source scripts/_uv.sh && echo "${UV[@]}"'],
        cwd=tmp_path,
        env={"PATH": bare_path, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ".tools/bin/uv"
    assert "installing" not in result.stderr
    calls = (fake_uv.parent / "calls").read_text().splitlines()
    assert calls[0] == "uv sync --frozen --quiet --compile-bytecode"

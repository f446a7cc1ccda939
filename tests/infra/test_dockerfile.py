"""The Dockerfile, .dockerignore and compose.yaml, read as text (no Docker engine here)."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dockerfile_reader import Instruction, Stage, parse

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
BASE_IMAGE = "python:3.11-slim"


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE)


@pytest.fixture(scope="module")
def builder(stages: list[Stage]) -> Stage:
    return stages[0]


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


def _pyproject_dependencies() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return list(tomllib.load(file)["project"]["dependencies"])


def _runs(stage: Stage) -> str:
    return "\n".join(run.arguments for run in stage.all("RUN"))


# --- stages ----------------------------------------------------------------------------


def test_multi_stage_build_on_slim_python(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    # Same base in both: the venv copied across keeps a valid interpreter path.
    assert {stage.base for stage in stages} == {BASE_IMAGE}
    assert all(stage.name for stage in stages)


def test_runtime_stage_copies_only_the_venv_and_the_personas(runtime: Stage) -> None:
    copies = [copy.arguments for copy in runtime.all("COPY")]
    assert copies == ["--from=builder /opt/venv /opt/venv", "personas /app/personas"]
    assert not runtime.all("ADD")


# --- what the image installs -----------------------------------------------------------


def _requirements_script(builder: Stage) -> str:
    match = re.search(r'python -c "([^"]*tomllib[^"]*)" > (\S+)', _runs(builder))
    assert match, "the builder does not generate its requirements from pyproject.toml"
    return match[1]


def test_generated_requirements_are_pyprojects_dependencies(builder: Stage) -> None:
    script = _requirements_script(builder)
    # Run the Dockerfile's own one-liner where it runs in the image: next to pyproject.toml.
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == _pyproject_dependencies()


def test_builder_installs_the_project_itself(builder: Stage) -> None:
    runs = _runs(builder)
    assert re.search(r"pip install (?:-\S+ )*\.(?:\s|$)", runs), "no `pip install .`"
    assert "pip install -r /tmp/runtime-requirements.txt" in runs
    copied = " ".join(copy.arguments for copy in builder.all("COPY"))
    assert "pyproject.toml" in copied
    assert "requirements" not in copied, "a separate requirements file from the context"
    assert "[dev]" not in runs, "dev extras in the image"
    assert "-e " not in runs, "an editable install points at the builder's source tree"


def test_builder_copies_every_package_pyproject_ships(builder: Stage) -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        find = tomllib.load(file)["tool"]["setuptools"]["packages"]["find"]
    packages = {pattern.rstrip("*") for pattern in find["include"]}
    copied = {copy.arguments.split()[0] for copy in builder.all("COPY")}
    assert packages <= copied, f"packages missing from the image: {sorted(packages - copied)}"


# --- how it runs -----------------------------------------------------------------------


def _user(runtime: Stage) -> Instruction:
    user = runtime.last("USER")
    assert user is not None, "the image runs as root"
    return user


def test_runs_as_a_non_root_user(runtime: Stage) -> None:
    user = _user(runtime)
    name = user.arguments.split(":")[0]
    assert name not in ("root", "0")
    # Nothing after the switch runs as root.
    after = runtime.instructions[runtime.instructions.index(user) + 1 :]
    assert not [i for i in after if i.keyword in ("RUN", "USER")]


def test_entrypoint_is_personabridge_run(runtime: Stage) -> None:
    entrypoint, cmd = runtime.last("ENTRYPOINT"), runtime.last("CMD")
    assert entrypoint is not None
    assert cmd is not None
    assert (entrypoint.exec_form() or []) + (cmd.exec_form() or []) == ["personabridge", "run"]


def test_listens_on_all_interfaces_inside(runtime: Stage) -> None:
    env = " ".join(e.arguments for e in runtime.all("ENV"))
    assert "PERSONABRIDGE_WEB__HOST=0.0.0.0" in env
    assert "PERSONABRIDGE_WEB__PORT=8080" in env
    assert [e.arguments for e in runtime.all("EXPOSE")] == ["8080"]


def _healthcheck_command(runtime: Stage) -> list[str]:
    healthcheck = runtime.last("HEALTHCHECK")
    assert healthcheck is not None, "no HEALTHCHECK"
    _, _, command = healthcheck.arguments.partition("CMD ")
    form = Instruction("CMD", command).exec_form()
    assert form is not None, "HEALTHCHECK CMD is not in exec form"
    return form


def test_healthcheck_asks_healthz_with_python_not_curl(runtime: Stage) -> None:
    command = _healthcheck_command(runtime)
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2]
    assert "curl" not in " ".join(command)


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "healthy"),
    [pytest.param(200, True, id="ok"), pytest.param(503, False, id="store-down")],
)
def test_healthcheck_command_follows_healthz(
    runtime: Stage,
    health_server: http.server.HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    healthy: bool,
) -> None:
    monkeypatch.setattr(_Health, "status", status)
    _, script = _healthcheck_command(runtime)[1:]
    env = {**os.environ, "PERSONABRIDGE_WEB__PORT": str(health_server.server_address[1])}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=30, check=False
    )
    assert (result.returncode == 0) is healthy


# --- .dockerignore ---------------------------------------------------------------------


def _dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_dockerignore_lets_in_only_what_the_dockerfile_copies(stages: list[Stage]) -> None:
    patterns = _dockerignore_patterns()
    assert patterns[0] == "*", ".dockerignore should start by excluding everything"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {
        source.rstrip("/")
        for stage in stages
        for copy in stage.all("COPY")
        if not copy.arguments.startswith("--from=")
        for source in copy.arguments.split()[:-1]
    }
    assert copied <= allowed, f"copied but ignored: {sorted(copied - allowed)}"
    assert allowed - copied <= {"Dockerfile", ".dockerignore"}, "let in but never copied"


# --- compose.yaml ----------------------------------------------------------------------


def test_compose_file_basics_as_text() -> None:
    text = COMPOSE.read_text()
    assert "PERSONABRIDGE_STORE__SQLITE_PATH: /data/" in text
    assert "./personas:/app/personas:ro" in text
    assert '"8080:8080"' in text
    assert re.search(r"^volumes:\n  data:", text, re.MULTILINE)


def test_compose_file_structure() -> None:
    yaml = pytest.importorskip("yaml")  # PyYAML comes with the dev tools (moto), not ours
    compose = yaml.safe_load(COMPOSE.read_text())
    (service,) = compose["services"].values()
    assert service["build"] == "."
    assert service["ports"] == ["8080:8080"]
    assert service["env_file"] == [{"path": ".env", "required": False}]
    env = service["environment"]
    assert env["PERSONABRIDGE_STORE__KIND"] == "sqlite"
    assert env["PERSONABRIDGE_STORE__SQLITE_PATH"].startswith("/data/")
    assert env["PERSONABRIDGE_WEB__HOST"] == "0.0.0.0"
    volumes = service["volumes"]
    assert "data:/data" in volumes
    assert f"./personas:{env['PERSONABRIDGE_PERSONAS_DIR']}:ro" in volumes
    assert "data" in compose["volumes"]

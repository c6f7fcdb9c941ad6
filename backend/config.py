"""The one Settings object. Nothing else in PruneScope reads os.environ.

Every field can be set through an environment variable with the ``PRUNESCOPE_`` prefix,
e.g. ``PRUNESCOPE_DATA_DIR=/srv/prunescope`` or ``PRUNESCOPE_PORT=9000``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class Settings(BaseSettings):
    """Runtime configuration (documented in README, section Configuration)."""

    model_config = SettingsConfigDict(env_prefix="PRUNESCOPE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("prunescope-data"),
        description="Folder holding the SQLite database and the artifact store by default.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means sqlite:///<data_dir>/prunescope.db.",
    )
    artifact_dir: Path | None = Field(
        default=None, description="Artifact store folder; empty means <data_dir>/artifacts."
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Caches shared by every data folder on this machine (the architecture "
        "listing, built once per installed timm/torchvision/plug-ins); empty means "
        "~/.cache/prunescope.",
    )
    artifact_url: str = Field(
        default="",
        description="fsspec URL of the artifact store (e.g. file:///shared/artifacts, "
        "s3://bucket/prefix) when workers run on other hosts; empty means artifact_dir.",
    )
    executor: Literal["local", "celery"] = Field(
        default="local",
        description="Where jobs run: 'local' = spawned worker processes of the server; "
        "'celery' = `prunescope worker` processes on any host, fed through broker_url.",
    )
    broker_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Celery broker (executor=celery)."
    )
    broker_timeout: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Seconds a submission waits for the broker before answering 503.",
    )
    workers: int = Field(default=1, ge=1, le=64, description="Local worker processes.")
    device: str = Field(
        default="auto",
        description="'auto' (cuda when available, else cpu), 'cpu' or 'cuda:N'. One that does "
        "not exist is reported by /api/health; the local executor then refuses submissions "
        "(503) and `prunescope worker` does not start (backend/devices.py).",
    )
    torch_threads: int = Field(
        default=1,
        ge=0,
        le=256,
        description="CPU threads per worker process (0 = torch's default). One is fastest for "
        "small models on few cores and leaves a core to the server.",
    )
    warm_embeddings: bool = Field(
        default=True,
        description="Compile (numba) the UMAP code in each idle worker before the first "
        "comparison needs it (about 20 s of one core; 45 s with the large-data path).",
    )
    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8050, ge=1, le=65535, description="Port the server listens on.")
    api_url: str = Field(
        default="",
        description="Base URL the dashboard uses to reach the REST API; "
        "empty means http://<host>:<port>/api.",
    )
    heartbeat_seconds: float = Field(
        default=2.0, gt=0, description="How often a running job writes its heartbeat."
    )
    heartbeat_timeout: float = Field(
        default=30.0,
        gt=0,
        description="A running job whose heartbeat is older than this lost its worker.",
    )
    job_retries: int = Field(
        default=2,
        ge=0,
        le=20,
        description="How often a job whose worker was lost is run again before it fails.",
    )
    orphan_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Artifact files no row names are removed by the server's sweep (at "
        "start-up, then this often; `prunescope gc`) once they were stored longer ago than "
        "this: an upload is stored before its job exists, a job's files before its rows.",
    )
    max_upload_bytes: int = Field(
        default=8 * 2**30,
        ge=1,
        description="Largest accepted upload (checkpoint or dataset) in bytes; larger answer 413.",
    )
    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="API tokens and share links: 'auto' turns authentication on when the server "
        "binds to anything but loopback (127.0.0.1, ::1, localhost); 'on' always; 'off' never "
        "(on a non-loopback address the server then starts with a loud warning).",
    )
    cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="The Secure flag of the dashboard's sign-in and share cookies: 'auto' sets "
        "it when the request came over https (directly or as X-Forwarded-Proto from a proxy).",
    )
    public_url: str = Field(
        default="",
        description="Base URL people reach this server at (e.g. https://prunescope.example.org), "
        "used to write share links; empty means the address of the request.",
    )
    token: str = Field(
        default="",
        description="API token the CLI's client commands (jobs, train, prune, upload, ...) send "
        "to a server with authentication on; same as their --token.",
    )
    max_import_memory: int = Field(
        default=2 * 2**30,
        ge=2**20,
        description="Most memory (bytes) importing one dataset may need, computed from the "
        "upload's headers before any data is read: the arrays as decoded plus the working "
        "copies the import makes. A larger upload is refused with both numbers.",
    )
    worker_max_memory: int = Field(
        default=0,
        ge=0,
        description="Resident memory (bytes) above which a worker stops its job and fails it "
        "with 'ran out of memory while ...' (not retried). 0 = 90% of the memory this machine "
        "or container has.",
    )
    max_params: int = Field(
        default=500_000_000,
        ge=1,
        description="Most parameters a network built from an architecture name and arguments "
        "(train jobs, checkpoint imports) may have. Counted on the meta device (no memory) at "
        "submission, so a larger request is refused with 422 before anything is allocated.",
    )
    max_body_bytes: int = Field(
        default=2**20,
        ge=1024,
        description="Largest accepted request body in bytes, uploads apart (those have "
        "max_upload_bytes); larger answer 413.",
    )
    job_rate_limit: int = Field(
        default=60,
        ge=0,
        description="Job submissions (jobs, sweeps, comparisons, uploads) one token may make per "
        "job_rate_window seconds; more answer 429 with Retry-After. 0 = no limit.",
    )
    job_rate_window: float = Field(
        default=60.0, gt=0, description="The window of job_rate_limit, in seconds."
    )
    db_pool_size: int = Field(
        default=5, ge=1, le=200, description="Pooled database connections per process."
    )
    db_max_overflow: int = Field(
        default=10, ge=0, le=200, description="Extra connections a process may open at peaks."
    )

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'prunescope.db'}"
        if self.artifact_dir is None:
            self.artifact_dir = self.data_dir / "artifacts"
        if self.cache_dir is None:
            self.cache_dir = Path.home() / ".cache" / "prunescope"
        self.cache_dir = self.cache_dir.expanduser().resolve()
        if not self.api_url:
            host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
            self.api_url = f"http://{host}:{self.port}/api"
        return self

    @property
    def loopback(self) -> bool:
        """Whether the server binds only to this machine."""
        return self.host in LOOPBACK_HOSTS

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need a token or a share link (see ``auth``)."""
        return self.auth == "on" or (self.auth == "auto" and not self.loopback)

    @property
    def artifacts(self) -> Path:
        """The artifact folder (always set after validation)."""
        assert self.artifact_dir is not None
        return self.artifact_dir

    @property
    def artifact_location(self) -> str:
        """Where the artifact store lives: artifact_url, else the artifact folder."""
        return self.artifact_url or str(self.artifacts)

    def child_environ(self) -> dict[str, str]:
        """This process's environment with these settings as PRUNESCOPE_* variables: what a
        worker or server started from here needs to read exactly the same settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNESCOPE_")}
        for name, value in self.model_dump(mode="json").items():
            if value is not None:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                env[f"PRUNESCOPE_{name.upper()}"] = text
        return env

    def torch_device(self) -> str:
        """Resolve 'auto' to 'cuda' when a GPU is visible, else 'cpu'."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()

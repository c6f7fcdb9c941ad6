"""The ``prunescope`` command line.

    prunescope serve                 start the API + dashboard on http://127.0.0.1:8050/
    prunescope demo                  train, prune, analyse on built-in digits, then serve
    prunescope train / prune         submit a job to a running server and follow its progress
    prunescope jobs                  list jobs (or cancel one)
    prunescope upload model|dataset  upload a checkpoint or a dataset file and follow its import
    prunescope download MODEL_ID     download a model (safetensors, pt, onnx, prunescope)
    prunescope delete KIND ID        delete a model, comparison, dataset or job (asks first)
    prunescope gc                    remove artifact files no row names (the server does, too)
    prunescope worker --gpu N        run jobs from the Celery broker on GPU N (executor=celery)

Settings come from PRUNESCOPE_* environment variables (see README, Configuration); the flags
here override the most common ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from backend.config import Settings
from frontend.client import (
    DOWNLOAD_FORMATS,
    FINAL_JOB_STATUSES,
    ApiError,
    ApiUnreachableError,
    ClientError,
    JobFailedError,
    RestClient,
)
from frontend.client import MultipartFile as MultipartFile  # re-exported for scripts and tests

DEMO_COMPARISON = "demo: digits_cnn, global magnitude 50% and 90%"
# the demo's stages in order and each one's share of its progress bar (roughly of its time)
DEMO_STAGES: tuple[tuple[str, float], ...] = (("train", 0.3), ("prune", 0.3), ("compare", 0.4))
DATASET_FORMATS = ("npz", "cifar10", "cifar10c", "mnist", "imagefolder")


# One-line failures: a missing file, a job that failed, ... (frontend.client raises them for the
# notebook client too); main() prints them without a traceback.
CliError = ClientError


# ---------------------------------------------------------------------------- API access
class Api(RestClient):
    """The CLI's REST client: :class:`frontend.client.RestClient` (the notebook client's base,
    built on the dashboard's ApiClient) with paths relative to ``/api`` and every failure a
    :class:`CliError` that says in one line what went wrong and what to do."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        token: str = "",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token=token, timeout=timeout, transport=transport)
        self.shown_url = base_url.rstrip("/")

    @contextmanager
    def _one_line(self, method: str, path: str) -> Iterator[None]:
        """Turn the client's exceptions into CliErrors that say what to do."""
        try:
            yield
        except ApiUnreachableError as exc:
            raise CliError(
                f"cannot reach the PruneScope server at {self.shown_url} ({exc.__cause__}); "
                "start it with `prunescope serve` or pass --api"
            ) from exc
        except ApiError as exc:
            hint = ""
            if exc.status == 401:
                hint = " (this server needs a token: --token or PRUNESCOPE_TOKEN)"
            shown = path.removeprefix("/api")
            raise CliError(f"{method} {shown} failed ({exc.status}): {exc.detail}{hint}") from exc

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._one_line(method, path):
            return super().send(method, path, **kwargs)

    def get(self, path: str, **params: Any) -> Any:
        return self._request("GET", f"/api{path}", params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", f"/api{path}", json=body)


def follow_jobs(api: Api, job_ids: list[int], labels: list[str]) -> list[dict[str, Any]]:
    """Show a progress bar per job until all have finished; raise if one did not succeed."""
    return [dict(job) for job in api.follow(job_ids, labels)]


def demo_progress(
    stage: str, fraction: float, stages: Sequence[tuple[str, float]] = DEMO_STAGES
) -> float:
    """Progress of the whole demo, in [0, 1], when ``stage`` is ``fraction`` done: the shares
    of the stages before it plus ``fraction`` (clamped to [0, 1]) of its own share."""
    start = 0.0
    for name, share in stages:
        if name == stage:
            return start + share * min(max(float(fraction), 0.0), 1.0)
        start += share
    raise ValueError(f"stage={stage!r} should be one of {[name for name, _ in stages]}")


class DemoProgress:
    """The demo's one progress bar: every job's progress mapped into its stage's share of the
    bar (:func:`demo_progress`), never moving back. A job's own progress may fall back (the
    compare job restarts its count for each model it analyses), and several jobs each
    counting 0-100% on one bar read as the demo starting over."""

    def __init__(self, stages: Sequence[tuple[str, float]] = DEMO_STAGES) -> None:
        self.stages = tuple(stages)
        self.value = 0.0

    def update(self, stage: str, fraction: float) -> float:
        """The bar's new position after ``stage`` reported ``fraction``."""
        self.value = max(self.value, demo_progress(stage, fraction, self.stages))
        return self.value


def follow_stage(
    api: Api,
    bar: Any,
    progress: DemoProgress,
    stage: str,
    job_ids: Sequence[int],
    labels: Sequence[str],
    poll_s: float = 0.25,
) -> list[dict[str, Any]]:
    """Follow the jobs of one demo stage on the demo's bar until all have ended (the stage's
    progress is their mean); raise :class:`JobFailedError` for one that did not succeed."""
    ids = [int(j) for j in job_ids]
    number = [name for name, _ in progress.stages].index(stage) + 1
    bar.set_description(f"demo {number}/{len(progress.stages)}: {', '.join(labels)}", False)
    done: dict[int, dict[str, Any]] = {}
    while True:
        jobs = [done.get(j) or dict(api.get_job(j)) for j in ids]
        for j in jobs:
            if j["status"] in FINAL_JOB_STATUSES:
                done[int(j["id"])] = j
        fractions = [1.0 if j["status"] == "succeeded" else float(j["progress"]) for j in jobs]
        bar.n = round(100 * progress.update(stage, sum(fractions) / len(fractions)))
        shown = next((j for j in jobs if j["status"] not in FINAL_JOB_STATUSES), jobs[-1])
        bar.set_postfix_str(f"{shown['status']}: {shown['stage']}"[:60], refresh=False)
        bar.refresh()
        if len(done) == len(ids):
            break
        time.sleep(poll_s)
    for job_id in ids:
        if done[job_id]["status"] != "succeeded":
            raise JobFailedError(done[job_id])
    return [done[j] for j in ids]


# ------------------------------------------------------------------------------- server
class BackgroundServer:
    """uvicorn in a thread of this process (the demo drives it through its own API)."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from backend.api.app import create_app

        config = uvicorn.Config(
            create_app(settings), host=settings.host, port=settings.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn")

    def start(self, api: Api, timeout: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started:
                return
            if not self.thread.is_alive():
                raise CliError("the server failed to start (is the port already in use?)")
            time.sleep(0.05)
        raise CliError(f"the server did not start within {timeout:.0f} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k in ("data_dir", "host", "port") if (v := getattr(args, k, None))}
    return Settings(**overrides)


def _api(args: argparse.Namespace) -> Api:
    """The REST client of a client command: --api and --token, else the settings."""
    settings = _settings(args)
    return Api(args.api or settings.api_url, token=getattr(args, "token", None) or settings.token)


# ------------------------------------------------------------------------------ commands
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.api.app import create_app
    from backend.db.session import DatabaseUnavailable

    settings = _settings(args)
    try:
        app = create_app(settings)
    except DatabaseUnavailable as exc:
        raise CliError(str(exc)) from exc
    print(
        f"PruneScope: dashboard http://{settings.host}:{settings.port}/  "
        f"API docs http://{settings.host}:{settings.port}/api/docs  (data: {settings.data_dir}, "
        f"jobs: {settings.executor})"
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker bound to one GPU (or the CPU): one job at a time, acks late."""
    import logging
    import os
    import socket

    if args.gpu is not None:
        # before anything imports torch: this process and its pool child see only that GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = str(args.gpu)
    from celery.signals import worker_process_init

    from backend.db.session import (
        DatabaseUnavailable,
        check_database,
        configure_pool,
        dispose_engines,
        schema_is_current,
    )
    from backend.jobs.celery_app import create_celery, safe_url
    from backend.jobs.celery_app import worker_process_init as init_child
    from backend.jobs.specs import QUEUES

    overrides: dict[str, Any] = {"executor": "celery"}
    if args.device:
        overrides["device"] = args.device
    settings = Settings(**overrides)
    queues = [q for q in args.queues.split(",") if q]
    unknown = [q for q in queues if q not in QUEUES]
    if unknown or not queues:
        raise CliError(f"--queues {args.queues!r}: queues are {', '.join(QUEUES)}")
    # a device that does not exist would fail every job it takes: refuse to start instead
    from backend.devices import device_problem, gpu_problem

    if args.gpu is not None and settings.device == "auto":
        problem = gpu_problem(args.gpu)
    else:
        problem = device_problem(settings.device, "--device" if args.device else None)
    if problem is not None:
        raise CliError(f"{problem}. The worker did not start")
    configure_pool(1, 2)  # one job at a time needs few connections
    try:
        check_database(settings.database_url)
        deadline = time.monotonic() + args.wait_for_schema
        while not schema_is_current(settings.database_url):
            if time.monotonic() > deadline:
                raise CliError(
                    f"the database at {safe_url(settings.database_url)} is not at the current "
                    "schema; start `prunescope serve` once (it applies the migrations)"
                )
            time.sleep(1.0)
    except DatabaseUnavailable as exc:
        raise CliError(str(exc)) from exc
    # the pool child opens its own connections: none may be inherited through the fork
    dispose_engines()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_celery(settings)
    worker_process_init.connect(init_child(settings), weak=False)
    tag = f"gpu{args.gpu}" if args.gpu is not None else (args.device or "auto")
    name = args.name or f"prunescope-{tag}-{os.getpid()}@{socket.gethostname()}"
    print(
        f"PruneScope worker {name}: queues {','.join(queues)}, broker "
        f"{safe_url(settings.broker_url)}, database {safe_url(settings.database_url)}",
        flush=True,
    )
    app.worker_main(
        [
            "worker",
            f"--hostname={name}",
            f"--queues={','.join(queues)}",
            "--concurrency=1",
            "--pool=prefork",
            f"--loglevel={args.loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


def run_demo_pipeline(
    api: Api, epochs: int, finetune_epochs: int, fresh: bool, corruptions: list[str] | None = None
) -> int:
    """Train, prune at 50% and 90%, analyse; returns the comparison id."""
    if not fresh:
        for comp in api.get("/comparisons")["data"]:
            if comp["name"] == DEMO_COMPARISON:
                print(f"Reusing the existing demo comparison {comp['id']} (--fresh to rebuild).")
                return int(comp["id"])
    datasets = {d["name"]: d for d in api.get("/datasets")["data"]}
    dataset = datasets.get("digits") or api.post("/datasets", {"builtin": "digits"})
    print(f"Dataset: digits ({dataset['n_train']} train / {dataset['n_test']} test, 8x8)")
    # one bar for the whole demo (DemoProgress), not a bar per job counting 0-100% each
    bar = api.progress_bar(total=100, desc="demo", leave=True, bar_format="{l_bar}{bar}| {postfix}")
    progress = DemoProgress()
    try:
        train = api.post(
            "/jobs",
            {
                "kind": "train",
                "spec": {
                    "dataset_id": dataset["id"],
                    "architecture": "digits_cnn",
                    "epochs": epochs,
                    "name": "digits_cnn",
                },
            },
        )
        (train,) = follow_stage(api, bar, progress, "train", [train["id"]], ["train digits_cnn"])
        original = train["result"]["model_id"]
        prunes = [
            api.post(
                "/jobs",
                {
                    "kind": "prune",
                    "spec": {
                        "model_id": original,
                        "method": "global_magnitude",
                        "sparsity": s,
                        "finetune": {"epochs": finetune_epochs},
                    },
                },
            )
            for s in (0.5, 0.9)
        ]
        prunes = follow_stage(
            api, bar, progress, "prune", [j["id"] for j in prunes], ["prune 50%", "prune 90%"]
        )
        pruned = [j["result"]["model_id"] for j in prunes]
        comp = api.post(
            "/comparisons",
            {
                "model_a_id": original,
                "model_b_ids": pruned,
                "name": DEMO_COMPARISON,
                "corruptions": corruptions or None,
            },
        )
        n = len(corruptions or [])
        label = "analyse + compare" + (f" ({n} corruption{'s' * (n != 1)})" if n else "")
        follow_stage(api, bar, progress, "compare", [comp["job_id"]], [label])
    finally:
        bar.close()
    return int(comp["id"])


def _demo_corruptions(text: str) -> list[str]:
    if text == "none":
        return []
    if text == "all":
        from backend.data.corruptions import list_corruptions

        return list_corruptions()
    return [name for name in text.split(",") if name]


def _stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so the server shuts its worker processes down."""
    import signal

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _demo_token(settings: Settings) -> str:
    """With authentication on (a non-loopback --host), the demo drives its server with a write
    token of its own; otherwise none is needed."""
    if not settings.auth_enabled:
        return settings.token
    if settings.token:
        return settings.token
    from backend.api import security
    from backend.db.session import migrate, session_scope

    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        _row, secret = security.create_token(session, "demo")
    return secret


def cmd_demo(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    settings = _settings(args)
    server = BackgroundServer(settings)
    token = _demo_token(settings)
    api = Api(settings.api_url, token=token)
    started = time.monotonic()
    server.start(api)
    try:
        corruptions = _demo_corruptions(args.corruptions)
        comp_id = run_demo_pipeline(api, args.epochs, args.finetune_epochs, args.fresh, corruptions)
        elapsed = time.monotonic() - started
        url = f"http://{settings.host}:{settings.port}/compare?id={comp_id}"
        print(f"\nDemo ready in {elapsed:.1f} s. Open the comparison:\n\n    {url}\n")
        if settings.auth_enabled:
            print(f"This server asks for a token (--host {settings.host}); sign in with:\n")
            print(f"    {token}\n")
        if args.no_serve:
            return 0
        print("Serving; press Ctrl-C to stop.")
        while server.thread.is_alive():
            server.thread.join(0.5)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()


def cmd_train(args: argparse.Namespace) -> int:
    api = _api(args)
    datasets = {d["name"]: d for d in api.get("/datasets")["data"]}
    if args.dataset not in datasets:
        datasets[args.dataset] = api.post("/datasets", {"builtin": args.dataset})
    spec = {
        "dataset_id": datasets[args.dataset]["id"],
        "architecture": args.arch,
        "arch_kwargs": parse_arch_kwargs(args.arch_kw),
        "epochs": args.epochs,
        "lr": args.lr,
        "seed": args.seed,
    }
    job = api.post("/jobs", {"kind": "train", "spec": spec})
    (job,) = follow_jobs(api, [job["id"]], [f"train {args.arch}"])
    print(f"model {job['result']['model_id']}: test accuracy {job['result']['accuracy']:.4f}")
    return 0


def _json_arg(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{flag} is not valid JSON: {exc}") from exc


def _finetune(args: argparse.Namespace) -> dict[str, Any] | None:
    return None if args.finetune_epochs is None else {"epochs": args.finetune_epochs}


def cmd_prune(args: argparse.Namespace) -> int:
    api = _api(args)
    spec = {
        "model_id": args.model,
        "method": args.method,
        "sparsity": args.sparsity,
        "params": _json_arg(args.params, "--params"),
        "finetune": _finetune(args),
        "analyze": args.analyze,
        "include": args.include or [],
        "exclude": args.exclude or [],
    }
    job = api.post("/jobs", {"kind": "prune", "spec": spec})
    (job,) = follow_jobs(api, [job["id"]], [f"prune {args.method} {args.sparsity:.0%}"])
    print(f"model {job['result']['model_id']}: test accuracy {job['result']['accuracy']:.4f}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from backend.pruning import list_methods, method_info

    for name in list_methods():
        info = method_info(name)
        defaults = ", ".join(f"{k}={v}" for k, v in info["defaults"].items()) or "-"
        print(f"{name:<24} {info['schedule']:<16} {info['scope']:<10} {info['doc']}")
        print(f"{'':<24} params: {defaults}")
    return 0


def cmd_architectures(args: argparse.Namespace) -> int:
    from models.registry import model_info, search

    names, total = search(" ".join(args.query), limit=args.limit, offset=args.offset)
    for name in names:
        info = model_info(name)
        print(f"{name:<44} {info['source']:<12} {info['doc'][:70]}")
    shown = f"{args.offset + 1}-{args.offset + len(names)}" if names else "none"
    print(
        f"({shown} of {total}; --offset {args.offset + args.limit} for more)"
        if (args.offset + len(names) < total)
        else f"({shown} of {total})"
    )
    return 0


def _csv(text: str, kind: type) -> list[Any]:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise CliError(f"cannot read {text!r} as a comma-separated list: {exc}") from exc


def cmd_sweep(args: argparse.Namespace) -> int:
    api = _api(args)
    spec = {
        "model_id": args.model,
        "methods": _csv(args.methods, str),
        "sparsities": _csv(args.sparsities, float),
        "seeds": _csv(args.seeds, int),
        "finetune": _finetune(args),
        "analyze": not args.no_analyze,
    }
    sweep = api.post("/jobs", {"kind": "sweep", "spec": spec})
    children = [
        j for j in api.get("/jobs", limit=1000)["data"] if j["parent_job_id"] == sweep["id"]
    ]
    children.sort(key=lambda j: j["id"])
    labels = [
        f"{j['spec']['method']} {j['spec']['sparsity']:.0%} seed {j['spec']['seed']}"
        for j in children
    ]
    try:
        follow_jobs(api, [j["id"] for j in children], labels)
    finally:
        sweep = api.get(f"/jobs/{sweep['id']}")
        print(f"sweep {sweep['id']}: {sweep['status']} ({sweep['stage']})")
    return 0 if sweep["status"] == "succeeded" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    api = _api(args)
    if args.cancel is not None:
        job = api.post(f"/jobs/{args.cancel}/cancel", {})
        print(f"job {job['id']}: {job['status']}")
        return 0
    params = {"status": args.status} if args.status else {}
    jobs = api.get("/jobs", **params)["data"]
    if not jobs:
        print("No jobs yet. Try `prunescope demo`.")
    for j in jobs:
        line = f"{j['id']:>5}  {j['kind']:<8} {j['status']:<10} {j['progress']:>4.0%}  {j['stage']}"
        print(line + (f"  ERROR: {j['error']}" if j["error"] else ""))
    return 0


# ------------------------------------------------------------------------------- delete
DELETE_HELP = textwrap.dedent(
    """\
    rules (README, Deleting):
      model       refused while comparisons use it or models were pruned from it; --cascade
                  deletes those comparisons (with their share links and results) and keeps the
                  pruned models, as originals. Its analyses always go with it.
      comparison  goes with its share links (they stop working) and results; never its models.
      dataset     refused while models, analyses or comparisons use it; --cascade deletes them
                  too (a model as with a model's --cascade).
      job         a finished job's row (a sweep's with its child jobs'); what it made stays.
                  A queued or running job is refused: prunescope jobs --cancel ID first.
    Nothing is deleted while a job works on it. Artifact files no row uses any more are
    removed from the store (the same bytes kept while another row uses them).

    examples:
      prunescope delete comparison 3
      prunescope delete model 7 --cascade --yes"""
)


def _refusal(exc: CliError) -> ApiError | None:
    """The server's 409, when ``exc`` is one."""
    cause = exc.__cause__
    return cause if isinstance(cause, ApiError) and cause.status == 409 else None


def cmd_delete(args: argparse.Namespace) -> int:
    api = _api(args)
    kind, ident, cascade = args.what, args.id, bool(getattr(args, "cascade", False))
    try:
        plan = api.delete(kind, ident, cascade=cascade, dry_run=True)
    except CliError as exc:
        refused = _refusal(exc)
        if refused is None:
            raise
        print(f"prunescope: refused: {refused.detail}", file=sys.stderr)
        if kind in ("model", "dataset") and not cascade:
            try:
                wider = api.delete(kind, ident, cascade=True, dry_run=True)
            except CliError:
                return 1  # a job at work: cascading would not help
            command = f"prunescope delete {kind} {ident} --cascade"
            print(f"With --cascade: {wider['message']}\n  {command}", file=sys.stderr)
        return 1
    print(plan["message"].replace("Would delete", "This deletes", 1))
    if not args.yes:
        try:
            answer = input("Delete? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was deleted (--yes deletes without asking).")
            return 1
    done = api.delete(kind, ident, cascade=cascade)
    print(done["message"])
    return 0


# ------------------------------------------------------------------------------- access
def _access_session(args: argparse.Namespace) -> Any:
    from backend.db.session import DatabaseUnavailable, check_database, migrate, session_scope

    settings = _settings(args)
    try:
        check_database(settings.database_url)
    except DatabaseUnavailable as exc:
        raise CliError(str(exc)) from exc
    migrate(settings.database_url)
    return session_scope(settings.database_url)


def _when(moment: Any) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def cmd_token(args: argparse.Namespace) -> int:
    from backend.api import security

    with _access_session(args) as session:
        if args.token_command == "create":
            try:
                row, secret = security.create_token(session, args.name, read_only=args.read_only)
            except ValueError as exc:
                raise CliError(str(exc)) from exc
            print(f"Token {row.id} ({row.name}, {row.scope}) created. It is shown only now:\n")
            print(f"    {secret}\n")
            print(
                "Send it as 'Authorization: Bearer <token>', set PRUNESCOPE_TOKEN for the CLI, "
                "or paste it into the dashboard's sign-in page."
            )
            return 0
        if args.token_command == "revoke":
            try:
                rows = security.revoke_token(session, args.ident)
            except LookupError as exc:
                raise CliError(str(exc)) from exc
            if not rows:
                print(f"{args.ident}: already revoked")
            for row in rows:
                print(f"Token {row.id} ({row.name}) revoked; it stops working now.")
            return 0
        rows = security.list_tokens(session)
        if not rows:
            print("No tokens yet. Create one: prunescope token create --name NAME")
        for row in rows:
            state = f"revoked {_when(row.revoked_at)}" if row.revoked_at else "live"
            print(
                f"{row.id:>4}  {row.name:<20} {row.scope:<5}  {row.prefix}...  "
                f"created {_when(row.created_at)}  last used {_when(row.last_used_at)}  {state}"
            )
        return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from backend.artifacts import sweep_orphans

    with _access_session(args):  # the database is reachable and migrated
        pass
    print(sweep_orphans(_settings(args), args.grace, dry_run=args.dry_run).message)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from backend.api import security

    with _access_session(args) as session:
        rows = list(security.recent_events(session, args.limit))
        if not rows:
            print("The audit log is empty.")
        for row in reversed(rows):
            print(
                f"{row.at:%Y-%m-%d %H:%M:%S}  {row.status:>3}  {row.action:<10} {row.target:<45} "
                f"{row.actor}  {row.client}"
            )
        return 0


# ------------------------------------------------------------------------------- uploads
def parse_arch_kwargs(items: Sequence[str] | None) -> dict[str, Any]:
    """``["num_classes=10", "hidden=[64, 32]", "act=relu"]`` -> ``{"num_classes": 10, ...}``.

    Each value is read as JSON when it is JSON (numbers, lists, true/false/null), else kept as
    the string it is.

    Raises:
        CliError: for an item without ``=`` or with an empty key, naming it.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--arch-kw {item!r} should be KEY=VALUE, e.g. num_classes=10")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int]) -> list[str]:
    cells = [list(map(str, header)), *[list(map(str, r)) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return [line(cells[0]), *(line(r) for r in cells[1:])]


def layer_table(layers: Sequence[Mapping[str, Any]]) -> list[str]:
    """Lines of a per-layer sparsity table: layer, weight shape, weights, zeros, sparsity."""
    rows = [
        [
            layer.get("name", "?"),
            "x".join(str(d) for d in layer.get("shape") or []) or "-",
            layer.get("n_params", "-"),
            layer.get("n_zero", "-"),
            _percent(layer.get("sparsity")),
        ]
        for layer in layers
    ]
    return _table(["layer", "shape", "weights", "zeros", "sparsity"], rows, {2, 3, 4})


def class_balance_table(summary: Mapping[str, Any]) -> list[str]:
    """Lines of a class-balance table: class, train and test counts, share of all samples."""
    names = list(summary.get("class_names") or [])
    counts = summary.get("class_counts") or {}
    train = list(counts.get("train") or [0] * len(names))
    test = list(counts.get("test") or [0] * len(names))
    total = sum(train) + sum(test)
    rows = []
    for i, name in enumerate(names):
        n_train = train[i] if i < len(train) else 0
        n_test = test[i] if i < len(test) else 0
        share = (n_train + n_test) / total if total else None
        rows.append([f"{i} {name}", n_train, n_test, _percent(share)])
    return _table(["class", "train", "test", "share"], rows, {1, 2, 3})


def model_summary(model: Mapping[str, Any], result: Mapping[str, Any] | None) -> list[str]:
    """What to print about an imported model: the row, and the import's result when known."""
    result = result or {}
    kwargs = json.dumps(model.get("arch_kwargs") or result.get("arch_kwargs") or {})
    n_params, n_nonzero = model.get("n_params"), model.get("n_nonzero")
    lines = [
        f"model #{model['id']} {model.get('name', '')!r}",
        f"  architecture: {model.get('architecture')} {kwargs}",
        f"  format: {result.get('format', '-')}   masks: {result.get('masks', '-')}   "
        f"sparsity: {_percent(result.get('sparsity', model.get('sparsity')))} "
        f"({n_nonzero} of {n_params} parameters nonzero)",
    ]
    if model.get("accuracy") is not None:
        lines.append(f"  test accuracy: {_percent(model['accuracy'])}")
    if model.get("parent_id") is not None:
        lines.append(f"  pruned from: model #{model['parent_id']}")
    if model.get("dataset_id") is not None:
        lines.append(f"  dataset: #{model['dataset_id']}")
    for warning in result.get("warnings") or []:
        lines.append(f"  warning: {warning}")
    if result.get("layers"):
        lines += ["", *layer_table(result["layers"])]
    return lines


def dataset_summary(dataset: Mapping[str, Any], summary: Mapping[str, Any] | None) -> list[str]:
    """What to print about an imported dataset: sizes, input shape, classes and their balance."""
    summary = summary or (dataset.get("params") or {}).get("summary") or {}
    shape = "x".join(str(d) for d in dataset.get("input_shape") or []) or "-"
    lines = [
        f"dataset #{dataset['id']} {dataset.get('name', '')!r} "
        f"({summary.get('format') or dataset.get('source', '-')})",
        f"  {dataset.get('n_train')} train / {dataset.get('n_test')} test samples, "
        f"input shape {shape}, {dataset.get('num_classes')} classes",
    ]
    norm = summary.get("normalisation") or {}
    mean, std = list(norm.get("mean") or []), list(norm.get("std") or [])
    if 0 < len(mean) <= 4:
        lines.append(
            f"  per-channel mean [{', '.join(f'{v:.3f}' for v in mean)}], "
            f"std [{', '.join(f'{v:.3f}' for v in std)}] ({norm.get('split')} split)"
        )
    elif mean and std:
        lines.append(
            f"  {len(mean)} features: means in [{min(mean):.3f}, {max(mean):.3f}], "
            f"stds in [{min(std):.3f}, {max(std):.3f}] ({norm.get('split')} split)"
        )
    for warning in summary.get("warnings") or []:
        lines.append(f"  warning: {warning}")
    names = dataset.get("class_names") or summary.get("class_names") or []
    if summary.get("class_counts"):
        balance = {"class_names": names, "class_counts": summary["class_counts"]}
        lines += ["", *class_balance_table(balance)]
    else:
        lines.append(f"  classes: {', '.join(map(str, names))}")
    return lines


def _import_result(api: Api, answer: Mapping[str, Any], what: str) -> dict[str, Any] | None:
    """Follow the import job of an upload; None for a duplicate (said so)."""
    result = api.follow_import(answer)
    if result is None:
        row_id = answer.get(f"{what}_id")
        print(f"{answer['filename']} was already uploaded as {what} #{row_id} (identical file).")
    return result


def cmd_upload_model(args: argparse.Namespace) -> int:
    api = _api(args)
    answer = api.upload_model_file(
        args.path,
        architecture=args.arch,
        arch_kwargs=parse_arch_kwargs(args.arch_kw),
        parent_id=args.parent,
        dataset_id=args.dataset,
        name=args.name,
    )
    result = _import_result(api, answer, "model")
    model_id = (result or {}).get("model_id", answer.get("model_id"))
    model = api.get(f"/models/{model_id}")
    if result is None and model.get("job_id") is not None:
        job = api.get(f"/jobs/{model['job_id']}")
        if job.get("kind") == "import_model" and job.get("status") == "succeeded":
            result = job.get("result")
    print("\n".join(model_summary(model, result)))
    return 0


def cmd_upload_dataset(args: argparse.Namespace) -> int:
    api = _api(args)
    answer = api.upload_dataset_file(
        args.path,
        format=None if args.format in (None, "auto") else args.format,
        name=args.name,
        test_fraction=args.test_fraction,
        seed=args.seed,
        corruption=args.corruption,
        severity=args.severity,
    )
    result = _import_result(api, answer, "dataset")
    dataset_id = (result or {}).get("dataset_id", answer.get("dataset_id"))
    dataset = api.get(f"/datasets/{dataset_id}")
    print("\n".join(dataset_summary(dataset, (result or {}).get("summary"))))
    return 0


# ----------------------------------------------------------------------------- downloads
DOWNLOAD_HELP = {
    "safetensors": "the weights as a plain state_dict, masks folded into them (a structurally "
    "pruned model: the smaller network's); in your own code: "
    "model.load_state_dict(safetensors.torch.load_file(PATH))",
    "pt": "the same state_dict written by torch.save; torch.load(PATH, weights_only=True)",
    "onnx": "the pruned network as an ONNX graph, for onnxruntime, TensorRT and other runtimes; "
    "no Python class needed",
    "prunescope": "PruneScope's own checkpoint: safetensors with the masks, the architecture's "
    "name and arguments and the model's lineage; models.checkpoint.load_checkpoint(PATH) "
    "rebuilds the pruned model, `prunescope upload model PATH` takes it to another server",
}


def cmd_download(args: argparse.Namespace) -> int:
    api = _api(args)
    got = api.download_model(args.model, args.output, format=args.format)
    print(f"model #{args.model} ({args.format}): {got.path}")
    print(f"  {got.size} bytes, sha256 {got.sha256} (checked against the server's)")
    return 0


# -------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prunescope",
        description="PruneScope: prune PyTorch models and see what pruning did to them.",
        epilog="Settings: PRUNESCOPE_DATA_DIR, PRUNESCOPE_DATABASE_URL, PRUNESCOPE_PORT, ... "
        "(README, Configuration).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def server_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--data-dir",
            help="folder for the database and artifacts "
            "(default ./prunescope-data or PRUNESCOPE_DATA_DIR)",
        )
        sp.add_argument("--host", help="bind address (default 127.0.0.1)")
        sp.add_argument("--port", type=int, help="port (default 8050)")

    def client_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--api", help="REST API base URL (default http://127.0.0.1:8050/api)")
        sp.add_argument(
            "--token",
            help="API token for a server with authentication on (default PRUNESCOPE_TOKEN)",
        )

    sp = sub.add_parser(
        "serve",
        help="serve the REST API (/api) and the dashboard (/)",
        description="Start the server: REST API under /api (docs at "
        "/api/docs), dashboard under /. Jobs run in local worker processes, or, with "
        "PRUNESCOPE_EXECUTOR=celery, on `prunescope worker` processes anywhere (the server "
        "then also watches their heartbeats and requeues jobs of lost workers).",
    )
    server_flags(sp)
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser(
        "worker",
        help="run jobs from the Celery broker on one GPU (executor=celery)",
        description="Start a Celery worker that runs one job at a time on one GPU, taking "
        "job ids from PRUNESCOPE_BROKER_URL and reading/writing the database and artifact store "
        "named by PRUNESCOPE_DATABASE_URL and PRUNESCOPE_ARTIFACT_URL. Start one per GPU "
        "(`--gpu 0`, `--gpu 1`, ...), on as many hosts as you like.",
    )
    sp.add_argument(
        "--gpu", type=int, help="the GPU index this worker uses (sets CUDA_VISIBLE_DEVICES)"
    )
    sp.add_argument(
        "--queues",
        default="gpu,cpu",
        help="queues to take jobs from: gpu (train, prune, analyze, regions), cpu (compare, "
        "ping); default gpu,cpu",
    )
    sp.add_argument("--device", help="override PRUNESCOPE_DEVICE: auto, cpu, cuda")
    sp.add_argument("--name", help="worker name (default prunescope-<gpu>-<pid>@<host>)")
    sp.add_argument(
        "--wait-for-schema",
        type=float,
        default=60.0,
        help="seconds to wait for the server to migrate a new database (default 60)",
    )
    sp.add_argument("--loglevel", default="INFO", help="Celery log level (default INFO)")
    sp.set_defaults(func=cmd_worker)

    sp = sub.add_parser(
        "demo",
        help="train, prune and analyse on built-in digits, then serve",
        description="Start the server, train a small CNN on scikit-learn's "
        "8x8 digits, prune it by global magnitude to 50% and 90% with a short "
        "fine-tune, analyse all three models, print the comparison URL and keep "
        "serving. Progress bars show each job.",
    )
    server_flags(sp)
    sp.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    sp.add_argument(
        "--finetune-epochs",
        type=int,
        default=3,
        help="fine-tuning epochs after pruning (default 3)",
    )
    sp.add_argument(
        "--fresh", action="store_true", help="rebuild even if a demo comparison already exists"
    )
    sp.add_argument(
        "--no-serve", action="store_true", help="stop after printing the URL instead of serving"
    )
    sp.add_argument(
        "--corruptions",
        default="all",
        help="corruptions to evaluate: 'all' (the 15 of CIFAR-10-C, severities 1-5), 'none', "
        "or a comma-separated list",
    )
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser(
        "train",
        help="train a model on a dataset (needs a running server)",
        description="Submit a train job to a running server and follow it.",
    )
    client_flags(sp)
    sp.add_argument("--dataset", default="digits", help="built-in dataset: digits, blobs")
    sp.add_argument(
        "--arch",
        default="digits_cnn",
        help="architecture: digits_cnn, mlp, resnet20, timm/<name> or torchvision/<name> "
        "(`prunescope architectures QUERY` searches them); num_classes, channels and ViT image "
        "sizes come from the dataset",
    )
    sp.add_argument(
        "--arch-kw",
        action="append",
        metavar="KEY=VALUE",
        help="a keyword argument of the architecture, repeatable, read as JSON when it is JSON "
        "(patch_size=4 for a ViT on 32x32 images)",
    )
    sp.add_argument("--epochs", type=int, default=15)
    sp.add_argument("--lr", type=float, default=1e-3)
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser(
        "prune",
        help="prune a model and fine-tune it (needs a running server)",
        description="Submit a prune job to a running server and follow it.",
    )
    client_flags(sp)
    sp.add_argument("--model", type=int, required=True, help="id of the model to prune")
    sp.add_argument(
        "--method",
        default="global_magnitude",
        help="pruning method (`prunescope methods` lists them all)",
    )
    sp.add_argument(
        "--sparsity",
        type=float,
        required=True,
        help="fraction of prunable weights to zero, in [0, 1)",
    )
    sp.add_argument(
        "--params", default="{}", help="method parameters as JSON, e.g. '{\"eps\": 5e-4}'"
    )
    sp.add_argument(
        "--finetune-epochs",
        type=int,
        help="training epochs after/while pruning (default: 3 for one-shot methods, the "
        "parent's training for methods that train from scratch or in rounds)",
    )
    sp.add_argument("--analyze", action="store_true", help="analyse the pruned model afterwards")
    sp.add_argument(
        "--include",
        action="append",
        metavar="PATTERN",
        help="prune only layers whose names match this shell-style pattern ('layer4.*'), "
        "repeatable; default: every Conv1d/2d/3d and Linear",
    )
    sp.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="never prune layers whose names match this pattern ('*.attn.qkv'), repeatable",
    )
    sp.set_defaults(func=cmd_prune)

    sp = sub.add_parser(
        "sweep",
        help="prune one model with methods x sparsities x seeds (needs a running server)",
        description="Submit a sweep: one child prune job per (method, sparsity, seed), each "
        "analysed afterwards, so recall-distortion statistics have populations to work on.",
    )
    client_flags(sp)
    sp.add_argument("--model", type=int, required=True, help="id of the model to prune")
    sp.add_argument(
        "--methods", required=True, help="comma-separated, e.g. global_magnitude,random"
    )
    sp.add_argument("--sparsities", required=True, help="comma-separated, e.g. 0.5,0.8,0.9")
    sp.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    sp.add_argument("--finetune-epochs", type=int, help="as for prune")
    sp.add_argument("--no-analyze", action="store_true", help="do not analyse the pruned models")
    sp.set_defaults(func=cmd_sweep)

    sp = sub.add_parser(
        "methods",
        help="list the pruning methods with their schedule and parameters",
        description="Every registered pruning method: when it prunes (schedule), what its "
        "sparsity counts (scope), its paper, and its parameters with defaults.",
    )
    sp.set_defaults(func=cmd_methods)

    sp = sub.add_parser(
        "architectures",
        help="search the architectures a model can name (built-ins, plug-ins, torchvision, timm)",
        description="Architectures by name, as GET /api/architectures lists them: built-ins "
        "and plug-ins first, then torchvision/<name> and timm/<name>. Every word of QUERY must "
        "occur in the name. Nothing is downloaded: weights come from your checkpoints.",
        epilog="example: prunescope architectures resnet 18",
    )
    sp.add_argument("query", nargs="*", metavar="QUERY", help="words to search for")
    sp.add_argument("--limit", type=int, default=50, help="names per page (50)")
    sp.add_argument("--offset", type=int, default=0, help="names to skip (0)")
    sp.set_defaults(func=cmd_architectures)

    sp = sub.add_parser(
        "upload",
        help="upload a checkpoint or a dataset file (needs a running server)",
        description="Stream a file to a running server (POST /api/models/upload or "
        "/api/datasets/upload) with a progress bar, follow the job that validates and registers "
        "it, and print what was registered. Uploading an identical file again with the same "
        "options returns the existing model or dataset.",
    )
    upload = sp.add_subparsers(dest="what", required=True, metavar="WHAT")
    sp = upload.add_parser(
        "model",
        help="a trained (or pruned) checkpoint: .safetensors, or a state_dict .pt/.pth",
        description="Upload a checkpoint and register it as a model. Accepted: safetensors "
        "files, PruneScope's own checkpoints, and torch.save files holding a state_dict "
        "(optionally nested under state_dict/model_state_dict/model/net). A pickled whole "
        "nn.Module is refused: save model.state_dict() instead. Keys and shapes are checked "
        "against the architecture; pruning masks (*_mask tensors) or exact zeros become the "
        "model's masks, and the per-layer sparsity is printed.",
        epilog="example: prunescope upload model mlp.safetensors --arch mlp "
        "--arch-kw input_shape=[64] --arch-kw num_classes=10 --dataset 1; then its pruned "
        "version: prunescope upload model mlp-pruned.safetensors --parent 1",
    )
    client_flags(sp)
    sp.add_argument("path", metavar="PATH", help="the checkpoint file")
    sp.add_argument(
        "--arch",
        metavar="NAME",
        help="registered architecture the weights belong to: digits_cnn, mlp, resnet20, ... "
        "(not needed for a PruneScope checkpoint, which names its own, for an ONNX file, or "
        "with --parent: the server then takes the parent's architecture and its arguments)",
    )
    sp.add_argument(
        "--arch-kw",
        action="append",
        metavar="KEY=VALUE",
        help="a keyword argument of the architecture, repeatable; the value is read as JSON "
        "when it is JSON (num_classes=10, hidden=[128,64]), else as text",
    )
    sp.add_argument(
        "--parent",
        type=int,
        metavar="ID",
        help="id of the original model this checkpoint was pruned from (for comparisons); "
        "without --arch, its architecture and arguments are the checkpoint's too",
    )
    sp.add_argument(
        "--dataset",
        type=int,
        metavar="ID",
        help="id of the dataset it was trained on; its test accuracy is measured on upload "
        "(default: the parent's dataset)",
    )
    sp.add_argument("--name", help="model name (default: the file name)")
    sp.set_defaults(func=cmd_upload_model)

    sp = upload.add_parser(
        "dataset",
        help="a dataset file: .npz, CIFAR-10(-C), MNIST idx archive, image-folder zip",
        description="Upload a dataset file and register it. Formats: npz (arrays X and y, or "
        "x_train/y_train[/x_test/y_test], optional class_names), cifar10 (the python tar.gz), "
        "cifar10c (<corruption>.npy files with labels.npy, as a tar or zip), mnist (idx files in "
        "a zip or tar), imagefolder (<class>/<image>.png|jpg in a zip or tar). Archives are "
        "checked before anything is extracted. The class balance is printed.",
        epilog="example: prunescope upload dataset digits.npz --test-fraction 0.25",
    )
    client_flags(sp)
    sp.add_argument("path", metavar="PATH", help="the dataset file")
    sp.add_argument(
        "--format",
        choices=("auto", *DATASET_FORMATS),
        default="auto",
        help="file format (default: auto, detected from the contents)",
    )
    sp.add_argument("--name", help="dataset name, unique (default: the file name)")
    sp.add_argument(
        "--test-fraction",
        type=float,
        metavar="F",
        help="fraction held out as the test split when the file has no test split (default 0.2)",
    )
    sp.add_argument("--seed", type=int, help="seed of that split (default 0)")
    sp.add_argument(
        "--corruption",
        metavar="C",
        help="CIFAR-10-C: the corruption to import as the test split, e.g. gaussian_noise "
        "(default: all in the archive)",
    )
    sp.add_argument(
        "--severity",
        type=int,
        choices=range(1, 6),
        metavar="S",
        help="CIFAR-10-C: severity 1-5 (default: all five)",
    )
    sp.set_defaults(func=cmd_upload_dataset)

    sp = sub.add_parser(
        "download",
        help="download a model: safetensors, pt, onnx or PruneScope's checkpoint",
        description=textwrap.fill(
            "Download a model from a running server (GET /api/models/ID/download) with a "
            "progress bar. The file is checked against the sha256 the server sends "
            "(X-Content-SHA256) and its length before it is moved into place; a download that "
            "does not match leaves nothing behind.",
            width=88,
        ),
        epilog="formats:\n"
        + "\n".join(
            textwrap.fill(
                text, width=88, initial_indent=f"  {name:<12} ", subsequent_indent=" " * 15
            )
            for name, text in DOWNLOAD_HELP.items()
        )
        + "\n\nexample: prunescope download 7 --format onnx -o pruned.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    client_flags(sp)
    sp.add_argument("model", type=int, metavar="MODEL_ID", help="id of the model")
    sp.add_argument(
        "--format",
        choices=tuple(DOWNLOAD_FORMATS),
        default="safetensors",
        help="file format, see below (default: safetensors)",
    )
    sp.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="the file to write (replaced if it exists), or a folder to write the server's file "
        "name into (default: that name in the current folder)",
    )
    sp.set_defaults(func=cmd_download)

    sp = sub.add_parser(
        "delete",
        help="delete a model, comparison, dataset or job (asks first)",
        description=textwrap.fill(
            "Delete a model, comparison, dataset or job on a running server (DELETE "
            "/api/KINDs/ID). It first says what would go (a dry run) and asks for confirmation; "
            "--yes skips the question. When the server refuses because something uses it, the "
            "refusal names it and says what --cascade would delete.",
            width=88,
        ),
        epilog=DELETE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    client_flags(sp)
    sp.add_argument(
        "what",
        choices=("model", "comparison", "dataset", "job"),
        metavar="KIND",
        help="model, comparison, dataset or job",
    )
    sp.add_argument("id", type=int, metavar="ID", help="its id")
    sp.add_argument(
        "--cascade",
        action="store_true",
        help="models and datasets: also delete the comparisons (and, for a dataset, the "
        "models and analyses) that use it",
    )
    sp.add_argument("-y", "--yes", action="store_true", help="delete without asking")
    sp.set_defaults(func=cmd_delete)

    sp = sub.add_parser(
        "jobs",
        help="list jobs, or cancel one",
        description="List jobs with status and progress (newest first).",
    )
    client_flags(sp)
    sp.add_argument("--status", help="only jobs with this status")
    sp.add_argument("--cancel", type=int, metavar="ID", help="cancel job ID")
    sp.set_defaults(func=cmd_jobs)

    token = sub.add_parser(
        "token",
        help="create, list or revoke API tokens",
        description="API tokens for a server with authentication on (any --host but loopback, "
        "or PRUNESCOPE_AUTH=on). A read-only token may call every GET route; a write token may "
        "also submit jobs, upload and share. Only a token's sha256 is stored: the token itself "
        "is printed once, at creation. Works on the database directly (run it where the "
        "server's settings are).",
    )
    tsub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    sp = tsub.add_parser("create", help="create a token and print it (once)")
    sp.add_argument("--name", required=True, help="who or what uses it, e.g. alice or ci")
    sp.add_argument("--read-only", action="store_true", help="GET routes only")
    server_flags(sp)
    sp = tsub.add_parser("list", help="every token: id, name, scope, last use, revoked or live")
    server_flags(sp)
    sp = tsub.add_parser("revoke", help="revoke a token by id, or every token of a name")
    sp.add_argument("ident", metavar="ID_OR_NAME")
    server_flags(sp)
    token.set_defaults(func=cmd_token)

    sp = sub.add_parser(
        "audit",
        help="show the audit log",
        description="The newest audit events, oldest first: every write to the API, every "
        "sign-in and share-link opening, and every refused request (401, 403, 413, 429), with "
        "who (token or share link), when, what and the answer.",
    )
    sp.add_argument("--limit", type=int, default=50, help="how many events (default 50)")
    server_flags(sp)
    sp.set_defaults(func=cmd_audit)

    sp = sub.add_parser(
        "gc",
        help="remove artifact files no row names",
        description="Remove the artifact files that no dataset, model, analysis, result or "
        "unfinished job names and that were stored longer ago than --grace, with stale "
        "temporary files; the server does the same at start-up and then periodically. Works on "
        "the database and artifact store directly (run it where the server's settings are).",
    )
    sp.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="keep files stored more recently than this "
        "(default PRUNESCOPE_ORPHAN_GRACE_SECONDS, 3600)",
    )
    sp.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    server_flags(sp)
    sp.set_defaults(func=cmd_gc)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"prunescope: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

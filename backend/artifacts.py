"""Which artifacts rows reference, and removing those none does (README, "Deleting").

The artifact store (backend/storage.py) holds blobs by sha256; database rows name them. This
module is the one place that knows where (:func:`referenced_shas`, :func:`references`):

- every ``*_sha`` column of every table (:func:`sha_columns`): a dataset's arrays and the
  upload it was read from, a model's checkpoint and upload, an analysis' per-sample table,
  features and corruption records, a comparison result's table, a region result's segments and
  samples, an attribution's JSON. A column added later counts from the day it is added;
- JSON naming an artifact under a key that ends in "sha" (:data:`JSON_SHA_COLUMNS`): an
  imported ONNX model's graph (``models.arch_kwargs["graph_sha"]``), a region map
  (``region_results.summary["slice"]["artifact_sha"]``), a dataset's params, a pruned model's
  start weights (``models.pruning_params["learning"]["start_sha"]``, the learning distance's);
- the spec and result of every job that is not final (:data:`JOB_JSON_COLUMNS`): a queued
  import's ``upload_sha``, before any other row names it. A finished job's are history.

Besides rows, the conversion caches of downloads (``derived/``, :func:`derived_index`) name
converted files; those go with their checkpoint.

Who removes what, always only what no row references (asked again just before removing):

- a deletion (backend/deletion.py): what the deleted rows named;
- a job that ended failed or cancelled (:func:`release_job`: the runner, the lost-worker
  recovery of backend/jobs/lifecycle.py, the cancel of a queued job): an import's upload
  bytes, and the blobs the failed attempt stored first;
- :func:`sweep_orphans`: every blob no row names that was stored longer ago than a grace
  period (``Settings.orphan_grace_seconds``: an upload is stored before its job row exists, a
  job stores its files before its rows commit), and temporary files as old; at server start-up
  and then periodically (:class:`Sweeper`), and by ``prunescope gc``.

Bytes stored again (the same file uploaded twice) count as just stored, so a sweep leaves them
alone while the new job is being written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, ColumnElement, String, cast, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import Base, DatasetRow, JobRow, ModelRow, RegionResultRow
from backend.jobs.specs import FINAL_STATUSES
from backend.storage import ArtifactStore

log = logging.getLogger(__name__)

# Conversions of a checkpoint (downloads as onnx, pt, ...) are cached beside the blobs, as
# <store root>/derived/<sha[:2]>/<checkpoint sha>/<key>.json naming the converted file's sha256
# (= backend.api.routes.models.DERIVED_DIR; tests/backend/api/test_delete.py keeps them equal).
DERIVED_DIR = "derived"
SHA256 = re.compile(r"[0-9a-f]{64}")
IN_CHUNK = 500  # values per IN (...) clause
IMPORT_KINDS = ("import_dataset", "import_model")  # jobs whose spec's upload_sha is theirs
ENDED = ("failed", "cancelled")  # the final statuses after which a job's leftovers go


# where rows name artifacts ------------------------------------------------------------------
def sha_columns() -> list[Column[Any]]:
    """Every ``*_sha`` column of every table: each holds the sha256 of an artifact."""
    return [
        column
        for table in Base.metadata.tables.values()
        for column in table.columns
        if column.name.endswith("_sha")
    ]


# JSON columns that name artifacts under keys ending in "sha", at any depth.
JSON_SHA_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (
    ModelRow.arch_kwargs,
    ModelRow.pruning_params,
    RegionResultRow.summary,
    DatasetRow.params,
)
# a job's spec and result count while the job is not final
JOB_JSON_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (JobRow.spec, JobRow.result)


def json_shas(value: Any) -> Iterator[str]:
    """The sha256 digests a JSON value names: strings of 64 hex digits under keys ending in
    "sha", at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                if str(key).endswith("sha") and SHA256.fullmatch(item):
                    yield item
            else:
                yield from json_shas(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_shas(item)


def chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    """``values`` sorted, in lists short enough for one ``IN (...)``."""
    items = sorted(values)
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def _open_jobs(except_jobs: Collection[int]) -> ColumnElement[bool]:
    """Jobs not final (but those of ``except_jobs``: a job asking about its own upload)."""
    where = JobRow.status.not_in(FINAL_STATUSES)
    return where & JobRow.id.not_in(list(except_jobs)) if except_jobs else where


def referenced_shas(
    session: Session, among: Iterable[str] | None = None, *, except_jobs: Collection[int] = ()
) -> set[str]:
    """Every artifact sha256 a row names (``among``: only these are looked for, which is
    quicker): ``*_sha`` columns, the JSON of :data:`JSON_SHA_COLUMNS`, and the spec and result
    of every job that is not final, but those of ``except_jobs``."""
    wanted = None if among is None else set(among)
    found: set[str] = set()
    for column in sha_columns():
        if wanted is None:
            found.update(v for v in session.scalars(select(column).where(column.is_not(None))))
            continue
        for chunk in chunks(wanted):
            found.update(session.scalars(select(column).where(column.in_(chunk))))
    for attribute in JSON_SHA_COLUMNS:
        for value in session.scalars(select(attribute).where(attribute.is_not(None))):
            found.update(json_shas(value))
    for spec, result in session.execute(select(*JOB_JSON_COLUMNS).where(_open_jobs(except_jobs))):
        found.update(json_shas(spec))
        found.update(json_shas(result))
    found.discard("")
    return found if wanted is None else found & wanted


def references(session: Session, sha: str, *, except_jobs: Collection[int] = ()) -> int:
    """How often rows name artifact ``sha``: once per ``*_sha`` column of a row holding it,
    once per JSON value of :data:`JSON_SHA_COLUMNS` naming it, once per spec or result of a job
    not final (but those of ``except_jobs``). Zero: nothing needs the bytes."""
    total = 0
    for column in sha_columns():
        count = select(func.count()).select_from(column.table).where(column == sha)
        total += int(session.scalar(count) or 0)
    for attribute in JSON_SHA_COLUMNS:
        # the text search only narrows the rows; json_shas decides
        rows = select(attribute).where(cast(attribute, String).contains(sha))
        total += sum(sha in set(json_shas(value)) for value in session.scalars(rows))
    mentions = or_(*(cast(a, String).contains(sha) for a in JOB_JSON_COLUMNS))
    jobs = select(*JOB_JSON_COLUMNS).where(_open_jobs(except_jobs), mentions)
    for values in session.execute(jobs):
        total += sum(sha in set(json_shas(value)) for value in values)
    return total


# what the store holds -----------------------------------------------------------------------
def stored_shas(store: ArtifactStore) -> set[str]:
    """The digests of every blob in the store (not its temporary files or conversion index)."""
    return {a.sha for a in store.list_artifacts()}


def _derived_dir(store: ArtifactStore, sha: str) -> str:
    return f"{store.root}/{DERIVED_DIR}/{sha[:2]}/{sha}"


def derived_index(store: ArtifactStore) -> dict[str, set[str]]:
    """The conversion caches: checkpoint sha256 -> the converted files its cache names (a
    cache: no row names them)."""
    if store.is_local:
        found = [(p.parent.name, str(p)) for p in Path(store.root, DERIVED_DIR).glob("??/*/*.json")]
    else:
        names = store.fs.glob(f"{store.root}/{DERIVED_DIR}/??/*/*.json")
        found = [(n.rsplit("/", 2)[-2], n) for n in names]
    index: dict[str, set[str]] = {}
    for checkpoint, where in found:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            raw = Path(where).read_bytes() if store.is_local else store.fs.cat_file(where)
            converted = str(json.loads(raw)["sha"])
            if SHA256.fullmatch(converted):
                index.setdefault(checkpoint, set()).add(converted)
    return index


def derived_shas(store: ArtifactStore) -> set[str]:
    """The converted files the conversion caches name."""
    return set().union(*derived_index(store).values())


# removing -----------------------------------------------------------------------------------
def remove_derived(store: ArtifactStore, sha: str, keep: Collection[str] = ()) -> int:
    """Remove the conversions cached for checkpoint ``sha`` (their index and the converted
    files, unless a row names one: ``keep``); returns how many converted files went. A
    download of an id whose conversion is gone simply builds it again."""
    where = _derived_dir(store, sha)
    if store.is_local:
        folder = Path(where)
        if not folder.is_dir():
            return 0
        indexes = [p.read_bytes() for p in folder.glob("*.json")]
    else:
        if not store.fs.isdir(where):
            return 0
        indexes = [store.fs.cat_file(p) for p in store.fs.glob(f"{where}/*.json")]
    gone = 0
    for raw in indexes:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            converted = str(json.loads(raw)["sha"])
            if SHA256.fullmatch(converted) and converted not in keep:
                gone += int(store.exists(converted))
                store.delete(converted)
    if store.is_local:
        shutil.rmtree(where, ignore_errors=True)
    else:
        store.fs.rm(where, recursive=True)
    return gone


def remove_unreferenced(
    session: Session,
    store: ArtifactStore,
    candidates: Iterable[str],
    *,
    except_jobs: Collection[int] = (),
    keep: Collection[str] = (),
) -> tuple[int, list[str]]:
    """Remove from the store each of ``candidates`` that no row references (asked now, in a
    read that is then ended: call it after the commit that dropped the references), with the
    conversions built from it; ``except_jobs``: jobs whose specs do not count; ``keep``: more
    digests the conversions of a removed checkpoint must not take along. Returns how many
    files were removed and the digests that could not be (logged, left behind)."""
    wanted = set(candidates)
    if not wanted:
        return 0, []
    still = referenced_shas(session, wanted, except_jobs=except_jobs)
    session.rollback()  # end the read: hold no transaction while files go
    removed, failed = 0, []
    for sha in sorted(wanted - still):
        try:
            existed = store.exists(sha)
            store.delete(sha)
            remove_derived(store, sha, keep=still | set(keep))
        except Exception:  # noqa: BLE001 - the rows are gone already: say so, go on
            log.exception("could not remove artifact %s from %s; it is left behind", sha, store)
            failed.append(sha)
            continue
        removed += int(existed)
    return removed, failed


def release_ended(
    session: Session,
    store: ArtifactStore,
    job_ids: Iterable[int],
    *,
    attempt: int | None = None,
    written: Iterable[str] = (),
) -> int:
    """After jobs ended: for each that ended failed or cancelled, remove from the store what
    only it held (an import's upload bytes, and ``written``: the blobs its attempt stored
    first) unless a row references them (another import of the same file, a row that took the
    same bytes). A job that succeeded, went back to the queue, or (``attempt``) has moved on
    to another attempt keeps everything. Returns how many files went."""
    candidates: set[str] = set(written)
    ended = []
    try:
        for job_id in job_ids:
            job = session.get(JobRow, job_id, populate_existing=True)
            if job is None or job.status not in ENDED:
                continue
            if attempt is not None and job.attempts != attempt:
                continue
            ended.append(job_id)
            upload = job.spec.get("upload_sha") if isinstance(job.spec, dict) else None
            if job.kind in IMPORT_KINDS and isinstance(upload, str) and SHA256.fullmatch(upload):
                candidates.add(upload)
        if not ended or not candidates:
            return 0
        removed, _failed = remove_unreferenced(session, store, candidates)
    except Exception:  # noqa: BLE001 - the job's outcome is recorded; a sweep gets the files
        log.warning("jobs %s: could not remove what they left in the store", ended, exc_info=True)
        session.rollback()
        return 0
    if removed:
        log.info("jobs %s ended: removed %d artifact file(s) no row names", ended, removed)
    return removed


def release_job(
    settings: Settings,
    job_id: int,
    *,
    attempt: int | None = None,
    written: Iterable[str] = (),
    store: ArtifactStore | None = None,
) -> int:
    """:func:`release_ended` for one job, in a session of its own. Neither raises: what could
    not be removed is logged, and a later sweep removes it."""
    try:
        with session_scope(settings.database_url) as session:
            store = store or ArtifactStore(settings.artifact_location)
            return release_ended(session, store, [job_id], attempt=attempt, written=written)
    except Exception:  # noqa: BLE001 - the job's outcome is recorded; files can wait
        log.warning("job %s: could not remove what it left in the store", job_id, exc_info=True)
        return 0


# the sweep ----------------------------------------------------------------------------------
@dataclass
class Sweep:
    """What :func:`sweep_orphans` removed (or, for a dry run, would remove)."""

    dry_run: bool
    grace_seconds: float
    removed: int = 0  # artifact files
    removed_bytes: int = 0
    young: int = 0  # unreferenced, but stored within the grace period: kept
    failed: list[str] = field(default_factory=list)
    caches: int = 0  # conversion caches of checkpoints no row names
    temporary: int = 0  # stale temporary files

    @property
    def message(self) -> str:
        verb = "Would remove" if self.dry_run else "Removed"
        text = (
            f"{verb} {self.removed} artifact file{'s' * (self.removed != 1)} "
            f"({self.removed_bytes / 2**20:.1f} MiB) that no row names"
        )
        if self.caches:
            text += f" and {self.caches} conversion cache{'s' * (self.caches != 1)}"
        if self.temporary:
            text += f", {self.temporary} stale temporary file{'s' * (self.temporary != 1)}"
        if self.young:
            text += (
                f"; kept {self.young} that no row names yet, stored within the last "
                f"{self.grace_seconds:g} s"
            )
        if self.failed:
            text += f"; {len(self.failed)} could not be removed (see the log)"
        return text + "."


def sweep_orphans(
    settings: Settings,
    grace_seconds: float | None = None,
    *,
    store: ArtifactStore | None = None,
    dry_run: bool = False,
) -> Sweep:
    """Remove every artifact file no row references (:func:`referenced_shas`) that was last
    stored more than ``grace_seconds`` ago (default ``Settings.orphan_grace_seconds``), the
    conversion caches of checkpoints that went, and temporary files as old.

    What is younger stays: an upload is stored before its job row exists, and a job stores its
    files before its rows commit. ``dry_run`` counts and removes nothing.
    """
    grace = settings.orphan_grace_seconds if grace_seconds is None else float(grace_seconds)
    store = store or ArtifactStore(settings.artifact_location)
    cutoff = time.time() - grace
    listing = list(store.list_artifacts())  # before the rows are read: a new blob is young
    with session_scope(settings.database_url) as session:
        referenced = referenced_shas(session)
    young = {a.sha for a in listing if a.stored_at is None or a.stored_at > cutoff}
    keep = referenced | young
    caches = derived_index(store)
    for checkpoint, converted in caches.items():
        if checkpoint in keep:
            keep |= converted
    stale_caches = [c for c in caches if c not in keep]
    # a blob stored again since it was listed is young again (a local store can tell)
    doomed = {a.sha: a.size for a in listing if a.sha not in keep and _old(store, a.sha, cutoff)}
    sweep = Sweep(dry_run, grace, young=len(young - referenced), caches=len(stale_caches))
    if dry_run:
        sweep.removed, sweep.removed_bytes = len(doomed), sum(doomed.values())
        return sweep
    with session_scope(settings.database_url) as session:
        removed, failed = remove_unreferenced(session, store, doomed, keep=keep)
    sweep.removed, sweep.failed = removed, failed
    sweep.removed_bytes = sum(size for sha, size in doomed.items() if sha not in failed)
    for checkpoint in stale_caches:  # their checkpoint is gone already (or went just now)
        try:
            remove_derived(store, checkpoint, keep=keep)
        except Exception:  # noqa: BLE001
            log.warning("could not remove the conversion cache of %s", checkpoint, exc_info=True)
    sweep.temporary = store.clean_temp(older_than=grace)
    return sweep


def _old(store: ArtifactStore, sha: str, cutoff: float) -> bool:
    """Whether the blob was last stored before ``cutoff`` (asked again, just before removing)."""
    if not store.is_local:
        return True
    try:
        return store.path(sha).stat().st_mtime <= cutoff
    except FileNotFoundError:
        return True


class Sweeper:
    """:func:`sweep_orphans` in a thread of the server: once at start-up, then every grace
    period (at least every minute); a sweep that fails is logged and tried again later."""

    def __init__(self, settings: Settings, store: ArtifactStore | None = None) -> None:
        self.settings, self.store = settings, store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="orphan-sweep", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        interval = max(60.0, self.settings.orphan_grace_seconds)
        while not self._stop.is_set():
            try:
                sweep = sweep_orphans(self.settings, store=self.store)
                if sweep.removed or sweep.temporary or sweep.caches or sweep.failed:
                    log.info("artifact sweep: %s", sweep.message)
            except Exception:  # noqa: BLE001 - the database or the store may be away a while
                log.warning("the artifact sweep failed; trying again later", exc_info=True)
            if self._stop.wait(interval):
                return

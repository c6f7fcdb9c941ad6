"""The client's transport and endpoints: :class:`ApiClient`, its errors, and the credential the
dashboard forwards for its user.

The pages do not build clients themselves: :func:`frontend.app.create_dash_app` calls
:func:`configure` once and the pages call :func:`get_client`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast
from urllib.parse import urlencode

import httpx

from frontend.client.types import (
    DELETE_KINDS,
    EXPERIMENT_SORTS,
    FLIP_CATEGORIES,
    UPLOAD_KINDS,
    AnalysisPublic,
    ArchitecturePublic,
    ArchitecturesPage,
    Attribution,
    ComparisonDryRun,
    ComparisonModelsAdd,
    ComparisonPublic,
    ComparisonView,
    DatasetPublic,
    DeleteKind,
    DeletionPublic,
    ExperimentFacetsPublic,
    ExperimentPublic,
    ExperimentSort,
    ExperimentsPublic,
    FlipCategory,
    FlipsPage,
    FourierPublic,
    Health,
    InstabilityPublic,
    JobDryRun,
    JobKind,
    JobPublic,
    LayersPublic,
    MethodPublic,
    ModelPublic,
    PruningLimitPublic,
    RegionMap,
    RegionResult,
    RegionTableKind,
    RobustnessTable,
    SampleDetail,
    SampleNeighbours,
    SamplesPage,
    SessionInfo,
    ShareCreated,
    SharePublic,
    SimilarityMapPublic,
    Split,
    TableColumns,
    UploadKind,
)

DEFAULT_TIMEOUT_S = 10.0
TABLE_MAX_ROWS = 10_000  # the API's largest page of a /table endpoint


class ApiError(Exception):
    """The API answered with a non-2xx status, or could not be reached.

    Attributes:
        status: HTTP status code; 0 when no answer came back (see :class:`ApiUnreachableError`).
        detail: the ``detail`` string of the error body, or a description of the failure.
        field_errors: for a 422 whose ``detail`` is a list (a dry run, or FastAPI's own body
            validation), each field's message: see :func:`field_errors`.
    """

    def __init__(
        self, status: int, detail: str, field_errors: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"API error {status}: {detail}")
        self.status = status
        self.detail = detail
        self.field_errors: dict[str, str] = dict(field_errors or {})

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        return cls(response.status_code, _error_detail(response), field_errors(response))


class ApiUnreachableError(ApiError):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(0, f"cannot reach the PruneScope API at {base_url}: {reason}")
        self.base_url = base_url


def field_errors(response: httpx.Response) -> dict[str, str]:
    """``{"sparsity": msg, "finetune.epochs": msg, "": msg}`` from a 422 whose ``detail`` is a
    list of ``{"loc", "msg"}`` (a dry run, or FastAPI's own body validation): each ``loc``
    without its leading ``"body"``/``"spec"``, joined by dots; ``""`` for the spec as a whole.
    The first message of a field wins."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return {}
    errors: dict[str, str] = {}
    for item in detail if isinstance(detail, list) else []:
        if not isinstance(item, dict) or "msg" not in item:
            continue
        loc = [str(p) for p in item.get("loc") or []]
        while loc and loc[0] in ("body", "spec"):
            loc = loc[1:]
        errors.setdefault(".".join(loc), str(item["msg"]))
    return errors


def _error_detail(response: httpx.Response) -> str:
    """The human-readable ``detail`` of an error response, whatever its shape."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        # FastAPI validation errors: [{"loc": [...], "msg": "...", ...}, ...]
        messages = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(part) for part in item.get("loc", []))
                messages.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            else:
                messages.append(str(item))
        return "; ".join(messages)
    if detail is not None:
        return str(detail)
    return response.text.strip() or response.reason_phrase


def _api_root(base_url: str) -> str:
    """``base_url`` as the server root (``http://host:8050`` and ``.../api`` both work); the
    paths below always start with ``/api``."""
    root = base_url.rstrip("/")
    return root[: -len("/api")] if root.endswith("/api") else root


def experiment_params(
    sort: ExperimentSort | None = None,
    order: str | None = None,
    ids: Sequence[int] = (),
    method: Sequence[str] = (),
    dataset: Sequence[int] = (),
    architecture: Sequence[str] = (),
    sparsity_min: float | None = None,
    sparsity_max: float | None = None,
    q: str | None = None,
) -> dict[str, Any]:
    """The query of ``GET /api/experiments`` (and its CSV); lists become repeated keys."""
    if sort is not None and sort not in EXPERIMENT_SORTS:
        raise ValueError(f"sort={sort!r} should be one of {', '.join(EXPERIMENT_SORTS)}")
    if order is not None and order not in ("asc", "desc"):
        raise ValueError(f"order={order!r} should be 'asc' or 'desc'")
    return {
        "sort": sort,
        "order": order,
        "id": [int(i) for i in ids],
        "method": [str(m) for m in method],
        "dataset": [int(d) for d in dataset],
        "architecture": [str(a) for a in architecture],
        "sparsity_min": sparsity_min,
        "sparsity_max": sparsity_max,
        "q": q or None,
    }


def _rows(page: Mapping[str, Any]) -> int:
    """How many rows a page holds: its ``data`` records, or its first column's values."""
    if page.get("data") is not None:
        return len(page["data"])
    return len(next(iter((page.get("columns") or {}).values()), []))


# The dashboard's user's credential -------------------------------------------------------------
# The browser holds the user's API token or share link in an http-only cookie (set by /login or
# /s/<token>); the dashboard's callbacks run on the server and call the API on the user's
# behalf, so they forward it, as "Authorization: Bearer", on every request. The names must
# match backend/api/security.py (a test checks).
TOKEN_COOKIE = "prunescope_token"
SHARE_COOKIE = "prunescope_share"

_credential: ContextVar[str] = ContextVar("prunescope_credential", default="")
_credential_source: Callable[[], str | None] | None = None
_forwarded_source: Callable[[], dict[str, str]] | None = None


def set_forwarded_source(source: Callable[[], dict[str, str]] | None) -> None:
    """Where the X-Forwarded-Host/-Proto of the user's browser request come from (frontend.app),
    so that links the API writes (share links) name the address the user reached."""
    global _forwarded_source
    _forwarded_source = source


def set_credential_source(source: Callable[[], str | None] | None) -> None:
    """Where the current user's credential comes from (frontend.app: the Flask request's
    cookies); ``source`` returns None when it cannot tell (outside a request)."""
    global _credential_source
    _credential_source = source


def current_credential() -> str:
    """The credential of the user this thread works for ("" = none)."""
    if _credential_source is not None:
        found = _credential_source()
        if found is not None:
            return found
    return _credential.get()


@contextmanager
def acting_as(credential: str) -> Iterator[None]:
    """Work for the user with ``credential`` (a background thread started by a callback)."""
    token = _credential.set(credential)
    try:
        yield
    finally:
        _credential.reset(token)


class ForwardCredential(httpx.Auth):
    """Adds the current user's credential to each request (unless one is set already)."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        credential = current_credential()
        if credential and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {credential}"
        for name, value in (_forwarded_source() if _forwarded_source else {}).items():
            request.headers.setdefault(name, value)
        yield request


class ApiClient:
    """Synchronous client of the PruneScope REST API: one method per endpoint.

    Every failure is an :class:`ApiError` (the API answered 4xx/5xx: its ``status``,
    ``detail`` and ``field_errors``) or an :class:`ApiUnreachableError` (no answer).

    Args:
        base_url: server root (``http://127.0.0.1:8050``) or API root (``.../api``).
        token: API token of its own, sent as ``Authorization: Bearer`` (scripts); without one
            the dashboard's user's credential is forwarded (:class:`ForwardCredential`).
        timeout: seconds per request.
        transport: an ``httpx`` transport, e.g. ``httpx.MockTransport`` in tests.
    """

    default_timeout = DEFAULT_TIMEOUT_S

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = _api_root(base_url)
        self.timeout = self.default_timeout if timeout is None else timeout
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            transport=transport,
            auth=ForwardCredential(),
            headers=headers,
        )

    @staticmethod
    def credential_key() -> str:
        """Tells users apart in caches: a digest of the current credential ("" = none)."""
        credential = current_credential()
        return hashlib.sha256(credential.encode()).hexdigest()[:16] if credential else ""

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # requests: every call goes through send() -------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request (``path`` from the server root, ``/api/...``); a 2xx response or raise.

        ``params`` that are None are left out; ``kwargs`` go to :meth:`httpx.Client.request`;
        ``stream``: the body is left unread (the caller closes the response).

        Raises:
            ApiUnreachableError: no answer (connection refused, timeout, ...).
            ApiError: a non-2xx answer, with its ``detail`` and ``field_errors``.
        """
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        request = self._http.build_request(method, path, params=clean or None, **kwargs)
        try:
            response = self._http.send(request, stream=stream)
            if not response.is_success:
                response.read()
                response.close()
                raise ApiError.from_response(response)
        except httpx.TransportError as exc:
            raise ApiUnreachableError(self.base_url, str(exc) or type(exc).__name__) from exc
        return response

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`send`, and the answer's JSON."""
        response = self.send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, f"{path} did not return JSON") from exc

    def _list(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        return self._request("GET", path, params=params)["data"]

    def pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        offset: int = 0,
        limit: int = TABLE_MAX_ROWS,
    ) -> Iterator[dict[str, Any]]:
        """The pages of a paged endpoint (``offset``/``limit`` in, ``count`` or ``total`` out:
        tables, flips, samples, architectures) from ``offset`` on, ``limit`` rows each, until
        ``total`` (else ``count``) rows have come or a page comes back empty."""
        while True:
            page = self._request(
                "GET", path, params={**(params or {}), "offset": offset, "limit": limit}
            )
            yield page
            got = _rows(page)
            offset += got
            if got == 0 or offset >= int(page.get("total", page.get("count", 0))):
                return

    def _table_page(
        self, path: str, params: Mapping[str, Any], offset: int, limit: int
    ) -> TableColumns:
        if not 1 <= limit <= TABLE_MAX_ROWS:
            raise ValueError(f"limit={limit} should be in [1, {TABLE_MAX_ROWS}]")
        page = next(self.pages(path, {**params, "format": "columns"}, offset=offset, limit=limit))
        page.setdefault("columns", {})
        return cast(TableColumns, page)

    def _table(self, path: str, params: Mapping[str, Any]) -> TableColumns:
        """Every row of a per-sample table (:meth:`pages` of 10,000), as column -> values."""
        merged: dict[str, list[Any]] = {}
        first: dict[str, Any] = {}
        for page in self.pages(path, {**params, "format": "columns"}):
            first = first or page
            values = page.get("columns") or {}
            for name in dict.fromkeys([*(page.get("column_names") or []), *values]):
                merged.setdefault(name, []).extend(values.get(name) or [])
        rows = len(next(iter(merged.values()), []))
        names = list(first.get("column_names") or merged)
        return {
            "count": int(first.get("count", 0)),
            "offset": 0,
            "limit": rows,
            "column_names": names,
            "columns": merged,
        }

    # access -----------------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /api/health``."""
        return self._request("GET", "/api/health")

    def get_session(self) -> SessionInfo:
        """``GET /api/session``: who the current user is (kind, scope, shared comparison)."""
        return self._request("GET", "/api/session")

    def list_shares(self, comparison_id: int) -> list[SharePublic]:
        """``GET /api/comparisons/{id}/shares``: its live share links."""
        return self._list(f"/api/comparisons/{int(comparison_id)}/shares")

    def create_share(
        self,
        comparison_id: int,
        *,
        label: str = "",
        expires_in_hours: float | None = None,
        view: dict[str, str] | None = None,
    ) -> ShareCreated:
        """``POST /api/comparisons/{id}/shares``; the answer holds the link (shown once), which
        opens ``view`` (the compare page's query without id: b, cls, sel, view settings)."""
        body = {"label": label, "expires_in_hours": expires_in_hours, "view": view or {}}
        return self._request("POST", f"/api/comparisons/{int(comparison_id)}/shares", json=body)

    def revoke_share(self, comparison_id: int, share_id: int) -> SharePublic:
        """``DELETE /api/comparisons/{id}/shares/{share_id}``."""
        path = f"/api/comparisons/{int(comparison_id)}/shares/{int(share_id)}"
        return self._request("DELETE", path)

    # datasets, models, methods, architectures ------------------------------------------------

    def list_datasets(self) -> list[DatasetPublic]:
        """``GET /api/datasets``: the ``data`` list."""
        return self._list("/api/datasets")

    def get_dataset(self, dataset_id: int) -> DatasetPublic:
        """``GET /api/datasets/{id}``."""
        return self._request("GET", f"/api/datasets/{int(dataset_id)}")

    @staticmethod
    def dataset_image_path(dataset_id: int, split: Split, index: int) -> str:
        """Same-origin path of one sample's PNG, for an ``<img src>`` in the browser."""
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r} should be 'train' or 'test'")
        return f"/api/datasets/{int(dataset_id)}/images/{split}/{int(index)}.png"

    def list_models(self) -> list[ModelPublic]:
        """``GET /api/models``: the ``data`` list."""
        return self._list("/api/models")

    def get_model(self, model_id: int) -> ModelPublic:
        """``GET /api/models/{id}``."""
        return self._request("GET", f"/api/models/{int(model_id)}")

    def comparison_models(self, comparison: ComparisonPublic) -> dict[int, ModelPublic]:
        """The comparison's models by id, A first (``GET /api/models/{id}`` each): what its
        pages name, and all a share link may read (``list_models`` is refused to it, and
        lists the whole workspace)."""
        ids = [int(comparison["model_a_id"]), *map(int, comparison["model_b_ids"])]
        return {mid: self.get_model(mid) for mid in dict.fromkeys(ids)}

    @staticmethod
    def upload_path(kind: UploadKind) -> str:
        """Same-origin path the browser posts a ``kind`` file to (multipart, part ``file``)."""
        if kind not in UPLOAD_KINDS:
            raise ValueError(f"kind={kind!r} should be one of {UPLOAD_KINDS}")
        return f"/api/{kind}s/upload"

    def list_methods(self) -> list[MethodPublic]:
        """``GET /api/methods``: the ``data`` list."""
        return self._list("/api/methods")

    def list_corruptions(self) -> list[str]:
        """``GET /api/corruptions``: names of the corruptions (CIFAR-10-C's fifteen)."""
        return [str(name) for name in self._list("/api/corruptions")]

    def list_architectures(
        self, q: str = "", limit: int = 50, offset: int = 0
    ) -> ArchitecturesPage:
        """``GET /api/architectures?q=&limit=&offset=``: one page of the architectures whose
        name holds every word of ``q`` (case-insensitive), built-ins and plug-ins first, then
        torchvision's and timm's.

        ``list_architectures()["data"]`` is the first page. An older API that lists every
        entry and knows no ``q`` (its answer has no ``total``) is searched and paged here the
        same way; a bare name in its list becomes ``{"name": name}``.
        """
        params = {"q": q or None, "limit": limit, "offset": offset}
        body = self._request("GET", "/api/architectures", params=params)
        data = [
            cast(ArchitecturePublic, {"name": a} if isinstance(a, str) else a) for a in body["data"]
        ]
        if "total" in body:
            return {"data": data, "count": len(data), "total": int(body["total"])}
        words = q.lower().split()
        hits = [a for a in data if all(w in str(a["name"]).lower() for w in words)]
        page = hits[offset : offset + limit]
        return {"data": page, "count": len(page), "total": len(hits)}

    # jobs -------------------------------------------------------------------------------------

    def list_jobs(self) -> list[JobPublic]:
        """``GET /api/jobs``: the ``data`` list."""
        return self._list("/api/jobs")

    def get_job(self, job_id: int) -> JobPublic:
        """``GET /api/jobs/{id}``."""
        return self._request("GET", f"/api/jobs/{int(job_id)}")

    def create_job(self, kind: JobKind, spec: Mapping[str, Any]) -> JobPublic:
        """``POST /api/jobs`` with ``{kind, spec}``; returns the created job."""
        body = {"kind": kind, "spec": dict(spec)}
        return self._request("POST", "/api/jobs", json=body)

    def create_sweep(self, spec: Mapping[str, Any]) -> JobPublic:
        """``POST /api/jobs`` with ``{kind: "sweep", spec}``; returns the sweep job.

        Its child prune jobs carry ``parent_job_id`` = the sweep's id; the sweep's own status,
        progress and stage are aggregated from them.
        """
        return self.create_job("sweep", spec)

    def validate_job(self, kind: JobKind, spec: Mapping[str, Any]) -> JobDryRun:
        """``POST /api/jobs?dry_run=true``: the server's own validation, nothing written.

        Returns ``{kind, spec}`` with the spec normalised (defaults filled); a bad spec raises
        :class:`ApiError` (422) whose ``field_errors`` map each spec path to its message.
        """
        body = {"kind": kind, "spec": dict(spec)}
        return self._request("POST", "/api/jobs", params={"dry_run": "true"}, json=body)

    def cancel_job(self, job_id: int) -> JobPublic:
        """``POST /api/jobs/{id}/cancel``; returns the job after the request.

        A queued job is cancelled at once (status "cancelled"); a running one is asked to stop
        (status "cancelling" until its worker notices). Cancelling a sweep cancels its children.

        Raises:
            ApiError: status 409 (detail "Job already finished") when the job had already
                ended, 404 when there is no such job.
        """
        return self._request("POST", f"/api/jobs/{int(job_id)}/cancel")

    # analyses ---------------------------------------------------------------------------------

    def list_analyses(
        self, *, model_id: int | None = None, dataset_id: int | None = None
    ) -> list[AnalysisPublic]:
        """``GET /api/analyses?model_id=&dataset_id=``: the ``data`` list."""
        return self._list("/api/analyses", {"model_id": model_id, "dataset_id": dataset_id})

    def list_comparison_analyses(self, comparison_id: int) -> list[AnalysisPublic]:
        """``GET /api/comparisons/{id}/analyses``: the latest test-split analysis of each of
        the comparison's models, A first."""
        return self._list(f"/api/comparisons/{int(comparison_id)}/analyses")

    def get_analysis(self, analysis_id: int) -> AnalysisPublic:
        """``GET /api/analyses/{id}``."""
        return self._request("GET", f"/api/analyses/{int(analysis_id)}")

    def list_analysis_samples(
        self, analysis_id: int, *, offset: int = 0, limit: int = 100
    ) -> SamplesPage:
        """``GET /api/analyses/{id}/samples?offset=&limit=``: one page with the total count
        (every page: ``pages(f"/api/analyses/{id}/samples")``)."""
        path = f"/api/analyses/{int(analysis_id)}/samples"
        return cast(SamplesPage, next(self.pages(path, offset=offset, limit=limit)))

    def get_analysis_table_page(
        self,
        analysis_id: int,
        *,
        columns: list[str] | None = None,
        label: int | None = None,
        offset: int = 0,
        limit: int = TABLE_MAX_ROWS,
    ) -> TableColumns:
        """``GET /api/analyses/{id}/table?columns=...&label=&format=columns&offset=&limit=``.

        Raises:
            ValueError: when ``limit`` is outside [1, 10000] (the API's page bounds).
            ApiError: 404 for an unknown analysis, 422 for an unknown column.
        """
        path = f"/api/analyses/{int(analysis_id)}/table"
        return self._table_page(path, {"label": label, "columns": columns}, offset, limit)

    def get_analysis_table_columns(
        self, analysis_id: int, *, columns: list[str] | None = None, label: int | None = None
    ) -> dict[str, list[Any]]:
        """Every row of an analysis table, as column name -> values."""
        path = f"/api/analyses/{int(analysis_id)}/table"
        return self._table(path, {"label": label, "columns": columns})["columns"]

    def get_analysis_robustness(self, analysis_id: int) -> RobustnessTable:
        """``GET /api/analyses/{id}/robustness``; :class:`ApiError` 404 (detail "Analysis has no
        corruption results") for a clean-only analysis."""
        return self._request("GET", f"/api/analyses/{int(analysis_id)}/robustness")

    # experiments ------------------------------------------------------------------------------

    def list_experiments(
        self,
        *,
        sort: ExperimentSort | None = None,
        order: str | None = None,
        ids: Sequence[int] = (),
        method: Sequence[str] = (),
        dataset: Sequence[int] = (),
        architecture: Sequence[str] = (),
        sparsity_min: float | None = None,
        sparsity_max: float | None = None,
        q: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> ExperimentsPublic:
        """``GET /api/experiments``: one page of every model of the workspace (lineage, method,
        sparsity and t, accuracies, alpha_t, compression, FLOPs, latency), filtered and sorted
        by the server; ``count`` is the number of matches. Every page: :meth:`experiments`.

        ``method`` "original" stands for the models that were not pruned; ``dataset`` holds
        dataset ids; ``q``: words that must each appear in the name, architecture, method or
        dataset; ``order`` "asc" or "desc" (None: the server's, newest first by id).
        """
        params = experiment_params(
            sort, order, ids, method, dataset, architecture, sparsity_min, sparsity_max, q
        )
        page = next(self.pages("/api/experiments", params, offset=offset, limit=limit))
        return cast(ExperimentsPublic, page)

    def experiments(self, **filters: Any) -> list[ExperimentPublic]:
        """Every model :meth:`list_experiments` matches with these keyword arguments (but
        ``offset`` and ``limit``), in its order: :meth:`pages` of 10,000."""
        params = experiment_params(**filters)
        return [row for page in self.pages("/api/experiments", params) for row in page["data"]]

    @staticmethod
    def experiments_csv_path(**filters: Any) -> str:
        """Same-origin path of ``GET /api/experiments.csv`` with the keyword arguments of
        :meth:`experiments`: every match as a CSV file."""
        params = {k: v for k, v in experiment_params(**filters).items() if v not in (None, [])}
        query = urlencode(params, doseq=True)
        return "/api/experiments.csv" + (f"?{query}" if query else "")

    def get_experiment_facets(self) -> ExperimentFacetsPublic:
        """``GET /api/experiments/facets``: the methods, datasets and architectures in use (with
        their model counts), the sparsity range and the number of models."""
        return self._request("GET", "/api/experiments/facets")

    # comparisons ------------------------------------------------------------------------------

    def list_comparisons(self) -> list[ComparisonPublic]:
        """``GET /api/comparisons``: the ``data`` list."""
        return self._list("/api/comparisons")

    def get_comparison(self, comparison_id: int) -> ComparisonPublic:
        """``GET /api/comparisons/{id}``."""
        return self._request("GET", f"/api/comparisons/{int(comparison_id)}")

    def create_comparison(
        self, model_a_id: int, model_b_ids: list[int], dataset_id: int | None = None, **fields: Any
    ) -> ComparisonPublic:
        """``POST /api/comparisons``; analyses of models not yet analysed are queued.

        ``fields``: ``name``, ``corruptions``, ``severities``, ``embedding`` (None or left out:
        the server's default).
        """
        return self._post_comparison({}, model_a_id, model_b_ids, dataset_id, fields)

    def validate_comparison(
        self, model_a_id: int, model_b_ids: list[int], dataset_id: int | None = None, **fields: Any
    ) -> ComparisonDryRun:
        """``POST /api/comparisons?dry_run=true`` with the body :meth:`create_comparison`
        sends: the server's own validation, nothing written.

        Returns the body normalised (defaults filled); a bad one raises :class:`ApiError`
        (422) whose ``field_errors`` map each field to its message.
        """
        dry_run = {"dry_run": "true"}
        return self._post_comparison(dry_run, model_a_id, model_b_ids, dataset_id, fields)

    def _post_comparison(
        self,
        params: dict[str, str],
        model_a_id: int,
        model_b_ids: list[int],
        dataset_id: int | None,
        fields: dict[str, Any],
    ) -> Any:
        body = {"model_a_id": int(model_a_id), "model_b_ids": [int(b) for b in model_b_ids]}
        extra = {"dataset_id": dataset_id, **fields}
        body |= {k: v for k, v in extra.items() if v is not None}
        return self._request("POST", "/api/comparisons", params=params, json=body)

    def add_comparison_models(self, comparison_id: int, model_b_ids: list[int]) -> ComparisonPublic:
        """``POST /api/comparisons/{id}/models``: add models B; the comparison's new compare
        job (``job_id``) computes only what they need, then its similarity map again."""
        body = {"model_b_ids": [int(b) for b in model_b_ids]}
        path = f"/api/comparisons/{int(comparison_id)}/models"
        return self._request("POST", path, json=body)

    def validate_comparison_models(
        self, comparison_id: int, model_b_ids: list[int]
    ) -> ComparisonModelsAdd:
        """``POST /api/comparisons/{id}/models?dry_run=true``: the server's checks of the
        models :meth:`add_comparison_models` would add, nothing written; a refusal raises
        :class:`ApiError` (422) whose ``field_errors`` name each bad ``model_b_ids.<i>``."""
        body = {"model_b_ids": [int(b) for b in model_b_ids]}
        path = f"/api/comparisons/{int(comparison_id)}/models"
        return self._request("POST", path, params={"dry_run": "true"}, json=body)

    def get_comparison_view(self, comparison_id: int, *, b: int | None = None) -> ComparisonView:
        """``GET /api/comparisons/{id}/view?b=``; ``b`` defaults to the first pruned model."""
        return self._request("GET", f"/api/comparisons/{int(comparison_id)}/view", params={"b": b})

    def list_comparison_flips(
        self,
        comparison_id: int,
        *,
        b: int | None = None,
        category: FlipCategory | None = None,
        label: int | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> FlipsPage:
        """``GET /api/comparisons/{id}/flips``: one page of the samples whose prediction
        changed from A to B (every page: :meth:`pages` of the same path and filters).

        Args:
            comparison_id: the comparison.
            b: pruned model id; the API defaults to the first of ``model_b_ids``.
            category: only this kind of flip; all kinds when None.
            label: only samples whose true class is this index; all classes when None.
            offset: index of the first record of the page.
            limit: page size.
        """
        if category is not None and category not in FLIP_CATEGORIES:
            raise ValueError(f"category={category!r} should be one of {FLIP_CATEGORIES}")
        path = f"/api/comparisons/{int(comparison_id)}/flips"
        params = {"b": b, "category": category, "label": label}
        return cast(FlipsPage, next(self.pages(path, params, offset=offset, limit=limit)))

    def get_comparison_results(self, comparison_id: int, *, b: int | None = None) -> dict[str, Any]:
        """``GET /api/comparisons/{id}/results?b=``: recall distortion, flips, PIE, fragility,
        and the embedding summary (``embedding``: method, seconds, alignment distance)."""
        path = f"/api/comparisons/{int(comparison_id)}/results"
        return cast(dict[str, Any], self._request("GET", path, params={"b": b}))

    def get_comparison_broken(
        self, comparison_id: int, *, corruption: str, severity: int, b: int | None = None
    ) -> dict[str, Any]:
        """``GET /api/comparisons/{id}/broken?corruption=&severity=&b=``: the samples that
        setting broke in B and not in A (``ids``), with each model's fragile count."""
        path = f"/api/comparisons/{int(comparison_id)}/broken"
        params = {"corruption": corruption, "severity": int(severity), "b": b}
        return cast(dict[str, Any], self._request("GET", path, params=params))

    def get_comparison_table_page(
        self,
        comparison_id: int,
        *,
        b: int | None = None,
        columns: list[str] | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> TableColumns:
        """``GET /api/comparisons/{id}/table?b=&columns=...&format=columns&offset=&limit=``.

        Raises:
            ValueError: when ``limit`` is outside [1, 10000] (the API's page bounds).
            ApiError: 409 while the compare job has not finished, 422 for an unknown column.
        """
        path = f"/api/comparisons/{int(comparison_id)}/table"
        return self._table_page(path, {"b": b, "columns": columns}, offset, limit)

    def get_comparison_table_columns(
        self, comparison_id: int, *, b: int | None = None, columns: list[str] | None = None
    ) -> TableColumns:
        """Every row of the comparison table, as column -> values."""
        path = f"/api/comparisons/{int(comparison_id)}/table"
        return self._table(path, {"b": b, "columns": columns})

    def get_comparison_similarity(self, comparison_id: int) -> SimilarityMapPublic:
        """``GET /api/comparisons/{id}/similarity``; :class:`ApiError` 409 until the
        comparison's compare job has finished, 404 for no comparison."""
        return self._request("GET", f"/api/comparisons/{int(comparison_id)}/similarity")

    def get_comparison_sample(
        self, comparison_id: int, index: int, *, b: int | None = None
    ) -> SampleDetail:
        """``GET /api/comparisons/{id}/samples/{index}?b=``: one test sample in A and B.

        Raises:
            ApiError: 404 for an unknown comparison or sample, 409 until the comparison's
                compare job has finished.
        """
        path = f"/api/comparisons/{int(comparison_id)}/samples/{int(index)}"
        return self._request("GET", path, params={"b": b})

    def get_comparison_neighbours(
        self, comparison_id: int, index: int, *, b: int | None = None, k: int | None = None
    ) -> SampleNeighbours:
        """``GET /api/comparisons/{id}/neighbours/{index}?b=&k=``: the sample's k nearest test
        samples in A and in B (default k: the comparison's) and their Jaccard similarity.

        Raises:
            ApiError: 404 for an unknown comparison or sample, 409 until the comparison's
                compare job has finished, 422 for a B outside the comparison or a bad k.
        """
        path = f"/api/comparisons/{int(comparison_id)}/neighbours/{int(index)}"
        return self._request("GET", path, params={"b": b, "k": k})

    def get_attribution(
        self, comparison_id: int, index: int, *, b: int | None = None, patch: int | None = None
    ) -> Attribution:
        """``GET /api/comparisons/{id}/samples/{index}/attribution?b=&patch=``; the other
        parameters at their defaults (stride = patch, fill "mean", every severity).

        Raises:
            ApiError: 409 until a job of kind "attribution" has stored it
                (:meth:`submit_attribution`), 404 for an unknown comparison or sample.
        """
        path = f"/api/comparisons/{int(comparison_id)}/samples/{int(index)}/attribution"
        return self._request("GET", path, params={"b": b, "patch": patch})

    def submit_attribution(
        self, comparison_id: int, index: int, *, b: int | None = None, patch: int | None = None
    ) -> JobPublic:
        """``POST /api/jobs`` with ``{kind: "attribution", spec}``; returns the job to poll."""
        spec = {"comparison_id": int(comparison_id), "index": int(index)}
        extra = {"model_b_id": b, "patch": patch}
        return self.create_job(
            "attribution", spec | {k: int(v) for k, v in extra.items() if v is not None}
        )

    # linear regions ---------------------------------------------------------------------------

    def get_comparison_regions(self, comparison_id: int) -> list[RegionResult]:
        """``GET /api/comparisons/{id}/regions``: the ``data`` list, one entry per model;
        :class:`ApiError` 409 until a ``regions`` job has finished for the comparison."""
        return self._list(f"/api/comparisons/{int(comparison_id)}/regions")

    def get_region_table_columns(
        self, comparison_id: int, model_id: int, which: RegionTableKind = "samples"
    ) -> dict[str, list[Any]]:
        """``GET /api/comparisons/{id}/regions/{model_id}/table?which=``, every row, as column
        name -> values.

        ``segments``: kind, segment, activation_pieces, distinct_patterns, linear_pieces,
        decision_crossings, length, live_neurons, density_per_length, density_per_live_neuron.
        ``samples``: index, label, region_distance, decision_distance, decision_exact,
        local_complexity.
        """
        if which not in ("segments", "samples"):
            raise ValueError(f"which={which!r} should be 'segments' or 'samples'")
        path = f"/api/comparisons/{int(comparison_id)}/regions/{int(model_id)}/table"
        return self._table(path, {"which": which})["columns"]

    def get_region_map(self, comparison_id: int, model_id: int) -> RegionMap:
        """``GET /api/comparisons/{id}/regions/{model_id}/slice``; :class:`ApiError` 404 when
        the model has no region results (or no stored map)."""
        path = f"/api/comparisons/{int(comparison_id)}/regions/{int(model_id)}/slice"
        return self._request("GET", path)

    def create_regions_job(self, comparison_id: int, **spec: Any) -> JobPublic:
        """``POST /api/jobs`` with ``{kind: "regions", spec: {comparison_id, **spec}}``.

        Spec fields (README "Job specs"): ``n_pairs``, ``radius``, ``n_samples``, ``chunks``,
        ``max_pieces``, ``slice_samples``, ``slice_extent``, ``slice_max_regions``.
        """
        return self.create_job("regions", {"comparison_id": int(comparison_id), **spec})

    # layers -----------------------------------------------------------------------------------

    def get_comparison_layers(self, comparison_id: int) -> LayersPublic:
        """``GET /api/comparisons/{id}/layers``: per prunable layer of A and each B, in network
        order (sparsity, kept channels, weight change, CKA, dead ReLUs, weight histograms);
        :class:`ApiError` 404 until a ``layers`` job has finished for the comparison."""
        return self._request("GET", f"/api/comparisons/{int(comparison_id)}/layers")

    def create_layers_job(self, comparison_id: int, **spec: Any) -> JobPublic:
        """``POST /api/jobs`` with ``{kind: "layers", spec: {comparison_id, **spec}}`` (every
        B of the comparison; spec field ``n_samples``, 1000 by default)."""
        return self.create_job("layers", {"comparison_id": int(comparison_id), **spec})

    def get_comparison_fourier(self, comparison_id: int) -> FourierPublic:
        """``GET /api/comparisons/{id}/fourier``: the Fourier heat maps of A and each B (test
        error per 2-D frequency, zero frequency at the centre); :class:`ApiError` 404 until a
        ``fourier`` job has succeeded for the comparison."""
        return self._request("GET", f"/api/comparisons/{int(comparison_id)}/fourier")

    def create_fourier_job(self, comparison_id: int, **spec: Any) -> JobPublic:
        """``POST /api/jobs`` with ``{kind: "fourier", spec: {comparison_id, **spec}}`` (A and
        every B; spec fields ``n_samples`` (200), ``v`` (default 4 sqrt(D / 3072)), ``seed``);
        422 for a dataset that is not images."""
        return self.create_job("fourier", {"comparison_id": int(comparison_id), **spec})

    def get_pruning_limit(self, model_id: int) -> PruningLimitPublic:
        """``GET /api/models/{id}/pruning-limit``: the model's predicted pruning limit and the
        observed one-shot accuracy over sparsity (SCIENCE.md sect. 7); :class:`ApiError` 404
        until a ``pruning_limit`` job has succeeded for the model."""
        return self._request("GET", f"/api/models/{int(model_id)}/pruning-limit")

    def create_pruning_limit_job(self, model_id: int, **spec: Any) -> JobPublic:
        """``POST /api/jobs`` with ``{kind: "pruning_limit", spec: {model_id, **spec}}``
        (spec fields ``iterations``, ``vectors``, ``batches``, ``grid``...; defaults 20, 4,
        4, 20)."""
        return self.create_job("pruning_limit", {"model_id": int(model_id), **spec})

    def get_instability(self, model_id: int) -> InstabilityPublic:
        """``GET /api/models/{id}/instability``: the test error along the linear path between
        two copies trained from the model's rewind point and the error barrier (Frankle et al.,
        ICML 2020; SCIENCE.md sect. 4); :class:`ApiError` 404 until an ``instability`` job has
        succeeded for the model."""
        return self._request("GET", f"/api/models/{int(model_id)}/instability")

    def create_instability_job(self, model_id: int, **spec: Any) -> JobPublic:
        """``POST /api/jobs`` with ``{kind: "instability", spec: {model_id, **spec}}`` (spec
        fields ``points`` (30), ``seeds`` ([1, 2]), ``epochs`` (the model's own)); 422 for a
        model without a rewind point."""
        return self.create_job("instability", {"model_id": int(model_id), **spec})

    # deleting ---------------------------------------------------------------------------------

    def delete(
        self, kind: DeleteKind, ident: int, *, cascade: bool = False, dry_run: bool = False
    ) -> DeletionPublic:
        """``DELETE /api/{kind}s/{id}[?cascade=true][&dry_run=true]`` (README, Deleting).

        ``cascade``: also delete what uses it (models and datasets only); ``dry_run``: the
        answer says what would go, nothing is deleted.

        Raises:
            ApiError: 409 when the server refuses (``detail``: a sentence naming what uses it,
                or the job to cancel first), 404 for no such row.
        """
        if kind not in DELETE_KINDS:
            raise ValueError(f"kind={kind!r} should be one of {DELETE_KINDS}")
        if cascade and kind not in ("model", "dataset"):
            raise ValueError(f"a {kind} has nothing to cascade to: cascade is for models, datasets")
        params = {"cascade": "true" if cascade else None, "dry_run": "true" if dry_run else None}
        return self._request("DELETE", f"/api/{kind}s/{int(ident)}", params=params)

    def delete_model(
        self, model_id: int, *, cascade: bool = False, dry_run: bool = False
    ) -> DeletionPublic:
        """``DELETE /api/models/{id}``: with its analyses; 409 naming the comparisons that use it
        and the models pruned from it unless ``cascade`` (those comparisons go too, the pruned
        models stay as originals)."""
        return self.delete("model", model_id, cascade=cascade, dry_run=dry_run)

    def delete_comparison(self, comparison_id: int, *, dry_run: bool = False) -> DeletionPublic:
        """``DELETE /api/comparisons/{id}``: with its share links and results, never models."""
        return self.delete("comparison", comparison_id, dry_run=dry_run)

    def delete_dataset(
        self, dataset_id: int, *, cascade: bool = False, dry_run: bool = False
    ) -> DeletionPublic:
        """``DELETE /api/datasets/{id}``: 409 naming the models, analyses and comparisons that
        use it unless ``cascade`` (they go too)."""
        return self.delete("dataset", dataset_id, cascade=cascade, dry_run=dry_run)

    def delete_job(self, job_id: int, *, dry_run: bool = False) -> DeletionPublic:
        """``DELETE /api/jobs/{id}``: a finished job's row (what it made stays); 409 while it is
        queued or running (:meth:`cancel_job` first)."""
        return self.delete("job", job_id, dry_run=dry_run)


# The endpoint functions the pages call as f(client, ...): the methods above, unbound.
get_comparison_table_page = ApiClient.get_comparison_table_page
get_comparison_table_columns = ApiClient.get_comparison_table_columns
get_comparison_results = ApiClient.get_comparison_results
get_comparison_similarity = ApiClient.get_comparison_similarity
get_comparison_regions = ApiClient.get_comparison_regions
get_analysis_table_page = ApiClient.get_analysis_table_page
get_analysis_table_columns = ApiClient.get_analysis_table_columns
get_analysis_robustness = ApiClient.get_analysis_robustness
get_region_table_columns = ApiClient.get_region_table_columns
get_region_map = ApiClient.get_region_map
create_regions_job = ApiClient.create_regions_job
get_comparison_layers = ApiClient.get_comparison_layers
get_comparison_fourier = ApiClient.get_comparison_fourier


# The dashboard's shared client ----------------------------------------------------------------
_client: ApiClient | None = None


def configure(api_url: str, *, transport: httpx.BaseTransport | None = None) -> ApiClient:
    """Create the client the pages use (replacing, and closing, any previous one).

    Args:
        api_url: server root or API root, see :class:`ApiClient`.
        transport: optional ``httpx`` transport (tests pass an ``httpx.MockTransport``).
    """
    global _client
    reset()
    _client = ApiClient(api_url, transport=transport)
    return _client


def get_client() -> ApiClient:
    """The client configured by :func:`configure`.

    Raises:
        RuntimeError: when :func:`configure` was never called.
    """
    if _client is None:
        raise RuntimeError("frontend.client.configure(api_url) must be called before get_client()")
    return _client


def reset() -> None:
    """Close and forget the shared client (tests use this to isolate themselves)."""
    global _client
    if _client is not None:
        _client.close()
    _client = None

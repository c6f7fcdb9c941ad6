"""Typed, synchronous client of the PruneScope REST API.

The dashboard reads everything through this client, never through the database, so whatever the
dashboard shows a notebook can fetch too. Responses are returned as the plain JSON dictionaries
the API sends; the ``TypedDict`` classes below only describe their shape for type checkers.

The pages do not build clients themselves: :func:`frontend.app.create_dash_app` calls
:func:`configure` once and the pages call :func:`get_client`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Literal, NotRequired, TypedDict, cast

import httpx

Split = Literal["train", "test"]
JobKind = Literal["train", "prune", "analyze", "attribution"]
UploadKind = Literal["model", "dataset"]
JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
FlipCategory = Literal["correct_to_wrong", "wrong_to_correct", "wrong_to_other_wrong"]

UPLOAD_KINDS: tuple[UploadKind, ...] = ("model", "dataset")
FLIP_CATEGORIES: tuple[FlipCategory, ...] = (
    "correct_to_wrong",
    "wrong_to_correct",
    "wrong_to_other_wrong",
)

DEFAULT_TIMEOUT_S = 10.0


class DatasetPublic(TypedDict):
    """A registered dataset."""

    id: int
    name: str
    source: str
    params: NotRequired[dict[str, Any]]
    num_classes: int
    class_names: list[str]
    input_shape: list[int]
    n_train: int
    n_test: int
    created_at: str


class ModelPublic(TypedDict):
    """A registered model: an original (``parent_id`` null) or a pruned child."""

    id: int
    name: str
    architecture: str
    arch_kwargs: dict[str, Any]
    dataset_id: int | None
    parent_id: int | None
    pruning_method: str | None
    pruning_params: dict[str, Any] | None
    sparsity: float
    n_params: int
    n_nonzero: int
    compression_ratio: float
    accuracy: float | None
    job_id: int | None
    created_at: str
    input_shape: NotRequired[list[int] | None]  # one sample's shape it was proven to accept
    num_classes: NotRequired[int | None]


class JobPublic(TypedDict):
    """A background job and its progress."""

    id: int
    kind: str
    spec: dict[str, Any]
    status: JobStatus
    progress: float
    stage: str
    error: str | None
    result: dict[str, Any] | None
    attempts: NotRequired[int]
    created_at: str
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None


class AnalysisPublic(TypedDict):
    """Per-class metrics of one model on one dataset split."""

    id: int
    model_id: int
    dataset_id: int
    split: str
    accuracy: float
    n_samples: int
    recall: list[float | None]  # None for a class without test samples
    precision: list[float | None]
    support: list[int]
    confusion: list[list[int]]
    created_at: str


class SampleRecord(TypedDict):
    """One sample's prediction in an analysis."""

    index: int
    label: int
    pred: int
    correct: bool
    confidence: float
    probs: NotRequired[list[float]]


class SamplesPage(TypedDict):
    """A page of :class:`SampleRecord`."""

    data: list[SampleRecord]
    count: int
    offset: int
    limit: int


class ComparisonPublic(TypedDict):
    """An original model A compared with one or more pruned models B on a dataset."""

    id: int
    name: str
    dataset_id: int
    model_a_id: int
    model_b_ids: list[int]
    created_at: str


class SessionInfo(TypedDict):
    """``GET /api/session``: the current user."""

    auth: bool
    kind: Literal["local", "token", "share", "anonymous"]
    scope: Literal["none", "read", "write"]
    name: str
    token_id: int | None
    share_id: int | None
    comparison_id: int | None


class SharePublic(TypedDict):
    """A share link of a comparison (its secret is never listed)."""

    id: int
    comparison_id: int
    label: str
    prefix: str
    created_by: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    live: bool


class ShareCreated(SharePublic):
    """A new share link: its secret and URL, shown once."""

    token: str
    url: str


class FlipCounts(TypedDict):
    """How many samples changed outcome between A and B."""

    correct_to_wrong: int
    wrong_to_correct: int
    wrong_to_other_wrong: int


class ComparisonView(TypedDict):
    """Everything the compare page needs for one (A, B) pair."""

    comparison: ComparisonPublic
    dataset: DatasetPublic
    model_a: ModelPublic
    model_b: ModelPublic
    analysis_a: AnalysisPublic
    analysis_b: AnalysisPublic
    confusion_shift: list[list[int]]
    flip_counts: FlipCounts


class FlipRecord(TypedDict):
    """One sample whose prediction differs between A and B."""

    index: int
    label: int
    pred_a: int
    pred_b: int
    category: FlipCategory
    confidence_a: float
    confidence_b: float
    image_url: str | None  # None when the dataset cannot render samples


class FlipsPage(TypedDict):
    """A page of :class:`FlipRecord`; ``count`` is the total matching the filter."""

    data: list[FlipRecord]
    count: int
    offset: int
    limit: int


AttributionState = Literal[
    "none", "queued", "running", "cancelling", "succeeded", "failed", "cancelled"
]
AttributionFill = Literal["mean", "zero"]


class TopClass(TypedDict):
    """One of a model's most probable classes for a sample."""

    label: int
    prob: float


class SampleModelDetail(TypedDict):
    """One model's view of one sample: prediction, top classes, geometry (SCIENCE.md 1)."""

    model_id: int
    pred: int
    correct: bool
    confidence: float
    top5: list[TopClass]  # up to 5, most probable first
    angle: float | None  # angle to the true class, degrees; None when undefined
    length: float
    length_z: float
    margin: float | None  # signed feature-space margin; None when infinite


class SampleCorruptions(TypedDict):
    """The sample under each (corruption, severity) of the analyses, indexed [name][severity]."""

    names: list[str]
    severities: list[int]
    pred_a: list[list[int]]
    pred_b: list[list[int]]
    correct_a: list[list[bool]]
    correct_b: list[list[bool]]


class AttributionStatus(TypedDict):
    """State of the sample's attribution with default parameters ("succeeded": stored)."""

    status: AttributionState
    job_id: int | None
    progress: float | None
    message: str | None
    error: str | None


class SampleDetail(TypedDict):
    """Answer of ``GET /api/comparisons/{id}/samples/{index}``."""

    comparison_id: int
    model_b_id: int
    index: int
    label: int
    image_url: str | None  # None when the dataset cannot render samples
    category: FlipCategory | Literal[""]  # "" when A and B predict the same
    pie: bool
    made_fragile: bool | None  # None when the analyses ran no corruptions
    a: SampleModelDetail
    b: SampleModelDetail
    corruptions: SampleCorruptions | None
    attribution: AttributionStatus


class AttributionValues(TypedDict):
    """Angle, length and margin of the unoccluded sample (None: not finite)."""

    angle: float | None
    length: float | None
    margin: float | None


class AttributionBase(TypedDict):
    a: AttributionValues
    b: AttributionValues


class AttributionDeltas(TypedDict):
    """metric(occluded) - metric(sample) per patch, rows x cols (None: not finite)."""

    angle: list[list[float | None]]
    length: list[list[float | None]]
    margin: list[list[float | None]]


class CorruptedVersion(TypedDict):
    """The sample under one corruption, as the analyses fed it to the models."""

    corruption: str
    severity: int
    image: str  # data:image/png;base64,...
    pred_a: int
    pred_b: int
    correct_a: bool
    correct_b: bool


class Attribution(TypedDict):
    """Answer of ``GET /api/comparisons/{id}/samples/{index}/attribution``."""

    comparison_id: int
    model_b_id: int
    index: int
    label: int
    patch: int
    stride: int
    fill: AttributionFill
    severity: int | None
    grid: list[int]  # [rows, cols]
    rows: list[int]  # top pixel of each grid row's patches
    cols: list[int]  # left pixel of each grid column's patches
    metrics: list[str]  # ["angle", "length", "margin"]
    base: AttributionBase
    a: AttributionDeltas
    b: AttributionDeltas
    corrupted: list[CorruptedVersion]
    job_id: int | None


class Health(TypedDict):
    """Answer of ``GET /api/health``."""

    status: str
    version: str
    database: str
    executor: str


class MethodPublic(TypedDict):
    """A registered pruning method, as ``GET /api/methods`` describes it."""

    name: str
    doc: str  # one line citing the paper
    defaults: dict[str, Any]  # every hyper-parameter with its default (None: computed)
    needs_batch: bool
    scope: str  # "global" | "layer" | "structured": what its sparsity counts
    schedule: str  # "one_shot" | "at_init" | "during_training" | "iterative"
    revives: bool


ArchitectureSource = Literal["builtin", "plugin", "onnx", "torchvision", "timm"]


class ArchitecturePublic(TypedDict):
    """An architecture the registry resolves: its name (``resnet20``, ``timm/resnet18``,
    ``torchvision/mobilenet_v2``), a one-line doc, its keyword arguments and where it comes
    from."""

    name: str
    doc: NotRequired[str]
    defaults: NotRequired[dict[str, Any]]  # keyword arguments with defaults
    required: NotRequired[list[str]]  # keyword arguments without a default
    source: NotRequired[ArchitectureSource]


class ArchitecturesPage(TypedDict):
    """A page of :class:`ArchitecturePublic`: ``count`` entries of the ``total`` matching."""

    data: list[ArchitecturePublic]
    count: int
    total: int


class UploadPublic(TypedDict):
    """Answer of ``POST /api/models/upload`` and ``POST /api/datasets/upload``.

    ``job_id`` is the import job that validates and registers the file (poll it); for a file
    already imported with the same options ``deduplicated`` is true, ``job_id`` null and
    ``model_id`` / ``dataset_id`` name the existing row.
    """

    kind: UploadKind
    sha256: str
    size: int
    filename: str
    format: str
    job_id: int | None
    model_id: int | None
    dataset_id: int | None
    deduplicated: bool


class ApiError(Exception):
    """The API answered with a non-2xx status, or could not be reached.

    Attributes:
        status: HTTP status code; 0 when no answer came back (see :class:`ApiUnreachableError`).
        detail: the ``detail`` string of the error body, or a description of the failure.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"API error {status}: {detail}")
        self.status = status
        self.detail = detail


class ApiUnreachableError(ApiError):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(0, f"cannot reach the PruneScope API at {base_url}: {reason}")
        self.base_url = base_url


def _api_root(base_url: str) -> str:
    """Normalise ``base_url`` to the server root; paths below always start with ``/api``.

    Both ``http://host:8050`` and ``http://host:8050/api`` are accepted.
    """
    root = base_url.rstrip("/")
    if root.endswith("/api"):
        root = root[: -len("/api")]
    return root


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
    """Synchronous client of the PruneScope REST API.

    Args:
        base_url: server root (``http://127.0.0.1:8050``) or API root (``.../api``).
        timeout: seconds per request.
        transport: an ``httpx`` transport, e.g. ``httpx.MockTransport`` in tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = _api_root(base_url)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            auth=ForwardCredential(),
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, params=clean or None, json=json)
        except httpx.TransportError as exc:
            raise ApiUnreachableError(self.base_url, str(exc) or type(exc).__name__) from exc
        if not response.is_success:
            raise ApiError(response.status_code, _error_detail(response))
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, f"{path} did not return JSON") from exc

    def _list(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        body = self._request("GET", path, params=params)
        return cast(list[Any], body["data"])

    # access ---------------------------------------------------------------------------------

    def get_session(self) -> SessionInfo:
        """``GET /api/session``: who the current user is (kind, scope, shared comparison)."""
        return cast(SessionInfo, self._request("GET", "/api/session"))

    def list_shares(self, comparison_id: int) -> list[SharePublic]:
        """``GET /api/comparisons/{id}/shares``: its live share links."""
        return cast(list[SharePublic], self._list(f"/api/comparisons/{comparison_id}/shares"))

    def create_share(
        self, comparison_id: int, *, label: str = "", expires_in_hours: float | None = None
    ) -> ShareCreated:
        """``POST /api/comparisons/{id}/shares``; the answer holds the link (shown once)."""
        body: dict[str, Any] = {"label": label, "expires_in_hours": expires_in_hours}
        return cast(
            ShareCreated,
            self._request("POST", f"/api/comparisons/{comparison_id}/shares", json=body),
        )

    def revoke_share(self, comparison_id: int, share_id: int) -> SharePublic:
        """``DELETE /api/comparisons/{id}/shares/{share_id}``."""
        return cast(
            SharePublic,
            self._request("DELETE", f"/api/comparisons/{comparison_id}/shares/{share_id}"),
        )

    # health ---------------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /api/health``."""
        return cast(Health, self._request("GET", "/api/health"))

    # datasets -------------------------------------------------------------------------------

    def list_datasets(self) -> list[DatasetPublic]:
        """``GET /api/datasets``: the ``data`` list."""
        return self._list("/api/datasets")

    def get_dataset(self, dataset_id: int) -> DatasetPublic:
        """``GET /api/datasets/{id}``."""
        return cast(DatasetPublic, self._request("GET", f"/api/datasets/{int(dataset_id)}"))

    @staticmethod
    def dataset_image_path(dataset_id: int, split: Split, index: int) -> str:
        """Same-origin path of one sample's PNG, for an ``<img src>`` in the browser."""
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r} should be 'train' or 'test'")
        return f"/api/datasets/{int(dataset_id)}/images/{split}/{int(index)}.png"

    # models ---------------------------------------------------------------------------------

    def list_models(self) -> list[ModelPublic]:
        """``GET /api/models``: the ``data`` list."""
        return self._list("/api/models")

    def get_model(self, model_id: int) -> ModelPublic:
        """``GET /api/models/{id}``."""
        return cast(ModelPublic, self._request("GET", f"/api/models/{int(model_id)}"))

    # jobs -----------------------------------------------------------------------------------

    def list_jobs(self) -> list[JobPublic]:
        """``GET /api/jobs``: the ``data`` list."""
        return self._list("/api/jobs")

    def get_job(self, job_id: int) -> JobPublic:
        """``GET /api/jobs/{id}``."""
        return cast(JobPublic, self._request("GET", f"/api/jobs/{int(job_id)}"))

    def create_job(self, kind: JobKind, spec: dict[str, Any]) -> JobPublic:
        """``POST /api/jobs`` with ``{kind, spec}``; returns the created job."""
        return cast(
            JobPublic, self._request("POST", "/api/jobs", json={"kind": kind, "spec": spec})
        )

    def create_sweep(self, spec: dict[str, Any]) -> JobPublic:
        """``POST /api/jobs`` with ``{kind: "sweep", spec}``; returns the sweep job.

        Its child prune jobs carry ``parent_job_id`` = the sweep's id; the sweep's own status,
        progress and stage are aggregated from them.
        """
        return cast(
            JobPublic, self._request("POST", "/api/jobs", json={"kind": "sweep", "spec": spec})
        )

    def cancel_job(self, job_id: int) -> JobPublic:
        """``POST /api/jobs/{id}/cancel``; returns the job after the request.

        A queued job is cancelled at once (status "cancelled"); a running one is asked to stop
        (status "cancelling" until its worker notices). Cancelling a sweep cancels its children.

        Raises:
            ApiError: status 409 (detail "Job already finished") when the job had already
                ended, 404 when there is no such job.
        """
        return cast(JobPublic, self._request("POST", f"/api/jobs/{int(job_id)}/cancel"))

    # uploads --------------------------------------------------------------------------------

    @staticmethod
    def upload_path(kind: UploadKind) -> str:
        """Same-origin path the browser posts a ``kind`` file to (multipart, part ``file``)."""
        if kind not in UPLOAD_KINDS:
            raise ValueError(f"kind={kind!r} should be one of {UPLOAD_KINDS}")
        return f"/api/{kind}s/upload"

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
        body = self._request(
            "GET", "/api/architectures", params={"q": q or None, "limit": limit, "offset": offset}
        )
        data = [
            cast(ArchitecturePublic, {"name": a} if isinstance(a, str) else a) for a in body["data"]
        ]
        if "total" in body:
            return {"data": data, "count": len(data), "total": int(body["total"])}
        words = q.lower().split()
        hits = [a for a in data if all(w in str(a["name"]).lower() for w in words)]
        page = hits[offset : offset + limit]
        return {"data": page, "count": len(page), "total": len(hits)}

    def list_corruptions(self) -> list[str]:
        """``GET /api/corruptions``: names of the corruptions (CIFAR-10-C's fifteen)."""
        return [str(name) for name in self._list("/api/corruptions")]

    # methods --------------------------------------------------------------------------------

    def list_methods(self) -> list[MethodPublic]:
        """``GET /api/methods``: the ``data`` list."""
        return self._list("/api/methods")

    # analyses -------------------------------------------------------------------------------

    def list_analyses(
        self, *, model_id: int | None = None, dataset_id: int | None = None
    ) -> list[AnalysisPublic]:
        """``GET /api/analyses?model_id=&dataset_id=``: the ``data`` list."""
        return self._list("/api/analyses", {"model_id": model_id, "dataset_id": dataset_id})

    def get_analysis(self, analysis_id: int) -> AnalysisPublic:
        """``GET /api/analyses/{id}``."""
        return cast(AnalysisPublic, self._request("GET", f"/api/analyses/{int(analysis_id)}"))

    def list_analysis_samples(
        self, analysis_id: int, *, offset: int = 0, limit: int = 100
    ) -> SamplesPage:
        """``GET /api/analyses/{id}/samples?offset=&limit=``: one page with the total count."""
        return cast(
            SamplesPage,
            self._request(
                "GET",
                f"/api/analyses/{int(analysis_id)}/samples",
                params={"offset": offset, "limit": limit},
            ),
        )

    # comparisons ----------------------------------------------------------------------------

    def list_comparisons(self) -> list[ComparisonPublic]:
        """``GET /api/comparisons``: the ``data`` list."""
        return self._list("/api/comparisons")

    def get_comparison(self, comparison_id: int) -> ComparisonPublic:
        """``GET /api/comparisons/{id}``."""
        return cast(
            ComparisonPublic, self._request("GET", f"/api/comparisons/{int(comparison_id)}")
        )

    def create_comparison(
        self, model_a_id: int, model_b_ids: list[int], *, name: str | None = None
    ) -> ComparisonPublic:
        """``POST /api/comparisons``; analyses of models not yet analysed are queued."""
        body: dict[str, Any] = {"model_a_id": int(model_a_id), "model_b_ids": list(model_b_ids)}
        if name is not None:
            body["name"] = name
        return cast(ComparisonPublic, self._request("POST", "/api/comparisons", json=body))

    def get_comparison_view(self, comparison_id: int, *, b: int | None = None) -> ComparisonView:
        """``GET /api/comparisons/{id}/view?b=``; ``b`` defaults to the first pruned model."""
        return cast(
            ComparisonView,
            self._request("GET", f"/api/comparisons/{int(comparison_id)}/view", params={"b": b}),
        )

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
        """``GET /api/comparisons/{id}/flips``: samples whose prediction changed from A to B.

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
        return cast(
            FlipsPage,
            self._request(
                "GET",
                f"/api/comparisons/{int(comparison_id)}/flips",
                params={
                    "b": b,
                    "category": category,
                    "label": label,
                    "offset": offset,
                    "limit": limit,
                },
            ),
        )

    def get_comparison_sample(
        self, comparison_id: int, index: int, *, b: int | None = None
    ) -> SampleDetail:
        """``GET /api/comparisons/{id}/samples/{index}?b=``: one test sample in A and B.

        Raises:
            ApiError: 404 for an unknown comparison or sample, 409 until the comparison's
                compare job has finished.
        """
        return cast(
            SampleDetail,
            self._request(
                "GET",
                f"/api/comparisons/{int(comparison_id)}/samples/{int(index)}",
                params={"b": b},
            ),
        )

    def get_attribution(
        self, comparison_id: int, index: int, *, b: int | None = None, patch: int | None = None
    ) -> Attribution:
        """``GET /api/comparisons/{id}/samples/{index}/attribution?b=&patch=``; the other
        parameters at their defaults (stride = patch, fill "mean", every severity).

        Raises:
            ApiError: 409 until a job of kind "attribution" has stored it
                (:meth:`submit_attribution`), 404 for an unknown comparison or sample.
        """
        return cast(
            Attribution,
            self._request(
                "GET",
                f"/api/comparisons/{int(comparison_id)}/samples/{int(index)}/attribution",
                params={"b": b, "patch": patch},
            ),
        )

    def submit_attribution(
        self, comparison_id: int, index: int, *, b: int | None = None, patch: int | None = None
    ) -> JobPublic:
        """``POST /api/jobs`` with ``{kind: "attribution", spec}``; returns the job to poll."""
        spec: dict[str, Any] = {"comparison_id": int(comparison_id), "index": int(index)}
        if b is not None:
            spec["model_b_id"] = int(b)
        if patch is not None:
            spec["patch"] = int(patch)
        return self.create_job("attribution", spec)


_client: ApiClient | None = None


def configure(api_url: str, *, transport: httpx.BaseTransport | None = None) -> ApiClient:
    """Create the client the pages use (replacing, and closing, any previous one).

    Args:
        api_url: server root or API root, see :class:`ApiClient`.
        transport: optional ``httpx`` transport (tests pass an ``httpx.MockTransport``).

    Returns:
        The new shared client.
    """
    global _client
    if _client is not None:
        _client.close()
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


# per-sample comparison tables (the embedding view) ------------------------------------------

TABLE_MAX_ROWS = 10_000  # the API's largest page of a /table endpoint


class ComparisonTableColumns(TypedDict):
    """``GET /api/comparisons/{id}/table?format=columns``: one page as column -> values.

    ``column_names`` lists the columns returned (all of the table's when none were asked for);
    ``count`` is the number of rows matching the filters, over all pages.
    """

    count: int
    offset: int
    limit: int
    column_names: list[str]
    columns: dict[str, list[Any]]


def get_comparison_table_page(
    client: ApiClient,
    comparison_id: int,
    *,
    b: int | None = None,
    columns: list[str] | None = None,
    offset: int = 0,
    limit: int = 1000,
) -> ComparisonTableColumns:
    """``GET /api/comparisons/{id}/table?b=&columns=...&format=columns&offset=&limit=``.

    Raises:
        ValueError: when ``limit`` is outside [1, 10000] (the API's page bounds).
        ApiError: 409 while the compare job has not finished, 422 for an unknown column.
    """
    if not 1 <= limit <= TABLE_MAX_ROWS:
        raise ValueError(f"limit={limit} should be in [1, {TABLE_MAX_ROWS}]")
    params: dict[str, Any] = {"b": b, "format": "columns", "offset": offset, "limit": limit}
    if columns:
        params["columns"] = list(columns)
    body = client._request("GET", f"/api/comparisons/{int(comparison_id)}/table", params=params)
    body.setdefault("columns", {})
    return cast(ComparisonTableColumns, body)


def get_comparison_table_columns(
    client: ApiClient,
    comparison_id: int,
    *,
    b: int | None = None,
    columns: list[str] | None = None,
) -> ComparisonTableColumns:
    """Every row of the comparison table (paged 10,000 at a time), as column -> values."""
    first = get_comparison_table_page(
        client, comparison_id, b=b, columns=columns, limit=TABLE_MAX_ROWS
    )
    merged = {name: list(values) for name, values in first["columns"].items()}
    offset = len(next(iter(merged.values()), []))
    while merged and offset < int(first["count"]):
        page = get_comparison_table_page(
            client, comparison_id, b=b, columns=columns, offset=offset, limit=TABLE_MAX_ROWS
        )
        got = len(next(iter(page["columns"].values()), []))
        if got == 0:
            break
        for name, values in page["columns"].items():
            merged.setdefault(name, []).extend(values)
        offset += got
    return {
        "count": int(first["count"]),
        "offset": 0,
        "limit": offset,
        "column_names": list(first["column_names"]),
        "columns": merged,
    }


def get_comparison_results(
    client: ApiClient, comparison_id: int, *, b: int | None = None
) -> dict[str, Any]:
    """``GET /api/comparisons/{id}/results?b=``: recall distortion, flips, PIE, fragility,
    and the embedding summary (``embedding``: method, seconds, alignment distance)."""
    return cast(
        dict[str, Any],
        client._request("GET", f"/api/comparisons/{int(comparison_id)}/results", params={"b": b}),
    )


# per-sample analysis tables and recall distortion (the geometry view) -------------------------


class AnalysisTableColumns(TypedDict):
    """``GET /api/analyses/{id}/table?format=columns``: one page as column name -> values."""

    count: int  # rows matching the filters, over all pages
    offset: int
    limit: int
    column_names: list[str]
    columns: dict[str, list[Any]]


class RecallDistortionResult(TypedDict):
    """``recall_distortion`` of :func:`get_comparison_results` (SCIENCE.md section 2).

    None stands for a value that is not finite (e.g. Bn^c of a class without samples).
    """

    bn_a: list[float | None]  # normalised recall balance Bn^c of A, per class
    bn_b: list[float | None]  # Bn^c_t of B, per class
    ratios: list[float | None]  # intensification ratios I^c_t = Bn^c_t / Bn^c
    alpha: float | None  # model intensification alpha_t
    t: float | None  # pruning ratio: parameters of A / nonzero parameters of B
    sparsity: float


def get_analysis_table_page(
    client: ApiClient,
    analysis_id: int,
    *,
    columns: list[str] | None = None,
    label: int | None = None,
    offset: int = 0,
    limit: int = TABLE_MAX_ROWS,
) -> AnalysisTableColumns:
    """``GET /api/analyses/{id}/table?columns=...&label=&format=columns&offset=&limit=``.

    Raises:
        ValueError: when ``limit`` is outside [1, 10000] (the API's page bounds).
        ApiError: 404 for an unknown analysis, 422 for an unknown column.
    """
    if not 1 <= limit <= TABLE_MAX_ROWS:
        raise ValueError(f"limit={limit} should be in [1, {TABLE_MAX_ROWS}]")
    params: dict[str, Any] = {"format": "columns", "label": label, "offset": offset}
    params["limit"] = limit
    if columns:
        params["columns"] = list(columns)
    body = client._request("GET", f"/api/analyses/{int(analysis_id)}/table", params=params)
    body.setdefault("columns", {})
    return cast(AnalysisTableColumns, body)


def get_analysis_table_columns(
    client: ApiClient,
    analysis_id: int,
    *,
    columns: list[str] | None = None,
    label: int | None = None,
) -> dict[str, list[Any]]:
    """Every row of an analysis table (paged 10,000 at a time), as column name -> values."""
    merged: dict[str, list[Any]] = {}
    offset = 0
    while True:
        page = get_analysis_table_page(
            client, analysis_id, columns=columns, label=label, offset=offset
        )
        for name in page.get("column_names") or list(page["columns"]):
            merged.setdefault(name, []).extend(page["columns"].get(name) or [])
        got = len(next(iter(page["columns"].values()), []))
        offset += got
        if got == 0 or offset >= int(page["count"]):
            return merged


# evaluation overview and similarity map -----------------------------------------------------


class RobustnessTable(TypedDict):
    """``GET /api/analyses/{id}/robustness``: ``accuracy[c][s]`` of corruption ``corruptions[c]``
    at severity ``severities[s]``."""

    corruptions: list[str]
    severities: list[int]
    accuracy: list[list[float]]


class SimilarityEdge(TypedDict):
    """An edge of the similarity map's minimum spanning tree; ``weight`` is the fingerprint
    distance (not the 2-D one). ``source`` < ``target`` index ``points``."""

    source: int
    target: int
    weight: float


class SimilarityPoint(TypedDict):
    """Which (model, corruption) pair a similarity-map row is; severity 0 for "clean"."""

    model_id: int
    corruption: str
    severity: int


class SimilarityMapPublic(TypedDict):
    """``GET /api/comparisons/{id}/similarity``: M points in 2-D with their spanning tree."""

    labels: list[str]
    coords: list[list[float]]  # M x 2
    mst_edges: list[SimilarityEdge]  # M - 1
    method: str  # "umap" or "pca": the projection used
    notes: list[str]
    points: list[SimilarityPoint]  # M, in the order of coords


def get_analysis_robustness(client: ApiClient, analysis_id: int) -> RobustnessTable:
    """``GET /api/analyses/{id}/robustness``.

    Raises:
        ApiError: 404 (detail "Analysis has no corruption results") for a clean-only analysis.
    """
    return cast(
        RobustnessTable, client._request("GET", f"/api/analyses/{int(analysis_id)}/robustness")
    )


def get_comparison_similarity(client: ApiClient, comparison_id: int) -> SimilarityMapPublic:
    """``GET /api/comparisons/{id}/similarity``.

    Raises:
        ApiError: 409 until the comparison's compare job has finished, 404 for no comparison.
    """
    return cast(
        SimilarityMapPublic,
        client._request("GET", f"/api/comparisons/{int(comparison_id)}/similarity"),
    )


# linear regions (the regions view) ----------------------------------------------------------

RegionTableKind = Literal["segments", "samples"]


class RegionSliceSummary(TypedDict, total=False):
    """``slice`` of a :class:`RegionResult`: the 2-D map's counts, or why it is missing."""

    samples: list[int]  # the three test samples spanning the plane
    extent: float
    error: str  # the map was over its region budget (or the plane degenerate): no map
    self_check_error: float
    n_regions: int
    n_patterns: int
    n_polygons: int
    truncated: bool
    artifact_sha: str


class RegionResult(TypedDict, total=False):
    """One model's linear-region statistics, an entry of ``GET /api/comparisons/{id}/regions``.

    ``segments`` maps a segment kind ("within_class", "across_class", "local") to each count's
    ``{"mean", "median", "std"}``; ``samples`` likewise for the per-sample measures.
    """

    model_id: int
    segments: dict[str, dict[str, dict[str, float | None]]]
    samples: dict[str, dict[str, float | None]]
    dead_neuron_rate: dict[str, float]
    pattern_agreement_with_a: dict[str, float | None]
    decision_exact_fraction: float
    slice: RegionSliceSummary


class RegionMap(TypedDict, total=False):
    """``GET /api/comparisons/{id}/regions/{model_id}/slice``: the exact 2-D region map.

    Polygons are lists of ``[u, v]`` vertices on the plane x = p0 + u (p1 - p0) + v (p2 - p0);
    ``predicted[i]`` is polygon i's class; ``decision_boundary`` lists edges
    ``[[u1, v1], [u2, v2]]``; ``points`` the (u, v) of p0, p1, p2. A map over its region budget
    has ``error`` and no polygons.
    """

    samples: list[int]
    extent: float
    error: str
    self_check_error: float
    polygons: list[list[list[float]]]
    areas: list[float]
    predicted: list[int]
    pattern_ids: list[int]
    truncated: bool
    n_polygons: int
    n_regions: int
    n_patterns: int
    decision_boundary: list[list[list[float]]]
    domain: list[float]
    domain_area: float
    points: dict[str, list[float]]


def get_comparison_regions(client: ApiClient, comparison_id: int) -> list[RegionResult]:
    """``GET /api/comparisons/{id}/regions``: the ``data`` list, one entry per model.

    Raises:
        ApiError: 409 until a ``regions`` job has finished for the comparison.
    """
    return client._list(f"/api/comparisons/{int(comparison_id)}/regions")


def get_region_table_columns(
    client: ApiClient,
    comparison_id: int,
    model_id: int,
    which: RegionTableKind = "samples",
) -> dict[str, list[Any]]:
    """``GET /api/comparisons/{id}/regions/{model_id}/table?which=``, every row (paged
    10,000 at a time), as column name -> values.

    ``segments``: kind, segment, activation_pieces, distinct_patterns, linear_pieces,
    decision_crossings, length, live_neurons, density_per_length, density_per_live_neuron.
    ``samples``: index, label, region_distance, decision_distance, decision_exact,
    local_complexity.
    """
    if which not in ("segments", "samples"):
        raise ValueError(f"which={which!r} should be 'segments' or 'samples'")
    path = f"/api/comparisons/{int(comparison_id)}/regions/{int(model_id)}/table"
    merged: dict[str, list[Any]] = {}
    offset = 0
    while True:
        params = {"which": which, "format": "columns", "offset": offset, "limit": TABLE_MAX_ROWS}
        page = client._request("GET", path, params=params)
        columns = page.get("columns") or {}
        for name in page.get("column_names") or list(columns):
            merged.setdefault(name, []).extend(columns.get(name) or [])
        got = len(next(iter(columns.values()), []))
        offset += got
        if got == 0 or offset >= int(page.get("count", 0)):
            return merged


def get_region_map(client: ApiClient, comparison_id: int, model_id: int) -> RegionMap:
    """``GET /api/comparisons/{id}/regions/{model_id}/slice``.

    Raises:
        ApiError: 404 when the model has no region results (or no stored map).
    """
    return cast(
        RegionMap,
        client._request(
            "GET", f"/api/comparisons/{int(comparison_id)}/regions/{int(model_id)}/slice"
        ),
    )


def create_regions_job(client: ApiClient, comparison_id: int, **spec: Any) -> JobPublic:
    """``POST /api/jobs`` with ``{kind: "regions", spec: {comparison_id, **spec}}``.

    Spec fields (README "Job specs"): ``n_pairs``, ``radius``, ``n_samples``, ``chunks``,
    ``max_pieces``, ``slice_samples``, ``slice_extent``, ``slice_max_regions``.
    """
    body = {"kind": "regions", "spec": {"comparison_id": int(comparison_id), **spec}}
    return cast(JobPublic, client._request("POST", "/api/jobs", json=body))

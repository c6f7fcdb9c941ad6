"""Request and response schemas: ThingCreate / ThingPublic / ThingsPublic families."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from backend.jobs.specs import MAX_ID, NO_NUL, JobKind, JobStatus, RowId


def _as_utc(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp PruneScope writes is UTC.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Ids and sample indices in paths and queries, in the range the database can hold: beyond it
# the answer is a 422 naming the limit, which the OpenAPI schema shows too.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
IndexPath = Annotated[int, Path(ge=0, le=MAX_ID, description="dataset index of a sample")]


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorPublic(BaseModel):
    """Every error answer: a fixed message, or the list of what failed validation (422)."""

    detail: str | list[ValidationIssue]


ERROR_DESCRIPTIONS = {
    400: "The body is not UTF-8 JSON",
    404: "Not found",
    409: "Conflicts with the current state (already exists, finished, or not computed yet)",
    413: "Upload too large",
    422: "Invalid parameters or body",
    503: "Job queue unavailable; nothing was submitted",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer these error statuses."""
    return {c: {"model": ErrorPublic, "description": ERROR_DESCRIPTIONS[c]} for c in codes}


class HealthPublic(BaseModel):
    status: Literal["ok"]
    version: str
    database: str
    executor: str
    job_queue: str = Field(
        description="'ok...' when jobs can be submitted; 'unreachable: ...' when the broker is "
        "down, 'unavailable: ...' when the local executor's device (PRUNESCOPE_DEVICE) does not "
        "exist, saying what to change (reads keep working, submissions answer 503); "
        "'checking: ...' while that device is being checked, once, as the server starts"
    )


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    builtin: str = Field(
        max_length=200,
        pattern=NO_NUL,
        description="name of a built-in dataset, e.g. 'digits' or 'blobs'",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)


class DatasetPublic(_Public):
    id: int
    name: str
    source: str
    params: dict[str, Any]
    num_classes: int
    class_names: list[str]
    input_shape: list[int]
    n_train: int
    n_test: int
    created_at: Timestamp


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class ModelPublic(_Public):
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
    theoretical_speedup: float | None = None
    measured_speedup: float | None = None
    report_note: str | None = None
    accuracy: float | None
    input_shape: list[int] | None = Field(
        default=None, description="one sample's shape the model was proven to accept"
    )
    num_classes: int | None = Field(
        default=None, description="number of logits the model was proven to produce"
    )
    regions_unsupported: str | None = Field(
        default=None,
        description="why linear-region statistics cannot be computed for this network "
        "(not piecewise linear, or an operation the exact counter cannot follow); null if they can",
    )
    learning_distance: float | None = Field(
        default=None,
        description="|| m * (theta_final - theta_start) ||_2 over the kept weights (He et al., "
        "ICML 2022; SCIENCE.md 7): how far its training moved them from where it began (the "
        "rewind point, the parent's weights, or the initialisation); null when not recorded "
        "(an original, an upload, a model pruned before it was measured)",
    )
    job_id: int | None
    created_at: Timestamp


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class MethodPublic(BaseModel):
    name: str
    doc: str
    defaults: dict[str, Any]
    needs_batch: bool
    scope: str
    schedule: str
    revives: bool


class MethodsPublic(BaseModel):
    data: list[MethodPublic]
    count: int


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: JobKind
    spec: dict[str, Any]


class JobDryRun(BaseModel):
    """What ``POST /api/jobs?dry_run=true`` answers for a spec the server would accept."""

    kind: JobKind
    spec: dict[str, Any] = Field(
        description="the spec as it would be stored: normalised, every default filled in (for "
        "import_model / import_dataset: the upload form's fields)"
    )
    jobs: int = Field(description="jobs the submission would run (a sweep: its child jobs)")


class JobPublic(_Public):
    id: int
    kind: str
    spec: dict[str, Any]
    status: JobStatus
    progress: float
    stage: str
    error: str | None
    result: dict[str, Any] | None
    attempts: int
    parent_job_id: int | None = None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    heartbeat_at: Timestamp | None


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class AnalysisPublic(BaseModel):
    id: int
    model_id: int
    dataset_id: int
    split: str
    accuracy: float
    n_samples: int
    recall: list[float | None]
    precision: list[float | None]
    support: list[int]
    confusion: list[list[int]]
    created_at: Timestamp


class AnalysesPublic(BaseModel):
    data: list[AnalysisPublic]
    count: int


class SamplePublic(BaseModel):
    index: int
    label: int
    pred: int
    correct: bool
    confidence: float
    probs: list[float]


class SamplesPage(BaseModel):
    data: list[SamplePublic]
    count: int
    offset: int
    limit: int


class ComparisonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_a_id: RowId
    model_b_ids: list[RowId] = Field(min_length=1, max_length=100)
    dataset_id: RowId | None = Field(default=None, description="default: model A's dataset")
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    corruptions: list[str] | None = Field(
        default=None, description="corruptions to evaluate (GET /api/corruptions); none: clean only"
    )
    severities: list[Annotated[int, Field(ge=1, le=5)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5], min_length=1
    )
    embedding: Literal["auto", "aligned_umap", "umap_init", "pca"] = "auto"
    neighbours_k: int = Field(
        default=20,
        ge=1,
        le=200,
        description="k of the neighbourhood change (Jaccard similarity of each sample's k "
        "nearest test samples in A and in B, cosine on penultimate features)",
    )


class ComparisonPublic(_Public):
    id: int
    name: str
    dataset_id: int
    model_a_id: int
    model_b_ids: list[int]
    job_id: int | None = Field(default=None, description="the latest compare job")
    created_at: Timestamp


class ComparisonsPublic(BaseModel):
    data: list[ComparisonPublic]
    count: int


class FlipCounts(BaseModel):
    correct_to_wrong: int
    wrong_to_correct: int
    wrong_to_other_wrong: int


class ComparisonView(BaseModel):
    comparison: ComparisonPublic
    dataset: DatasetPublic
    model_a: ModelPublic
    model_b: ModelPublic
    analysis_a: AnalysisPublic
    analysis_b: AnalysisPublic
    confusion_shift: list[list[int]]
    flip_counts: FlipCounts


class FlipPublic(BaseModel):
    index: int
    label: int
    pred_a: int
    pred_b: int
    category: Literal["correct_to_wrong", "wrong_to_correct", "wrong_to_other_wrong"]
    confidence_a: float
    confidence_b: float
    image_url: str | None


class FlipsPage(BaseModel):
    data: list[FlipPublic]
    count: int
    offset: int
    limit: int


class UploadPublic(BaseModel):
    """What an upload stored, and the job that validates and registers it."""

    kind: Literal["model", "dataset"]
    sha256: str
    size: int = Field(description="bytes received")
    filename: str
    format: str = Field(description="what the first bytes say the file is")
    job_id: int | None = Field(default=None, description="the import job (poll /api/jobs/{id})")
    model_id: int | None = Field(default=None, description="set when deduplicated")
    dataset_id: int | None = Field(default=None, description="set when deduplicated")
    deduplicated: bool = Field(
        default=False, description="the identical file was already imported with these options"
    )


class TopClass(BaseModel):
    label: int
    prob: float


class SampleModelDetail(BaseModel):
    """One model's view of one sample: prediction, top classes and geometry (SCIENCE.md 1)."""

    model_id: int
    pred: int
    correct: bool
    confidence: float
    top5: list[TopClass] = Field(description="up to 5 classes, most probable first")
    angle: float | None = Field(description="angle to the true class, degrees (null: undefined)")
    length: float
    length_z: float
    margin: float | None = Field(description="signed feature-space margin (null: infinite)")


class SampleCorruptions(BaseModel):
    """The sample under every (corruption, severity) of the analyses: [name][severity]."""

    names: list[str]
    severities: list[int]
    pred_a: list[list[int]]
    pred_b: list[list[int]]
    correct_a: list[list[bool]]
    correct_b: list[list[bool]]


class AttributionStatus(BaseModel):
    """The attribution with default parameters: stored ("succeeded"), being computed, or not."""

    status: Literal["none", "queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
    job_id: int | None = None
    progress: float | None = None
    message: str | None = None
    error: str | None = None


class SampleDetail(BaseModel):
    comparison_id: int
    model_b_id: int
    index: int
    label: int
    image_url: str | None
    category: Literal["correct_to_wrong", "wrong_to_correct", "wrong_to_other_wrong", ""]
    pie: bool
    made_fragile: bool | None = Field(description="null when the analyses ran no corruptions")
    a: SampleModelDetail
    b: SampleModelDetail
    corruptions: SampleCorruptions | None
    attribution: AttributionStatus


class SampleNeighbours(BaseModel):
    """A test sample's k nearest test samples in A's and in B's penultimate features (cosine
    distance, the sample itself excluded, ties by lower index; SCIENCE.md sect. 7)."""

    comparison_id: int
    model_b_id: int
    index: int = Field(description="the sample's dataset index")
    k: int
    metric: Literal["cosine"] = "cosine"
    a: list[int] = Field(description="dataset indices of its neighbours in A, nearest first")
    b: list[int] = Field(description="dataset indices of its neighbours in B, nearest first")
    shared: list[int] = Field(description="the neighbours in both, in A's order")
    jaccard: float = Field(description="|shared| / |a ∪ b|: 1 kept, 0 torn")


class AttributionValues(BaseModel):
    """Base metrics of the unoccluded sample (null: not finite)."""

    angle: float | None
    length: float | None
    margin: float | None


class AttributionBase(BaseModel):
    a: AttributionValues
    b: AttributionValues


class AttributionDeltas(BaseModel):
    """metric(occluded) - metric(sample), rows x cols (null: not finite)."""

    angle: list[list[float | None]]
    length: list[list[float | None]]
    margin: list[list[float | None]]


class CorruptedVersion(BaseModel):
    corruption: str
    severity: int
    image: str = Field(description="data:image/png;base64,...")
    pred_a: int
    pred_b: int
    correct_a: bool
    correct_b: bool


class Attribution(BaseModel):
    """Geometric attribution (occlusion heatmaps of angle, length, margin) of one sample."""

    comparison_id: int
    model_b_id: int
    index: int
    label: int
    patch: int
    stride: int
    fill: Literal["mean", "zero"]
    severity: int | None
    grid: list[int] = Field(description="[rows, cols]")
    rows: list[int] = Field(description="top pixel of each grid row's patches")
    cols: list[int] = Field(description="left pixel of each grid column's patches")
    metrics: list[str]
    base: AttributionBase
    a: AttributionDeltas
    b: AttributionDeltas
    corrupted: list[CorruptedVersion]
    job_id: int | None


class LayerHistogram(BaseModel):
    """Counts of log10 |w| of the nonzero weights of A and B over shared bins, and the exact
    zeros of each."""

    log10_edges: list[float] = Field(description="41 increasing bin edges (40 bins)")
    a: list[int]
    b: list[int]
    zeros_a: int
    zeros_b: int


class LayerStats(BaseModel):
    """One prunable layer of A and its counterpart in B, matched by qualified name (SCIENCE.md
    sect. 7); figures of a side without the layer are null, as is a CKA that is undefined
    (a constant output)."""

    name: str
    kind: str = Field(description='"conv", "linear", ...')
    shape_a: list[int] | None
    shape_b: list[int] | None
    channels: int | None = Field(description="output channels of A's layer (else B's)")
    params: int = Field(description="weights of A's layer (else B's)")
    sparsity_a: float | None
    sparsity_b: float | None
    kept_channels_a: int | None = Field(description="output channels with a nonzero weight")
    kept_channels_b: int | None
    relative_weight_change: float | None = Field(
        description="||W_B - W_A||_F / ||W_A||_F, when the shapes match"
    )
    cka: float | None = Field(description="linear CKA of the layer's outputs in A and B")
    dead_relu_a: float | None = Field(
        description="fraction of zero outputs of the ReLU after the layer, in A; null: no ReLU"
    )
    dead_relu_b: float | None
    hist: LayerHistogram


class LayersResult(BaseModel):
    """One B's per-layer comparison with A, in network order (A's forward-execution order)."""

    model_b_id: int
    job_id: int | None
    n_samples: int
    layers: list[LayerStats]


class LayersPublic(BaseModel):
    """Per-layer comparison of A with each B a ``layers`` job has computed."""

    comparison_id: int
    results: list[LayersResult]


class FourierMap(BaseModel):
    """One model's Fourier heat map: its test error per 2-D frequency."""

    model_id: int
    role: Literal["a", "b"] = Field(description='"a" for the original, "b" for a pruned model')
    clean_error: float = Field(description="error rate on the unperturbed samples")
    error: list[list[float]] = Field(
        description="H rows of W error rates under x + v r U_ij, the zero frequency at row "
        "H // 2, column W // 2 (np.fft.fftshift order); point-symmetric about it"
    )


class FourierPublic(BaseModel):
    """Fourier sensitivity of A and each B (Yin et al., NeurIPS 2019; SCIENCE.md sect. 7): the
    latest succeeded ``fourier`` job of the comparison."""

    comparison_id: int
    job_id: int
    dataset_id: int
    n_samples: int = Field(description="test samples, the first n in the stored order")
    v: float = Field(description="L2 norm of the perturbation per channel")
    v_default: bool = Field(description="whether v is the default 4 sqrt(D / 3072)")
    seed: int = Field(description="seed of the random signs r, one per sample and channel")
    clipped: bool = Field(description="whether perturbed inputs were clipped to [0, 1]")
    channels: int
    height: int
    width: int
    frequencies: int = Field(description="distinct basis images evaluated (one per pair)")
    models: list[FourierMap] = Field(description="A first, then the Bs the job computed")


class SessionPublic(BaseModel):
    auth: bool = Field(description="whether this server asks for tokens and share links")
    kind: Literal["local", "token", "share", "anonymous"]
    scope: Literal["none", "read", "write"]
    name: str
    token_id: int | None
    share_id: int | None
    comparison_id: int | None = Field(description="the one comparison a share link opens")


def _share_view(view: dict[str, str]) -> dict[str, str]:
    if "id" in view:
        raise ValueError("leave id out: a share link opens its own comparison")
    return view


# a compare-page query: short lower-case keys (b, cls, sel, emb_color, ...), text values (sel
# holds up to frontend.views.MAX_URL_SELECTION ids as runs, "3-9,12")
ShareView = Annotated[
    dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")],
        Annotated[str, StringConstraints(max_length=20_000, pattern=NO_NUL)],
    ],
    Field(max_length=40),
    AfterValidator(_share_view),
]


class ShareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(
        default="", max_length=200, pattern=NO_NUL, description="who or what the link is for"
    )
    expires_in_hours: float | None = Field(
        default=None, gt=0, le=24 * 366 * 10, description="empty: the link never expires"
    )
    view: ShareView = Field(
        default_factory=dict,
        description="the compare page's query the link opens (b, cls, sel and view settings, "
        "as in its URL; not id): the recipient sees exactly this view, then may change it",
    )


class SharePublic(_Public):
    id: int
    comparison_id: int
    label: str
    prefix: str = Field(description="the secret's first characters, to tell links apart")
    created_by: str
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None
    live: bool
    view: dict[str, str] = Field(description="the view the link opens (the compare page's query)")


class ShareCreated(SharePublic):
    token: str = Field(description="the secret; shown once, only its sha256 is stored")
    url: str = Field(description="the link to send: opens this comparison read-only")


class SharesPublic(BaseModel):
    data: list[SharePublic]
    count: int


class AuditEventPublic(_Public):
    id: int
    at: Timestamp
    actor: str
    token_id: int | None
    share_id: int | None
    action: str
    target: str
    status: int
    client: str


class AuditEventsPublic(BaseModel):
    data: list[AuditEventPublic]
    count: int


# experiments: every model of the workspace as one table (GET /api/experiments) -------------------

ExperimentSort = Literal[
    "id",
    "name",
    "created_at",
    "parent",
    "original",
    "architecture",
    "dataset",
    "method",
    "sparsity",
    "t",
    "compression_ratio",
    "seed",
    "accuracy",
    "corrupted_accuracy",
    "alpha_t",
    "n_params",
    "n_nonzero",
    "flops_dense",
    "flops_nonzero",
    "latency_ms",
    "learning_distance",
]
EXPERIMENT_ORIGINAL = "original"  # the method filter's name for models that were not pruned


class ExperimentsFilter(BaseModel):
    """Which models, in which order (the query of ``GET /api/experiments`` and its CSV)."""

    sort: ExperimentSort = Field(
        default="id", description="column to sort by (missing values last in either order)"
    )
    order: Literal["asc", "desc"] = "desc"
    id: list[RowId] = Field(default_factory=list, max_length=1000, description="only these models")
    method: list[Annotated[str, Field(max_length=100, pattern=NO_NUL)]] = Field(
        default_factory=list,
        max_length=100,
        description=f"pruning methods ('{EXPERIMENT_ORIGINAL}': models that were not pruned)",
    )
    dataset: list[RowId] = Field(default_factory=list, max_length=100, description="dataset ids")
    architecture: list[Annotated[str, Field(max_length=100, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=100
    )
    sparsity_min: float | None = Field(default=None, ge=0.0, le=1.0)
    sparsity_max: float | None = Field(default=None, ge=0.0, le=1.0)
    q: str = Field(
        default="",
        max_length=200,
        pattern=NO_NUL,
        description="words that must each appear (case-insensitive) in the model's name, "
        "architecture, method or dataset",
    )

    @model_validator(mode="after")
    def _range(self) -> ExperimentsFilter:
        low, high = self.sparsity_min, self.sparsity_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"sparsity_min={low} should not exceed sparsity_max={high}")
        return self


class ExperimentsQuery(ExperimentsFilter):
    """:class:`ExperimentsFilter` and the page."""

    limit: int = Field(default=50, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0, le=MAX_ID)


class ExperimentPublic(BaseModel):
    """One model as a row of the experiments table; a figure that was not recorded is null."""

    id: int
    name: str
    parent_id: int | None
    parent_name: str | None
    original_id: int = Field(description="the root of its lineage (itself for an original)")
    original_name: str
    depth: int = Field(description="pruning steps from its original (0: an original)")
    architecture: str
    dataset_id: int | None
    dataset_name: str | None
    pruning_method: str | None
    method_params: dict[str, Any] | None = Field(
        description="the method's parameters as the prune job recorded them (without the "
        "sparsity and the fine-tuning settings)"
    )
    sparsity: float
    t: float | None = Field(
        description="pruning ratio over the prunable weights, 1 / (1 - sparsity) (SCIENCE.md 7)"
    )
    compression_ratio: float | None = Field(
        description="pruning ratio over all parameters: dense parameters / nonzero parameters "
        "(ShrinkBench's compression ratio; Good et al.'s t)"
    )
    seed: int | None = Field(description="the training (or fine-tuning) seed")
    n_params: int
    n_nonzero: int
    accuracy: float | None = Field(description="test accuracy")
    corrupted_accuracy: float | None = Field(
        description="mean over the corruptions analysed of the accuracy averaged over severities"
    )
    alpha_t: float | None = Field(
        description="model intensification against its original on the same dataset (Good et "
        "al. 2022): least-squares slope through the origin of Bn^c_t on Bn^c"
    )
    flops_dense: float | None = Field(description="multiply-accumulates per example, dense")
    flops_nonzero: float | None = Field(description="multiply-accumulates of nonzero weights")
    latency_ms: float | None = Field(description="measured forward latency of one batch")
    latency_device: str | None
    learning_distance: float | None = Field(
        description="how far training moved the kept weights from where it began (SCIENCE.md 7)"
    )
    instability_barrier: float | None = Field(
        default=None,
        description="error barrier on the linear path between two copies trained from its "
        "rewind point (Frankle et al., ICML 2020; SCIENCE.md 4) from its latest succeeded "
        "instability job; null without one",
    )
    analysis_id: int | None = Field(description="the test-split analysis the figures come from")
    created_at: Timestamp


class ExperimentsPublic(BaseModel):
    data: list[ExperimentPublic]
    count: int = Field(description="models matching the filters (all pages)")


class ExperimentFacet(BaseModel):
    value: str
    label: str
    count: int


class ExperimentFacetsPublic(BaseModel):
    """What the filters of the experiments table can choose from, over every model."""

    count: int = Field(description="models in the workspace")
    methods: list[ExperimentFacet]
    datasets: list[ExperimentFacet]
    architectures: list[ExperimentFacet]
    sparsity_min: float | None
    sparsity_max: float | None


class DeletionPublic(BaseModel):
    """What a DELETE removed (with dry_run=true: what it would remove); README, Deleting."""

    kind: Literal["model", "comparison", "dataset", "job"]
    id: int
    cascade: bool
    dry_run: bool
    deleted: dict[str, int] = Field(
        description="rows deleted per kind (only kinds with some): models, comparisons, "
        "share_links, comparison_results, region_results, layer_results, attribution_results, "
        "analyses, datasets, jobs"
    )
    detached_models: list[int] = Field(
        description="models kept whose original was deleted: their parent_id is now null"
    )
    artifacts_removed: int = Field(
        description="artifact files no row references any more, removed after the commit"
    )
    artifacts_kept: int = Field(
        description="artifact files of the deleted rows kept: rows that stay have the same bytes"
    )
    artifacts_failed: int = Field(
        description="files that could not be removed (logged; no row refers to them)"
    )
    message: str = Field(description="one sentence saying what was deleted")


class BrokenSamples(BaseModel):
    """The test samples one (corruption, severity) broke in B and not in A."""

    comparison_id: int
    model_b_id: int
    corruption: str
    severity: int
    fragile_a: int = Field(description="samples A gets right clean and wrong corrupted")
    fragile_b: int = Field(description="the same for B")
    ids: list[int] = Field(description="dataset indices: fragile in B, not in A")
    count: int


class ComparisonModelsAdd(BaseModel):
    """``POST /api/comparisons/{id}/models``: models B to add to an existing comparison."""

    model_config = ConfigDict(extra="forbid")

    model_b_ids: list[RowId] = Field(
        min_length=1,
        max_length=100,
        description="pruned models of the comparison's dataset, not yet in it (nor model A)",
    )

"""The shapes of the API's answers: plain JSON dictionaries, typed for type checkers.

Each follows the server's component schema of the same name in ``/api/openapi.json`` (or the
one tests/frontend/test_client_types.py maps it to, which also lists the types of free-form
answers), and that test fails when a field read here is renamed, dropped or retyped there.
No ``from __future__ import annotations``: Python 3.11 would then lose ``NotRequired``.
"""

from typing import Any, Literal, NotRequired, TypedDict, get_args

Split = Literal["train", "test"]
JobKind = Literal[
    "train",
    "prune",
    "analyze",
    "compare",
    "regions",
    "layers",
    "fourier",
    "pruning_limit",
    "instability",
    "attribution",
    "sweep",
    "ping",
    "import_model",  # import_*: dry runs of an upload form's fields only
    "import_dataset",
]
UploadKind = Literal["model", "dataset"]
JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
FlipCategory = Literal["correct_to_wrong", "wrong_to_correct", "wrong_to_other_wrong"]
AttributionState = Literal["none", JobStatus]
AttributionFill = Literal["mean", "zero"]
ArchitectureSource = Literal["builtin", "plugin", "onnx", "torchvision", "timm"]
RegionTableKind = Literal["segments", "samples"]
Embedding = Literal["auto", "aligned_umap", "umap_init", "pca"]

UPLOAD_KINDS: tuple[UploadKind, ...] = get_args(UploadKind)
FLIP_CATEGORIES: tuple[FlipCategory, ...] = get_args(FlipCategory)


class Health(TypedDict):
    """``GET /api/health``."""

    status: str
    version: str
    database: str
    executor: str
    job_queue: NotRequired[str]  # "ok..." when jobs can be submitted


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
    theoretical_speedup: NotRequired[float | None]
    measured_speedup: NotRequired[float | None]
    report_note: NotRequired[str | None]
    accuracy: float | None
    job_id: int | None
    created_at: str
    input_shape: NotRequired[list[int] | None]  # one sample's shape it was proven to accept
    num_classes: NotRequired[int | None]
    regions_unsupported: NotRequired[str | None]  # why region statistics cannot be computed
    # how far training moved the kept weights (SCIENCE.md 7); None when not recorded
    learning_distance: NotRequired[float | None]


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
    parent_job_id: NotRequired[int | None]  # the sweep a prune job belongs to
    created_at: str
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None


class JobDryRun(TypedDict):
    """``POST /api/jobs?dry_run=true``: the job as it would be submitted, spec normalised."""

    kind: JobKind
    spec: dict[str, Any]
    jobs: int  # how many jobs it would run (a sweep: its child jobs)


class MethodPublic(TypedDict):
    """A registered pruning method, as ``GET /api/methods`` describes it."""

    name: str
    doc: str  # one line citing the paper
    defaults: dict[str, Any]  # every hyper-parameter with its default (None: computed)
    needs_batch: bool
    scope: str  # "global" | "layer" | "structured": what its sparsity counts
    schedule: str  # "one_shot" | "at_init" | "during_training" | "iterative"
    revives: bool


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
    """A page of :class:`SampleRecord`; ``count`` is the total."""

    data: list[SampleRecord]
    count: int
    offset: int
    limit: int


class TableColumns(TypedDict):
    """A per-sample table (``GET .../table?format=columns``) as column name -> values.

    ``column_names`` lists the columns returned (all of the table's when none were asked for);
    ``count`` is the number of rows matching the filters, over all pages. The client fills in
    ``columns`` ({}) when a page has none.
    """

    count: int
    offset: int
    limit: int
    column_names: list[str]
    columns: dict[str, list[Any]]


ComparisonTableColumns = AnalysisTableColumns = TableColumns


class ComparisonPublic(TypedDict):
    """An original model A compared with one or more pruned models B on a dataset."""

    id: int
    name: str
    dataset_id: int
    model_a_id: int
    model_b_ids: list[int]
    job_id: NotRequired[int | None]  # the latest compare job
    created_at: str


class ComparisonDryRun(TypedDict):
    """``POST /api/comparisons?dry_run=true``: the body as it would be submitted, normalised."""

    model_a_id: int
    model_b_ids: list[int]
    dataset_id: NotRequired[int | None]
    name: NotRequired[str | None]
    corruptions: NotRequired[list[str] | None]
    severities: NotRequired[list[int]]
    embedding: NotRequired[Embedding]
    neighbours_k: NotRequired[int]


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


class SampleNeighbours(TypedDict):
    """Answer of ``GET /api/comparisons/{id}/neighbours/{index}``: the sample's k nearest test
    samples in A and in B (dataset indices, nearest first), those in both, and the Jaccard
    similarity (SCIENCE.md sect. 7)."""

    comparison_id: int
    model_b_id: int
    index: int
    k: int
    metric: NotRequired[Literal["cosine"]]
    a: list[int]
    b: list[int]
    shared: list[int]
    jaccard: float


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
    view: dict[str, str]


class ShareCreated(SharePublic):
    """A new share link: its secret and URL, shown once."""

    token: str
    url: str


# Free-form answers (the routes declare no response schema) -----------------------------------


class RecallDistortionResult(TypedDict):
    """``recall_distortion`` of ``GET /api/comparisons/{id}/results`` (SCIENCE.md section 2).

    None stands for a value that is not finite (e.g. Bn^c of a class without samples).
    """

    bn_a: list[float | None]  # normalised recall balance Bn^c of A, per class
    bn_b: list[float | None]  # Bn^c_t of B, per class
    ratios: list[float | None]  # intensification ratios I^c_t = Bn^c_t / Bn^c
    alpha: float | None  # model intensification alpha_t
    t: float | None  # pruning ratio over the prunable weights: 1 / (1 - sparsity)
    sparsity: float
    # pruning ratio over all parameters: A's parameters / B's nonzero parameters (results
    # computed before it was recorded lack it)
    t_all: NotRequired[float]


class DirectionAngles(TypedDict):
    """``direction_angles`` of ``GET /api/comparisons/{id}/results`` (SCIENCE.md sections 1
    and 7): per class, the angle between A's and B's class direction; None with a ``reason``
    when the feature widths differ or a classifier could not be read."""

    degrees: list[float | None] | None
    norm_a: list[float] | None  # ||W_A[c]||
    norm_b: list[float] | None  # ||W_B[c]||
    reason: str | None


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


class RegionMapCounts(TypedDict, total=False):
    """What a 2-D region map and its summary share: the plane, the counts, or why no map."""

    samples: list[int]  # the three test samples spanning the plane
    extent: float
    error: str  # the map was over its region budget (or the plane degenerate): no map
    self_check_error: float
    n_regions: int
    n_patterns: int
    n_polygons: int
    truncated: bool


class RegionSliceSummary(RegionMapCounts, total=False):
    """``slice`` of a :class:`RegionResult`: the 2-D map's counts, or why it is missing."""

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


class RegionMap(RegionMapCounts, total=False):
    """``GET /api/comparisons/{id}/regions/{model_id}/slice``: the exact 2-D region map.

    Polygons are lists of ``[u, v]`` vertices on the plane x = p0 + u (p1 - p0) + v (p2 - p0);
    ``predicted[i]`` is polygon i's class; ``decision_boundary`` lists edges
    ``[[u1, v1], [u2, v2]]``; ``points`` the (u, v) of p0, p1, p2. A map over its region budget
    has ``error`` and no polygons.
    """

    polygons: list[list[list[float]]]
    areas: list[float]
    predicted: list[int]
    pattern_ids: list[int]
    decision_boundary: list[list[list[float]]]
    domain: list[float]
    domain_area: float
    points: dict[str, list[float]]


class LayerHistogram(TypedDict):
    """``hist`` of a :class:`LayerStats`: counts of log10 |w| over shared bins (exact zeros
    apart), in A and B."""

    log10_edges: list[float]  # K + 1
    a: list[int]  # K
    b: list[int]  # K
    zeros_a: int
    zeros_b: int


class LayerStats(TypedDict):
    """One prunable layer of A and its counterpart in B (SCIENCE.md section 7)."""

    name: str
    kind: str  # "conv", "linear", ...
    shape_a: list[int] | None
    shape_b: list[int] | None
    channels: int | None
    params: int
    sparsity_a: float | None
    sparsity_b: float | None
    kept_channels_a: int | None
    kept_channels_b: int | None
    relative_weight_change: float | None
    cka: float | None
    dead_relu_a: float | None
    dead_relu_b: float | None
    hist: LayerHistogram | None


class LayersResult(TypedDict):
    """One B's per-layer comparison with A, in network order."""

    model_b_id: int
    job_id: int | None
    n_samples: int
    layers: list[LayerStats]


class LayersPublic(TypedDict):
    """``GET /api/comparisons/{id}/layers``: one entry per B a ``layers`` job has computed."""

    comparison_id: int
    results: list[LayersResult]


class FourierMap(TypedDict):
    """One model's Fourier heat map: ``error`` holds H rows of W error rates, the zero
    frequency at row H // 2, column W // 2."""

    model_id: int
    role: Literal["a", "b"]
    clean_error: float
    error: list[list[float]]


class FourierPublic(TypedDict):
    """``GET /api/comparisons/{id}/fourier``: the latest succeeded ``fourier`` job's heat maps
    of A and each B (Yin et al., NeurIPS 2019; SCIENCE.md sect. 7)."""

    comparison_id: int
    job_id: int
    dataset_id: int
    n_samples: int
    v: float
    v_default: bool
    seed: int
    clipped: bool
    channels: int
    height: int
    width: int
    frequencies: int
    models: list[FourierMap]


class InstabilityPublic(TypedDict, total=False):
    """``GET /api/models/{id}/instability``: the latest succeeded ``instability`` job's result
    (Frankle et al., ICML 2020; SCIENCE.md sect. 4). ``alphas`` (evenly spaced in [0, 1]) and
    ``errors`` (test error of the network at (1 - a) W1 + a W2) share the path; ``barrier`` =
    max(errors) - mean of ``endpoint_errors``; ``max_alpha``/``max_error`` its highest point;
    ``stable``: barrier below ``stable_below`` (2 %); ``seeds`` the two copies' training seeds,
    ``epochs`` how long each trained; ``start`` where the rewind point came from."""

    job_id: int
    spec: dict[str, Any]
    model_id: int
    dataset_id: int
    method: str | None
    rewind_step: int | None
    alphas: list[float]
    errors: list[float]
    barrier: float
    endpoint_errors: list[float]
    endpoint_mean: float
    max_error: float
    max_alpha: float
    stable: bool
    stable_below: float
    seeds: list[int]
    epochs: int
    points: int
    train_losses: list[list[float]]
    n_test: int
    start: dict[str, str]


class PruningLimitPublic(TypedDict, total=False):
    """``GET /api/models/{id}/pruning-limit``: the latest succeeded ``pruning_limit`` job's
    result (SCIENCE.md sect. 7). ``sparsities``, ``radii`` (R(s)) and ``predicted``
    (w(R(s))) share the grid; ``limit`` is the grid s where w(R(s)) crosses s (``index``),
    ``interpolated`` the same between grid points (None without a sign change);
    ``observed`` holds the one-shot accuracy over the grid (``accuracy``), ``dense_accuracy``,
    ``threshold`` (dense - 1 pp) and ``limit`` (the largest s before it falls below);
    ``density`` the Hessian eigenvalue density (``nodes``, ``weights``, ``near_zero_mass``...);
    ``theory`` w(R) on an even grid of R; ``sweep_models`` models pruned from this one by
    global magnitude (fine-tuned: ``id``, ``name``, ``sparsity``, ``accuracy``)."""

    job_id: int
    spec: dict[str, Any]
    model_id: int
    dataset_id: int
    eps: float
    mean_loss: float
    n_weights: int
    n_kept: int
    weight_norm: float
    sparsities: list[float]
    radii: list[float]
    predicted: list[float]
    index: int
    limit: float
    interpolated: float | None
    density: dict[str, Any]
    theory: dict[str, list[float]]
    observed: dict[str, Any]
    sweep_models: list[dict[str, Any]]


DeleteKind = Literal["model", "comparison", "dataset", "job"]
DELETE_KINDS: tuple[DeleteKind, ...] = get_args(DeleteKind)


class DeletionPublic(TypedDict):
    """``DELETE /api/{models,comparisons,datasets,jobs}/{id}``: what went (or would go)."""

    kind: DeleteKind
    id: int
    cascade: bool
    dry_run: bool
    deleted: dict[str, int]  # rows per kind: models, comparisons, share_links, analyses, ...
    detached_models: list[int]  # kept, their original deleted: parent_id now null
    artifacts_removed: int
    artifacts_kept: int
    artifacts_failed: int
    message: str


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
EXPERIMENT_SORTS: tuple[ExperimentSort, ...] = get_args(ExperimentSort)


class ExperimentPublic(TypedDict):
    """One model as a row of the experiments table (``GET /api/experiments``); a figure that
    was not recorded (no analysis, no FLOPs or latency measured) is None."""

    id: int
    name: str
    parent_id: int | None
    parent_name: str | None
    original_id: int  # the root of its lineage (itself for an original)
    original_name: str
    depth: int  # pruning steps from its original
    architecture: str
    dataset_id: int | None
    dataset_name: str | None
    pruning_method: str | None
    method_params: dict[str, Any] | None
    sparsity: float
    t: float | None  # 1 / (1 - sparsity): over the prunable weights
    compression_ratio: float | None  # dense / nonzero parameters: t over all parameters
    seed: int | None
    n_params: int
    n_nonzero: int
    accuracy: float | None
    corrupted_accuracy: float | None  # mean over corruptions of the mean over severities
    alpha_t: float | None  # model intensification against its original
    flops_dense: float | None
    flops_nonzero: float | None
    latency_ms: float | None
    latency_device: str | None
    learning_distance: float | None  # how far training moved the kept weights
    instability_barrier: float | None  # latest instability job's error barrier (SCIENCE.md 4)
    analysis_id: int | None
    created_at: str


class ExperimentsPublic(TypedDict):
    """A page of :class:`ExperimentPublic`; ``count`` is the number of matches (all pages)."""

    data: list[ExperimentPublic]
    count: int


class ExperimentFacet(TypedDict):
    value: str
    label: str
    count: int


class ExperimentFacetsPublic(TypedDict):
    """``GET /api/experiments/facets``: what the experiments filters can choose from."""

    count: int  # models in the workspace
    methods: list[ExperimentFacet]  # "original" for the models that were not pruned
    datasets: list[ExperimentFacet]  # value: the dataset id
    architectures: list[ExperimentFacet]
    sparsity_min: float | None
    sparsity_max: float | None


class ComparisonModelsAdd(TypedDict):
    """``POST /api/comparisons/{id}/models?dry_run=true``: the models B it would add."""

    model_b_ids: list[int]

"""Job specifications: what a client may ask for, validated before anything is written."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

JOB_KINDS = (
    "train",
    "prune",
    "analyze",
    "compare",
    "regions",
    "attribution",
    "layers",
    "fourier",
    "pruning_limit",
    "instability",
    "sweep",
    "ping",
    "import_model",
    "import_dataset",
)
# a sweep is never run itself: it is expanded into child prune jobs at submission
RUNNABLE_KINDS = tuple(k for k in JOB_KINDS if k != "sweep")
JobKind = Literal[
    "train",
    "prune",
    "analyze",
    "compare",
    "regions",
    "attribution",
    "layers",
    "fourier",
    "pruning_limit",
    "instability",
    "sweep",
    "ping",
    "import_model",
    "import_dataset",
]
# Celery queues: model work goes to GPU workers; the comparison (UMAP, statistics over stored
# tables) and pings are light and may run on CPU-only workers.
QUEUES = ("gpu", "cpu")
KIND_QUEUE = {
    "train": "gpu",
    "prune": "gpu",
    "analyze": "gpu",
    "regions": "gpu",
    "attribution": "gpu",
    "layers": "gpu",
    "fourier": "gpu",
    "pruning_limit": "gpu",
    "instability": "gpu",
    "compare": "cpu",
    "ping": "cpu",
    "import_model": "cpu",
    "import_dataset": "cpu",
}
JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
FINAL_STATUSES = ("succeeded", "failed", "cancelled")

MAX_ID = 2**31 - 1
"""Largest row id: ids are INTEGER columns, 32-bit on PostgreSQL. A larger one would make the
database raise (SQLite only past 2**63) instead of not finding the row, so it is refused here."""
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
# what numpy's default_rng and the training loop's TrainConfig accept
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
# PostgreSQL text cannot hold NUL characters: names with one are refused here, not by the
# database (a 500, or a job failing at its end).
NO_NUL = r"^[^\x00]*$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainSettings(_Spec):
    """Training / fine-tuning hyper-parameters (backend.pruning.finetune.TrainConfig)."""

    epochs: int = Field(default=15, ge=0, le=10_000)
    lr: float = Field(default=1e-3, gt=0, le=10)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    weight_decay: float = Field(default=0.0, ge=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(default=0.9, ge=0, lt=1)
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"
    amp: bool = Field(default=False, description="bfloat16 autocast on CUDA; ignored on CPU")
    seed: Seed = 0


class TrainSpec(TrainSettings):
    """Train a network from scratch on a registered dataset."""

    dataset_id: RowId
    architecture: str
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, max_length=200, pattern=NO_NUL)


class PruneSpec(_Spec):
    """Prune a registered model, then fine-tune it on its dataset's training split."""

    model_id: RowId
    method: str = "global_magnitude"
    sparsity: float = Field(ge=0, lt=1, description="fraction of prunable weights set to zero")
    params: dict[str, Any] = Field(default_factory=dict)
    finetune: TrainSettings | None = Field(
        default=None,
        description="training after/while pruning; default: 3 epochs for one-shot methods, "
        "the parent's training settings for methods that train from scratch or in rounds",
    )
    analyze: bool = Field(default=False, description="analyse the pruned model afterwards")
    seed: Seed | None = Field(
        default=None,
        description="overrides the training seed (and the method's own seed, if it has one)",
    )
    include: list[Annotated[str, Field(max_length=200, pattern=NO_NUL)]] = Field(
        default_factory=list,
        max_length=100,
        description="prune only layers whose qualified names match one of these shell-style "
        "patterns ('layer4.*', '*.attn.qkv'); empty: every Conv1d/2d/3d and Linear",
    )
    exclude: list[Annotated[str, Field(max_length=200, pattern=NO_NUL)]] = Field(
        default_factory=list,
        max_length=100,
        description="never prune layers whose qualified names match one of these patterns",
    )
    name: str | None = Field(default=None, max_length=200, pattern=NO_NUL)


Severity = Annotated[int, Field(ge=1, le=5)]


class AnalyzeSpec(_Spec):
    """Evaluate a model on a dataset split and store per-sample results."""

    model_id: RowId
    dataset_id: RowId | None = None
    split: Literal["train", "test"] = "test"
    corruptions: list[str] | None = Field(
        default=None, description="corruption names (see GET /api/corruptions), or null"
    )
    severities: list[Severity] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)
    feature_layer: str | None = Field(
        default=None, description="name of the final Linear layer, when it is not found"
    )


class MethodChoice(_Spec):
    method: str
    params: dict[str, Any] = Field(default_factory=dict)


MAX_SWEEP_JOBS = 500


class SweepSpec(_Spec):
    """Methods x sparsities x seeds prune jobs of one model: the populations that
    recall-distortion statistics and pruning-identified exemplars need."""

    model_id: RowId
    methods: list[str | MethodChoice] = Field(min_length=1, max_length=50)
    sparsities: list[Annotated[float, Field(ge=0, lt=1)]] = Field(min_length=1, max_length=50)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=100)
    finetune: TrainSettings | None = None
    analyze: bool = True

    def expand(self) -> list[PruneSpec]:
        """One prune spec per (method, sparsity, seed), in that nesting order."""
        children = []
        for choice in self.methods:
            if isinstance(choice, str):
                choice = MethodChoice(method=choice)
            for sparsity in self.sparsities:
                for seed in self.seeds:
                    children.append(
                        PruneSpec(
                            model_id=self.model_id,
                            method=choice.method,
                            sparsity=sparsity,
                            params=choice.params,
                            finetune=self.finetune,
                            analyze=self.analyze,
                            seed=seed,
                        )
                    )
        return children


class CompareSpec(_Spec):
    """Analyse A and every B of a comparison (with corruptions, if asked) and compare them."""

    comparison_id: RowId
    corruptions: list[str] | None = None
    severities: list[Severity] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)
    embedding: Literal["auto", "aligned_umap", "umap_init", "pca"] = "auto"
    neighbours_k: int = Field(
        default=20,
        ge=1,
        le=200,
        description="k of the neighbourhood change: the k nearest test samples of each sample "
        "in A's and in B's penultimate features (cosine), compared by Jaccard similarity",
    )
    added_model_b_ids: list[RowId] | None = Field(
        default=None,
        description="the Bs just added to the comparison (POST /api/comparisons/{id}/models): "
        "the job computes what they need and keeps the other Bs' results while what they were "
        "computed from is unchanged; null: every B's results are computed again",
    )


class RegionsSpec(_Spec):
    """Linear-region statistics of A and every B of a comparison, on the same segments."""

    comparison_id: RowId
    n_pairs: int = Field(default=10, ge=1, le=1000, description="segments of each kind")
    radius: float = Field(
        default=0.05,
        gt=0,
        description="half-length of the short random segments and the "
        "cross-polytope radius of local complexity, relative to the input's RMS norm",
    )
    n_samples: int = Field(
        default=100, ge=1, le=100_000, description="test samples for the per-sample measures"
    )
    chunks: int = Field(default=1, ge=1, le=1024)
    max_pieces: int = Field(default=100_000, ge=1, le=10_000_000)
    slice_samples: list[int] | None = Field(
        default=None,
        min_length=3,
        max_length=3,
        description="three test-sample indices spanning the 2-D region map; default: the "
        "first samples of three different classes; [] is not allowed, null = default",
    )
    slice_extent: float = Field(
        default=0.1,
        gt=0,
        le=2,
        description="the map covers [0, e] x [0, e] of the plane "
        "x = p0 + u (p1 - p0) + v (p2 - p0): the neighbourhood of p0 towards p1 and p2",
    )
    slice_max_regions: int = Field(default=20_000, ge=1, le=1_000_000)


class AttributionSpec(_Spec):
    """Geometric attribution (occlusion of angle, length, margin) of one test sample in A and
    one B of a comparison, with the sample's corrupted versions as the analyses saw them."""

    comparison_id: RowId
    model_b_id: RowId | None = Field(default=None, description="default: the comparison's first B")
    index: int = Field(description="dataset index of a test sample (the tables' `index`), >= 0")
    patch: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="patch side in pixels (elements); default: an 8 x 8 grid of patches "
        "(the image's shorter side / 8; a 1-D input's length / 16), at least 1",
    )
    stride: int | None = Field(default=None, ge=1, le=64, description="default: patch")
    fill: Literal["mean", "zero"] = Field(
        default="mean", description="occluded value: the per-channel mean of the input, or 0"
    )
    severity: Severity | None = Field(
        default=None,
        description="corrupted versions to render: null = every severity the comparison's "
        "analyses used, else only this one",
    )

    @field_validator("index")
    @classmethod
    def _index_not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"index={value} should be >= 0")
        return value

    def params_key(self) -> str:
        """Canonical text of the parameters a stored result depends on (besides comparison,
        B and sample): ``patch=4,stride=4,fill=mean,severity=all``; ``patch=auto`` for the
        default patch (its stride, when not given, is ``auto`` too)."""
        patch = "auto" if self.patch is None else str(self.patch)
        stride = patch if self.stride is None else str(self.stride)
        severity = "all" if self.severity is None else str(self.severity)
        return f"patch={patch},stride={stride},fill={self.fill},severity={severity}"


class LayersSpec(_Spec):
    """Per prunable layer of A and every B of a comparison: sparsity, kept channels, relative
    weight change, linear CKA of the layer outputs, dead-ReLU rates and weight histograms
    (SCIENCE.md sect. 7)."""

    comparison_id: RowId
    n_samples: int = Field(
        default=1000,
        ge=1,
        le=5000,  # two n x n float64 Grams per layer: 400 MB at 5,000
        description="the first min(n_samples, test size) test samples, in the stored order",
    )


class FourierSpec(_Spec):
    """Fourier sensitivity heat maps of A and every B of a comparison on an image dataset
    (Yin et al., NeurIPS 2019; SCIENCE.md sect. 7): the test error per 2-D frequency (i, j)
    under the perturbation x + v r U_ij, on the same samples and signs for every model."""

    comparison_id: RowId
    n_samples: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="the first min(n_samples, test size) test samples, in the stored order",
    )
    v: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="the perturbation's L2 norm per channel; default 4 sqrt(D / 3072) for "
        "inputs of D values (Yin et al.'s v = 4 on 32 x 32 x 3 images in [0, 1])",
    )
    seed: Seed = Field(default=0, description="seeds the random signs r (per sample, channel)")


class PruningLimitSpec(_Spec):
    """The predicted pruning limit of a (dense) model (Zhang et al., NeurIPS 2024; SCIENCE.md
    sect. 7): its training loss's Hessian eigenvalue density by stochastic Lanczos quadrature,
    the theory curve w(R(s)) of global magnitude pruning and where it crosses s, and the
    observed test accuracy of one-shot global magnitude pruning (no fine-tuning) over s."""

    model_id: RowId
    iterations: int = Field(
        default=20, ge=1, le=200, description="Lanczos steps (Hessian-vector products) per vector"
    )
    vectors: int = Field(
        default=4, ge=1, le=64, description="random Rademacher starting vectors of the quadrature"
    )
    batches: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="training batches (a fixed random draw) whose mean loss the Hessian is of",
    )
    batch_size: int = Field(default=128, ge=1, le=4096)
    eps_batches: int = Field(
        default=50,
        ge=2,
        le=10_000,
        description="training batches whose per-batch loss standard deviation is eps "
        "(at most the training split's)",
    )
    grid: int = Field(
        default=20, ge=2, le=200, description="sparsities s = i / grid for i = 0 .. grid - 1"
    )
    include_classifier: bool = Field(
        default=True, description="whether the final Linear layer is prunable (and in the Hessian)"
    )
    seed: Seed = 0


class InstabilitySpec(_Spec):
    """Instability of a pruned model with a rewind point (Frankle et al., ICML 2020; SCIENCE.md
    sect. 4 and 7): two copies trained from its start weights with different data orders, the
    test error along the linear path between them and the error barrier."""

    model_id: RowId
    points: int = Field(
        default=30, ge=2, le=200, description="evenly spaced a in [0, 1], endpoints included"
    )
    seeds: list[Seed] = Field(
        default_factory=lambda: [1, 2],
        min_length=2,
        max_length=2,
        description="the two copies' training seeds (data order); they must differ",
    )
    epochs: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="epochs each copy trains; default: the model's own training epochs",
    )

    @field_validator("seeds")
    @classmethod
    def _different_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds={seeds} should differ (two data orders)")
        return seeds


class PingSpec(_Spec):
    """A trivial job: checks that a worker picks jobs up (deployments, benchmarks)."""

    seconds: float = Field(default=0.0, ge=0, le=600, description="how long to stay running")
    queue: Literal["gpu", "cpu"] = Field(default="cpu", description="which workers may take it")


def queue_for(kind: str, spec: dict[str, Any]) -> str:
    """The Celery queue a job goes to (``KIND_QUEUE``; a ping names its own)."""
    if kind == "ping":
        return str(spec.get("queue", "cpu"))
    return KIND_QUEUE[kind]


class ImportModelFields(_Spec):
    """What the upload form of a checkpoint says about it (a dry run validates only these)."""

    architecture: str | None = Field(default=None, max_length=100)
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    parent_id: RowId | None = None
    dataset_id: RowId | None = None


class _Uploaded(_Spec):
    upload_sha: str = Field(pattern="^[0-9a-f]{64}$")
    filename: str = Field(default="", max_length=500, pattern=NO_NUL)


class ImportModelSpec(_Uploaded, ImportModelFields):
    """Validate an uploaded checkpoint (stored raw under ``upload_sha``) and register it."""


class ImportDatasetFields(_Spec):
    """What the upload form of a dataset says about it (a dry run validates only these)."""

    format: Literal["npz", "cifar10", "cifar10c", "mnist", "imagefolder"] | None = None
    name: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: Seed = 0
    corruption: str | None = Field(default=None, max_length=100)
    severity: int | None = Field(default=None, ge=1, le=5)


class ImportDatasetSpec(_Uploaded, ImportDatasetFields):
    """Read an uploaded dataset file (stored raw under ``upload_sha``) and register it."""


UPLOAD_FIELDS: dict[str, type[_Spec]] = {
    "import_model": ImportModelFields,
    "import_dataset": ImportDatasetFields,
}
"""The form fields of an upload, by import kind: what ``POST /api/jobs?dry_run=true`` checks
for these kinds (the file itself, ``upload_sha`` and ``filename``, comes with the upload)."""

SPEC_TYPES: dict[str, type[_Spec]] = {
    "import_model": ImportModelSpec,
    "import_dataset": ImportDatasetSpec,
    "ping": PingSpec,
    "train": TrainSpec,
    "prune": PruneSpec,
    "analyze": AnalyzeSpec,
    "compare": CompareSpec,
    "regions": RegionsSpec,
    "attribution": AttributionSpec,
    "layers": LayersSpec,
    "fourier": FourierSpec,
    "pruning_limit": PruningLimitSpec,
    "instability": InstabilitySpec,
    "sweep": SweepSpec,
}

"""Generated model rows for the experiments table: originals and pruned lineages (one-shot
children, lottery-ticket rounds), their train and prune jobs, test-split analyses with per-class
recall and corruption accuracies, and compression reports of a realistic size; some models lack
an analysis, FLOPs, latency, a dataset or a job, as real workspaces do.

Written straight into a database with SQLAlchemy (no job runs), for the API tests, the
browser test and bench/bench_experiments.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from backend.db.session import migrate, session_scope
from backend.db.tables import AnalysisRow, DatasetRow, JobRow, ModelRow

ARCHITECTURES = ("digits_cnn", "mlp", "resnet20", "timm/resnet18")
METHODS = ("global_magnitude", "layer_magnitude", "random", "snip", "l1_filter", "rigl")
CORRUPTIONS = ("gaussian_noise", "fog", "jpeg_compression")
LAYERS = 20  # per compression report: about a ResNet-20's prunable layers
DATASETS = (
    # name, classes, input shape
    ("digits", 10, [1, 8, 8]),
    ("blobs", 10, [20]),
    ("cifar10_100%_mini", 10, [3, 32, 32]),  # "%" and "_": the text filter escapes them
)


@dataclass(frozen=True)
class Generated:
    """What was inserted: model ids in insertion order and the datasets' ids."""

    model_ids: list[int]
    dataset_ids: list[int]


def _report(
    rng: np.random.Generator, n_params: int, nonzero: int, flops: bool, device: str
) -> dict[str, Any]:
    """A compression report shaped like backend/pruning/report.py's (own_report without
    FLOPs and latency, as lottery-ticket rounds record)."""
    sizes = rng.integers(100, 40_000, LAYERS)
    layers = [
        {
            "name": f"layer{i // 3}.{i % 3}.conv",
            "numel": int(s),
            "nonzero": int(s * nonzero / n_params),
            "sparsity": float(1 - nonzero / n_params),
        }
        for i, s in enumerate(sizes)
    ]
    report: dict[str, Any] = {
        "layers": layers,
        "sparsity": float(1 - nonzero / n_params),
        "n_params": n_params,
        "n_nonzero": nonzero,
        "params_dense": n_params,
        "params": n_params,
        "nonzero": nonzero,
        "compression_ratio": n_params / nonzero,
    }
    if flops:
        dense = int(rng.integers(10**6, 10**9))
        per_layer = [
            {"name": layer["name"], "flops_dense": int(dense / LAYERS), "flops_nonzero": 0}
            for layer in layers
        ]
        latency = float(rng.uniform(0.2, 40.0))
        report |= {
            "flops_dense": dense,
            "flops_nonzero": int(dense * nonzero / n_params),
            "theoretical_speedup": n_params / nonzero,
            "flops_layers": per_layer,
            "latency_ms_dense": latency,
            "latency_ms_pruned": latency * float(rng.uniform(0.6, 1.1)),
            "measured_speedup": 1.0,
            "device": device,
            "batch_size": 64,
            "repeats": 20,
            "note": "Unstructured sparsity: the zeros are still multiplied by dense kernels.",
        }
    return report


def _summary(
    rng: np.random.Generator, classes: int, accuracy: float, corrupted: bool
) -> dict[str, Any]:
    """An analysis summary shaped like backend/jobs/kinds/analyze.py's."""
    recall = np.clip(accuracy + rng.normal(0, 0.08, classes), 0, 1)
    recall_list: list[float | None] = [float(r) for r in recall]
    if rng.random() < 0.05:
        recall_list[int(rng.integers(classes))] = None  # an empty class
    confusion = rng.integers(0, 40, (classes, classes)).tolist()
    summary: dict[str, Any] = {
        "accuracy": accuracy,
        "recall": recall_list,
        "precision": [float(p) for p in np.clip(recall + 0.01, 0, 1)],
        "support": [50] * classes,
        "confusion": confusion,
        "classes": {
            str(c): {
                "count": 50,
                "direction_norm": float(rng.uniform(0.5, 3)),
                **{
                    k: {"mean": float(rng.normal()), "std": float(rng.uniform(0, 1))}
                    for k in ("angle_true", "length", "length_z", "margin", "angular_margin")
                },
            }
            for c in range(classes)
        },
        "feature_dim": 64,
    }
    if corrupted:
        severities = [1, 3, 5]
        summary["robustness"] = {
            "corruptions": list(CORRUPTIONS),
            "severities": severities,
            "accuracy": [
                [float(np.clip(accuracy - 0.05 * s * rng.random(), 0, 1)) for s in severities]
                for _ in CORRUPTIONS
            ],
        }
    return summary


def insert_experiments(database_url: str, n_models: int, seed: int = 0) -> Generated:
    """Insert ``n_models`` models (about one original in eight) into the database at
    ``database_url`` (migrated first), with their jobs, datasets and analyses."""
    migrate(database_url)
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with session_scope(database_url) as s:
        datasets = []
        for name, classes, shape in DATASETS:
            row = DatasetRow(
                name=f"{name}-{seed}",
                source="generated",
                params={},
                num_classes=classes,
                class_names=[str(c) for c in range(classes)],
                input_shape=shape,
                n_train=500,
                n_test=500,
                artifact_sha="0" * 64,
            )
            datasets.append(row)
        s.add_all(datasets)
        s.flush()
        models: list[ModelRow] = []
        originals = 0
        while len(models) < n_models:
            k = len(models)
            ds = datasets[int(rng.integers(len(datasets)))]
            architecture = ARCHITECTURES[int(rng.integers(len(ARCHITECTURES)))]
            n_params = int(rng.integers(10_000, 12_000_000))
            train_seed = int(rng.integers(0, 5))
            job = JobRow(
                kind="train",
                spec={"dataset_id": ds.id, "architecture": architecture, "seed": train_seed},
                status="succeeded",
                progress=1.0,
                stage="done",
            )
            # the second original was uploaded (no job, no seed), the third has no dataset
            no_dataset = rng.random() < 0.03 or originals == 2
            uploaded = rng.random() < 0.05 or originals == 1
            originals += 1
            if not uploaded:
                s.add(job)
                s.flush()
            accuracy = float(rng.uniform(0.6, 0.99))
            original = ModelRow(
                name=f"{architecture} on {ds.name} #{k}",
                architecture=architecture,
                arch_kwargs={"num_classes": ds.num_classes},
                dataset_id=None if no_dataset else ds.id,
                sparsity=0.0,
                n_params=n_params,
                n_nonzero=n_params,
                accuracy=accuracy,
                sparsity_report=_report(rng, n_params, n_params, not uploaded, "cpu"),
                checkpoint_sha=f"{k:064x}",
                input_shape=ds.input_shape,
                num_classes=ds.num_classes,
                job_id=None if uploaded else job.id,
                created_at=start + timedelta(minutes=k // 2),  # pairs share a timestamp
            )
            s.add(original)
            s.flush()
            models.append(original)
            family = [(original, accuracy)]
            for _ in range(int(rng.integers(3, 12))):
                if len(models) >= n_models:
                    break
                parent, parent_acc = family[int(rng.integers(len(family)))]
                k = len(models)
                # pruning a pruned model: mostly lottery-ticket rounds, else pruned again
                lottery = (parent is not original and rng.random() < 0.7) or rng.random() < 0.1
                method = "lottery_ticket" if lottery else METHODS[int(rng.integers(len(METHODS)))]
                sparsity = float(
                    min(0.99, parent.sparsity + (1 - parent.sparsity) * rng.uniform(0.2, 0.9))
                )
                sparsity = round(sparsity, int(rng.integers(2, 6)))
                nonzero = max(1, int(n_params * (1 - sparsity)))
                fine_seed = int(rng.integers(0, 5))
                params: dict[str, Any] = {
                    "sparsity": sparsity,
                    "training": {"epochs": 3, "lr": 0.001, "seed": fine_seed},
                }
                if method == "random":
                    params["seed"] = fine_seed
                if method == "rigl":
                    params |= {"alpha": 0.3, "delta_t": 100}
                if k % 5:  # a learning distance, but not for every model (no rng: same draws)
                    params["learning"] = {"distance": round(2.0 * sparsity + k % 7 / 10, 4)}
                job = JobRow(
                    kind="prune",
                    spec={"model_id": parent.id, "method": method, "sparsity": sparsity},
                    status="succeeded",
                    progress=1.0,
                    stage="done",
                )
                s.add(job)
                s.flush()
                acc = float(np.clip(parent_acc - rng.uniform(-0.01, 0.2) * sparsity, 0.05, 1))
                child = ModelRow(
                    name=f"{parent.name} / {method} {100 * sparsity:.0f}%",
                    architecture=architecture,
                    arch_kwargs={"num_classes": ds.num_classes},
                    dataset_id=original.dataset_id,
                    parent_id=parent.id,
                    pruning_method=method,
                    pruning_params=params,
                    sparsity=sparsity,
                    n_params=n_params,
                    n_nonzero=nonzero,
                    accuracy=acc if rng.random() > 0.03 else None,
                    sparsity_report=_report(rng, n_params, nonzero, not lottery, "cpu"),
                    checkpoint_sha=f"{k:064x}",
                    input_shape=ds.input_shape,
                    num_classes=ds.num_classes,
                    job_id=job.id,
                    created_at=start + timedelta(minutes=k // 2),
                )
                s.add(child)
                s.flush()
                models.append(child)
                family.append((child, acc))
        for model in models:
            if model.dataset_id is None or rng.random() < 0.15:
                continue  # not analysed
            acc = model.accuracy if model.accuracy is not None else float(rng.uniform(0.5, 0.9))
            ds = next(d for d in datasets if d.id == model.dataset_id)
            s.add(
                AnalysisRow(
                    model_id=model.id,
                    dataset_id=model.dataset_id,
                    split="test",
                    accuracy=acc,
                    n_samples=500,
                    summary=_summary(rng, ds.num_classes, acc, rng.random() < 0.6),
                    samples_sha="1" * 64,
                )
            )
        s.flush()
        return Generated([m.id for m in models], [d.id for d in datasets])

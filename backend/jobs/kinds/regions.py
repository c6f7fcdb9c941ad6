"""Linear-region statistics of A and every B of a comparison (SCIENCE.md sect. 5).

Every model is measured on the same segments (pairs within a class, across classes, and
short random-direction segments centred on samples, chosen by seed from the test split) with
the exact 1-D counter, which self-checks each model's first segment against a plain forward
pass. Per sample (the first ``n_samples`` test samples): exact distance to the boundary of the
sample's own activation region; a certified interval for the distance to the decision boundary
(lower end: exact inside the own region, else the region distance; upper end: the nearest exact
decision crossing along the margin gradient and towards the nearest test samples predicted
otherwise); local complexity, dead-neuron rates, and, where layer widths match, agreement of
activation patterns with A.
A model with an unsupported module fails the job with the module named; nothing is stored for
a comparison until every model has been measured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from sqlalchemy import select

from backend.analysis.linear_regions import check_supported, count_regions_batch, segment_sets
from backend.analysis.region_local import (
    activation_patterns,
    dead_neuron_rate,
    decision_intervals,
    local_complexity,
    pattern_agreement,
    region_distances,
)
from backend.analysis.region_slice import SliceError, slice_regions, verify_slice
from backend.data.batches import FloatRows, row_norms
from backend.db.tables import ComparisonRow, JobRow, RegionResultRow
from backend.jobs.common import load_dataset, load_model, tensors
from backend.jobs.context import JobContext
from backend.jobs.kinds.analyze import parquet_bytes
from backend.jobs.specs import RegionsSpec

COUNTS = ("activation_pieces", "distinct_patterns", "linear_pieces", "decision_crossings")
DENSITIES = ("density_per_length", "density_per_live_neuron")
# Upper end of the decision interval: rays towards this many nearest test samples predicted
# otherwise (besides the margin gradient), chosen among the first NEIGHBOUR_POOL test samples.
DECISION_NEIGHBOURS = 3
NEIGHBOUR_POOL = 500
SLICE_SUMMARY = (
    "samples",
    "extent",
    "error",
    "self_check_error",
    "n_regions",
    "n_patterns",
    "n_polygons",
    "truncated",
)


def _stats(values: list[float]) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": None, "median": None, "std": None}
    return {"mean": float(arr.mean()), "median": float(np.median(arr)), "std": float(arr.std())}


def _three_classes(y: np.ndarray) -> list[int]:
    """The first sample of each of the first three classes present (fewer classes: first 3)."""
    firsts = [int(np.flatnonzero(y == c)[0]) for c in np.unique(y)[:3]]
    return firsts if len(firsts) == 3 else [0, 1, 2]


def _region_map(
    model: torch.nn.Module,
    x: torch.Tensor,
    idx: list[int],
    spec: RegionsSpec,
    cancel_check: Callable[[], None],
) -> dict[str, Any]:
    """Exact 2-D slice, self-checked; a slice over budget is recorded as such, never partial."""
    p0, p1, p2 = (x[i] for i in idx)
    e = spec.slice_extent
    try:
        found = slice_regions(
            model,
            p0,
            p1,
            p2,
            domain=(0.0, e, 0.0, e),
            max_regions=spec.slice_max_regions,
            cancel_check=cancel_check,
        )
    except SliceError as exc:
        return {"samples": idx, "extent": e, "error": str(exc)}
    error = verify_slice(model, found, n=16, seed=0)
    if error > 1e-6:
        raise RuntimeError(f"region map self-check failed: max logit error {error:.3g}")
    return {"samples": idx, "extent": e, "self_check_error": error, **found.to_json()}


def _interval_progress(
    ctx: JobContext, lo: float, hi: float, n: int, model_id: int, done: int
) -> None:
    """After each sample's decision interval (about a second each on a small CNN): stop when
    cancelled, and say how far the walk is."""
    ctx.check_cancelled()
    stage = f"model {model_id}: decision intervals {done}/{n}"
    ctx.report(lo + (hi - lo) * (0.75 + 0.1 * done / n), stage)


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = RegionsSpec.model_validate(job.spec)
    with ctx.session() as s:
        comp = s.get(ComparisonRow, spec.comparison_id)
        if comp is None:
            raise ValueError(f"comparison {spec.comparison_id} does not exist")
        dataset_id, ids = comp.dataset_id, [comp.model_a_id, *comp.model_b_ids]
    _, ds = load_dataset(ctx, dataset_id)
    stored, y = tensors(ds, "test")
    # rows are read as floats where they are used (uint8 images stay uint8 in memory)
    x = cast(torch.Tensor, FloatRows(stored))
    # the radius is relative to the inputs' typical norm, so it means the same on any dataset
    scale = float(row_norms(stored).mean()) / np.sqrt(x[0].numel())
    segments = segment_sets(x, y, spec.n_pairs, seed=0, radius=spec.radius * scale)
    n = min(spec.n_samples, len(x))
    slice_idx = spec.slice_samples or _three_classes(y.numpy())
    if max(slice_idx) >= len(x):
        raise ValueError(f"slice_samples {slice_idx} outside the test split ({len(x)} samples)")
    results: list[tuple[int, dict[str, Any], pd.DataFrame, pd.DataFrame, dict[str, Any]]] = []
    patterns_a: dict[str, Any] | None = None
    for i, model_id in enumerate(ids):
        ctx.check_cancelled()
        lo, hi = i / len(ids), (i + 1) / len(ids)
        _, model = load_model(ctx, model_id)
        check_supported(model)
        rows: list[dict[str, Any]] = []
        summary: dict[str, Any] = {"segments": {}}
        for k, (kind, pairs) in enumerate(segments.items()):
            ctx.report(lo + (hi - lo) * 0.7 * k / len(segments), f"model {model_id}: {kind}")
            found = count_regions_batch(
                model,
                pairs,
                chunks=spec.chunks,
                max_pieces=spec.max_pieces,
                self_check=(k == 0),
                cancel_check=ctx.check_cancelled,  # between segments and inside each
            )
            for j, r in enumerate(found):
                rows.append(
                    {
                        "kind": kind,
                        "segment": j,
                        **{c: getattr(r, c) for c in COUNTS},
                        "length": r.length,
                        "live_neurons": r.live_neurons,
                        **{d: getattr(r, d) for d in DENSITIES},
                    }
                )
            summary["segments"][kind] = {
                c: _stats([getattr(r, c) for r in found]) for c in (*COUNTS, *DENSITIES)
            }
        stage = "distances, decision intervals and local complexity"
        ctx.report(lo + (hi - lo) * 0.75, f"model {model_id}: {stage}")
        xs = x[:n].to(torch.float64)
        local = region_distances(model, xs, cancel_check=ctx.check_cancelled)
        # the pool is the head of the test split, so a ray's target is a test-sample index
        interval = decision_intervals(
            model,
            xs,
            x[: max(n, NEIGHBOUR_POOL)].to(torch.float64),
            n_neighbours=DECISION_NEIGHBOURS,
            distances=local,
            max_pieces=spec.max_pieces,
            after_sample=partial(_interval_progress, ctx, lo, hi, n, model_id),
            cancel_check=ctx.check_cancelled,  # between rays and inside each walk
        )
        complexity = local_complexity(
            model, xs, radius=spec.radius * scale, cancel_check=ctx.check_cancelled
        )
        patterns = activation_patterns(model, xs)
        summary["dead_neuron_rate"] = dead_neuron_rate(model, xs)
        if patterns_a is None:
            patterns_a = patterns
        else:
            summary["pattern_agreement_with_a"] = pattern_agreement(patterns_a, patterns)
        samples = pd.DataFrame(
            {
                "index": np.arange(n),
                "label": y[:n].numpy(),
                "region_distance": np.asarray(local["region_distance"]),
                # decision_distance: the certified lower end, as before the interval existed
                "decision_distance": interval.lower,
                "decision_exact": interval.exact,
                "decision_lower": interval.lower,
                "decision_upper": interval.upper,  # NaN (null): no ray crossed
                "decision_upper_direction": interval.direction,
                "decision_upper_target": interval.target,
                "decision_upper_class": interval.crossing_class,
                "decision_rays": interval.rays,
                "local_complexity": np.asarray(complexity),
            }
        )
        summary["samples"] = {
            c: _stats(samples[c].tolist())
            for c in ("region_distance", "decision_distance", "decision_upper", "local_complexity")
        }
        summary["decision_exact_fraction"] = float(samples["decision_exact"].mean())
        ctx.report(lo + (hi - lo) * 0.9, f"model {model_id}: 2-D region map")
        region_map = _region_map(model, x, slice_idx, spec, ctx.check_cancelled)
        summary["slice"] = {k: region_map[k] for k in SLICE_SUMMARY if k in region_map}
        results.append((model_id, summary, pd.DataFrame(rows), samples, region_map))
    # written only now: a failure part-way leaves no result that looks complete
    ids_out: dict[int, int] = {}
    for model_id, summary, seg_table, sample_table, region_map in results:
        seg_sha = ctx.store.put_bytes(parquet_bytes(seg_table))
        smp_sha = ctx.store.put_bytes(parquet_bytes(sample_table))
        summary["slice"]["artifact_sha"] = ctx.store.put_bytes(json.dumps(region_map).encode())
        with ctx.session() as s:
            row = s.scalars(
                select(RegionResultRow).where(
                    RegionResultRow.comparison_id == spec.comparison_id,
                    RegionResultRow.model_id == model_id,
                )
            ).first()
            if row is None:
                row = RegionResultRow(comparison_id=spec.comparison_id, model_id=model_id)
                s.add(row)
            row.summary, row.segments_sha, row.samples_sha = summary, seg_sha, smp_sha
            row.job_id = job.id
            s.flush()
            ids_out[model_id] = row.id
    return {"comparison_id": spec.comparison_id, "region_result_ids": ids_out}

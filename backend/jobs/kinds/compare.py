"""Compare model A (original) with each pruned model B of a comparison.

For every B (SCIENCE.md sections 1-3):
- recall distortion: normalised recall balance before/after, per-class intensification ratios,
  model intensification alpha_t; over the population of B's seeds (sweep siblings: same parent,
  method and sparsity) and across sparsities: mean alpha with a t-based confidence interval and
  the paired one-sided t-tests between consecutive ratios with Bonferroni correction;
- flips by category; pruning-identified exemplars when populations exist (dense: A and other
  originals of the same architecture and dataset; sparse: B's seed siblings), which degenerate
  to prediction flips with one model per side;
- corruption-fragile samples (correct clean, wrong corrupted) in A and B, and those made
  fragile by pruning; mean corruption error of B relative to A;
- geometry shifts (margin, angle, z-scored length) and the samples that moved most;
- an aligned 2-D embedding of A's and B's penultimate features;
- the neighbourhood change (SCIENCE.md sect. 7, Boggust et al. 2022): per sample, the Jaccard
  similarity of its ``spec.neighbours_k`` nearest test samples (cosine) in A's and in B's
  penultimate features (column ``nbr_jaccard``, ``summary["neighbours"]``).
Comparison-wide: the geometric similarity map of every (model, corruption) pair.

Adding models (``spec.added_model_b_ids``, POST /api/comparisons/{id}/models) makes the job
incremental. Analyses are reused whenever they are fresh (every job does that). Each B's result
records what it was computed from (``summary["inputs"]``, see :func:`result_inputs`: the
content addresses of A's and B's analyses, B's sparsity, the embedding method and feature
files, and the analyses of the populations it draws on); a B that was not just added keeps its
result when those inputs are unchanged, and when only its populations changed (a new B is a
seed or sparsity sibling of it: pruning-identified exemplars and the population alphas read the
siblings' analyses) everything but its embedding is computed again; a result that records no
inputs (written before they were recorded) is computed again. The embedding of A and B is a
function of those two models' features alone (:func:`aligned_embedding` of one pair, seed 0):
nothing ties it to the other Bs, so it is not recomputed for an unchanged pair and only the
added Bs are embedded; the stored coordinates are what recomputing them gives (exactly for PCA;
for the seeded UMAP methods on the same machine, see "Determinism" in
:mod:`backend.analysis.embeddings`). The similarity map is always recomputed over all models
(cheap: the fingerprints come from the stored per-sample tables). Reused or not, the numbers
are those a job computing every B from scratch would give on the same analyses
(tests/backend/api/test_add_models.py checks it to 1e-7).
"""

from __future__ import annotations

import io
from collections import OrderedDict, defaultdict
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from backend.analysis.flags import (
    corruption_fragile,
    made_fragile_by_pruning,
    pruning_identified_exemplars,
)
from backend.analysis.geometry import fingerprint
from backend.analysis.metrics import flip_categories, flip_counts
from backend.analysis.recall import (
    alpha_summary,
    compression_ratio,
    consecutive_ratio_tests,
    model_intensification,
    normalized_balance,
    pruning_ratio,
    recall_distortion,
)
from backend.db.tables import AnalysisRow, ComparisonResultRow, ComparisonRow, JobRow, ModelRow
from backend.jobs.context import JobContext, on_release
from backend.jobs.kinds.analyze import analyze_model, parquet_bytes
from backend.jobs.specs import CompareSpec
from backend.storage import ArtifactStore

SPLIT = "test"
TOP_K = 50


def _find(s: Any, model_id: int, dataset_id: int) -> AnalysisRow | None:
    return s.scalars(  # type: ignore[no-any-return]
        select(AnalysisRow).where(
            AnalysisRow.model_id == model_id,
            AnalysisRow.dataset_id == dataset_id,
            AnalysisRow.split == SPLIT,
        )
    ).first()


# Artifacts are immutable (addressed by sha256): A's tables, the population tables and the
# corruption records are read once per worker, not once per B and again for the fingerprints.
@lru_cache(maxsize=64)
def _load_table(url: str, sha: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(ArtifactStore(url).get_bytes(sha)))


@lru_cache(maxsize=8)
def _load_features(url: str, sha: str) -> np.ndarray:
    return np.load(io.BytesIO(ArtifactStore(url).get_bytes(sha)), allow_pickle=False)


def _clear_embedding_caches() -> None:
    from backend.analysis.embeddings import clear_knn_cache

    clear_knn_cache()


# A's neighbours are the same for every B of a job: (store url, features sha256, k) -> (N, k)
_neighbours_cache: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()


def _neighbours(ctx: JobContext, sha: str, k: int) -> np.ndarray:
    """k nearest test samples (cosine) of every sample in one stored feature file, cached."""
    from backend.analysis.neighbours import knn_cosine

    key = (ctx.store.url, sha, k)
    if key not in _neighbours_cache:
        _neighbours_cache[key] = knn_cosine(
            _features(ctx, sha), k, cancel_check=ctx.check_cancelled
        )
        while len(_neighbours_cache) > 4:
            _neighbours_cache.popitem(last=False)
    _neighbours_cache.move_to_end(key)
    return _neighbours_cache[key]


# a cancelled job leaves nothing behind in the worker (backend.jobs.context.release_memory)
on_release(_load_table.cache_clear)
on_release(_load_features.cache_clear)
on_release(_clear_embedding_caches)
on_release(_neighbours_cache.clear)


def _table(ctx: JobContext, sha: str) -> pd.DataFrame:
    return _load_table(ctx.store.url, sha)


def _features(ctx: JobContext, sha: str) -> np.ndarray:
    return _load_features(ctx.store.url, sha)


def _siblings(s: Any, b: ModelRow) -> list[ModelRow]:
    """Models pruned from B's parent with B's method (any sparsity, any seed)."""
    return list(
        s.scalars(
            select(ModelRow).where(
                ModelRow.parent_id == b.parent_id, ModelRow.pruning_method == b.pruning_method
            )
        ).all()
    )


def _recall(summary: dict[str, Any]) -> np.ndarray:
    return np.array([np.nan if r is None else r for r in summary["recall"]], dtype=np.float64)


def _seed(model: ModelRow) -> Any:
    params = model.pruning_params or {}
    return params.get("training", {}).get("seed", params.get("seed"))


def population_alphas(
    ctx: JobContext, a_summary: dict[str, Any], b: ModelRow, dataset_id: int
) -> dict[str, Any]:
    """alpha_t of every analysed sibling of B (same parent and method), grouped by ratio t."""
    with ctx.session() as s:
        rows = [(m, _find(s, m.id, dataset_id)) for m in _siblings(s, b)]
    bn_a = normalized_balance(_recall(a_summary), a_summary["accuracy"])
    by_ratio: dict[float, dict[Any, float]] = defaultdict(dict)
    for model, analysis in rows:
        if analysis is None:
            continue
        bn_b = normalized_balance(_recall(analysis.summary), analysis.summary["accuracy"])
        t = round(pruning_ratio(model.sparsity), 6)
        by_ratio[t][_seed(model)] = model_intensification(bn_a, bn_b)
    ratios = sorted(by_ratio)
    summaries = [
        {"t": t, "sparsity": 1 - 1 / t, **alpha_summary(np.array(list(by_ratio[t].values())))}
        for t in ratios
    ]
    # paired by seed: keep the seeds every ratio has
    common = set.intersection(*(set(by_ratio[t]) for t in ratios)) if ratios else set()
    tests: list[dict[str, Any]] = []
    if len(ratios) > 1 and len(common) > 1:
        seeds = sorted(common, key=str)
        tests = consecutive_ratio_tests(
            {t: np.array([by_ratio[t][sd] for sd in seeds]) for t in ratios}
        )
    return {"method": b.pruning_method, "by_ratio": summaries, "tests": tests}


def _originals(s: Any, a: ModelRow) -> list[ModelRow]:
    """Originals (no parent) of A's architecture and dataset, A included."""
    return list(
        s.scalars(
            select(ModelRow).where(
                ModelRow.parent_id.is_(None),
                ModelRow.architecture == a.architecture,
                ModelRow.dataset_id == a.dataset_id,
            )
        ).all()
    )


def populations(
    ctx: JobContext, a: ModelRow, b: ModelRow, dataset_id: int
) -> tuple[list[AnalysisRow], list[AnalysisRow]]:
    """Dense population (A and other analysed originals of the same architecture and dataset)
    and sparse population (B and its analysed seed siblings: same parent, method, sparsity)."""
    with ctx.session() as s:
        dense = [_find(s, m.id, dataset_id) for m in _originals(s, a)]
        sparse = [
            _find(s, m.id, dataset_id)
            for m in _siblings(s, b)
            if abs(m.sparsity - b.sparsity) < 1e-3
        ]
    return [d for d in dense if d is not None], [p for p in sparse if p is not None]


def result_inputs(
    ctx: JobContext,
    spec: CompareSpec,
    a: ModelRow,
    b: ModelRow,
    an_a: AnalysisRow,
    an_b: AnalysisRow,
    dataset_id: int,
) -> dict[str, Any]:
    """What A-vs-B's result is computed from, as JSON (stored with it as
    ``summary["inputs"]``): ``pair`` (A's and B's per-sample and corruption tables by sha256,
    B's sparsity), ``heads`` (A's and B's checkpoints by sha256: the class directions and the
    parameter counts of t), ``embedding`` (the method and both feature files by sha256),
    ``neighbours`` (k and both feature files) and ``populations`` (the analysed originals of
    A's architecture and B's analysed siblings,
    ``[model id, per-sample table sha256]`` sorted by id). Analyses are addressed by content, so
    equal inputs mean an equal result (:func:`compare_pair` reads nothing else)."""
    with ctx.session() as s:
        dense = [(m.id, _find(s, m.id, dataset_id)) for m in _originals(s, a)]
        siblings = [(m.id, _find(s, m.id, dataset_id)) for m in _siblings(s, b)]
    return {
        "pair": {
            "a": [an_a.samples_sha, an_a.corruptions_sha],
            "b": [an_b.samples_sha, an_b.corruptions_sha],
            "sparsity": b.sparsity,
        },
        "heads": [a.checkpoint_sha, b.checkpoint_sha],
        "embedding": {"method": spec.embedding, "a": an_a.features_sha, "b": an_b.features_sha},
        "neighbours": {"k": spec.neighbours_k, "a": an_a.features_sha, "b": an_b.features_sha},
        "populations": {
            name: sorted([mid, an.samples_sha] for mid, an in rows if an is not None)
            for name, rows in (("dense", dense), ("siblings", siblings))
        },
    }


def fragility(records: pd.DataFrame | None, correct_clean: np.ndarray) -> np.ndarray | None:
    """How many (corruption, severity) settings turn each correct sample wrong: (N,) int."""
    if records is None:
        return None
    n = len(correct_clean)
    counts = np.zeros(n, dtype=np.int32)
    for _, group in records.groupby(["corruption", "severity"], observed=True):
        correct = np.zeros(n, dtype=bool)
        correct[group["index"].to_numpy()] = group["correct"].to_numpy()
        counts += corruption_fragile(correct_clean, correct)
    return counts


def mean_corruption_error(robust_a: dict[str, Any], robust_b: dict[str, Any]) -> dict[str, Any]:
    """CE_c = sum_s E^B_{c,s} / sum_s E^A_{c,s}; mCE = mean over corruptions (Hendrycks &
    Dietterich 2019, with the original model as the reference instead of AlexNet)."""
    acc_a, acc_b = np.array(robust_a["accuracy"]), np.array(robust_b["accuracy"])
    err_a, err_b = (1 - acc_a).sum(axis=1), (1 - acc_b).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(err_a > 0, err_b / err_a, np.nan)
    return {
        "corruptions": robust_a["corruptions"],
        "ce": [None if np.isnan(v) else float(v) for v in ce],
        "mce": float(np.nanmean(ce)) if np.isfinite(ce).any() else None,
    }


def compare_pair(
    ctx: JobContext,
    spec: CompareSpec,
    a: ModelRow,
    b: ModelRow,
    an_a: AnalysisRow,
    an_b: AnalysisRow,
    dataset_id: int,
    progress: float,
    embedding: tuple[pd.DataFrame, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Summary JSON and per-sample table of A vs one B; ``embedding``: an earlier result's
    table and embedding summary for the same two feature files and method, whose coordinates
    are taken instead of computing them again (the layout of a pair depends on nothing else)."""
    from backend.analysis.embeddings import aligned_embedding

    ta, tb = _table(ctx, an_a.samples_sha), _table(ctx, an_b.samples_sha)
    y = ta["label"].to_numpy()
    cats = flip_categories(y, ta["pred"].to_numpy(), tb["pred"].to_numpy())
    rd = recall_distortion(
        _recall(an_a.summary), an_a.accuracy, _recall(an_b.summary), an_b.accuracy, b.sparsity
    )
    ctx.check_cancelled()
    dense, sparse = populations(ctx, a, b, dataset_id)
    pie = pruning_identified_exemplars(
        np.stack([_table(ctx, d.samples_sha)["pred"].to_numpy() for d in dense]),
        np.stack([_table(ctx, p.samples_sha)["pred"].to_numpy() for p in sparse]),
    )
    table = pd.DataFrame(
        {
            "index": ta["index"].to_numpy(),
            "label": y,
            "pred_a": ta["pred"].to_numpy(),
            "pred_b": tb["pred"].to_numpy(),
            "category": cats.astype(str),
            "pie": pie,
            "margin_a": ta["margin"].to_numpy(),
            "margin_b": tb["margin"].to_numpy(),
            "d_margin": (tb["margin"] - ta["margin"]).to_numpy(),
            "d_angle": (tb["angle_true"] - ta["angle_true"]).to_numpy(),
            "d_length_z": (tb["length_z"] - ta["length_z"]).to_numpy(),
        }
    )
    summary: dict[str, Any] = {
        "recall_distortion": rd.to_json(),
        "flip_counts": flip_counts(cats),
        "pie": {"count": int(pie.sum()), "dense_models": len(dense), "sparse_models": len(sparse)},
        "population": population_alphas(ctx, an_a.summary, b, dataset_id),
        "largest_shifts": {
            m: [int(i) for i in np.argsort(-np.abs(table[m].to_numpy()), kind="stable")[:TOP_K]]
            for m in ("d_margin", "d_angle", "d_length_z")
        },
    }
    # corruptions: fragile samples and mean corruption error
    ctx.check_cancelled()
    rec_a = _table(ctx, an_a.corruptions_sha) if an_a.corruptions_sha else None
    rec_b = _table(ctx, an_b.corruptions_sha) if an_b.corruptions_sha else None
    frag_a = fragility(rec_a, ta["correct"].to_numpy())
    frag_b = fragility(rec_b, tb["correct"].to_numpy())
    if frag_a is not None and frag_b is not None:
        table["fragile_a"] = frag_a
        table["fragile_b"] = frag_b
        table["made_fragile"] = made_fragile_by_pruning(frag_a > 0, frag_b > 0)
        summary["fragility"] = {
            "fragile_a": int((frag_a > 0).sum()),
            "fragile_b": int((frag_b > 0).sum()),
            "made_fragile_by_pruning": int(table["made_fragile"].sum()),
        }
        summary["mce"] = mean_corruption_error(
            an_a.summary["robustness"], an_b.summary["robustness"]
        )
    # aligned embedding of the two feature spaces
    if embedding is not None:
        earlier, about = embedding
        for column in ("ax", "ay", "bx", "by"):
            table[column] = earlier[column].to_numpy()
        summary["embedding"] = about
    elif an_a.features_sha and an_b.features_sha:
        ctx.report(progress, f"embedding A and model {b.id}", force=True)
        emb = aligned_embedding(
            _features(ctx, an_a.features_sha),
            _features(ctx, an_b.features_sha),
            method=spec.embedding,
            seed=0,
            cancel_check=ctx.check_cancelled,  # between its steps and UMAP's epochs
        )
        table["ax"], table["ay"] = emb.coords_a[:, 0], emb.coords_a[:, 1]
        table["bx"], table["by"] = emb.coords_b[:, 0], emb.coords_b[:, 1]
        summary["embedding"] = {
            "method": emb.method,
            "seconds": emb.seconds,
            "alignment_distance": emb.alignment_distance,
        }
    # neighbourhood change (SCIENCE.md sect. 7): Jaccard of each sample's k nearest test
    # samples in A's and B's features; k is capped at N - 1 on tiny test sets
    n = len(table)
    if an_a.features_sha and an_b.features_sha and n >= 2:
        from backend.analysis.neighbours import neighbourhood_jaccard

        ctx.check_cancelled()
        k = min(spec.neighbours_k, n - 1)
        nn_a = _neighbours(ctx, an_a.features_sha, k)
        nn_b = _neighbours(ctx, an_b.features_sha, k)
        jaccard = neighbourhood_jaccard(nn_a, nn_b)
        table["nbr_jaccard"] = jaccard
        summary["neighbours"] = {
            "k": k,
            "metric": "cosine",
            "mean": float(jaccard.mean()),
            "median": float(np.median(jaccard)),
        }
    return summary, table


def fingerprints(
    ctx: JobContext, models: list[ModelRow], analyses: dict[int, AnalysisRow]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Geometric fingerprints of every (model, corruption) pair: clean, and each corruption at
    its middle requested severity (SCIENCE.md sect. 1)."""
    rows, labels = [], []
    for model in models:
        an = analyses[model.id]
        clean = _table(ctx, an.samples_sha)
        rows.append(fingerprint(clean["angle_true"], clean["length"], clean["margin"]))
        labels.append({"model_id": model.id, "corruption": "clean", "severity": 0})
        if an.corruptions_sha:
            records = _table(ctx, an.corruptions_sha)
            sevs = sorted(records["severity"].unique())
            mid = int(sevs[len(sevs) // 2])
            for name, group in records[records["severity"] == mid].groupby(
                "corruption", observed=True
            ):
                g = group.sort_values("index")
                rows.append(fingerprint(g["angle_true"], g["length"], g["margin"]))
                labels.append({"model_id": model.id, "corruption": str(name), "severity": mid})
    return np.stack(rows), labels


class ClassDirections:
    """Class-direction angles of A against each B (SCIENCE.md sect. 1 and 7): the angle
    between W_A[c] and W_B[c] per class, served with the per-class geometry.

    Each model's classifier weight (effective: ``weight_orig * weight_mask`` when pruned) is
    read once per job from its checkpoint; a model is loaded on the CPU only for that.
    """

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self._weights: dict[int, np.ndarray | str] = {}

    def weight(self, model: ModelRow) -> np.ndarray | str:
        """(C, D) float64 classifier weight, or why it cannot be read."""
        if model.id not in self._weights:
            self._weights[model.id] = self._read(model)
        return self._weights[model.id]

    def _read(self, model: ModelRow) -> np.ndarray | str:
        from backend.analysis.features import find_classifier
        from backend.pruning.masks import effective_weight
        from models.checkpoint import load_checkpoint

        self.ctx.check_cancelled()
        with self.ctx.store.local_path(model.checkpoint_sha) as path:
            net, _meta = load_checkpoint(path, map_location="cpu")
        try:
            _name, head = find_classifier(net)
        except ValueError as exc:
            return f"model {model.id}'s classifier was not found: {exc}"
        weight = effective_weight(head).detach().double().cpu().numpy()
        del net
        return np.asarray(weight)

    def angles(self, a: ModelRow, b: ModelRow) -> dict[str, Any]:
        """``{"degrees": [C] or None, "norm_a": [C], "norm_b": [C], "reason": str | None}``;
        degrees are None (with the reason) when the feature widths differ (structured pruning
        of the last layer: the directions live in different spaces) or a classifier cannot
        be read; a class whose direction is zero in either model has None."""
        from backend.analysis.geometry import direction_angles

        wa, wb = self.weight(a), self.weight(b)
        if isinstance(wa, str) or isinstance(wb, str):
            reason = wa if isinstance(wa, str) else str(wb)
            return {"degrees": None, "norm_a": None, "norm_b": None, "reason": reason}
        norms = {
            "norm_a": [float(v) for v in np.linalg.norm(wa, axis=1)],
            "norm_b": [float(v) for v in np.linalg.norm(wb, axis=1)],
        }
        try:
            degrees = direction_angles(wa, wb)
        except ValueError as exc:
            return {"degrees": None, **norms, "reason": str(exc)}
        values = [None if not np.isfinite(v) else float(v) for v in degrees]
        return {"degrees": values, **norms, "reason": None}


class IntrinsicDimensions:
    """TwoNN intrinsic dimension of an analysis's penultimate features, overall and per class
    (SCIENCE.md sect. 7, :mod:`backend.analysis.intrinsic`), once per feature file per job (A's
    is the same for every B). A function of the feature file and the labels alone, so
    ``result_inputs``' feature shas cover it."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self._done: dict[str, dict[str, Any]] = {}

    def of(self, analysis: AnalysisRow) -> dict[str, Any]:
        from backend.analysis.intrinsic import intrinsic_dimensions

        sha = analysis.features_sha
        assert sha is not None
        if sha not in self._done:
            labels = _table(self.ctx, analysis.samples_sha)["label"].to_numpy()
            num_classes = len(analysis.summary.get("recall") or []) or int(labels.max()) + 1
            self._done[sha] = intrinsic_dimensions(
                _features(self.ctx, sha),
                labels,
                num_classes,
                cancel_check=self.ctx.check_cancelled,
            )
        return self._done[sha]


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    from backend.analysis.similarity import similarity_map

    spec = CompareSpec.model_validate(job.spec)
    with ctx.session() as s:
        comp = s.get(ComparisonRow, spec.comparison_id)
        if comp is None:
            raise ValueError(f"comparison {spec.comparison_id} does not exist")
        dataset_id, a_id, b_ids = comp.dataset_id, comp.model_a_id, comp.model_b_ids
        models = {
            m.id: m
            for m in s.scalars(select(ModelRow).where(ModelRow.id.in_([a_id, *b_ids]))).all()
        }
        for m in models.values():
            s.expunge(m)
    ids = [a_id, *b_ids]
    analyses: dict[int, AnalysisRow] = {}
    for i, mid in enumerate(ids):
        ctx.report(0.6 * i / len(ids), f"analysing model {mid}", force=True)
        with ctx.session() as s:
            an = _find(s, mid, dataset_id)
        stale = (
            an is None
            or an.features_sha is None
            or (spec.corruptions and an.corruptions_sha is None)
        )
        if stale:
            analyze_model(  # reports 0..1 of its own: it fills this model's share of 0..0.6
                ctx.span(0.6 * i / len(ids), 0.6 * (i + 1) / len(ids)),
                job,
                mid,
                dataset_id,
                SPLIT,
                corruptions=spec.corruptions,
                severities=spec.severities,
            )
            with ctx.session() as s:
                an = _find(s, mid, dataset_id)
        assert an is not None
        analyses[mid] = an
    results: dict[int, int] = {}
    reused: list[int] = []
    # stored only once every B is done: a cancelled or failed job leaves no partial result
    computed: list[tuple[int, dict[str, Any], pd.DataFrame]] = []
    earlier = _earlier_results(ctx, spec) if spec.added_model_b_ids is not None else {}
    heads = ClassDirections(ctx)
    dimensions = IntrinsicDimensions(ctx)
    for i, b_id in enumerate(b_ids):
        ctx.check_cancelled()
        progress = 0.6 + 0.35 * i / len(b_ids)
        inputs = result_inputs(
            ctx, spec, models[a_id], models[b_id], analyses[a_id], analyses[b_id], dataset_id
        )
        before = None if b_id in (spec.added_model_b_ids or []) else earlier.get(b_id)
        kept = before.summary.get("inputs") if before is not None else None
        if before is not None and kept == inputs:
            results[b_id] = before.id
            reused.append(b_id)
            continue
        ctx.report(progress, f"comparing with model {b_id}", force=True)
        embedding = None
        if before is not None and kept and kept.get("embedding") == inputs["embedding"]:
            earlier_table = _table(ctx, before.samples_sha)
            if "ax" in earlier_table.columns and "embedding" in before.summary:
                embedding = (earlier_table, before.summary["embedding"])
        summary, table = compare_pair(
            ctx,
            spec,
            models[a_id],
            models[b_id],
            analyses[a_id],
            analyses[b_id],
            dataset_id,
            progress,
            embedding,
        )
        summary["direction_angles"] = heads.angles(models[a_id], models[b_id])
        if analyses[a_id].features_sha and analyses[b_id].features_sha:
            summary["intrinsic_dimension"] = {
                side: dimensions.of(analyses[m]) for side, m in (("a", a_id), ("b", b_id))
            }
        summary["recall_distortion"]["t_all"] = compression_ratio(
            models[a_id].n_params, models[b_id].n_nonzero
        )
        summary["inputs"] = inputs
        computed.append((b_id, summary, table))
    ctx.check_cancelled()
    ctx.report(0.95, "similarity map", force=True)
    prints, labels = fingerprints(ctx, [models[m] for m in ids], analyses)
    sim = similarity_map(
        prints,
        [f"{lab['model_id']}:{lab['corruption']}" for lab in labels],
        cancel_check=ctx.check_cancelled,
    )
    ctx.check_cancelled()
    ctx.report(0.98, "saving", force=True)
    shas = [ctx.store.put_bytes(parquet_bytes(table)) for _, _, table in computed]
    with ctx.session() as s:  # one transaction: every B's result and the map, or nothing
        for (b_id, summary, _), sha in zip(computed, shas, strict=True):
            row = s.scalars(
                select(ComparisonResultRow).where(
                    ComparisonResultRow.comparison_id == spec.comparison_id,
                    ComparisonResultRow.model_b_id == b_id,
                )
            ).first()
            if row is None:
                row = ComparisonResultRow(comparison_id=spec.comparison_id, model_b_id=b_id)
                s.add(row)
            row.summary, row.samples_sha, row.job_id = summary, sha, job.id
            s.flush()
            results[b_id] = row.id
        comp = s.get(ComparisonRow, spec.comparison_id)
        assert comp is not None
        comp.summary = {"similarity": {**sim.to_json(), "points": labels}}
    ordered = {b_id: results[b_id] for b_id in b_ids}
    return {"comparison_id": spec.comparison_id, "result_ids": ordered, "reused_b_ids": reused}


def _earlier_results(ctx: JobContext, spec: CompareSpec) -> dict[int, ComparisonResultRow]:
    """The comparison's stored results by B, detached from their session."""
    with ctx.session() as s:
        rows = s.scalars(
            select(ComparisonResultRow).where(
                ComparisonResultRow.comparison_id == spec.comparison_id
            )
        ).all()
        for row in rows:
            s.expunge(row)
    return {row.model_b_id: row for row in rows}

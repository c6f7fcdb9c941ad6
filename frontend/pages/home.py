"""Home page ("/"): comparisons, models with their lineage, datasets and live jobs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dash
from dash import Input, Output, dcc, html

from frontend.client import (
    ApiError,
    ApiUnreachableError,
    ComparisonPublic,
    DatasetPublic,
    JobPublic,
    ModelPublic,
    get_client,
)
from frontend.components import api_error_notice, data_table, empty_state
from frontend.figures.formatting import (
    MISSING,
    format_count,
    format_percent,
    format_ratio,
    model_label,
)

PATH = "/"
TITLE = "PruneScope"
REFRESH_INTERVAL_MS = 2000
MAX_JOBS_SHOWN = 50

ID_MODELS = "home-models"
ID_DATASETS = "home-datasets"
ID_JOBS = "home-jobs"
ID_COMPARISONS = "home-comparisons"
ID_REFRESH = "home-refresh"

T = TypeVar("T")


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Home", layout=layout)
    app.callback(
        Output(ID_JOBS, "children"),
        Input(ID_REFRESH, "n_intervals"),
        prevent_initial_call=True,
    )(refresh_jobs)


# pure renderers ------------------------------------------------------------------------------


def lineage_order(models: Sequence[ModelPublic]) -> list[tuple[int, ModelPublic]]:
    """Order models as a forest: each original followed by its pruned descendants.

    Args:
        models: models in any order.

    Returns:
        ``(depth, model)`` pairs; depth 0 for originals (and for models whose parent is not in
        the list), depth d + 1 for a child of a depth-d model. Siblings are sorted by sparsity
        then id.
    """
    by_id = {m["id"]: m for m in models}
    children: dict[int, list[ModelPublic]] = {}
    roots: list[ModelPublic] = []
    for m in models:
        parent = m.get("parent_id")
        if parent is not None and parent in by_id and parent != m["id"]:
            children.setdefault(parent, []).append(m)
        else:
            roots.append(m)

    def sibling_key(m: ModelPublic) -> tuple[float, int]:
        return (float(m.get("sparsity") or 0.0), m["id"])

    out: list[tuple[int, ModelPublic]] = []
    seen: set[int] = set()
    stack: list[tuple[int, ModelPublic]] = [(0, m) for m in sorted(roots, key=lambda m: m["id"])]
    stack.reverse()
    while stack:
        depth, m = stack.pop()
        if m["id"] in seen:  # a parent cycle in bad data must not loop forever
            continue
        seen.add(m["id"])
        out.append((depth, m))
        kids = sorted(children.get(m["id"], []), key=sibling_key)
        stack.extend((depth + 1, k) for k in reversed(kids))
    # Models caught in a parent cycle have no root; show them flat rather than hide them.
    out.extend((0, m) for m in models if m["id"] not in seen)
    return out


def _dataset_name(names: dict[int, str], dataset_id: int | None) -> str:
    if dataset_id is None:
        return MISSING
    return names.get(dataset_id, f"#{dataset_id}")


def models_section(
    models: Sequence[ModelPublic], datasets: Sequence[DatasetPublic] = ()
) -> html.Div | html.Table | html.P:
    """The models table, originals followed by their pruned children, or an empty state."""
    if not models:
        return empty_state(
            "No models yet — run ",
            html.Code("prunescope demo"),
            " or submit a train job.",
        )
    dataset_names = {d["id"]: d["name"] for d in datasets}
    rows = []
    for depth, m in lineage_order(models):
        name: list[Any] = [m["name"]]
        if depth:
            name = [html.Span("↳ ", className="lineage-arrow"), m["name"]]
        rows.append(
            [
                html.Span(name, style={"paddingLeft": f"{1.25 * depth}em"}, className="lineage"),
                m["architecture"],
                _dataset_name(dataset_names, m.get("dataset_id")),
                m.get("pruning_method") or "original",
                format_percent(m.get("sparsity")),
                format_percent(m.get("accuracy")),
                f"{format_count(m.get('n_nonzero'))} / {format_count(m.get('n_params'))}",
                format_ratio(m.get("compression_ratio")),
            ]
        )
    return data_table(
        [
            "Model",
            "Architecture",
            "Dataset",
            "Pruning",
            "Sparsity",
            "Accuracy",
            "Nonzero / params",
            "Compression",
        ],
        rows,
    )


def datasets_section(datasets: Sequence[DatasetPublic]) -> html.Table | html.P:
    """The datasets table, or an empty state."""
    if not datasets:
        return empty_state(
            "No datasets yet — run ",
            html.Code("prunescope demo"),
            " to register a built-in dataset, or upload one.",
        )
    rows = [
        [
            d["name"],
            d["source"],
            str(d["num_classes"]),
            "×".join(str(s) for s in d.get("input_shape") or []) or MISSING,
            f"{d['n_train']:,}",
            f"{d['n_test']:,}",
        ]
        for d in sorted(datasets, key=lambda d: d["id"])
    ]
    return data_table(["Dataset", "Source", "Classes", "Input", "Train", "Test"], rows)


def job_progress(job: JobPublic) -> html.Div:
    """A progress bar with its percentage; full for succeeded jobs."""
    progress = float(job.get("progress") or 0.0)
    if job["status"] == "succeeded":
        progress = 1.0
    progress = min(max(progress, 0.0), 1.0)
    return html.Div(
        [
            html.Progress(value=f"{progress:.3f}", max="1", className=f"progress-{job['status']}"),
            html.Span(f"{100 * progress:.0f}%", className="progress-text"),
        ],
        className="progress",
    )


def jobs_section(jobs: Sequence[JobPublic]) -> html.Div | html.P:
    """The jobs table, newest first, or an empty state."""
    if not jobs:
        return empty_state(
            "No jobs yet — jobs appear here when you train, prune or analyze a model "
            "(for example with ",
            html.Code("prunescope demo"),
            ").",
        )
    newest = sorted(jobs, key=lambda j: j["id"], reverse=True)
    shown = newest[:MAX_JOBS_SHOWN]
    rows = [
        [
            str(j["id"]),
            j["kind"],
            html.Span(j["status"], className=f"status status-{j['status']}"),
            job_progress(j),
            j.get("stage") or "",
            html.Span(j.get("error") or "", className="job-error"),
        ]
        for j in shown
    ]
    children: list[Any] = [
        data_table(["Job", "Kind", "Status", "Progress", "Stage", "Error"], rows),
    ]
    if len(newest) > len(shown):
        children.append(
            html.P(
                f"Showing the {len(shown)} most recent of {len(newest)} jobs.", className="muted"
            )
        )
    return html.Div(children)


def comparisons_section(
    comparisons: Sequence[ComparisonPublic],
    models: Sequence[ModelPublic] = (),
    datasets: Sequence[DatasetPublic] = (),
) -> html.Table | html.P:
    """Links to every comparison (``/compare?id=N``), or an empty state."""
    if not comparisons:
        return empty_state(
            "No comparisons yet — run ",
            html.Code("prunescope demo"),
            " to train, prune and compare a small model.",
        )
    model_by_id = {m["id"]: m for m in models}
    dataset_names = {d["id"]: d["name"] for d in datasets}

    def label(model_id: int) -> str:
        m = model_by_id.get(model_id)
        return model_label(m) if m is not None else f"model {model_id}"

    rows = [
        [
            dcc.Link(c["name"] or f"comparison {c['id']}", href=f"/compare?id={c['id']}"),
            _dataset_name(dataset_names, c.get("dataset_id")),
            label(c["model_a_id"]),
            ", ".join(label(b) for b in c.get("model_b_ids") or []) or MISSING,
        ]
        for c in sorted(comparisons, key=lambda c: c["id"], reverse=True)
    ]
    return data_table(["Comparison", "Dataset", "Original (A)", "Pruned (B)"], rows)


# layout and callbacks --------------------------------------------------------------------------


def _fetch(fn: Callable[[], list[T]]) -> tuple[list[T], ApiError | None]:
    try:
        return fn(), None
    except ApiError as exc:
        return [], exc


def _section(title: str, section_id: str, content: Any, error: ApiError | None) -> html.Section:
    body = api_error_notice(error, title.lower()) if error is not None else content
    return html.Section([html.H2(title), html.Div(body, id=section_id)], className="section")


def layout(**_query: Any) -> html.Div:
    """The home page, fetched from the API at render time."""
    client = get_client()
    comparisons, err_c = _fetch(client.list_comparisons)
    models, err_m = _fetch(client.list_models)
    datasets, err_d = _fetch(client.list_datasets)
    jobs, err_j = _fetch(client.list_jobs)
    errors = [e for e in (err_c, err_m, err_d, err_j) if e is not None]
    if len(errors) == 4 and all(isinstance(e, ApiUnreachableError) for e in errors):
        return html.Div(
            [html.H1("PruneScope"), api_error_notice(errors[0], "the home page")],
            className="page page-home",
        )
    return html.Div(
        [
            html.H1("PruneScope"),
            html.P(
                "See what pruning did to your network: open a comparison to put an original "
                "model and its pruned versions side by side.",
                className="lead",
            ),
            _section(
                "Comparisons",
                ID_COMPARISONS,
                comparisons_section(comparisons, models, datasets),
                err_c,
            ),
            _section("Models", ID_MODELS, models_section(models, datasets), err_m),
            _section("Datasets", ID_DATASETS, datasets_section(datasets), err_d),
            _section("Jobs", ID_JOBS, jobs_section(jobs), err_j),
            dcc.Interval(id=ID_REFRESH, interval=REFRESH_INTERVAL_MS, n_intervals=0),
        ],
        className="page page-home",
    )


def refresh_jobs(n_intervals: int | None) -> Any:
    """Callback: re-fetch the jobs list every ``REFRESH_INTERVAL_MS`` and re-render it."""
    try:
        jobs = get_client().list_jobs()
    except ApiError as exc:
        return api_error_notice(exc, "the jobs")
    return jobs_section(jobs)

"""Home page ("/"): comparisons, models with their lineage, datasets and live jobs.

The jobs panel polls ``GET /api/jobs`` every second while some job is queued, running or
cancelling, and stops when none is; each queued or running job has a "Cancel" button
(``POST /api/jobs/{id}/cancel``) with the pattern-matching id
``{"type": "home-job-cancel", "index": <job id>}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import (
    ApiError,
    ApiUnreachableError,
    ComparisonPublic,
    DatasetPublic,
    JobPublic,
    ModelPublic,
    get_client,
)
from frontend.components import (
    api_error_notice,
    data_table,
    download_link,
    empty_state,
    notice,
    progress_bar,
)
from frontend.figures.formatting import (
    MISSING,
    format_count,
    format_percent,
    format_ratio,
    model_label,
)
from frontend.forms import lineage_order, model_architecture_summary, query_int
from frontend.jobs import can_cancel, is_active, job_title

PATH = "/"
TITLE = "PruneScope"
REFRESH_INTERVAL_MS = 1000  # while a job is active; no polling when none is
MAX_JOBS_SHOWN = 50
MAX_ERROR_SUMMARY = 90  # characters of a failed job's error shown before it is expanded

ID_MODELS = "home-models"
ID_DATASETS = "home-datasets"
ID_JOBS = "home-jobs"
ID_COMPARISONS = "home-comparisons"
ID_REFRESH = "home-refresh"
ID_JOBS_ACTIVE = "home-jobs-active"  # dcc.Store inside the jobs panel: is some job active?
CANCEL_TYPE = "home-job-cancel"  # pattern-matching ids {"type": CANCEL_TYPE, "index": job id}
# A failed job's error summary, {"type": ERROR_TYPE, "index": job id}: its clicks say whether the
# error is expanded, so the panel's re-render every second keeps it open.
ERROR_TYPE = "home-job-error"
MODEL_COLUMNS = ["Model", "Architecture", "Dataset", "Pruning", "Sparsity", "Accuracy"]
MODEL_COLUMNS += ["Nonzero / params", "Compression", "Comparisons", ""]

T = TypeVar("T")


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Home", layout=layout)
    expanded = (
        State({"type": ERROR_TYPE, "index": ALL}, "n_clicks"),
        State({"type": ERROR_TYPE, "index": ALL}, "id"),
    )
    app.callback(
        Output(ID_JOBS, "children"),
        Input(ID_REFRESH, "n_intervals"),
        *expanded,
        prevent_initial_call=True,
    )(refresh_jobs)
    # Runs whenever the jobs panel is rendered (its store is new): poll only while needed.
    app.callback(Output(ID_REFRESH, "disabled"), Input(ID_JOBS_ACTIVE, "data"))(sync_polling)
    app.callback(
        Output(ID_JOBS, "children", allow_duplicate=True),
        Input({"type": CANCEL_TYPE, "index": ALL}, "n_clicks"),
        State({"type": CANCEL_TYPE, "index": ALL}, "id"),
        *expanded,
        prevent_initial_call=True,
    )(cancel_jobs)


# pure renderers ------------------------------------------------------------------------------


def _nothing_yet(what: str, *how: Any) -> html.P:
    return empty_state(f"No {what} yet — run ", html.Code("prunescope demo"), *how)


def _link_list(links: Sequence[Any]) -> html.Span | str:
    """Links separated by a muted " · "; "—" for none."""
    if not links:
        return MISSING
    parts = [part for link in links for part in (html.Span(" · ", className="muted"), link)]
    return html.Span(parts[1:], className="link-list")


def _action(text: str, href: str) -> dcc.Link:
    """A job row's link to its result ("Open comparison →")."""
    return dcc.Link(text, href=href, className="row-action")


def models_section(
    models: Sequence[ModelPublic],
    datasets: Sequence[DatasetPublic] = (),
    comparisons: Sequence[ComparisonPublic] = (),
) -> html.Div | html.Table | html.P:
    """The models table, originals followed by their pruned children, or an empty state;
    each row links to the Prune page for that model and to the comparisons it is part of."""
    if not models:
        return _nothing_yet(
            "models",
            ", submit a train job (",
            html.Code("prunescope train --dataset digits --arch digits_cnn"),
            ") or ",
            dcc.Link("upload a checkpoint", href="/upload"),
            "; then prune it on the ",
            dcc.Link("Prune page", href="/prune"),
            ".",
        )
    dataset_names = {d["id"]: d["name"] for d in datasets}
    in_comparisons: dict[int, list[int]] = {}  # model id -> the comparisons it is A or a B of
    for c in sorted(comparisons, key=lambda c: c["id"]):
        for mid in [c["model_a_id"], *(c.get("model_b_ids") or [])]:
            in_comparisons.setdefault(mid, []).append(c["id"])
    rows = []
    for depth, m in lineage_order(models):
        name: list[Any] = [html.Span("↳ ", className="lineage-arrow")] if depth else []
        links = [
            dcc.Link(f"#{cid}", href=f"/compare?id={cid}", title=f"comparison {cid}")
            for cid in in_comparisons.get(m["id"], [])
        ]
        prune = dcc.Link(
            "Prune →",
            href=f"/prune?model={m['id']}",
            className="row-action",
            title=f"prune {m['name']} with any method",
        )
        rows.append(
            [
                html.Span(
                    [*name, m["name"]],
                    style={"paddingLeft": f"{1.25 * depth}em"},
                    className="lineage",
                ),
                model_architecture_summary(m),
                _dataset_name(dataset_names, m.get("dataset_id")),
                m.get("pruning_method") or "original",
                format_percent(m.get("sparsity")),
                format_percent(m.get("accuracy")),
                f"{format_count(m.get('n_nonzero'))} / {format_count(m.get('n_params'))}",
                format_ratio(m.get("compression_ratio")),
                _link_list(links),
                html.Span([prune, " ", download_link(m["id"])]),
            ]
        )
    return data_table(MODEL_COLUMNS, rows)


def _dataset_name(names: dict[int, str], dataset_id: int | None) -> str:
    return MISSING if dataset_id is None else names.get(dataset_id, f"#{dataset_id}")


def datasets_section(datasets: Sequence[DatasetPublic]) -> html.Table | html.P:
    """The datasets table, or an empty state."""
    if not datasets:
        upload = dcc.Link("upload one", href="/upload")
        formats = " (npz, CIFAR-10, MNIST, an image folder)."
        return _nothing_yet("datasets", " to register the built-in digits, or ", upload, formats)
    rows = [
        [
            d["name"],
            d["source"],
            html.Span(
                str(d["num_classes"]), title=", ".join(str(c) for c in d.get("class_names") or [])
            ),
            "×".join(str(s) for s in d.get("input_shape") or []) or MISSING,
            f"{d['n_train']:,}",
            f"{d['n_test']:,}",
        ]
        for d in sorted(datasets, key=lambda d: d["id"])
    ]
    return data_table(["Dataset", "Source", "Classes", "Input", "Train", "Test"], rows)


def job_summary(job: JobPublic) -> html.Span | str:
    """The job's kind, with what it works on when the spec says (method and sparsity...)."""
    kind = str(job["kind"])
    spec = job.get("spec") or {}
    detail = job_title(job) if kind in ("prune", "sweep") else kind
    if kind == "compare" and spec.get("comparison_id") is not None:
        detail = f"comparison #{spec['comparison_id']}"
    elif kind == "train" and spec.get("architecture"):
        detail = str(spec["architecture"])
    if not detail or detail == kind:
        return kind
    return html.Span([kind, html.Span(f" · {detail}", className="muted")])


def job_error(job: JobPublic, clicks: int = 0) -> html.Details | str:
    """A failed job's error: its first line, the whole message on hover or expanded on click
    (``clicks`` on its summary so far; odd means expanded)."""
    error = str(job.get("error") or "")
    if not error:
        return ""
    first = error.strip().splitlines()[0] if error.strip() else error
    if len(first) > MAX_ERROR_SUMMARY:
        first = first[: MAX_ERROR_SUMMARY - 1] + "…"
    return html.Details(
        [
            html.Summary(first, id={"type": ERROR_TYPE, "index": job["id"]}, n_clicks=clicks),
            html.Pre(error, className="job-error-full"),
        ],
        open=clicks % 2 == 1,
        title=error,
        className="job-error",
    )


def error_clicks(
    clicks: Sequence[int | None] | None, ids: Sequence[Mapping[str, Any]] | None
) -> dict[int, int]:
    """``{job id: clicks}`` of the error summaries on the page (callback States)."""
    return {int(i["index"]): int(n) for n, i in zip(clicks or [], ids or [], strict=False) if n}


def job_action(job: JobPublic) -> Any:
    """What a job's row offers: "Cancel" while queued or running, a link to its result after."""
    status = job.get("status")
    if can_cancel(job):
        return html.Button(
            "Cancel",
            id={"type": CANCEL_TYPE, "index": job["id"]},
            n_clicks=0,
            className="btn btn-danger btn-small",
            title=f"stop job #{job['id']} (POST /api/jobs/{job['id']}/cancel)",
        )
    if status == "cancelling":
        return html.Span("Stopping…", className="muted", title="the worker stops at its next check")
    result = (job.get("result") or {}) if status == "succeeded" else {}
    if result.get("comparison_id") is not None:
        return _action("Open comparison →", f"/compare?id={result['comparison_id']}")
    if result.get("model_id") is not None:
        return _action(f"Prune model #{result['model_id']} →", f"/prune?model={result['model_id']}")
    return ""


def jobs_section(
    jobs: Sequence[JobPublic],
    message: Any = None,
    expanded: Mapping[int, int] | None = None,
) -> html.Div | html.P | list[Any]:
    """The jobs table (``GET /api/jobs``), newest first, or an empty state, with the "is some
    job active" store; ``message``: a notice above it (e.g. why a cancel failed); ``expanded``:
    the clicks on each failed job's error so far (see :func:`job_error`)."""
    expanded = expanded or {}
    active = dcc.Store(id=ID_JOBS_ACTIVE, data=any(is_active(j) for j in jobs))
    head = [message] if message is not None else []
    if not jobs:
        return [
            *head,
            empty_state(
                "No jobs yet — jobs appear here when you train, prune or analyze a model "
                "(for example with ",
                html.Code("prunescope demo"),
                " or on the ",
                dcc.Link("Prune page", href="/prune"),
                ").",
            ),
            active,
        ]
    newest = sorted(jobs, key=lambda j: j["id"], reverse=True)
    shown = newest[:MAX_JOBS_SHOWN]
    rows = [
        [
            str(j["id"]),
            job_summary(j),
            html.Span(j["status"], className=f"status status-{j['status']}"),
            # the prune page's progress bar (full for a succeeded job), one id per row
            progress_bar(j, f"home-job-progress-{j['id']}"),
            j.get("stage") or "",
            job_error(j, expanded.get(j["id"], 0)),
            job_action(j),
        ]
        for j in shown
    ]
    header = ["Job", "Kind", "Status", "Progress", "Stage", "Error", ""]
    children: list[Any] = [*head, data_table(header, rows)]
    if len(newest) > len(shown):
        more = f"Showing the {len(shown)} most recent of {len(newest)} jobs."
        children.append(html.P(more, className="muted"))
    return html.Div([*children, active])


def _compare_status(comparison: ComparisonPublic, jobs_by_id: dict[int, JobPublic]) -> Any:
    """The state of a comparison's compare job: a status badge, with progress while it runs."""
    job_id = query_int(dict(comparison).get("job_id"))
    job = jobs_by_id.get(job_id) if job_id is not None else None
    if job is None:
        return MISSING
    status = job["status"]
    badge = html.Span(status, className=f"status status-{status}")
    if status in ("queued", "running"):
        return html.Span([badge, f" {100 * float(job.get('progress') or 0):.0f}%"])
    if status == "failed":
        return html.Span(badge, title=job.get("error") or "")
    return badge


def comparisons_section(
    comparisons: Sequence[ComparisonPublic],
    models: Sequence[ModelPublic] = (),
    datasets: Sequence[DatasetPublic] = (),
    jobs: Sequence[JobPublic] = (),
) -> html.Table | html.P:
    """Links to every comparison (``/compare?id=N``) and its overview and similarity map, the
    state of its compare job, or an empty state."""
    if not comparisons:
        return _nothing_yet(
            "comparisons",
            " to train, prune and compare a small model, or prune one on the ",
            dcc.Link("Prune page", href="/prune"),
            " and choose “Compare with the original”.",
        )
    model_by_id = {m["id"]: m for m in models}
    dataset_names = {d["id"]: d["name"] for d in datasets}
    jobs_by_id = {j["id"]: j for j in jobs}

    def label(model_id: int) -> str:
        m = model_by_id.get(model_id)
        return model_label(m) if m is not None else f"model {model_id}"

    rows = [
        [
            dcc.Link(c["name"] or f"comparison {c['id']}", href=f"/compare?id={c['id']}"),
            _dataset_name(dataset_names, c.get("dataset_id")),
            label(c["model_a_id"]),
            ", ".join(label(b) for b in c.get("model_b_ids") or []) or MISSING,
            _compare_status(c, jobs_by_id),
            _link_list(
                [
                    dcc.Link("Overview", href=f"/overview?id={c['id']}"),
                    dcc.Link("Similarity map", href=f"/similarity?id={c['id']}"),
                ]
            ),
        ]
        for c in sorted(comparisons, key=lambda c: c["id"], reverse=True)
    ]
    header = ["Comparison", "Dataset", "Original (A)", "Pruned (B)", "Compare job", "Views"]
    return data_table(header, rows)


# layout and callbacks --------------------------------------------------------------------------


def _fetch(fn: Callable[[], list[T]]) -> tuple[list[T], ApiError | None]:
    try:
        return fn(), None
    except ApiError as exc:
        return [], exc


def _section(
    title: str, section_id: str, error: ApiError | None, render: Callable[..., Any], *data: Any
) -> html.Section:
    """A titled section: ``render(*data)``, or why its data could not be fetched."""
    body = api_error_notice(error, title.lower()) if error is not None else render(*data)
    return html.Section([html.H2(title), html.Div(body, id=section_id)], className="section")


def layout(**_query: Any) -> html.Div:
    """The home page, fetched from the API at render time."""
    client = get_client()
    comparisons, err_c = _fetch(client.list_comparisons)
    models, err_m = _fetch(client.list_models)
    datasets, err_d = _fetch(client.list_datasets)
    jobs, err_j = _fetch(client.list_jobs)
    errors = [e for e in (err_c, err_m, err_d, err_j) if e is not None]
    title = html.H1("PruneScope")
    if len(errors) == 4 and all(isinstance(e, ApiUnreachableError) for e in errors):
        return html.Div(
            [title, api_error_notice(errors[0], "the home page")], className="page page-home"
        )
    lead = (
        "See what pruning did to your network: open a comparison to put an original model and "
        "its pruned versions side by side."
    )
    return html.Div(
        [
            title,
            html.P(lead, className="lead"),
            _section(
                "Comparisons",
                ID_COMPARISONS,
                err_c,
                comparisons_section,
                comparisons,
                models,
                datasets,
                jobs,
            ),
            _section("Models", ID_MODELS, err_m, models_section, models, datasets, comparisons),
            _section("Datasets", ID_DATASETS, err_d, datasets_section, datasets),
            _section("Jobs", ID_JOBS, err_j, jobs_section, jobs),
            dcc.Interval(
                id=ID_REFRESH,
                interval=REFRESH_INTERVAL_MS,
                n_intervals=0,
                disabled=err_j is None and not any(is_active(j) for j in jobs),
            ),
        ],
        className="page page-home",
    )


def refresh_jobs(
    n_intervals: int | None,
    clicks: Sequence[int | None] | None = None,
    ids: Sequence[Mapping[str, Any]] | None = None,
) -> Any:
    """Callback: re-fetch the jobs list every ``REFRESH_INTERVAL_MS`` and re-render it; the
    failed jobs' error summaries that were expanded (their ``n_clicks`` and ids) stay open."""
    try:
        jobs = get_client().list_jobs()
    except ApiError as exc:
        return api_error_notice(exc, "the jobs")
    return jobs_section(jobs, expanded=error_clicks(clicks, ids))


def sync_polling(active: Any) -> bool:
    """Callback: the refresh interval's ``disabled``: poll only while some job is active."""
    return not bool(active)


def cancel_jobs(
    n_clicks: Sequence[int | None],
    ids: Sequence[dict[str, Any]],
    error_n_clicks: Sequence[int | None] | None = None,
    error_ids: Sequence[Mapping[str, Any]] | None = None,
) -> Any:
    """Callback: ``POST /api/jobs/{id}/cancel`` for the job whose "Cancel" was clicked (its
    button, ``{"type": "home-job-cancel", "index": job id}``, is the one with clicks: every
    re-render of the panel creates them with ``n_clicks=0``). A job that ended meanwhile (409)
    is said in a notice, not as an error; the panel is re-rendered (and polling resumes while a
    job is still stopping), the expanded errors kept open as in :func:`refresh_jobs`."""
    clicked = [int(i["index"]) for n, i in zip(n_clicks, ids, strict=False) if n]
    if not clicked:
        return dash.no_update
    client = get_client()
    messages: list[Any] = []
    for job_id in clicked:
        try:
            client.cancel_job(job_id)
        except ApiError as exc:
            if exc.status != 409:
                messages.append(api_error_notice(exc, f"a cancel of job #{job_id}"))
                continue
            title = f"Job #{job_id} had already finished"
            messages.append(notice(title, "There was nothing left to cancel.", kind="info"))
    try:
        jobs = client.list_jobs()
    except ApiError as exc:
        return html.Div([*messages, api_error_notice(exc, "the jobs")])
    message = html.Div(messages) if messages else None
    return jobs_section(jobs, message, error_clicks(error_n_clicks, error_ids))

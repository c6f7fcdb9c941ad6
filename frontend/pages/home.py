"""Home page ("/"): comparisons, models with their lineage, datasets and live jobs.

The jobs panel polls ``GET /api/jobs`` every second while some job is queued, running or
cancelling, and stops when none is; each queued or running job has a "Cancel" button
(``POST /api/jobs/{id}/cancel``) with the pattern-matching id
``{"type": "home-job-cancel", "index": <job id>}``.

Every row of comparisons, models, datasets and finished jobs has a "Delete" button (for users
who may write), ``{"type": "home-delete", "kind": <kind>, "index": <id>}``. A click asks the
server what would go (a dry run of ``DELETE /api/<kind>s/<id>``) and shows it in a
confirmation dialog; when the server refuses (409: something uses it), its sentence is shown
with "Delete with everything that uses it", which asks again, with what the cascade deletes,
before ``DELETE ...?cascade=true``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import (
    DELETE_KINDS,
    ApiError,
    ApiUnreachableError,
    ComparisonPublic,
    DatasetPublic,
    DeleteKind,
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
from frontend.session import can_write, current_user

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
DELETE_TYPE = "home-delete"  # {"type": DELETE_TYPE, "kind": "model", "index": model id}
ID_DELETABLE = "home-deletable"  # dcc.Store: may this user delete (write)? set at render
ID_DELETE_CONFIRM = "home-delete-confirm"  # dcc.ConfirmDialog: what will go
ID_DELETE_TARGET = "home-delete-target"  # dcc.Store: {"kind", "id", "cascade"} being asked
ID_DELETE_NOTICE = "home-delete-notice"  # what was deleted, or why not
ID_DELETE_REFUSAL = "home-delete-refusal"  # the server's refusal and the cascade offer
ID_DELETE_REFUSAL_TEXT = "home-delete-refusal-text"
ID_DELETE_CASCADE = "home-delete-cascade"  # "Delete with everything that uses it"
CASCADING = ("model", "dataset")  # what a deletion can cascade from
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
        State(ID_DELETABLE, "data"),
        prevent_initial_call=True,
    )(refresh_jobs)
    # Runs whenever the jobs panel is rendered (its store is new): poll only while needed.
    app.callback(Output(ID_REFRESH, "disabled"), Input(ID_JOBS_ACTIVE, "data"))(sync_polling)
    app.callback(
        Output(ID_JOBS, "children", allow_duplicate=True),
        Input({"type": CANCEL_TYPE, "index": ALL}, "n_clicks"),
        State({"type": CANCEL_TYPE, "index": ALL}, "id"),
        *expanded,
        State(ID_DELETABLE, "data"),
        prevent_initial_call=True,
    )(cancel_jobs)
    app.callback(
        Output(ID_DELETE_CONFIRM, "message"),
        Output(ID_DELETE_CONFIRM, "displayed"),
        Output(ID_DELETE_TARGET, "data"),
        Output(ID_DELETE_REFUSAL, "hidden"),
        Output(ID_DELETE_REFUSAL_TEXT, "children"),
        Output(ID_DELETE_NOTICE, "children"),
        Input({"type": DELETE_TYPE, "kind": ALL, "index": ALL}, "n_clicks"),
        Input(ID_DELETE_CASCADE, "n_clicks"),
        State(ID_DELETE_TARGET, "data"),
        prevent_initial_call=True,
    )(ask_delete)
    app.callback(
        Output(ID_COMPARISONS, "children", allow_duplicate=True),
        Output(ID_MODELS, "children", allow_duplicate=True),
        Output(ID_DATASETS, "children", allow_duplicate=True),
        Output(ID_JOBS, "children", allow_duplicate=True),
        Output(ID_DELETE_NOTICE, "children", allow_duplicate=True),
        Output(ID_DELETE_REFUSAL, "hidden", allow_duplicate=True),
        Output(ID_DELETE_REFUSAL_TEXT, "children", allow_duplicate=True),
        Output(ID_DELETE_TARGET, "data", allow_duplicate=True),
        Input(ID_DELETE_CONFIRM, "submit_n_clicks"),
        State(ID_DELETE_TARGET, "data"),
        State(ID_DELETABLE, "data"),
        prevent_initial_call=True,
    )(confirm_delete)


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


def delete_button(kind: str, ident: int) -> html.Button:
    """A row's "Delete" button (it asks first: see :func:`ask_delete`)."""
    return html.Button(
        "Delete",
        id={"type": DELETE_TYPE, "kind": kind, "index": ident},
        n_clicks=0,
        className="btn btn-danger btn-small",
        title=f"delete {kind} #{ident} (says what goes and asks first)",
    )


def models_section(
    models: Sequence[ModelPublic],
    datasets: Sequence[DatasetPublic] = (),
    comparisons: Sequence[ComparisonPublic] = (),
    deletable: bool = False,
) -> html.Div | html.Table | html.P:
    """The models table, originals followed by their pruned children, or an empty state;
    each row links to the Prune page for that model and to the comparisons it is part of
    (``deletable``: and has a "Delete" button)."""
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
                html.Span(
                    [prune, " ", download_link(m["id"]), " ", delete_button("model", m["id"])]
                    if deletable
                    else [prune, " ", download_link(m["id"])]
                ),
            ]
        )
    return data_table(MODEL_COLUMNS, rows)


def _dataset_name(names: dict[int, str], dataset_id: int | None) -> str:
    return MISSING if dataset_id is None else names.get(dataset_id, f"#{dataset_id}")


def datasets_section(
    datasets: Sequence[DatasetPublic], deletable: bool = False
) -> html.Table | html.P:
    """The datasets table, or an empty state (``deletable``: a "Delete" button per row)."""
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
            *([delete_button("dataset", d["id"])] if deletable else []),
        ]
        for d in sorted(datasets, key=lambda d: d["id"])
    ]
    header = ["Dataset", "Source", "Classes", "Input", "Train", "Test"]
    return data_table(header + ([""] if deletable else []), rows)


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
    deletable: bool = False,
) -> html.Div | html.P | list[Any]:
    """The jobs table (``GET /api/jobs``), newest first, or an empty state, with the "is some
    job active" store; ``message``: a notice above it (e.g. why a cancel failed); ``expanded``:
    the clicks on each failed job's error so far (see :func:`job_error`); ``deletable``: a
    finished job's row has a "Delete" button."""
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
            _with_delete(job_action(j), "job", j["id"], deletable and not is_active(j)),
        ]
        for j in shown
    ]
    header = ["Job", "Kind", "Status", "Progress", "Stage", "Error", ""]
    children: list[Any] = [*head, data_table(header, rows)]
    if len(newest) > len(shown):
        more = f"Showing the {len(shown)} most recent of {len(newest)} jobs."
        children.append(html.P(more, className="muted"))
    return html.Div([*children, active])


def _with_delete(action: Any, kind: str, ident: int, deletable: bool) -> Any:
    """A row's action, followed by its "Delete" button when ``deletable``."""
    if not deletable:
        return action
    return html.Span(
        [action, " ", delete_button(kind, ident)] if action else delete_button(kind, ident)
    )


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
    deletable: bool = False,
) -> html.Table | html.P:
    """Links to every comparison (``/compare?id=N``) and its overview and similarity map, the
    state of its compare job, or an empty state (``deletable``: a "Delete" button per row)."""
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
            *([delete_button("comparison", c["id"])] if deletable else []),
        ]
        for c in sorted(comparisons, key=lambda c: c["id"], reverse=True)
    ]
    header = ["Comparison", "Dataset", "Original (A)", "Pruned (B)", "Compare job", "Views"]
    return data_table(header + ([""] if deletable else []), rows)


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


def _deletable() -> bool:
    """Whether this page's user may delete (write), so that its rows get "Delete" buttons."""
    return can_write(current_user())


def delete_controls(deletable: bool) -> list[Any]:
    """The confirmation dialog, what it is asking about, where the answer is told, and whether
    the rows have "Delete" buttons (the callbacks that re-render them read it)."""
    offer = html.Button(
        "Delete with everything that uses it",
        id=ID_DELETE_CASCADE,
        n_clicks=0,
        className="btn btn-danger btn-small",
        title="asks again, saying everything that would go",
    )
    refusal = html.Div(
        [html.Strong("Not deleted"), html.P(id=ID_DELETE_REFUSAL_TEXT), offer],
        id=ID_DELETE_REFUSAL,
        hidden=True,
        className="notice notice-warning",
    )
    return [
        dcc.Store(id=ID_DELETABLE, data=deletable),
        dcc.ConfirmDialog(id=ID_DELETE_CONFIRM, message=""),
        dcc.Store(id=ID_DELETE_TARGET, data=None),
        html.Div(id=ID_DELETE_NOTICE),
        refusal,
    ]


def layout(**_query: Any) -> html.Div:
    """The home page, fetched from the API at render time."""
    client = get_client()
    comparisons, err_c = _fetch(client.list_comparisons)
    models, err_m = _fetch(client.list_models)
    datasets, err_d = _fetch(client.list_datasets)
    jobs, err_j = _fetch(client.list_jobs)
    errors = [e for e in (err_c, err_m, err_d, err_j) if e is not None]
    deletable = _deletable()
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
            # a user who may write builds comparisons from any models (issue 18)
            html.P(dcc.Link("New comparison →", href="/comparisons/new", id="home-new-comparison"))
            if deletable
            else None,
            *delete_controls(deletable),
            _section(
                "Comparisons",
                ID_COMPARISONS,
                err_c,
                comparisons_section,
                comparisons,
                models,
                datasets,
                jobs,
                deletable,
            ),
            _section(
                "Models",
                ID_MODELS,
                err_m,
                models_section,
                models,
                datasets,
                comparisons,
                deletable,
            ),
            _section("Datasets", ID_DATASETS, err_d, datasets_section, datasets, deletable),
            _section("Jobs", ID_JOBS, err_j, jobs_section, jobs, None, None, deletable),
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
    deletable: bool | None = None,
) -> Any:
    """Callback: re-fetch the jobs list every ``REFRESH_INTERVAL_MS`` and re-render it; the
    failed jobs' error summaries that were expanded (their ``n_clicks`` and ids) stay open;
    ``deletable``: the page's store, whether rows get "Delete" buttons."""
    try:
        jobs = get_client().list_jobs()
    except ApiError as exc:
        return api_error_notice(exc, "the jobs")
    return jobs_section(jobs, expanded=error_clicks(clicks, ids), deletable=bool(deletable))


def sync_polling(active: Any) -> bool:
    """Callback: the refresh interval's ``disabled``: poll only while some job is active."""
    return not bool(active)


def cancel_jobs(
    n_clicks: Sequence[int | None],
    ids: Sequence[dict[str, Any]],
    error_n_clicks: Sequence[int | None] | None = None,
    error_ids: Sequence[Mapping[str, Any]] | None = None,
    deletable: bool | None = None,
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
    expanded = error_clicks(error_n_clicks, error_ids)
    return jobs_section(jobs, message, expanded, bool(deletable))


# deleting ---------------------------------------------------------------------------------------
NOTHING = dash.no_update


def _kind(value: Any) -> DeleteKind:
    """A target's kind, as the client's type (the page wrote it: one of DELETE_KINDS)."""
    if value not in DELETE_KINDS:
        raise ValueError(f"kind={value!r} should be one of {DELETE_KINDS}")
    return cast(DeleteKind, value)


def _trigger() -> tuple[Any, Any]:
    """The id and new value of what fired the running callback."""
    triggered = dash.ctx.triggered or [{}]
    return dash.ctx.triggered_id, triggered[0].get("value")


def confirm_text(kind: str, ident: int, answer: Mapping[str, Any], cascade: bool) -> str:
    """The confirmation dialog's question: what the server says would go."""
    head = f"Delete {kind} #{ident}" + (" with everything that uses it?" if cascade else "?")
    what = str(answer.get("message") or "").replace("Would delete", "This deletes", 1)
    return f"{head}\n\n{what}\n\nThis cannot be undone."


def refusal(kind: DeleteKind, ident: int, exc: ApiError) -> tuple[bool, Any, Any, Any]:
    """What a refused deletion shows: ``(refusal hidden, refusal text, next target, notice)``.
    A 409 shows the server's sentence, with the cascade offer when the server would take a
    cascade (a dry run says so; not while a job works on it); anything else is a notice."""
    if exc.status == 409:
        wider = None
        if kind in CASCADING:
            with contextlib.suppress(ApiError):
                wider = get_client().delete(kind, ident, cascade=True, dry_run=True)
        if wider is not None:
            text = [exc.detail, html.Br(), f"With everything that uses it: {wider['message']}"]
            return False, text, {"kind": kind, "id": ident, "cascade": True}, None
        return (
            True,
            "",
            None,
            notice(f"{kind.capitalize()} #{ident} was not deleted", exc.detail, kind="warning"),
        )
    if exc.status == 404:
        gone = notice(f"{kind.capitalize()} #{ident} is gone already", "Reload the page.")
        return True, "", None, gone
    return True, "", None, api_error_notice(exc, f"the deletion of {kind} #{ident}")


def ask_delete(
    clicks: Sequence[int | None] | None,
    cascade_clicks: int | None,
    target: Mapping[str, Any] | None,
    trigger: tuple[Any, Any] | None = None,
) -> tuple[Any, ...]:
    """Callback: a "Delete" button (or the cascade offer) was clicked: ask the server what would
    go (a dry run) and show it in the confirmation dialog, or show its refusal. Outputs: the
    dialog's message and displayed, the target, the refusal's hidden and text, the notice.
    ``trigger``: (id, value) of what fired it (default: Dash's callback context)."""
    fired, value = trigger if trigger is not None else _trigger()
    if fired == ID_DELETE_CASCADE and cascade_clicks and target:
        kind, ident, cascade = _kind(target["kind"]), int(target["id"]), True
    elif isinstance(fired, Mapping) and fired.get("type") == DELETE_TYPE and value:
        # a re-rendered table brings new buttons (n_clicks 0): only a real click asks
        kind, ident, cascade = _kind(fired["kind"]), int(fired["index"]), False
    else:
        return (NOTHING,) * 6
    try:
        answer = get_client().delete(kind, ident, cascade=cascade, dry_run=True)
    except ApiError as exc:
        hidden, text, offer, told = refusal(kind, ident, exc)
        return "", False, offer, hidden, text, told
    asked = {"kind": kind, "id": ident, "cascade": cascade}
    return confirm_text(kind, ident, answer, cascade), True, asked, True, "", None


def sections(deletable: bool) -> tuple[Any, Any, Any, Any]:
    """The comparisons, models, datasets and jobs sections' contents, fetched afresh."""
    client = get_client()
    comparisons, err_c = _fetch(client.list_comparisons)
    models, err_m = _fetch(client.list_models)
    datasets, err_d = _fetch(client.list_datasets)
    jobs, err_j = _fetch(client.list_jobs)

    def body(error: ApiError | None, what: str, render: Callable[[], Any]) -> Any:
        return api_error_notice(error, what) if error is not None else render()

    return (
        body(
            err_c,
            "comparisons",
            lambda: comparisons_section(comparisons, models, datasets, jobs, deletable),
        ),
        body(err_m, "models", lambda: models_section(models, datasets, comparisons, deletable)),
        body(err_d, "datasets", lambda: datasets_section(datasets, deletable)),
        body(err_j, "jobs", lambda: jobs_section(jobs, deletable=deletable)),
    )


def confirm_delete(
    submitted: int | None, target: Mapping[str, Any] | None, deletable: bool | None = True
) -> tuple[Any, ...]:
    """Callback: the dialog was confirmed: ``DELETE`` the target, then re-render the four
    sections and say what went; a refusal (something started using it meanwhile) is shown as
    :func:`ask_delete` shows it (``deletable``: the page's store, for the re-rendered rows).
    Outputs: the comparisons, models, datasets and jobs sections, the notice, the refusal's
    hidden and text, the target."""
    if not submitted or not target:
        return (NOTHING,) * 8
    kind, ident = _kind(target["kind"]), int(target["id"])
    cascade = bool(target.get("cascade"))
    try:
        answer = get_client().delete(kind, ident, cascade=cascade)
    except ApiError as exc:
        hidden, text, offer, told = refusal(kind, ident, exc)
        return NOTHING, NOTHING, NOTHING, NOTHING, told, hidden, text, offer
    done = notice(f"Deleted {kind} #{ident}", str(answer["message"]), kind="info")
    return (*sections(bool(deletable)), done, True, "", None)

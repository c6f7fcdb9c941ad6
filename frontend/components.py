"""Small Dash component builders shared by the pages (notices, tables, cards)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from dash import dcc, html

from frontend.client import ApiError, ApiUnreachableError


def notice(
    title: str,
    body: Sequence[Any] | str | None = None,
    *,
    kind: str = "info",
    link_home: bool = False,
    notice_id: str | None = None,
) -> html.Div:
    """A boxed message: an empty state, a not-found or an error.

    Args:
        title: the headline.
        body: text or components under the headline.
        kind: "info", "warning" or "error"; selects the CSS class ``notice-<kind>``.
        link_home: add a link back to the home page.
        notice_id: optional component id.
    """
    children: list[Any] = [html.Strong(title)]
    if body:
        children.append(html.P(body if isinstance(body, str) else list(body)))
    if link_home:
        children.append(html.P(dcc.Link("← Back to home", href="/")))
    kwargs: dict[str, Any] = {"className": f"notice notice-{kind}"}
    if notice_id is not None:
        kwargs["id"] = notice_id
    return html.Div(children, **kwargs)


def api_error_notice(
    exc: ApiError, what: str, *, link_home: bool = False, notice_id: str | None = None
) -> html.Div:
    """Explain a failed API call without a traceback.

    Args:
        exc: the error raised by the client.
        what: what was being loaded, e.g. "the comparison".
        link_home: add a link back to the home page.
        notice_id: optional component id.
    """
    if isinstance(exc, ApiUnreachableError):
        return notice(
            "Cannot reach the PruneScope API",
            [
                f"Could not load {what}: {exc.detail}. Is ",
                html.Code("prunescope serve"),
                " running? Reload the page once it is.",
            ],
            kind="error",
            link_home=link_home,
            notice_id=notice_id,
        )
    return notice(
        f"Could not load {what}",
        f"The API answered {exc.status}: {exc.detail}",
        kind="error",
        link_home=link_home,
        notice_id=notice_id,
    )


def empty_state(*parts: Any) -> html.P:
    """A muted paragraph saying a list is empty and what to do about it."""
    return html.P(list(parts), className="empty")


def data_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    table_id: str | None = None,
    row_class_names: Sequence[str | None] | None = None,
) -> html.Table:
    """A plain HTML table: one ``Th`` per header, one ``Tr`` in the body per row.

    Args:
        header: column titles.
        rows: cell contents, one sequence per row, each as long as ``header``.
        table_id: optional component id of the table.
        row_class_names: optional CSS class per row.

    Raises:
        ValueError: when a row's length differs from the header's.
    """
    body = []
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells but the header has {len(header)}")
        tr_kwargs: dict[str, Any] = {}
        if row_class_names is not None and row_class_names[i]:
            tr_kwargs["className"] = row_class_names[i]
        body.append(html.Tr([html.Td(cell) for cell in row], **tr_kwargs))
    kwargs: dict[str, Any] = {"className": "data-table"}
    if table_id is not None:
        kwargs["id"] = table_id
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(body)], **kwargs
    )


def stat_card(
    title: str, value_a: str, value_b: str, delta: str | None = None, *, card_id: str | None = None
) -> html.Div:
    """A headline card: one metric of A and of B, and optionally the change.

    Args:
        title: the metric, e.g. "Accuracy".
        value_a: formatted value of the original model.
        value_b: formatted value of the pruned model.
        delta: formatted change from A to B, or None.
        card_id: optional component id.
    """
    children: list[Any] = [
        html.Div(title, className="card-title"),
        html.Div(
            [
                html.Div([html.Span("A", className="tag tag-a"), html.Span(value_a)]),
                html.Div([html.Span("B", className="tag tag-b"), html.Span(value_b)]),
            ],
            className="card-values",
        ),
    ]
    if delta is not None:
        children.append(html.Div(delta, className="card-delta"))
    kwargs: dict[str, Any] = {"className": "card stat-card"}
    if card_id is not None:
        kwargs["id"] = card_id
    return html.Div(children, **kwargs)


# the job-kind tab strip of the "New job" pages (/new and /prune) ------------------------------

JOB_KIND_TABS: tuple[tuple[str, str, str], ...] = (
    ("train", "Train", "Train a network from scratch on a registered dataset"),
    ("prune", "Prune", "Prune one model with one method at one sparsity, then fine-tune it"),
    ("sweep", "Sweep", "Prune one model with a method at several sparsities and seeds"),
    ("analyze", "Analyze", "Evaluate a model on a dataset split, optionally under corruptions"),
)


def _query_value(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def job_kind_href(kind: str, *, model: Any = None, dataset: Any = None) -> str:
    """Where the tab of job ``kind`` leads, carrying the model or dataset already chosen.

    Train and analyze live on ``/new``, prune and sweep on ``/prune`` (a sweep with
    ``kind=sweep``); the train tab carries the dataset, the others the model.

    Raises:
        ValueError: for a kind that is not one of :data:`JOB_KIND_TABS`.
    """
    kinds = [k for k, _, _ in JOB_KIND_TABS]
    if kind not in kinds:
        raise ValueError(f"kind={kind!r} should be one of {', '.join(kinds)}")
    path = "/prune" if kind in ("prune", "sweep") else "/new"
    params: list[tuple[str, str]] = []
    if kind != "prune":
        params.append(("kind", kind))
    carried = (
        ("dataset", _query_value(dataset)) if kind == "train" else ("model", _query_value(model))
    )
    if carried[1] is not None:
        params.append((carried[0], carried[1]))
    return f"{path}?{urlencode(params)}" if params else path


def job_kind_links(active: str, *, model: Any = None, dataset: Any = None) -> list[dcc.Link]:
    """The tabs of :func:`job_kind_tabs` (a callback re-renders them when the kind changes)."""
    links = []
    for kind, label, doc in JOB_KIND_TABS:
        class_name = "job-tab job-tab-active" if kind == active else "job-tab"
        links.append(
            dcc.Link(
                label,
                href=job_kind_href(kind, model=model, dataset=dataset),
                id=f"job-tab-{kind}",
                className=class_name,
                title=doc,
            )
        )
    return links


def job_kind_tabs(
    active: str, *, model: Any = None, dataset: Any = None, tabs_id: str | None = None
) -> html.Nav:
    """The "Train | Prune | Sweep | Analyze" strip that makes /new and /prune one "New job" page.

    Args:
        active: the kind whose tab is highlighted.
        model: id of the model chosen so far; the prune, sweep and analyze tabs carry it.
        dataset: id of the dataset chosen so far; the train tab carries it.
        tabs_id: optional component id of the strip.
    """
    kwargs: dict[str, Any] = {"className": "job-tabs"}
    if tabs_id is not None:
        kwargs["id"] = tabs_id
    return html.Nav(job_kind_links(active, model=model, dataset=dataset), **kwargs)


def progress_bar(job: Mapping[str, Any], bar_id: str | None = None) -> html.Div:
    """A job's progress bar with its percentage; full for a succeeded job.

    Args:
        job: a job (``status``, ``progress`` in [0, 1]).
        bar_id: id of the ``<progress>`` element (tests and pages find it by it).
    """
    progress = float(job.get("progress") or 0.0)
    if job.get("status") == "succeeded":
        progress = 1.0
    progress = min(max(progress, 0.0), 1.0)
    extra: dict[str, Any] = {} if bar_id is None else {"id": bar_id}
    bar = html.Progress(
        value=f"{progress:.3f}", max="1", className=f"progress-{job.get('status')}", **extra
    )
    return html.Div(
        [bar, html.Span(f"{100 * progress:.0f}%", className="progress-text")],
        className="progress",
    )


def job_line(job: Mapping[str, Any]) -> html.Div:
    """One line about a job: "Job #n", its status, its progress bar and its stage (or the
    ``message`` of a job state that carries one, as the attribution state does)."""
    status = str(job.get("status") or "")
    return html.Div(
        [
            html.Span(f"Job #{job.get('id') or job.get('job_id')} ", className="muted"),
            html.Span(status, className=f"status status-{status}"),
            progress_bar(job),
            html.Span(str(job.get("stage") or job.get("message") or ""), className="muted"),
        ],
        className="job-line",
        style={"display": "flex", "alignItems": "center", "gap": "0.75rem", "flexWrap": "wrap"},
    )


def job_status(job: Mapping[str, Any], title: Any, prefix: str, stopping: Any) -> list[Any]:
    """The top of a job form's progress panel (prune and new-job pages): "Job #n" and its
    title, status, progress bar and stage, then the error of a failed job, ``stopping`` while
    it is being cancelled, or that it was cancelled. What a succeeded job made is the page's.

    Component ids: ``<prefix>-status``, ``-progress-bar``, ``-stage`` and ``-job-error``.
    """
    status = str(job.get("status"))
    children: list[Any] = [
        html.H2([f"Job #{job['id']} ", html.Span(title, className="muted")]),
        html.Div(
            [
                html.Span(status, id=f"{prefix}-status", className=f"status status-{status}"),
                progress_bar(job, f"{prefix}-progress-bar"),
                html.Span(job.get("stage") or "", id=f"{prefix}-stage", className="muted"),
            ],
            className="job-line",
        ),
    ]
    error_id = f"{prefix}-job-error"
    if status == "failed":
        error = job.get("error") or "no error message"
        children.append(notice("The job failed", error, kind="error", notice_id=error_id))
    elif status == "cancelling":
        children.append(stopping)
    elif status == "cancelled":
        children.append(notice("The job was cancelled", kind="warning", notice_id=error_id))
    return children


def job_follow_section(
    *, progress_id: str, cancel_id: str, cancel_notice_id: str, cancel_title: str
) -> list[Any]:
    """The children of a job form's followed-job section: the panel its poll re-renders, then
    the "Cancel job" row. The button lives outside the re-rendered panel, so that it exists
    from the start; the poll shows it while the job can be cancelled."""
    return [
        html.Div(id=progress_id),
        html.Div(
            [
                html.Button(
                    "Cancel job",
                    id=cancel_id,
                    n_clicks=0,
                    hidden=True,
                    className="btn btn-danger",
                    title=cancel_title,
                ),
                html.Div(id=cancel_notice_id),
            ],
            className="actions job-actions",
        ),
    ]

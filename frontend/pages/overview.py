"""Evaluation overview page ("/overview?id=<comparison>&sort=<column>").

The evaluation table of Li et al. (SCIENCE.md section 1) for one comparison: a row per model (the
original A and every pruned B, i.e. method x sparsity), a column for clean accuracy and one per
corruption (its accuracy averaged over the severities run), each cell with an inline bar and
the change from A. A B row's cell links to that pair's comparison view with the cell's corruption
selected (``/compare?id=&b=&rob_c=``). Column headers sort the table; the order is kept in the
URL (``sort=clean``, ``sort=-gaussian_noise``). Without ``id`` the page lists the comparisons.

Everything is read through the REST API: ``GET /api/comparisons/{id}``, ``/api/models``,
``/api/analyses?dataset_id=`` and ``/api/analyses/{id}/robustness``. While the comparison's
compare job is still running the page says how far it is and re-renders itself every second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    ComparisonPublic,
    JobPublic,
    RobustnessTable,
    get_analysis_robustness,
    get_client,
)
from frontend.components import api_error_notice, data_table, notice
from frontend.figures.formatting import format_delta_pp, format_percent
from frontend.figures.overview import (
    MEAN_CORRUPTED,
    EvaluationRow,
    accuracy_vs_sparsity,
    corruption_columns,
    evaluation_rows,
    sort_rows,
)
from frontend.figures.similarity import CLEAN, method_colors
from frontend.pages.home import is_active, job_progress

PATH = "/overview"
TITLE = "Overview · PruneScope"
POLL_INTERVAL_MS = 1000
SPLIT = "test"  # comparisons are evaluated on the test split
BAR_ALPHA = "40"  # hex alpha appended to a method's colour for the cell bars

ID_BODY = "overview-body"
ID_POLL = "overview-poll"
ID_STATE = "overview-state"  # dcc.Store {"id": comparison id, "sort": str | None}
ID_TABLE = "overview-table"
ID_FIGURE = "overview-accuracy-sparsity"
ID_PICKER = "overview-picker"
ID_PENDING = "overview-pending"
CELL_CLASS = "overview-cell"  # the links in B rows' accuracy cells

TEXT_SORT_KEYS = ("model", "method", "sparsity")


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Overview", layout=layout)
    app.callback(
        Output(ID_BODY, "children"),
        Output(ID_POLL, "disabled"),
        Input(ID_POLL, "n_intervals"),
        State(ID_STATE, "data"),
        prevent_initial_call=True,
    )(refresh_overview)


# parsing and links ----------------------------------------------------------------------------


def parse_int(value: Any) -> int | None:
    """A query-string value as an int (first of a repeated one); None when not an integer."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def parse_sort(value: Any) -> tuple[str | None, bool]:
    """``"clean"`` -> ("clean", ascending), ``"-clean"`` -> ("clean", descending)."""
    if isinstance(value, list):
        value = value[0] if value else None
    text = str(value or "").strip()
    if not text or text == "-":
        return None, False
    return (text[1:], True) if text.startswith("-") else (text, False)


def compare_href(comparison_id: int, b: int | None = None, corruption: str | None = None) -> str:
    """``/compare?id=&b=&rob_c=``: the comparison with B and a corruption selected."""
    params: list[tuple[str, Any]] = [("id", comparison_id)]
    if b is not None:
        params.append(("b", b))
    if corruption and corruption not in (CLEAN, MEAN_CORRUPTED):
        params.append(("rob_c", corruption))
    return f"/compare?{urlencode(params)}"


def sort_href(comparison_id: int, key: str, current: str | None, descending: bool) -> str:
    """Where a column header leads: sorted by ``key``; a second click reverses the order.

    Text columns sort ascending first, accuracy columns descending (best first).
    """
    if key == current:
        desc = not descending
    else:
        desc = key not in TEXT_SORT_KEYS
    return f"{PATH}?{urlencode({'id': comparison_id, 'sort': ('-' if desc else '') + key})}"


def column_label(column: str) -> str:
    """Header text of an accuracy column."""
    if column == CLEAN:
        return "Clean"
    if column == MEAN_CORRUPTED:
        return "Corrupted (mean)"
    return column.replace("_", " ")


# data ----------------------------------------------------------------------------------------


def load_accuracies(
    client: ApiClient, comparison: Mapping[str, Any]
) -> tuple[dict[int, float | None], dict[int, RobustnessTable | None]]:
    """Clean test accuracy and robustness table of every model of a comparison.

    The latest test-split analysis of each model on the comparison's dataset is used; a model
    without one is absent from both maps, and an analysis run without corruptions maps to None.

    Raises:
        ApiError: when the analyses cannot be listed.
    """
    ids = {int(comparison["model_a_id"]), *(int(b) for b in comparison.get("model_b_ids") or [])}
    latest: dict[int, Mapping[str, Any]] = {}
    analyses: list[Mapping[str, Any]] = list(
        client.list_analyses(dataset_id=int(comparison["dataset_id"]))
    )
    for analysis in analyses:
        mid = int(analysis["model_id"])
        if mid in ids and analysis.get("split", SPLIT) == SPLIT:
            if mid not in latest or int(analysis["id"]) > int(latest[mid]["id"]):
                latest[mid] = analysis
    clean: dict[int, float | None] = {}
    robustness: dict[int, RobustnessTable | None] = {}
    for mid, analysis in latest.items():
        clean[mid] = analysis.get("accuracy")
        try:
            robustness[mid] = get_analysis_robustness(client, int(analysis["id"]))
        except ApiError as exc:
            if exc.status != 404:  # 404: analysed without corruptions
                raise
            robustness[mid] = None
    return clean, robustness


def compare_job(client: ApiClient, comparison: Mapping[str, Any]) -> JobPublic | None:
    """The comparison's latest compare job, None when it has none or it cannot be read."""
    job_id = parse_int(comparison.get("job_id"))
    if job_id is None:
        return None
    try:
        return client.get_job(job_id)
    except ApiError:
        return None


# shared blocks (the similarity page uses them too) --------------------------------------------


def comparison_picker(page_path: str, what: str, picker_id: str) -> html.Div | html.Section:
    """Every comparison with a link to ``page_path?id=N``, or what to do when there is none."""
    try:
        comparisons = get_client().list_comparisons()
    except ApiError as exc:
        return html.Div(api_error_notice(exc, "the comparisons", link_home=True), id=picker_id)
    if not comparisons:
        return html.Div(
            notice(
                "No comparisons yet",
                [
                    f"The {what} needs a comparison of an original model with pruned ones. Run ",
                    html.Code("prunescope demo"),
                    ", or prune a model on the ",
                    dcc.Link("Prune page", href="/prune"),
                    " and choose “Compare with the original”.",
                ],
                link_home=True,
            ),
            id=picker_id,
        )
    rows = [
        [
            dcc.Link(c["name"] or f"comparison {c['id']}", href=f"{page_path}?id={c['id']}"),
            str(len(c.get("model_b_ids") or [])),
            str(c.get("created_at") or "")[:16].replace("T", " "),
        ]
        for c in sorted(comparisons, key=lambda c: c["id"], reverse=True)
    ]
    return html.Section(
        [
            html.H2("Pick a comparison"),
            data_table(["Comparison", "Pruned models", "Created"], rows),
        ],
        id=picker_id,
        className="section",
    )


def job_pending(job: JobPublic | None, what: str, pending_id: str) -> html.Div:
    """What a page says while (or because) the comparison's compare job has not finished.

    Args:
        job: the compare job, or None when the comparison has none.
        what: what appears when it has finished, e.g. "The similarity map".
        pending_id: the component id of the notice.
    """
    if job is None:
        return notice(
            f"{what} is not ready",
            "This comparison has no compare job; create the comparison again (POST "
            "/api/comparisons) to compute it.",
            kind="warning",
            notice_id=pending_id,
        )
    if job["status"] == "failed":
        return notice(
            f"{what} could not be computed",
            [f"Compare job #{job['id']} failed: ", html.Code(job.get("error") or "no message")],
            kind="error",
            notice_id=pending_id,
        )
    if job["status"] in ("cancelled", "cancelling"):
        return notice(
            f"{what} is not ready",
            f"Compare job #{job['id']} was cancelled; create the comparison again to compute it.",
            kind="warning",
            notice_id=pending_id,
        )
    return html.Div(
        [
            html.Strong(f"{what} appears when the compare job has finished"),
            html.Div(
                [
                    html.Span(f"Job #{job['id']}", className="muted"),
                    html.Span(job["status"], className=f"status status-{job['status']}"),
                    job_progress(job),
                    html.Span(job.get("stage") or "", className="muted"),
                ],
                className="job-line",
            ),
            html.P("This page updates itself; no need to reload.", className="muted"),
        ],
        id=pending_id,
        className="notice notice-info",
    )


def header(comparison: ComparisonPublic, here: str) -> list[Any]:
    """The comparison's name and links to its other views (``here`` is left out)."""
    cid = comparison["id"]
    links = [
        ("Comparison", f"/compare?id={cid}"),
        ("Evaluation overview", f"/overview?id={cid}"),
        ("Similarity map", f"/similarity?id={cid}"),
    ]
    parts: list[Any] = []
    for label, href in links:
        if href.split("?")[0] == here:
            continue
        if parts:
            parts.append(html.Span(" · ", className="muted"))
        parts.append(dcc.Link(f"{label} →", href=href))
    return [
        html.P(
            [html.Strong(comparison.get("name") or f"comparison {cid}"), f" (#{cid})"],
            className="subtitle",
        ),
        html.P(parts, className="view-links"),
    ]


def not_found(comparison_id: int, exc: ApiError, what: str) -> html.Div:
    """The notice for a comparison the API could not give."""
    if exc.status == 404:
        return notice(
            f"Comparison {comparison_id} not found",
            [f"{exc.detail}. ", dcc.Link("Pick another one", href=PATH_OF[what]), "."],
            kind="warning",
            link_home=True,
        )
    return api_error_notice(exc, "the comparison", link_home=True)


PATH_OF = {"overview": PATH, "similarity": "/similarity"}


# rendering ------------------------------------------------------------------------------------


def accuracy_cell(
    comparison_id: int, row: EvaluationRow, original: EvaluationRow | None, column: str, color: str
) -> Any:
    """An accuracy with its bar; in a B row, also the change from A and a link to the pair."""
    value = row.accuracy(column)
    if value is None:
        return html.Span("—", className="muted")
    width = min(max(100 * value, 0.0), 100.0)
    children: list[Any] = [
        html.Span(
            className="acc-bar", style={"width": f"{width:.1f}%", "background": color + BAR_ALPHA}
        ),
        html.Span(format_percent(value), className="acc-value"),
    ]
    if row.role == "A":
        return html.Div(children, className="acc-cell")
    base = original.accuracy(column) if original is not None else None
    if base is not None:
        sign = "neg" if value < base - 5e-4 else "pos" if value > base + 5e-4 else "zero"
        children.append(
            html.Span(format_delta_pp(base, value), className=f"acc-delta acc-delta-{sign}")
        )
    where = "clean test set" if column == CLEAN else column_label(column)
    return dcc.Link(
        children,
        href=compare_href(comparison_id, row.model_id, column),
        className=f"acc-cell {CELL_CLASS}",
        title=f"Open the comparison of {row.name} with the original ({where})",
    )


def evaluation_table(
    comparison_id: int,
    rows: Sequence[EvaluationRow],
    sort_key: str | None = None,
    descending: bool = False,
) -> html.Table:
    """The evaluation table: model, method, sparsity, clean, every corruption, their mean."""
    corruptions = corruption_columns(rows)
    columns = [CLEAN, *corruptions, *([MEAN_CORRUPTED] if corruptions else [])]
    colors = method_colors(r.method for r in rows)
    original = next((r for r in rows if r.role == "A"), None)

    def th(label: str, key: str, numeric: bool = False) -> html.Th:
        arrow = ""
        if key == sort_key:
            arrow = " ▼" if descending else " ▲"
        return html.Th(
            dcc.Link(
                [label, html.Span(arrow, className="sort-arrow")],
                href=sort_href(comparison_id, key, sort_key, descending),
                className="sort-link",
                title=f"sort by {label.lower()}",
            ),
            className="num" if numeric else None,
        )

    head = html.Tr(
        [
            th("Model", "model"),
            th("Method", "method"),
            th("Sparsity", "sparsity", True),
            *(th(column_label(c), c, True) for c in columns),
        ]
    )
    body = []
    for row in sort_rows(rows, sort_key, descending):
        color = colors.get(row.method, "#888888")
        tag = html.Span(row.role, className=f"tag tag-{row.role.lower()}")
        body.append(
            html.Tr(
                [
                    html.Td([tag, row.name], className="model-cell", title=row.name),
                    html.Td(
                        [
                            html.Span(className="method-dot", style={"background": color}),
                            row.method,
                        ],
                        className="method-cell",
                    ),
                    html.Td(format_percent(row.sparsity), className="num"),
                    *(
                        html.Td(accuracy_cell(comparison_id, row, original, c, color))
                        for c in columns
                    ),
                ],
                className="row-original" if row.role == "A" else None,
            )
        )
    return html.Table(
        [html.Thead(head), html.Tbody(body)], id=ID_TABLE, className="data-table eval-table"
    )


def _severities(robustness: Mapping[int, RobustnessTable | None]) -> list[int]:
    found: set[int] = set()
    for table in robustness.values():
        if table:
            found.update(int(s) for s in table.get("severities") or [])
    return sorted(found)


def overview_body(comparison_id: int, sort: Any = None) -> tuple[list[Any], bool]:
    """The page below its title, and whether it should be fetched again (compare job active)."""
    client = get_client()
    try:
        comparison = client.get_comparison(comparison_id)
    except ApiError as exc:
        return [not_found(comparison_id, exc, "overview")], False
    try:
        models = {m["id"]: dict(m) for m in client.list_models()}
        clean, robustness = load_accuracies(client, comparison)
    except ApiError as exc:
        return [*header(comparison, PATH), api_error_notice(exc, "the evaluation")], False
    ids = [comparison["model_a_id"], *comparison["model_b_ids"]]
    missing = [mid for mid in ids if mid not in clean]
    job = compare_job(client, comparison)
    active = job is not None and is_active(job)
    children: list[Any] = header(comparison, PATH)
    if missing and (active or job is None or job["status"] != "succeeded"):
        children.append(job_pending(job, "The evaluation table", ID_PENDING))
        if not active:
            return children, False
    elif active:
        children.append(job_pending(job, "The final table", ID_PENDING))
    rows = evaluation_rows(comparison, models, clean, robustness)
    sort_key, descending = parse_sort(sort)
    corruptions = corruption_columns(rows)
    valid = {"model", "method", "sparsity", CLEAN, MEAN_CORRUPTED, *corruptions}
    if sort_key not in valid:
        sort_key, descending = None, False
    severities = _severities(robustness)
    if corruptions:
        how = (
            f"Corruption columns average severities {', '.join(str(s) for s in severities)}; "
            if severities
            else "Corruption columns average the severities run; "
        )
    else:
        how = ""
    children.append(
        html.Section(
            [
                html.H2("Accuracy by method × sparsity × corruption"),
                html.Div(
                    evaluation_table(comparison["id"], rows, sort_key, descending),
                    className="table-scroll",
                ),
                html.P(
                    "Each cell: test accuracy (bar) and, for a pruned model, its change from the "
                    f"original in percentage points. {how}click a pruned model's cell to open "
                    "its comparison with the original; click a column header to sort.",
                    className="hint muted",
                ),
            ],
            className="section",
        )
    )
    if not corruptions and not active:
        children.append(
            notice(
                "Clean accuracy only",
                [
                    "This comparison was created without corruptions. To see robustness, "
                    "create one with them, e.g. ",
                    html.Code('POST /api/comparisons {"corruptions": ["gaussian_noise", ...]}'),
                    " or ",
                    html.Code("prunescope demo --corruptions all"),
                    ".",
                ],
                kind="info",
            )
        )
    children.append(
        html.Section(
            dcc.Graph(
                id=ID_FIGURE,
                figure=accuracy_vs_sparsity(rows),
                config={"displaylogo": False, "responsive": True},
            ),
            className="section",
        )
    )
    return children, active


# layout and callbacks -------------------------------------------------------------------------


def layout(
    id: str | None = None,  # named after the query parameter, shadowing the builtin
    sort: str | None = None,
    **_query: Any,
) -> html.Div:
    """The overview of ``?id=<comparison>`` sorted by ``sort``; without id, a list to pick from."""
    title = html.H1("Evaluation overview")
    comparison_id = parse_int(id)
    if comparison_id is None:
        intro = (
            "Accuracy of an original model and its pruned versions, clean and under every "
            "corruption, side by side."
        )
        if id is not None:
            intro = f"'{id}' is not a comparison id. " + intro
        return html.Div(
            [
                title,
                html.P(intro, className="lead"),
                comparison_picker(PATH, "overview", ID_PICKER),
            ],
            className="page page-overview",
        )
    body, active = overview_body(comparison_id, sort)
    return html.Div(
        [
            title,
            html.Div(body, id=ID_BODY),
            dcc.Interval(id=ID_POLL, interval=POLL_INTERVAL_MS, disabled=not active),
            dcc.Store(id=ID_STATE, data={"id": comparison_id, "sort": sort}),
        ],
        className="page page-overview",
    )


def refresh_overview(n_intervals: int | None, state: Mapping[str, Any] | None) -> tuple[Any, bool]:
    """Callback: re-render the page while the compare job runs; stop polling when it has ended.

    Returns:
        The body's children and whether polling stops (``overview-poll`` disabled).
    """
    comparison_id = parse_int((state or {}).get("id"))
    if comparison_id is None:
        return dash.no_update, True
    body, active = overview_body(comparison_id, (state or {}).get("sort"))
    return body, not active

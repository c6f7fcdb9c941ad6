"""Evaluation overview page ("/overview?id=<comparison>&sort=<column>").

The evaluation table of Li et al. (SCIENCE.md section 1) for one comparison: a row per model
(the original A and every pruned B, i.e. method x sparsity), a column for clean accuracy and one
per corruption (its accuracy averaged over the severities run), each cell with an inline bar and
the change from A. A B row's cell links to that pair's comparison view with the cell's
corruption selected (``/compare?id=&b=&rob_c=``). Column headers sort the table; the order is
kept in the URL (``sort=clean``, ``sort=-gaussian_noise``). Without ``id`` the page lists the
comparisons. Below, accuracy against sparsity with each model's learning distance on a second
axis (He et al., "Sparse Double Descent", ICML 2022; SCIENCE.md section 7). "Add models" opens
the form that adds pruned models to the comparison (``/comparisons/new?add=<id>``), "New
comparison" the form for another one of its original.

Everything is read through the REST API: ``GET /api/comparisons/{id}``, ``/api/models``,
``/api/analyses?dataset_id=`` and ``/api/analyses/{id}/robustness``. While the comparison's
compare job is still running the page says how far it is and re-renders itself every second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import dash
from dash import dcc, html

from frontend.client import ApiError, ComparisonPublic, get_client
from frontend.components import (
    api_error_notice,
    compare_href,
    comparison_page,
    job_pending,
    load_accuracies,
    notice,
    refresh_comparison_page,
    register_comparison_page,
)
from frontend.figures.formatting import format_delta_pp, format_percent
from frontend.figures.overview import (
    MEAN_CORRUPTED,
    EvaluationRow,
    accuracy_and_learning_distance,
    accuracy_vs_sparsity,
    corruption_columns,
    evaluation_rows,
    sort_rows,
)
from frontend.figures.similarity import CLEAN, method_colors
from frontend.jobs import compare_job_pending
from frontend.session import can_write, current_user

PATH = "/overview"
PREFIX = "overview"  # of the ids of the comparison page (components.comparison_page)
TITLE = "Overview · PruneScope"
BAR_ALPHA = "40"  # hex alpha appended to a method's colour for the cell bars

ID_BODY = "overview-body"
ID_POLL = "overview-poll"
ID_STATE = "overview-state"  # dcc.Store {"id": comparison id, "sort": str | None}
ID_TABLE = "overview-table"
ID_FIGURE = "overview-accuracy-sparsity"
ID_LEARNING = "overview-learning-distance"
ID_PICKER = "overview-picker"
ID_PENDING = "overview-pending"
ID_ADD_MODELS = "overview-add-models"
ID_NEW_COMPARISON = "overview-new-comparison"
ADD_MODELS_PATH = "/comparisons/new"  # the new-comparison page, in its "add" mode
CELL_CLASS = "overview-cell"  # the links in B rows' accuracy cells
STICKY_CLASS = "sticky-col"  # the model column, kept in view while the table scrolls sideways
GRAPH_CONFIG: dcc.Graph.Config = {"displaylogo": False, "responsive": True}

TEXT_SORT_KEYS = ("model", "method", "sparsity")


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Overview", layout=layout)
    register_comparison_page(app, PREFIX, refresh_overview)


def parse_sort(value: Any) -> tuple[str | None, bool]:
    """``"clean"`` -> ("clean", ascending), ``"-clean"`` -> ("clean", descending)."""
    if isinstance(value, list):
        value = value[0] if value else None
    text = str(value or "").strip()
    if not text or text == "-":
        return None, False
    return (text[1:], True) if text.startswith("-") else (text, False)


def sort_href(comparison_id: int, key: str, current: str | None, descending: bool) -> str:
    """Where a column header leads: sorted by ``key``; a second click reverses the order. Text
    columns sort ascending first, accuracy columns descending (best first)."""
    desc = not descending if key == current else key not in TEXT_SORT_KEYS
    return f"{PATH}?{urlencode({'id': comparison_id, 'sort': ('-' if desc else '') + key})}"


def column_label(column: str) -> str:
    """Header text of an accuracy column."""
    return {CLEAN: "Clean", MEAN_CORRUPTED: "Corrupted (mean)"}.get(
        column, column.replace("_", " ")
    )


def accuracy_cell(
    comparison_id: int, row: EvaluationRow, original: EvaluationRow | None, column: str, color: str
) -> Any:
    """An accuracy with its bar; in a B row, also the change from A and a link to the pair."""
    value = row.accuracy(column)
    if value is None:
        return html.Span("—", className="muted")
    bar = {"width": f"{min(max(100 * value, 0.0), 100.0):.1f}%", "background": color + BAR_ALPHA}
    children: list[Any] = [
        html.Span(className="acc-bar", style=bar),
        html.Span(format_percent(value), className="acc-value"),
    ]
    if row.role == "A":
        return html.Div(children, className="acc-cell")
    base = original.accuracy(column) if original is not None else None
    if base is not None:
        sign = "neg" if value < base - 5e-4 else "pos" if value > base + 5e-4 else "zero"
        delta = format_delta_pp(base, value)
        children.append(html.Span(delta, className=f"acc-delta acc-delta-{sign}"))
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

    def th(label: str, key: str, classes: str | None = None) -> html.Th:
        arrow = (" ▼" if descending else " ▲") if key == sort_key else ""
        return html.Th(
            dcc.Link(
                [label, html.Span(arrow, className="sort-arrow")],
                href=sort_href(comparison_id, key, sort_key, descending),
                className="sort-link",
                title=f"sort by {label.lower()}",
            ),
            className=classes,
        )

    head = html.Tr(
        [
            th("Model", "model", f"model-col {STICKY_CLASS}"),
            th("Method", "method"),
            th("Sparsity", "sparsity", "num"),
            *(th(column_label(c), c, "num") for c in columns),
        ]
    )
    body = []
    for row in sort_rows(rows, sort_key, descending):
        color = colors.get(row.method, "#888888")
        tag = html.Span(row.role, className=f"tag tag-{row.role.lower()}")
        dot = html.Span(className="method-dot", style={"background": color})
        cells = [
            # the whole name, wrapped (style.css), and on hover
            html.Td(
                [tag, html.Span(row.name, className="model-name")],
                className=f"model-cell {STICKY_CLASS}",
                title=row.name,
            ),
            html.Td([dot, row.method], className="method-cell"),
            html.Td(format_percent(row.sparsity), className="num"),
            *(html.Td(accuracy_cell(comparison_id, row, original, c, color)) for c in columns),
        ]
        body.append(html.Tr(cells, className="row-original" if row.role == "A" else None))
    return html.Table(
        [html.Thead(head), html.Tbody(body)], id=ID_TABLE, className="data-table eval-table"
    )


def add_models_link(comparison_id: int, model_a_id: int | None = None) -> html.P | None:
    """ "Add models": the form that adds pruned models to this comparison, and "New
    comparison" of the same original; None for a viewer who may not write (a share link, a
    read-only token), whom the API would refuse."""
    if not can_write(current_user()):
        return None
    links: list[Any] = [
        dcc.Link(
            "Add models",
            href=f"{ADD_MODELS_PATH}?add={comparison_id}",
            id=ID_ADD_MODELS,
            className="btn needs-write",
            title="Add pruned models to this comparison; its compare job computes only theirs",
        )
    ]
    if model_a_id is not None:
        links.append(
            dcc.Link(
                "New comparison",
                href=f"{ADD_MODELS_PATH}?a={model_a_id}",
                id=ID_NEW_COMPARISON,
                className="btn needs-write",
                title="Compare this original with other models, with other settings",
            )
        )
    return html.P(links, className="actions")


def overview_body(comparison: ComparisonPublic, sort: Any = None) -> tuple[list[Any], bool]:
    """The page below the comparison's header, and whether it should be fetched again (the
    compare job is active)."""
    client = get_client()
    try:
        models = {i: dict(m) for i, m in client.comparison_models(comparison).items()}
        clean, robustness = load_accuracies(client, comparison)
    except ApiError as exc:
        return [api_error_notice(exc, "the evaluation")], False
    missing = [m for m in [comparison["model_a_id"], *comparison["model_b_ids"]] if m not in clean]
    job, pending, active = compare_job_pending(
        client, comparison, "The evaluation table", ID_PENDING
    )
    children: list[Any] = []
    if missing and (active or job is None or job["status"] != "succeeded"):
        children.append(pending)
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
    severities = {int(s) for t in robustness.values() if t for s in t.get("severities") or []}
    run = ", ".join(str(s) for s in sorted(severities))
    averaged = f"severities {run}" if run else "the severities run"
    how = f"Corruption columns average {averaged}; " if corruptions else ""
    children.append(
        html.Section(
            [
                html.H2("Accuracy by method × sparsity × corruption"),
                add_models_link(comparison["id"], comparison["model_a_id"]),
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
            dcc.Graph(id=ID_FIGURE, figure=accuracy_vs_sparsity(rows), config=GRAPH_CONFIG),
            className="section",
        )
    )
    children.append(learning_section(rows))
    return children, active


def learning_section(rows: Sequence[EvaluationRow]) -> html.Section:
    """Accuracy and learning distance against sparsity, with what to read in it."""
    return html.Section(
        [
            dcc.Graph(
                id=ID_LEARNING,
                figure=accuracy_and_learning_distance(rows),
                config=GRAPH_CONFIG,
            ),
            html.P(
                "Learning distance: how far training moved the kept weights from where it "
                "began, ‖m ⊙ (θ_final − θ_start)‖₂, with θ_start the rewind point (lottery "
                "tickets), the parent's weights (one-shot methods, pruning during training) or "
                "the initialisation (pruning at initialisation). Along a sweep, test accuracy "
                "can dip as sparsity grows (overfitting), recover, and fall again (sparse double "
                "descent, He et al., ICML 2022); the learning distance tends to follow the same "
                "curve, so it shows whether a dip comes from weights that travelled far to fit "
                "the training set.",
                className="hint muted",
            ),
        ],
        className="section",
    )


# layout and callbacks -------------------------------------------------------------------------


def layout(id: str | None = None, sort: str | None = None, **_query: Any) -> html.Div:
    """The overview of ``?id=<comparison>`` sorted by ``sort``; without id, a list to pick from
    (``id`` is named after the query parameter, shadowing the builtin)."""
    return comparison_page(
        PREFIX,
        "Evaluation overview",
        id,
        lambda comparison: (*overview_body(comparison, sort), {"sort": sort}),
        intro="Accuracy of an original model and its pruned versions, clean and under every "
        "corruption, side by side.",
        what="overview",
    )


def refresh_overview(n_intervals: int | None, state: Mapping[str, Any] | None) -> tuple[Any, bool]:
    """Callback: re-render the page while the compare job runs: the body's children and
    whether polling stops (``overview-poll`` disabled), once the job has ended."""
    sort = (state or {}).get("sort")
    return refresh_comparison_page(PREFIX, state, lambda c: (*overview_body(c, sort), {}))

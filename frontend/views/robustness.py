"""Compare-page view "Corruption robustness" (issue 8).

Accuracy of A and of B under each corruption (rows) at each severity (columns), on one shared
sequential colour scale (0-100 %), their difference B - A on a diverging scale centred at 0
(percentage points), the mean accuracy against severity, and the corruption errors of B with A
as the reference (mCE and relative mCE, Hendrycks & Dietterich 2019; SCIENCE.md section 6).

Data: ``GET /api/comparisons/{id}/view?b=`` (analysis ids and clean accuracies),
``GET /api/analyses/{id}/robustness`` of A and B and ``GET /api/comparisons/{id}/results?b=``
(mCE, fragility). Clicking a heatmap cell selects that setting; it lives in the URL query as
``rob_c`` (corruption) and ``rob_s`` (severity). The click also selects, in every linked view,
the samples that setting broke in B and not in A (``GET /api/comparisons/{id}/broken``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from frontend.client import (
    ApiError,
    get_analysis_robustness,
    get_client,
    get_comparison_results,
)
from frontend.components import api_error_notice, notice, stat_card
from frontend.figures.formatting import format_delta_pp, format_percent, model_label
from frontend.figures.robustness import (
    RobustnessGrid,
    accuracy_diff_heatmap,
    accuracy_heatmap,
    corruption_errors,
    largest_drop,
    mean_of,
    relative_corruption_errors,
    robustness_grid,
    severity_lines,
)
from frontend.forms import query_int
from frontend.views import QUERY, SELECTION, merge_settings, selection, view_context
from frontend.views.parts import (
    HIDDEN,
    SHOWN,
    graph,
    has_context,
    hint,
    not_ready_notice,
    number_card,
    register_settings,
    register_writer,
    view_section,
)

NAME = "robustness"
KEY_CORRUPTION = "rob_c"
KEY_SEVERITY = "rob_s"

CTX = view_context(NAME)

ID_SECTION = "compare-robustness"
ID_MESSAGE = "compare-robustness-message"
ID_BODY = "compare-robustness-body"
ID_CARDS = "compare-robustness-cards"
ID_HEAT_A = "compare-robustness-a"
ID_HEAT_B = "compare-robustness-b"
ID_HEAT_DIFF = "compare-robustness-diff"
ID_LINES = "compare-robustness-lines"
ID_DETAIL = "compare-robustness-detail"
ID_DATA = "compare-robustness-data"
ID_CELL = "compare-robustness-cell"
HEATMAP_IDS = (ID_HEAT_A, ID_HEAT_B, ID_HEAT_DIFF)

TITLE = "Corruption robustness"
EXPLANATION = (
    "Accuracy of A and B on the test set under common corruptions (Hendrycks & Dietterich "
    "2019) at severities 1 (mild) to 5 (severe). A and B share one colour scale; the third "
    "map is B − A in percentage points (red: B lost accuracy)."
)
EMPTY_TEXT = (
    "No corruption results: create the comparison with corruptions (e.g. all 15) to see robustness"
)
NOT_READY = "Robustness appears when the analyses of A and B have finished."
CLICK_HINT = (
    "Click a cell to compare A and B on that corruption and severity; click it again to clear."
)
MCE_HELP = (
    "B's errors under corruption as a share of A's, averaged over corruptions "
    "(CE = Σ_s E_B / Σ_s E_A): below 100% B is more robust than A."
)
RELATIVE_MCE_HELP = (
    "B's accuracy drop from clean to corrupted as a share of A's drop (corruptions that cost A "
    "at least 1 pp): above 100% pruning made the model degrade faster under corruption."
)
FRAGILE_HELP = (
    "test samples B gets right when clean but wrong under at least one corruption setting, "
    "while no setting does that to A"
)
MEAN_HELP = "mean over every corruption and severity measured"
# the 15 corruptions of CIFAR-10-C (SCIENCE.md section 6), for the empty state's example
ALL_CORRUPTIONS = tuple(
    "gaussian_noise shot_noise impulse_noise defocus_blur glass_blur motion_blur zoom_blur snow "
    "frost fog brightness contrast elastic_transform pixelate jpeg_compression".split()
)
HEATMAP_HEIGHT_PX = 480
LINES_HEIGHT_PX = 400
CODE_STYLE: dict[str, str] = {
    "whiteSpace": "pre-wrap",
    "wordBreak": "break-word",
    "background": "#f6f8fa",
    "border": "1px solid #d0d7de",
    "borderRadius": "6px",
    "padding": "0.5rem 0.75rem",
    "fontSize": "0.85rem",
    "margin": "0.5rem 0 0",
}


# pure helpers -------------------------------------------------------------------------------


def parse_cell(query: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """The selected ``(corruption, severity)`` of the URL query (``rob_c``, ``rob_s``)."""
    query = query or {}
    corruption, severity = query.get(KEY_CORRUPTION), query_int(query.get(KEY_SEVERITY))
    if not corruption or severity is None:
        return None
    return str(corruption), severity


def cell_from_click(click_data: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """``(corruption, severity)`` of a heatmap's ``clickData`` (y: corruption, x: severity)."""
    points = (click_data or {}).get("points") or []
    if not points:
        return None
    corruption, severity = points[0].get("y"), query_int(points[0].get("x"))
    if corruption is None or severity is None:
        return None
    return str(corruption), severity


def example_body(model_a_id: int | None, model_b_id: int | None) -> str:
    """The ``POST /api/comparisons`` body that measures robustness for this A and B."""
    body = {
        "model_a_id": model_a_id,
        "model_b_ids": [model_b_id],
        "corruptions": list(ALL_CORRUPTIONS),
        "severities": [1, 2, 3, 4, 5],
    }
    return json.dumps(body)


def empty_state(model_a_id: int | None, model_b_id: int | None, missing: str) -> html.Div:
    """What to do when the analyses ran without corruptions."""
    return notice(
        EMPTY_TEXT,
        [
            f"{missing} ran without corruptions. Create a comparison through the API, ",
            html.Code("POST /api/comparisons"),
            ", with the body field ",
            html.Code("corruptions"),
            " (and optionally ",
            html.Code("severities"),
            ", default 1–5); its compare job analyses A and B under every setting:",
            html.Pre(example_body(model_a_id, model_b_id), style=CODE_STYLE),
        ],
        notice_id=f"{ID_SECTION}-empty",
    )


def _ratio_pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def headline_cards(data: Mapping[str, Any], grid: RobustnessGrid) -> list[html.Div]:
    """mean accuracy under corruption, mCE, relative mCE, made-fragile count, largest drop."""
    mean_a, mean_b = mean_of(list(grid.acc_a.ravel())), mean_of(list(grid.acc_b.ravel()))
    mce = data.get("mce")
    if mce is None:
        mce = mean_of(corruption_errors(grid.acc_a, grid.acc_b))
    clean_a, clean_b = data.get("clean_a"), data.get("clean_b")
    rmce = None
    if clean_a is not None and clean_b is not None:
        errors = relative_corruption_errors(grid.acc_a, grid.acc_b, float(clean_a), float(clean_b))
        rmce = mean_of(errors)
    no_rmce = "Undefined: no corruption lowered A's accuracy by 1 pp or more per severity."
    # card id suffix, title, value, explanation (its note and tooltip)
    numbers = [
        ("mce", "mCE of B (A = 100%)", _ratio_pct(mce), MCE_HELP),
        (
            "rmce",
            "Relative mCE of B (A = 100%)",
            _ratio_pct(rmce),
            RELATIVE_MCE_HELP if rmce is not None else no_rmce,
        ),
    ]
    fragility = data.get("fragility") or {}
    if fragility.get("made_fragile_by_pruning") is not None:
        count = f"{int(fragility['made_fragile_by_pruning']):,} samples"
        help_text = (
            f"{FRAGILE_HELP} (fragile for A: {int(fragility.get('fragile_a', 0)):,}, "
            f"for B: {int(fragility.get('fragile_b', 0)):,})"
        )
        numbers.append(("fragile", "Made fragile by pruning", count, help_text))
    worst = largest_drop(grid)
    if worst is not None:
        corruption, severity, delta = worst
        where = f"{corruption} at severity {severity}: the setting where B lost most accuracy"
        numbers.append(("worst", "Largest loss: B vs A", f"{100 * delta:+.1f} pp", where))
    mean = stat_card(
        "Accuracy under corruption (mean)",
        format_percent(mean_a),
        format_percent(mean_b),
        f"{format_delta_pp(mean_a, mean_b)} · {MEAN_HELP}",
        card_id=f"{ID_SECTION}-mean",
    )
    return [
        mean,
        *(number_card(t, v, h, note=h, card_id=f"{ID_SECTION}-{i}") for i, t, v, h in numbers),
    ]


def cell_detail(
    data: Mapping[str, Any], grid: RobustnessGrid, cell: tuple[str, int] | None
) -> list[Any]:
    """The selected setting in words: both accuracies, the change and the corruption's CE."""
    if cell is None:
        return [hint(CLICK_HINT)]
    values = grid.cell(*cell)
    corruption, severity = cell
    if values is None:
        return [
            html.P(
                f"{corruption} at severity {severity} was not measured for both models.",
                className="muted",
            ),
            hint(CLICK_HINT),
        ]
    acc_a, acc_b = values
    ce = corruption_errors(grid.acc_a, grid.acc_b)[grid.corruptions.index(corruption)]
    card = stat_card(
        "Accuracy",
        format_percent(acc_a),
        format_percent(acc_b),
        format_delta_pp(acc_a, acc_b),
        card_id=f"{ID_SECTION}-cell-card",
    )
    ce_words = " — B's errors over A's summed across this corruption's severities."
    return [
        html.H3(f"{corruption}, severity {severity}"),
        html.Div(card, className="card-row"),
        html.P([html.Strong(f"CE of {corruption}: "), _ratio_pct(ce), ce_words]),
        hint("The dotted lines in the chart follow this corruption across severities."),
        hint(CLICK_HINT),
    ]


# data ---------------------------------------------------------------------------------------


def fetch_robustness(context: Mapping[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    """Everything the view draws for the CONTEXT's comparison and B, or why it cannot.

    Returns:
        ``(data, message)``: data is None with a message (an empty state or an error) when
        there is nothing to draw.
    """
    client = get_client()
    b = query_int(context.get("b"))
    try:
        view = client.get_comparison_view(int(context["id"]), b=b)
    except ApiError as exc:
        return None, not_ready_notice(exc, "the comparison", NOT_READY, exc.detail, kind="info")
    an_a, an_b = view.get("analysis_a"), view.get("analysis_b")
    model_a, model_b = view["model_a"], view["model_b"]
    if not an_a or not an_b:
        return None, notice(NOT_READY)
    tables: dict[str, Any] = {}
    missing: list[str] = []
    for side, analysis, who in (("a", an_a, "A's analysis"), ("b", an_b, "B's analysis")):
        try:
            tables[side] = get_analysis_robustness(client, int(analysis["id"]))
        except ApiError as exc:
            if exc.status != 404:
                return None, api_error_notice(exc, "the robustness results")
            missing.append(who)
    if missing:
        what = " and ".join(missing) if len(missing) == 1 else "The analyses of A and B"
        return None, empty_state(model_a.get("id"), model_b.get("id"), what)
    results: dict[str, Any] = {}
    try:
        results = get_comparison_results(client, int(context["id"]), b=b)
    except ApiError:
        pass  # mCE is then computed from the tables; fragility is left out
    mce = (results.get("mce") or {}).get("mce")
    data = {
        "comparison_id": int(context["id"]),
        "b": model_b.get("id"),
        "label_a": f"A: {model_a.get('name')}",
        "label_b": f"B: {model_label(model_b)}",
        "clean_a": an_a.get("accuracy"),
        "clean_b": an_b.get("accuracy"),
        "robustness_a": tables["a"],
        "robustness_b": tables["b"],
        "mce": mce,
        "fragility": results.get("fragility"),
    }
    if robustness_grid(tables["a"], tables["b"]).empty:
        return None, notice(
            "No common corruption settings",
            "A and B were measured under different corruptions or severities; analyse both "
            "with the same ones to compare them.",
            kind="warning",
        )
    return data, None


def grid_of(data: Mapping[str, Any]) -> RobustnessGrid:
    return robustness_grid(data.get("robustness_a"), data.get("robustness_b"))


# layout -------------------------------------------------------------------------------------


def section() -> html.Section:
    """The view's skeleton: headline cards, three heatmaps, the severity chart, the detail."""
    heatmaps = zip(HEATMAP_IDS, ("A: accuracy", "B: accuracy", "B − A"), strict=True)
    body = [
        html.Div(
            [
                html.Div(id=ID_CARDS, className="card-row"),
                html.Div([graph(i, t, HEATMAP_HEIGHT_PX) for i, t in heatmaps], className="grid-3"),
                hint(CLICK_HINT),
                html.Div(
                    [
                        graph(ID_LINES, "Mean accuracy vs severity", LINES_HEIGHT_PX),
                        html.Div(id=ID_DETAIL, className="card"),
                    ],
                    className="grid-2",
                    style={"marginTop": "1rem"},
                ),
            ],
            id=ID_BODY,
        ),
        dcc.Store(id=ID_DATA),
        dcc.Store(id=ID_CELL),
    ]
    return view_section(ID_SECTION, TITLE, EXPLANATION, html.Div(id=ID_MESSAGE), *body)


# callbacks ----------------------------------------------------------------------------------


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    app.callback(
        Output(ID_DATA, "data"),
        Output(ID_MESSAGE, "children"),
        Output(ID_BODY, "style"),
        Output(ID_CARDS, "children"),
        Input(CTX, "data"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(load_robustness)
    app.callback(
        Output(ID_CELL, "data"),
        Input(QUERY, "data"),
        State(ID_CELL, "data"),
    )(track_cell)
    app.callback(
        Output(ID_HEAT_A, "figure"),
        Output(ID_HEAT_B, "figure"),
        Output(ID_HEAT_DIFF, "figure"),
        Output(ID_LINES, "figure"),
        Output(ID_DETAIL, "children"),
        Input(ID_DATA, "data"),
        Input(ID_CELL, "data"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(render_robustness)
    for graph_id in HEATMAP_IDS:
        register_settings(app, select_cell, Input(graph_id, "clickData"))
        register_writer(
            app,
            SELECTION,
            select_broken,
            Input(graph_id, "clickData"),
            State(QUERY, "data"),
            State(CTX, "data"),
            State(SELECTION, "data"),
        )


def load_robustness(context: Mapping[str, Any] | None) -> tuple[Any, Any, Any, Any]:
    """Callback: fetch the robustness tables and results of the CONTEXT's A and B.

    Returns:
        The data store, the message (empty state or error; None when there is data), the
        body's style (hidden without data) and the headline cards.
    """
    if not has_context(context):
        return None, None, HIDDEN, []
    data, message = fetch_robustness(context)
    if data is None:
        return None, message, HIDDEN, []
    return data, None, SHOWN, headline_cards(data, grid_of(data))


def track_cell(query: Mapping[str, Any] | None, current: Any) -> Any:
    """Callback: the selected cell from the QUERY store; unchanged (no redraw) when another
    view's setting changed."""
    cell = parse_cell(query)
    value = None if cell is None else list(cell)
    return dash.no_update if value == current else value


def render_robustness(data: Mapping[str, Any] | None, cell: Any) -> tuple[Any, ...]:
    """Callback: the three heatmaps, the severity chart and the selected setting's detail."""
    if not data:
        return (dash.no_update,) * 5
    grid = grid_of(data)
    selected: tuple[str, int] | None = None
    if isinstance(cell, list | tuple) and len(cell) == 2 and query_int(cell[1]) is not None:
        selected = (str(cell[0]), int(cell[1]))
    label_a, label_b = str(data.get("label_a", "A")), str(data.get("label_b", "B"))
    clean: dict[str, Any] = {"clean_a": data.get("clean_a"), "clean_b": data.get("clean_b")}
    highlight = selected[0] if selected is not None else None
    return (
        accuracy_heatmap(grid, "a", label_a, selected=selected),
        accuracy_heatmap(grid, "b", label_b, selected=selected),
        accuracy_diff_heatmap(grid, "B − A (percentage points)", selected=selected),
        severity_lines(grid, label_a, label_b, **clean, highlight=highlight),
        cell_detail(data, grid, selected),
    )


def select_cell(click_data: Mapping[str, Any] | None, query: Mapping[str, Any] | None) -> Any:
    """Callback: a clicked cell becomes ``rob_c`` / ``rob_s`` in the QUERY store; clicking the
    selected cell again clears them."""
    cell = cell_from_click(click_data)
    if cell is None:
        return dash.no_update
    corruption, severity = (None, None) if parse_cell(query) == cell else cell
    return merge_settings(query, **{KEY_CORRUPTION: corruption, KEY_SEVERITY: severity})


SOURCE = "robustness"  # the SELECTION source of a clicked cell


def select_broken(
    click_data: Mapping[str, Any] | None,
    query: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
) -> Any:
    """Callback: a clicked cell selects the samples that corruption at that severity broke in
    B and not in A (``GET /comparisons/{id}/broken``) in every linked view; clicking the
    selected cell again clears what it selected."""
    cell = cell_from_click(click_data)
    if cell is None or not has_context(context):
        return dash.no_update
    if parse_cell(query) == cell:  # the same click clears the cell (select_cell)
        return None if (current or {}).get("source") == SOURCE else dash.no_update
    assert context is not None
    try:
        broken = get_client().get_comparison_broken(
            int(context["id"]), corruption=cell[0], severity=cell[1], b=context.get("b")
        )
    except ApiError:
        return dash.no_update  # the cell's detail still shows; nothing to select
    return selection(broken.get("ids") or [], SOURCE)

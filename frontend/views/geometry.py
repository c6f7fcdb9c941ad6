"""Compare-page view "Geometry and recall distortion" (issue 8): three panels.

1. Recall distortion: each class's normalised recall balance before (Bn^c) and after (Bn^c_t)
   pruning, the y = x line and the alpha_t line (SCIENCE.md section 2), from
   ``GET /api/comparisons/{id}/results``.
2. Local geometry: one class's samples, angle to the true class against z-scored feature
   length, A and B overlaid or as arrows from A to B ("difference"); box or lasso select
   writes the linked SELECTION, and any SELECTION is highlighted (SCIENCE.md section 1). A
   new SELECTION made elsewhere is followed: unless the class shown holds the most selected
   samples, the view switches to the class that does (:func:`class_for_selection`); a class
   the user picks afterwards stays until the selection changes.
3. Global geometry: parallel coordinates of the angle to every class direction (the top-k
   nearest past 10 classes) and the three metrics, of A or of B; a SELECTION narrows them to
   the selected samples.

Both geometry panels read the per-sample analysis tables of A and B
(``GET /api/analyses/{id}/table``, only the columns drawn), fetched once per (comparison, B)
and kept in process. Settings live in the URL query: ``geo_cls`` (class; absent while it is
the class the view picks itself, see :func:`own_class`), ``geo_mode`` (``diff``; absent for
overlay) and ``geo_par`` (``b``; absent for A).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import dash
import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    DirectionAngles,
    RecallDistortionResult,
    get_analysis_table_columns,
    get_client,
    get_comparison_results,
)
from frontend.figures._common import empty_figure
from frontend.figures.formatting import model_label
from frontend.figures.geometry import (
    ANGLE_HOVER,
    BN_HOVER,
    LENGTH_HOVER,
    MARGIN_HOVER,
    GeometryMode,
    balance_scatter,
    direction_angle_bars,
    intrinsic_dimension_figure,
    local_geometry_scatter,
    parallel_geometry,
)
from frontend.forms import query_int
from frontend.views import (
    MAX_URL_SELECTION,
    QUERY,
    SELECTION,
    FetchCache,
    selected_ids,
    selection,
    selection_origin,
    view_context,
)
from frontend.views.parts import (
    SELECTABLE,
    Kept,
    class_index,
    class_label,
    column_array,
    control,
    customdata_ids,
    graph,
    has_context,
    hint,
    not_ready_notice,
    radio,
    register_writer,
    selected_count,
    signature,
    view_section,
    write_settings,
)

NAME = "geometry"
SOURCE = "geometry"
KEY_CLASS = "geo_cls"
KEY_MODE = "geo_mode"
KEY_PARALLEL = "geo_par"
DEFAULT_MODE: GeometryMode = "overlay"
DEFAULT_PARALLEL = "a"

CTX = view_context(NAME)

ID_SECTION = "compare-geometry"
ID_MESSAGE = "compare-geometry-message"
ID_BALANCE = "compare-geometry-balance"
ID_BALANCE_NOTE = "compare-geometry-balance-note"
ID_CLASS = "compare-geometry-class"
ID_MODE = "compare-geometry-mode"
ID_LOCAL = "compare-geometry-local"
ID_LOCAL_NOTE = "compare-geometry-local-note"
ID_DIRECTIONS = "compare-geometry-directions"
ID_INTRINSIC = "compare-geometry-intrinsic"
ID_PAR_MODEL = "compare-geometry-par-model"
ID_PARALLEL = "compare-geometry-parallel"
ID_PARALLEL_NOTE = "compare-geometry-parallel-note"
# {"cls": the class the view picks itself (own_class), "sel": signature of the selection it
# last followed}: the class goes to the URL only when it differs from "cls"
ID_DEFAULTS = "compare-geometry-defaults"

TITLE = "Geometry and recall distortion"
EXPLANATION = (
    "How pruning moved each class's recall relative to the average (Good et al. 2022), and "
    "how it moved the penultimate features: their angle to the class directions, their length "
    "and their margin to the decision boundary (Li et al. 2024)."
)
NOT_READY = "Geometry appears when the analyses have finished."
RESULTS_NOT_READY = "Recall distortion appears when the comparison's compare job has finished."
NO_GEOMETRY = (
    "These analyses have no feature geometry (angle, length, margin); run the analyze job "
    "again to compute it."
)
SELECT_HINT = (
    "Drag a box or a lasso to select samples (highlighted in every view); double-click to clear."
)
BALANCE_NOTE = (
    "Each point is a class. Above the dashed y = x line the class moved up relative to the "
    "average, below it down; red: further from the average, on the same side, than before "
    "(I > 1). α_t > 1: pruning intensified the imbalance."
)
DIRECTIONS_NOTE = (
    "The angle between each class's direction W_c in A and in B (the rows of the final "
    "classifier): how far pruning turned what the classifier looks for in the penultimate "
    "features. Defined when both feature spaces have the same width (unstructured pruning)."
)
GRAPH_HEIGHT_PX = 460
INTRINSIC_NOTE = (
    "How many dimensions the penultimate features really use (TwoNN: from the ratio of each "
    "sample's distances to its second and first nearest neighbour), over all test samples and "
    "per class, with 95% bootstrap intervals. A class whose dimension falls after pruning has "
    "been squeezed into fewer directions."
)
DIRECTIONS_HEIGHT_PX = 340
PARALLEL_HEIGHT_PX = 480
CACHE_SIZE = 8
BASE_COLUMNS = ("index", "label", "pred", "angle_true", "length_z", "margin")
MODE_OPTIONS = [
    {"label": "A and B", "value": "overlay"},
    {"label": "Difference (A → B)", "value": "diff"},
]
PARALLEL_OPTIONS = [
    {"label": "A: original", "value": "a"},
    {"label": "B: pruned", "value": "b"},
]

PARALLEL_NOTE = (
    "One line per test sample, coloured by its true class; drag along an axis to keep only the "
    "lines crossing that range."
)


# data ---------------------------------------------------------------------------------------


@dataclass
class GeometryData(Kept):
    """What this view draws for one (comparison, B); tables and results fetched on first use."""

    comparison_id: int
    b: int | None
    class_names: list[str]
    label_a: str
    label_b: str
    analysis_a: int
    analysis_b: int
    recall_a: list[float | None]
    recall_b: list[float | None]

    def class_name(self, value: Any) -> str:
        return class_label(self.class_names, value)

    def columns(self) -> list[str]:
        """The analysis-table columns drawn: base metrics and the angle to every class."""
        return [*BASE_COLUMNS, *(f"a{c}" for c in range(len(self.class_names)))]


def fetch_table(client: ApiClient, data: GeometryData, side: str) -> dict[str, np.ndarray]:
    """The analysis table of side "a" or "b" as arrays, fetched once (only the drawn columns).

    Raises:
        ApiError: the table cannot be read (422: the analysis has no geometry columns).
    """

    def fetch() -> dict[str, np.ndarray]:
        analysis_id = data.analysis_a if side == "a" else data.analysis_b
        raw = get_analysis_table_columns(client, analysis_id, columns=data.columns())
        return {name: column_array(name, values) for name, values in raw.items()}

    return data.once(side, fetch)


def fetch_results(client: ApiClient, data: GeometryData) -> dict[str, Any]:
    """The comparison's results for this B, fetched once it is ready (a 409 is not kept)."""
    return data.once(
        "results", lambda: get_comparison_results(client, data.comparison_id, b=data.b)
    )


def fetch_geometry_data(client: ApiClient, comparison_id: int, b: int | None) -> GeometryData:
    """Class names, model labels, analysis ids and recalls from the comparison view.

    Raises:
        ApiError: the view cannot be read (409 while an analysis is missing).
    """
    view = client.get_comparison_view(comparison_id, b=b)
    an_a, an_b = view.get("analysis_a"), view.get("analysis_b")
    if not an_a or not an_b:
        raise ApiError(409, "the analyses of A and B have not finished")
    return GeometryData(
        comparison_id=int(comparison_id),
        b=b,
        class_names=[str(c) for c in view["dataset"]["class_names"]],
        label_a=f"A: {view['model_a']['name']}",
        label_b=f"B: {model_label(view['model_b'])}",
        analysis_a=int(an_a["id"]),
        analysis_b=int(an_b["id"]),
        recall_a=list(an_a.get("recall") or []),
        recall_b=list(an_b.get("recall") or []),
    )


_cache = FetchCache(fetch_geometry_data, CACHE_SIZE)
load_data, clear_cache = _cache.load, _cache.clear  # fetched on first use


# pure helpers -------------------------------------------------------------------------------


def default_class(
    context_class: Any, recall_a: Sequence[float | None], recall_b: Sequence[float | None], n: int
) -> int:
    """The class shown first: the page's selected class, else the one whose recall fell most
    from A to B, else 0."""
    cls = class_index(context_class, n)
    if cls is not None:
        return cls
    worst: tuple[int, float] | None = None
    for i, (a, b) in enumerate(zip(recall_a, recall_b, strict=False)):
        if a is None or b is None or i >= n:
            continue
        delta = float(b) - float(a)
        if delta < 0 and (worst is None or delta < worst[1]):
            worst = (i, delta)
    return worst[0] if worst is not None else 0


def selected_per_class(table: Mapping[str, np.ndarray], ids: Sequence[int], n: int) -> np.ndarray:
    """``[n]``: how many of the selected samples ``ids`` each (true) class holds, counted over
    a per-sample table with ``index`` and ``label`` columns."""
    if n <= 0 or not len(ids):
        return np.zeros(max(n, 0), dtype=np.int64)
    picked = np.isin(table["index"], np.asarray(list(ids), dtype=np.int64))
    labels = np.asarray(table["label"][picked], dtype=np.int64)
    return np.bincount(labels[(labels >= 0) & (labels < n)], minlength=n)[:n]


def class_for_selection(counts: Sequence[int] | np.ndarray, current: int) -> int:
    """The class Local geometry shows for a selection whose samples class ``c`` holds
    ``counts[c]`` of: ``current`` while it holds as many as any class, else the class holding
    the most (ties: the lowest index). ``current`` when no class holds any."""
    values = [int(k) for k in counts]
    most = max(values, default=0)
    if most <= 0 or (0 <= current < len(values) and values[current] == most):
        return current
    return values.index(most)


def own_class(default: int, counts: Sequence[int] | np.ndarray, n_selected: int) -> int:
    """The class the view picks itself, as a reload of its URL would pick it: with a
    selection the URL carries (1 to MAX_URL_SELECTION samples), the selection's class
    (:func:`class_for_selection` starting from ``default``), else ``default``."""
    if not 0 < n_selected <= MAX_URL_SELECTION:
        return default
    return class_for_selection(counts, default)


def parse_mode(value: Any) -> GeometryMode:
    """``geo_mode``: "diff" or the default "overlay"."""
    return "diff" if value == "diff" else DEFAULT_MODE


def parse_parallel(value: Any) -> str:
    """``geo_par``: "b" or the default "a"."""
    return "b" if value == "b" else DEFAULT_PARALLEL


def align(index_a: np.ndarray, index_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the samples both tables hold, ordered as in A: ``(rows_a, rows_b)``."""
    order = np.argsort(index_b, kind="stable")
    sorted_b = index_b[order]
    pos = np.searchsorted(sorted_b, index_a)
    pos = np.clip(pos, 0, max(sorted_b.size - 1, 0))
    found = sorted_b[pos] == index_a if sorted_b.size else np.zeros(index_a.size, dtype=bool)
    return np.flatnonzero(found), order[pos[found]]


def local_figure(
    data: GeometryData,
    table_a: Mapping[str, np.ndarray],
    table_b: Mapping[str, np.ndarray],
    cls: int,
    mode: GeometryMode,
    selected: Sequence[int],
    source: str | None = None,
) -> Any:
    """The local-geometry figure of class ``cls`` (pure given the tables).

    ``source`` is the view that made the selection: a selection from elsewhere gets its own
    ``uirevision``, so a box drawn here earlier is cleared rather than re-applied by plotly
    (which would select its points again and overwrite the other view's selection).
    """
    rows_a, rows_b = align(table_a["index"], table_b["index"])
    in_class = table_a["label"][rows_a] == cls
    ra, rb = rows_a[in_class], rows_b[in_class]
    fig = local_geometry_scatter(
        table_a["index"][ra],
        table_a["angle_true"][ra],
        table_a["length_z"][ra],
        table_b["angle_true"][rb],
        table_b["length_z"][rb],
        class_name=data.class_name(cls),
        label_a=data.label_a,
        label_b=data.label_b,
        mode=mode,
        margin_a=table_a["margin"][ra],
        margin_b=table_b["margin"][rb],
        pred_a=[data.class_name(p) for p in table_a["pred"][ra]],
        pred_b=[data.class_name(p) for p in table_b["pred"][rb]],
        selected=selected or None,
    )
    # zoom and the drawn selection box survive a redraw of the same class and mode
    revision = f"{data.comparison_id}-{data.b}-{cls}-{mode}"
    if selected and source != SOURCE:
        revision += f"-{source}-{len(selected)}-{hash(tuple(selected)) & 0xFFFFFFFF:x}"
    fig.update_layout(uirevision=revision)
    return fig


def parallel_figure(
    data: GeometryData, table: Mapping[str, np.ndarray], side: str, selected: Sequence[int]
) -> Any:
    """The parallel-coordinates figure of side "a" or "b" (pure given the table)."""
    c = len(data.class_names)
    angles = np.stack([table[f"a{j}"] for j in range(c)], axis=1) if c else np.zeros((0, 0))
    return parallel_geometry(
        angles,
        table["angle_true"],
        table["length_z"],
        table["margin"],
        table["label"],
        data.class_names,
        model_label=data.label_a if side == "a" else data.label_b,
        index=table["index"],
        selected=selected or None,
    )


def ids_from_selected_data(selected_data: Mapping[str, Any] | None) -> list[int] | None:
    """Dataset indices of the points in ``selectedData`` (``customdata[0]``); None when the
    selection was cleared or holds no sample."""
    if not selected_data:
        return None
    return customdata_ids(selected_data.get("points") or []) or None


# layout -------------------------------------------------------------------------------------


def section() -> html.Section:
    """The view's skeleton: three panels with their controls and empty graphs."""
    metrics = html.Ul(
        [
            html.Li(f"Angle (degrees): {ANGLE_HOVER}.", className="hint"),
            html.Li(f"Length (σ): {LENGTH_HOVER}, so A and B compare.", className="hint"),
            html.Li(f"Margin (feature units): {MARGIN_HOVER}.", className="hint"),
        ],
        className="muted geometry-metrics",
    )
    class_choice = dcc.Dropdown(id=ID_CLASS, options=[], value=None, clearable=False)
    body = [
        html.Div(
            [
                _panel(
                    "recall",
                    "Recall distortion",
                    hint(BN_HOVER + "."),
                    graph(ID_BALANCE, "Recall distortion", GRAPH_HEIGHT_PX),
                    hint(BALANCE_NOTE, ID_BALANCE_NOTE),
                ),
                _panel(
                    "local",
                    "Local geometry",
                    html.Div(
                        [
                            control("Class", class_choice),
                            control("Show", radio(ID_MODE, MODE_OPTIONS, DEFAULT_MODE)),
                        ],
                        className="controls",
                    ),
                    graph(ID_LOCAL, "Local geometry", GRAPH_HEIGHT_PX, SELECTABLE),
                    hint(SELECT_HINT, ID_LOCAL_NOTE),
                ),
            ],
            className="grid-2",
        ),
        html.Div(
            [
                _panel(
                    "directions",
                    "Class directions",
                    graph(ID_DIRECTIONS, "Class directions", DIRECTIONS_HEIGHT_PX),
                    hint(DIRECTIONS_NOTE),
                ),
                _panel(
                    "intrinsic",
                    "Intrinsic dimension",
                    graph(ID_INTRINSIC, "Intrinsic dimension", DIRECTIONS_HEIGHT_PX),
                    hint(INTRINSIC_NOTE),
                ),
            ],
            className="grid-2",
        ),
        _panel(
            "global",
            "Global geometry",
            html.Div(
                control("Model", radio(ID_PAR_MODEL, PARALLEL_OPTIONS, DEFAULT_PARALLEL)),
                className="controls",
            ),
            graph(ID_PARALLEL, "Global geometry", PARALLEL_HEIGHT_PX),
            hint(PARALLEL_NOTE, ID_PARALLEL_NOTE),
            metrics,
        ),
        dcc.Store(id=ID_DEFAULTS),
    ]
    return view_section(ID_SECTION, TITLE, EXPLANATION, html.Div(id=ID_MESSAGE), *body)


def _panel(name: str, title: str, *children: Any) -> html.Div:
    return html.Div([html.H3(title), *children], id=f"{ID_SECTION}-{name}")


# callbacks ----------------------------------------------------------------------------------


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    app.callback(
        Output(ID_CLASS, "options"),
        Output(ID_CLASS, "value"),
        Output(ID_MODE, "value"),
        Output(ID_PAR_MODEL, "value"),
        Output(ID_DEFAULTS, "data"),
        Output(ID_MESSAGE, "children"),
        Input(CTX, "data"),
        State(SELECTION, "data"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(init_geometry)
    app.callback(
        Output(ID_BALANCE, "figure"),
        Output(ID_BALANCE_NOTE, "children"),
        Input(CTX, "data"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(render_balance)
    app.callback(
        Output(ID_DIRECTIONS, "figure"),
        Input(CTX, "data"),
        Input(ID_CLASS, "value"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(render_directions)
    app.callback(
        Output(ID_INTRINSIC, "figure"),
        Input(CTX, "data"),
        Input(ID_CLASS, "value"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(render_intrinsic)
    app.callback(
        Output(ID_LOCAL, "figure"),
        Output(ID_LOCAL_NOTE, "children"),
        Input(ID_CLASS, "value"),
        Input(ID_MODE, "value"),
        State(SELECTION, "data"),
        State(CTX, "data"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(render_local)
    app.callback(
        Output(ID_LOCAL, "figure", allow_duplicate=True),
        Output(ID_LOCAL_NOTE, "children", allow_duplicate=True),
        Output(ID_CLASS, "value", allow_duplicate=True),
        Output(ID_DEFAULTS, "data", allow_duplicate=True),
        Input(SELECTION, "data"),
        State(ID_CLASS, "value"),
        State(ID_MODE, "value"),
        State(CTX, "data"),
        State(ID_DEFAULTS, "data"),
        prevent_initial_call=True,
    )(follow_selection)
    app.callback(
        Output(ID_PARALLEL, "figure"),
        Output(ID_PARALLEL_NOTE, "children"),
        Input(ID_PAR_MODEL, "value"),
        Input(SELECTION, "data"),
        State(CTX, "data"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(render_parallel)
    # an Input, not a State: following a selection may change the class the view picks itself
    # (ID_DEFAULTS) and not the class shown, and geo_cls must then change (see own_class)
    register_writer(
        app,
        QUERY,
        write_geometry_query,
        *(Input(i, "value") for i in (ID_CLASS, ID_MODE, ID_PAR_MODEL)),
        State(QUERY, "data"),
        Input(ID_DEFAULTS, "data"),
    )
    selected = Input(ID_LOCAL, "selectedData")
    register_writer(app, SELECTION, select_geometry, selected, State(SELECTION, "data"))


def init_geometry(
    context: Mapping[str, Any] | None, current: Mapping[str, Any] | None = None
) -> tuple[Any, ...]:
    """Callback: fill the class selector and restore the settings from the URL query.

    The class is ``geo_cls`` from the URL, else the one the view picks itself
    (:func:`own_class`): with a SELECTION (``current``, e.g. restored from ``sel`` or made
    before this view woke) the class most selected samples are in.

    Returns:
        class options, class, mode, parallel model, defaults (``{"cls": own class}``, so the
        class is written to the URL only when it differs; ``"sel"``: the selection followed),
        message.
    """
    if not has_context(context):
        return [], None, DEFAULT_MODE, DEFAULT_PARALLEL, None, None
    query = context.get("query") or {}
    mode, par = parse_mode(query.get(KEY_MODE)), parse_parallel(query.get(KEY_PARALLEL))
    try:
        data = load_data(context)
    except ApiError as exc:
        reload = "Reload the page once the analyze jobs are done."
        message = not_ready_notice(exc, "the geometry", NOT_READY, reload, statuses=(404, 409))
        return [], None, mode, par, None, message
    n = len(data.class_names)
    options = [{"label": f"{i}: {name}", "value": i} for i, name in enumerate(data.class_names)]
    default = default_class(context.get("cls"), data.recall_a, data.recall_b, n)
    shown, defaults = default, cast(dict[str, Any], {"cls": default})
    ids = selected_ids(current)
    if ids:
        try:
            counts = selected_per_class(_tables(data, ("a",))[0], ids, n)
        except ApiError:
            counts = np.zeros(n, dtype=np.int64)  # no table: render_local says why
        shown = class_for_selection(counts, default)
        defaults = {"cls": own_class(default, counts, len(ids)), "sel": signature(ids)}
    cls = class_index(query.get(KEY_CLASS), n)
    return options, shown if cls is None else cls, mode, par, defaults, None


def render_balance(context: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """Callback: the recall-distortion scatter from the comparison's results."""
    title = "Recall distortion"
    if not has_context(context):
        return empty_figure("No comparison.", title), dash.no_update
    try:
        data = load_data(context)
        results = fetch_results(get_client(), data)
    except ApiError as exc:
        message = RESULTS_NOT_READY if exc.status == 409 else f"Not available: {exc.detail}"
        if exc.status == 409 and "analysis" in exc.detail:
            message = NOT_READY
        return empty_figure(message, title), dash.no_update
    rd = cast(RecallDistortionResult, results.get("recall_distortion") or {})
    n = len(data.class_names)
    bn_a, bn_b = list(rd.get("bn_a") or []), list(rd.get("bn_b") or [])
    if len(bn_a) != n or len(bn_b) != n:
        message = "The results hold no per-class recall balance."
        return empty_figure(message, title), dash.no_update
    fig = balance_scatter(
        data.class_names,
        bn_a,
        bn_b,
        rd.get("alpha"),
        t=rd.get("t"),
        sparsity=rd.get("sparsity"),
        selected_class=class_index(context.get("cls"), n),
        t_all=rd.get("t_all"),
    )
    return fig, BALANCE_NOTE


def _results_part(
    context: Mapping[str, Any] | None, key: str, what: str, title: str
) -> tuple[GeometryData, dict[str, Any]] | go.Figure:
    """The comparison's geometry data and ``results[key]`` (a dict), or the figure that says
    why there is none: no comparison, results not ready, results older than ``what``."""
    if not has_context(context):
        return empty_figure("No comparison.", title)
    try:
        data = load_data(context)
        results = fetch_results(get_client(), data)
    except ApiError as exc:
        message = RESULTS_NOT_READY if exc.status == 409 else f"Not available: {exc.detail}"
        return empty_figure(message, title)
    part = results.get(key)
    if not isinstance(part, dict):
        return empty_figure(
            f"These results predate {what}: add a model to the comparison or create it again "
            "to compute them.",
            title,
        )
    return data, part


def render_directions(context: Mapping[str, Any] | None, cls: Any = None) -> Any:
    """Callback: the angle between A's and B's class direction per class, the class chosen
    in local geometry outlined."""
    title = "Class directions: angle A → B"
    loaded = _results_part(context, "direction_angles", "class-direction angles", title)
    if not isinstance(loaded, tuple):
        return loaded
    data, part = loaded
    angles = cast(DirectionAngles, part)
    n = len(data.class_names)
    degrees = angles.get("degrees")
    if degrees is not None and len(degrees) != n:
        return empty_figure("The results hold no angle per class.", title)
    return direction_angle_bars(
        data.class_names,
        degrees,
        angles.get("norm_a"),
        angles.get("norm_b"),
        selected_class=class_index(cls, n),
        reason=public_reason(angles.get("reason")),
    )


def render_intrinsic(context: Mapping[str, Any] | None, cls: Any = None) -> Any:
    """Callback: TwoNN intrinsic dimension of A's and B's features, overall and per class,
    the class chosen in local geometry shaded."""
    title = "Intrinsic dimension (TwoNN)"
    loaded = _results_part(context, "intrinsic_dimension", "intrinsic dimensions", title)
    if not isinstance(loaded, tuple):
        return loaded
    data, dims = loaded
    n = len(data.class_names)
    return intrinsic_dimension_figure(
        data.class_names, dims.get("a"), dims.get("b"), selected_class=class_index(cls, n)
    )


def public_reason(reason: str | None) -> str | None:
    """Why a comparison has no class-direction angles, in the reader's words."""
    if reason and "feature widths differ" in reason:
        return (
            "No angles: A and B have penultimate features of different widths (structured "
            "pruning removed channels), so their class directions live in different spaces."
        )
    return reason


def _tables(data: GeometryData, sides: Sequence[str]) -> list[dict[str, np.ndarray]]:
    client = get_client()
    return [fetch_table(client, data, side) for side in sides]


def _table_error(exc: ApiError) -> str:
    if exc.status == 422:
        return NO_GEOMETRY
    if exc.status in (404, 409):
        return NOT_READY
    return f"The geometry could not be loaded: {exc.detail}"


def render_local(
    cls: Any, mode: Any, current: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Callback: the local-geometry scatter of the chosen class in the chosen mode, the
    SELECTION highlighted, and the line under it (:func:`selection_note`)."""
    title = "Local geometry"
    if not has_context(context):
        return empty_figure("No comparison.", title), SELECT_HINT
    try:
        data = load_data(context)
        table_a, table_b = _tables(data, ("a", "b"))
    except ApiError as exc:
        return empty_figure(_table_error(exc), title), SELECT_HINT
    n = len(data.class_names)
    chosen = class_index(cls, n)
    if chosen is None:
        chosen = default_class(context.get("cls"), data.recall_a, data.recall_b, n)
    ids = selected_ids(current)
    source = (current or {}).get("source") if ids else None
    fig = local_figure(data, table_a, table_b, chosen, parse_mode(mode), ids, source)
    counts = selected_per_class(table_a, ids, n) if ids else None
    return fig, selection_note(current, counts, chosen, data.class_names)


def selection_note(
    current: Mapping[str, Any] | None,
    counts: Sequence[int] | np.ndarray | None = None,
    cls: int | None = None,
    class_names: Sequence[str] = (),
) -> str:
    """The line under the local scatter: how to select, or what is selected, where (in words,
    :func:`frontend.views.selection_origin`) and, given ``counts`` (selected samples per
    class, :func:`selected_per_class`) and the class shown ``cls``, how many of them it holds
    and where the others are when it does not hold them all."""
    ids = selected_ids(current)
    if not ids:
        return SELECT_HINT
    n = len(ids)
    head = f"{selected_count(n)} {selection_origin((current or {}).get('source'), SOURCE)}"
    clear = "double-click the plot that made the selection to clear it."
    values = [int(k) for k in counts] if counts is not None else []
    if cls is None or not 0 <= cls < len(values) or values[cls] >= n or not max(values):
        return f"{head}; {clear}"
    k, most = values[cls], max(values)
    name = f"class {class_label(class_names, cls)}"
    if k == most:
        return (
            f"{head}: showing {name}, where {k:,} of the {n:,} selected samples are; pick "
            "another class above."
        )
    best = f"class {class_label(class_names, values.index(most))}"
    held = "none of them" if k == 0 else f"{k:,} of them"
    return f"{head}, {held} in {name}; most ({most:,}) are in {best}: pick it above."


def highlight_local(
    current: Mapping[str, Any] | None,
    cls: Any,
    mode: Any,
    context: Mapping[str, Any] | None,
) -> tuple[Any, Any]:
    """Callback: show a changed SELECTION in the local scatter.

    A selection made here is already drawn by plotly (the box, the dimmed points): the figure
    is left alone, since redrawing it makes plotly re-apply the box and report a new (empty)
    selection. A selection from another view, or none, redraws the figure.
    """
    if current and current.get("source") == SOURCE:
        return dash.no_update, selection_note(current)
    return render_local(cls, mode, current, context)


def follow_selection(
    current: Mapping[str, Any] | None,
    cls: Any,
    mode: Any,
    context: Mapping[str, Any] | None,
    defaults: Mapping[str, Any] | None,
) -> tuple[Any, Any, Any, Any]:
    """Callback: a changed SELECTION, followed by the local scatter.

    A new selection (its signature is not ``defaults["sel"]``) moves the view to the class
    most selected samples are in unless the class shown holds as many
    (:func:`class_for_selection`); the class the user picks afterwards stays until the
    selection changes again (the same selection written again is not new). Cleared, the
    class stays. ``defaults["cls"]`` becomes the class a reload of the URL would pick
    (:func:`own_class`), so that :func:`write_geometry_query` puts the class shown into the
    URL (``geo_cls``) exactly when a reload would pick another.

    Returns:
        figure, note (no update while a new class is being drawn by :func:`render_local`),
        class, defaults.
    """
    ids = selected_ids(current)
    keep = dash.no_update
    before = dict(defaults or {})
    if not has_context(context) or signature(ids) == before.get("sel"):
        return (*highlight_local(current, cls, mode, context), keep, keep)
    try:
        data = load_data(context)
        (table_a,) = _tables(data, ("a",))
    except ApiError:
        return (*highlight_local(current, cls, mode, context), keep, keep)
    n = len(data.class_names)
    default = default_class(context.get("cls"), data.recall_a, data.recall_b, n)
    shown = class_index(cls, n)
    if shown is None:
        shown = class_index(before.get("cls"), n)
    shown = default if shown is None else shown
    counts = selected_per_class(table_a, ids, n)
    chosen = class_for_selection(counts, shown) if ids else shown
    own = own_class(default, counts, len(ids))
    after = {"cls": own, **({"sel": signature(ids)} if ids else {})}
    if chosen != shown:
        return keep, keep, chosen, after  # the class's callbacks draw it
    return (*highlight_local(current, shown, mode, context), keep, after)


def render_parallel(
    par: Any, current: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Callback: parallel coordinates of A or B, narrowed to the SELECTION when there is one."""
    title = "Global geometry"
    default_note = PARALLEL_NOTE
    if not has_context(context):
        return empty_figure("No comparison.", title), default_note
    side = parse_parallel(par)
    try:
        data = load_data(context)
        (table,) = _tables(data, (side,))
    except ApiError as exc:
        return empty_figure(_table_error(exc), title), default_note
    fig = parallel_figure(data, table, side, selected_ids(current))
    note = (fig.layout.meta or {}).get("note") if isinstance(fig.layout.meta, dict) else None
    return fig, f"{default_note} Showing {note}." if note else default_note


def write_geometry_query(
    cls: Any,
    mode: Any,
    par: Any,
    query: Mapping[str, Any] | None,
    defaults: Mapping[str, Any] | None,
) -> Any:
    """Callback: the class, mode and parallel model into QUERY, defaults left out (``geo_cls``
    only when it is not the class the view picks itself, ``defaults["cls"]``); no update when
    QUERY already says so."""
    settings = {
        KEY_CLASS: (query_int(cls), query_int((defaults or {}).get("cls"))),
        KEY_MODE: (parse_mode(mode), DEFAULT_MODE),
        KEY_PARALLEL: (parse_parallel(par), DEFAULT_PARALLEL),
    }
    return write_settings(query, **{k: None if v == d else v for k, (v, d) in settings.items()})


def select_geometry(
    selected_data: Mapping[str, Any] | None, current: Mapping[str, Any] | None
) -> Any:
    """Callback: a box or lasso in the local-geometry scatter becomes the linked SELECTION;
    clearing it (double-click: ``selectedData`` None) clears a selection this view made, and
    leaves others alone. A selection event without points (plotly re-applying a box to new
    data, or a box over nothing) changes nothing."""
    if selected_data is None:
        if current and current.get("source") == SOURCE:
            return None
        return dash.no_update
    ids = ids_from_selected_data(selected_data)
    if ids is None:
        return dash.no_update
    return selection(ids, SOURCE)

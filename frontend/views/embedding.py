"""Compare-page view "Aligned embeddings": A's and B's features laid out jointly (issue 8).

Two WebGL scatter plots side by side, one point per test sample, from the comparison table's
``ax, ay`` (A) and ``bx, by`` (B). Lasso or box-select in either writes the linked SELECTION;
any SELECTION is shown in both by patching only the traces' ``selectedpoints``, so a selection
costs a few milliseconds on the server however many points there are. The colour-by choice
lives in the URL query under ``emb_color``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dash
import numpy as np
from dash import Input, Output, Patch, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    get_comparison_results,
)
from frontend.components import notice
from frontend.figures import model_label
from frontend.figures._common import empty_figure
from frontend.figures.embedding import (
    DEFAULT_AXIS_NAME,
    ColorKind,
    draw_order,
    embedding_figure,
    numeric_values,
    selected_positions,
)
from frontend.views import (
    CONTEXT,
    QUERY,
    SELECTION,
    FetchCache,
    merge_settings,
    selected_ids,
    selection,
    selection_origin,
)
from frontend.views.parts import (
    FLIP_WORDS,
    HIDDEN,
    SELECTABLE,
    class_label,
    control,
    customdata_ids,
    graph,
    has_context,
    not_ready_notice,
    register_writer,
    selected_count,
    signature,
    table_columns,
    view_section,
)

NAME = "embedding"
QUERY_KEY = "emb_color"
SOURCE_A = "embedding-a"
SOURCE_B = "embedding-b"

ID_SECTION = "compare-embedding"
ID_COLOR = "compare-embedding-color"
ID_GRAPH_A = "compare-embedding-a"
ID_GRAPH_B = "compare-embedding-b"
ID_GRAPHS = "compare-embedding-graphs"
ID_EXPLANATION = "compare-embedding-explanation"
ID_MESSAGE = "compare-embedding-message"
ID_STATUS = "compare-embedding-status"
ID_SHOWN = "compare-embedding-shown"  # which selection the figures show (see shown())

TITLE = "Aligned embeddings"
EXPLANATION = (
    "A and B are embedded jointly ({method}) so the same place means the same thing; "
    "lasso or box-select in either to highlight the same samples everywhere."
)
NO_EMBEDDING = "No embedding: the compare job ran without one"
GRAPH_HEIGHT_PX = 520
EMBEDDING_COLUMNS = ("ax", "ay", "bx", "by")
BASE_COLUMNS = ("index", "label", "pred_a", "pred_b")
CACHE_SIZE = 8

FLIP_UNCHANGED = "unchanged"
FLIP_LABELS = {"": FLIP_UNCHANGED, **FLIP_WORDS}
# the flips table's colours (frontend/assets/style.css), so a flip reads the same everywhere
FLIP_COLORS = {
    FLIP_UNCHANGED: "#c8ced6",
    FLIP_WORDS["correct_to_wrong"]: "#cf222e",
    FLIP_WORDS["wrong_to_correct"]: "#1a7f37",
    FLIP_WORDS["wrong_to_other_wrong"]: "#d4a72c",
}
PIE_LABELS = {True: "PIE", False: "not PIE"}
PIE_COLORS = {"PIE": "#8250df", "not PIE": "#c8ced6"}
# categorical columns with fixed categories: value -> category, colours, the background one
FIXED_CATEGORIES: dict[str, tuple[Callable[[Any], str], dict[str, str], str]] = {
    "category": (lambda v: FLIP_LABELS.get(str(v), str(v)), FLIP_COLORS, FLIP_UNCHANGED),
    "pie": (lambda v: PIE_LABELS[bool(v)], PIE_COLORS, "not PIE"),
}


@dataclass(frozen=True)
class ColorBy:
    """One colour-by choice: which table column colours A's points and which B's (the
    column named by the key, unless it says otherwise)."""

    key: str
    label: str
    kind: ColorKind
    column_a: str = ""
    column_b: str = ""
    value_range: tuple[float, float] | None = None  # a fixed scale (None: the data's range)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_a", self.column_a or self.key)
        object.__setattr__(self, "column_b", self.column_b or self.column_a)


COLOR_BY: tuple[ColorBy, ...] = (
    ColorBy("class", "class", "categorical", "label"),
    ColorBy("flip", "flip category", "categorical", "category"),
    ColorBy("pie", "PIE (pruning-identified exemplar)", "categorical"),
    ColorBy("margin_a", "margin A", "sequential"),
    ColorBy("margin_b", "margin B", "sequential"),
    ColorBy("d_margin", "Δmargin (B − A)", "diverging"),
    ColorBy("d_angle", "Δangle (B − A, degrees)", "diverging"),
    ColorBy("d_length_z", "Δlength (B − A, z-scored)", "diverging"),
    ColorBy(
        "fragile", "fragile (corruptions that break it)", "sequential", "fragile_a", "fragile_b"
    ),
    # SCIENCE.md sect. 7: Jaccard of the sample's k nearest neighbours in A and in B, the same
    # value on both sides; absent from comparisons computed before it (then not offered)
    ColorBy(
        "nbr_jaccard",
        "Neighbourhood change (kept, Jaccard; low = torn)",
        "sequential",
        value_range=(0.0, 1.0),
    ),
)
COLOR_BY_KEY = {c.key: c for c in COLOR_BY}
DEFAULT_COLOR = "class"


# data ---------------------------------------------------------------------------------------


@dataclass
class EmbeddingData:
    """The comparison table's columns this view draws, for one (comparison, B)."""

    comparison_id: int
    b: int | None
    columns: dict[str, np.ndarray]
    class_names: list[str] = field(default_factory=list)
    method: str | None = None
    titles: dict[str, str] = field(default_factory=lambda: {"a": "A", "b": "B"})
    drawn: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    # (colour-by key, side) -> figure without a selection; shared: copy before changing it
    figures: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    named: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def has_embedding(self) -> bool:
        return all(c in self.columns for c in EMBEDDING_COLUMNS)

    @property
    def index(self) -> np.ndarray:
        return self.columns["index"]

    def options(self) -> list[ColorBy]:
        """The colour-by choices this table can colour by."""
        return [c for c in COLOR_BY if c.column_a in self.columns and c.column_b in self.columns]

    def names(self, column: str) -> list[str]:
        """Class names of an integer column ("label", "pred_a", ...), cached."""
        if column not in self.named:
            lookup = {i: self.class_name(i) for i in np.unique(self.columns[column]).tolist()}
            self.named[column] = [lookup[v] for v in self.columns[column].tolist()]
        return self.named[column]

    def class_name(self, value: Any) -> str:
        return class_label(self.class_names, value)


def fetch_embedding_data(client: ApiClient, comparison_id: int, b: int | None) -> EmbeddingData:
    """The comparison table's columns this view draws (float ones as float32), class names,
    the models' titles and the embedding method.

    Raises:
        ApiError: the table cannot be read.
    """
    wanted = [*BASE_COLUMNS, *EMBEDDING_COLUMNS]
    wanted += [column for c in COLOR_BY for column in (c.column_a, c.column_b)]
    table = table_columns(client, comparison_id, b, wanted)
    arrays = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in table.items()}
    class_names: list[str] = []
    titles = {"a": "A: original", "b": "B: pruned"}
    try:
        comparison = client.get_comparison(comparison_id)
        class_names = [str(c) for c in client.get_dataset(comparison["dataset_id"])["class_names"]]
        titles["a"] = f"A: {model_label(client.get_model(comparison['model_a_id']))}"
        b_id = b if b is not None else comparison["model_b_ids"][0]
        titles["b"] = f"B: {model_label(client.get_model(b_id))}"
    except (ApiError, KeyError, IndexError, TypeError):
        pass  # class indices and generic titles instead
    method = None
    try:
        summary = get_comparison_results(client, comparison_id, b=b).get("embedding") or {}
        method = summary.get("method")
    except (ApiError, AttributeError):
        pass
    return EmbeddingData(comparison_id, b, arrays, class_names, method, titles)


def fetch_and_warm(client: ApiClient, comparison_id: int, b: int | None) -> EmbeddingData:
    """:func:`fetch_embedding_data`, then :func:`warm`: the page's prefetch thread (which
    calls :func:`load_data`) so builds the figures the first callback sends, and a callback
    arriving meanwhile waits for them instead of building them again."""
    data = fetch_embedding_data(client, comparison_id, b)
    warm(data)
    return data


_cache = FetchCache(fetch_and_warm, CACHE_SIZE)
# the cached table of a CONTEXT's comparison and B, fetched on first use with the default
# colouring's figures built (:func:`warm`); clear_cache forgets every table
load_data, clear_cache = _cache.load, _cache.clear


# figures ------------------------------------------------------------------------------------


def color_choice(key: Any, data: EmbeddingData) -> ColorBy:
    """The colour-by for ``key`` (URL or dropdown); the default when it is not offered."""
    offered = {c.key: c for c in data.options()}
    if isinstance(key, str) and key in offered:
        return offered[key]
    return offered.get(DEFAULT_COLOR) or COLOR_BY_KEY[DEFAULT_COLOR]


@dataclass(frozen=True)
class Coloring:
    """How one side is coloured: its values and the arguments of :func:`embedding_figure`."""

    values: np.ndarray
    kwargs: dict[str, Any]


def coloring(data: EmbeddingData, choice: ColorBy, side: str) -> Coloring:
    """Colour values and styling for side "a" or "b"; categories and ranges shared by both."""
    column = choice.column_a if side == "a" else choice.column_b
    kwargs: dict[str, Any] = {"color_label": choice.label}
    if choice.kind == "categorical":
        raw = data.columns[column]
        if column in FIXED_CATEGORIES:
            category, colors, background = FIXED_CATEGORIES[column]
            values = np.asarray([category(v) for v in raw], dtype=object)
            kwargs |= {
                "categories": list(colors),
                "fixed_colors": colors,
                "background": [background],
            }
        else:
            values = np.asarray(data.names(column), dtype=object)
            n = max(len(data.class_names), int(raw.max()) + 1 if raw.size else 0)
            kwargs["categories"] = [data.class_name(i) for i in range(n)]
        return Coloring(values, kwargs)
    values = numeric_values(data.columns[column])
    if choice.value_range is not None:
        kwargs["color_range"] = choice.value_range
        return Coloring(values, kwargs)
    both = np.concatenate(
        [numeric_values(data.columns[c]) for c in (choice.column_a, choice.column_b)]
    )
    finite = both[np.isfinite(both)]
    if finite.size:
        kwargs["color_range"] = (float(finite.min()), float(finite.max()))
    return Coloring(values, kwargs)


def axis_name(method: str | None) -> str:
    """Axis title stem for the embedding method the compare job used."""
    return "aligned PCA" if method == "pca" else DEFAULT_AXIS_NAME


def explanation(method: str | None) -> str:
    """The line under the title, naming the method the compare job used."""
    return EXPLANATION.format(method=axis_name(method))


def base_figure(data: EmbeddingData, choice: ColorBy, side: str) -> dict[str, Any]:
    """The figure of side "a" or "b" in colouring ``choice``, without a selection; built once
    per table (callbacks then only copy it: with 10^4 points, building takes a few ms, the
    class names of the hover most of it) and shared: never modify it."""
    key = (choice.key, side)
    figure = data.figures.get(key)
    if figure is None:
        x, y = ("ax", "ay") if side == "a" else ("bx", "by")
        c = coloring(data, choice, side)
        hover = {"true": data.names("label"), "A": data.names("pred_a"), "B": data.names("pred_b")}
        figure = data.figures[key] = embedding_figure(
            data.columns[x],
            data.columns[y],
            data.index,
            c.values,
            choice.kind,
            data.titles[side],
            hover=hover,
            hover_value=choice.key != "class",  # "true: <class>" already says it
            axis_name=axis_name(data.method),
            uirevision=f"{data.comparison_id}-{data.b}",
            **c.kwargs,
        )
    return figure


def side_figure(
    data: EmbeddingData, choice: ColorBy, side: str, selected: Sequence[int] | None
) -> dict[str, Any]:
    """The figure of side "a" or "b" (pure given the data): :func:`base_figure` with
    ``selected`` highlighted, copied only as deep as ``selectedpoints``."""
    figure = base_figure(data, choice, side)
    if not figure["data"]:
        return figure  # no samples: nothing to select
    points = figure["data"][0]
    positions = None
    if selected is not None:
        positions = selected_positions(drawn_index(data, choice, side), selected)
    points = {**points, "selectedpoints": positions}
    return {**figure, "data": [points, *figure["data"][1:]]}


def warm(data: EmbeddingData) -> None:
    """Build (and cache) both sides' figures in the default colouring, the one a page opens
    with unless its URL says otherwise."""
    if data.has_embedding:
        choice = color_choice(DEFAULT_COLOR, data)
        for side in ("a", "b"):
            base_figure(data, choice, side)


def drawn_index(data: EmbeddingData, choice: ColorBy, side: str) -> np.ndarray:
    """Dataset indices in the order :func:`side_figure` draws them (what selectedpoints
    positions refer to)."""
    key = (choice.key, side)
    if key not in data.drawn:
        c = coloring(data, choice, side)
        order = draw_order(c.values, choice.kind, c.kwargs.get("background", ()))
        data.drawn[key] = data.index[order]
    return data.drawn[key]


def _selected(value: Mapping[str, Any] | None) -> list[int] | None:
    return selected_ids(value) or None


def status_text(value: Mapping[str, Any] | None) -> str:
    """Callback (and the initial text): the line under the plots, how many samples are
    selected and where from."""
    ids = selected_ids(value)
    if not ids:
        return "No samples selected: drag a box or a lasso over either plot."
    origin = selection_origin((value or {}).get("source"))
    return f"{selected_count(len(ids))} {origin}; double-click a plot to clear."


# layout -------------------------------------------------------------------------------------


def _graph(graph_id: str, title: str) -> dcc.Graph:
    loading = "Loading the embedding…"
    return graph(graph_id, title, GRAPH_HEIGHT_PX, SELECTABLE, loading, className="embedding-graph")


def section() -> html.Section:
    """The view's skeleton: title, colour-by, two empty graphs, explanation."""
    color = dcc.Dropdown(
        id=ID_COLOR,
        options=[{"label": COLOR_BY_KEY[DEFAULT_COLOR].label, "value": "class"}],
        value=None,
        clearable=False,
        searchable=False,
    )
    return view_section(
        ID_SECTION,
        TITLE,
        explanation(None),
        html.Div(control("Colour by", color), className="controls"),
        html.Div(id=ID_MESSAGE),
        html.Div(
            [_graph(ID_GRAPH_A, "A: original"), _graph(ID_GRAPH_B, "B: pruned")],
            id=ID_GRAPHS,
            className="grid-2",
        ),
        html.P(status_text(None), id=ID_STATUS, className="muted hint"),
        dcc.Store(id=ID_SHOWN),
        lead_id=ID_EXPLANATION,
    )


# callbacks ----------------------------------------------------------------------------------


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    figures = [Output(g, "figure", allow_duplicate=True) for g in (ID_GRAPH_A, ID_GRAPH_B)]
    shown_store = Output(ID_SHOWN, "data", allow_duplicate=True)
    app.callback(
        Output(ID_COLOR, "options"),
        Output(ID_COLOR, "value"),
        Output(ID_GRAPH_A, "figure"),
        Output(ID_GRAPH_B, "figure"),
        Output(ID_MESSAGE, "children"),
        Output(ID_GRAPHS, "style"),
        Output(ID_SHOWN, "data"),
        Output(ID_EXPLANATION, "children"),
        Input(CONTEXT, "data"),
        State(SELECTION, "data"),
    )(load_embedding)
    app.callback(
        *figures,
        Output(QUERY, "data", allow_duplicate=True),
        shown_store,
        Input(ID_COLOR, "value"),
        State(CONTEXT, "data"),
        State(SELECTION, "data"),
        State(QUERY, "data"),
        prevent_initial_call=True,
    )(change_color)
    for graph_id, select in ((ID_GRAPH_A, select_in_a), (ID_GRAPH_B, select_in_b)):
        register_writer(app, SELECTION, select, Input(graph_id, "selectedData"))
    app.callback(
        *figures,
        shown_store,
        Input(SELECTION, "data"),
        State(CONTEXT, "data"),
        State(ID_COLOR, "value"),
        State(ID_SHOWN, "data"),
        prevent_initial_call=True,
    )(highlight_selection)
    app.callback(Output(ID_STATUS, "children"), Input(SELECTION, "data"))(status_text)


def _empty(message: str) -> tuple[Any, Any]:
    return empty_figure(message, "A: original"), empty_figure(message, "B: pruned")


def shown(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ID_SHOWN store's value for a SELECTION the figures now show: its signature (so the
    same selection is not patched twice) and its source (the plot holding a box or lasso)."""
    return {"key": signature(_selected(value)), "source": (value or {}).get("source")}


def _nothing(figure_text: str, message: Any = None, options: Any = ()) -> tuple[Any, ...]:
    return list(options), None, *_empty(figure_text), message, HIDDEN, None, explanation(None)


def load_embedding(
    context: Mapping[str, Any] | None, current: Mapping[str, Any] | None
) -> tuple[Any, ...]:
    """Callback: fetch the table (cached) and draw both sides, coloured as the URL's
    ``emb_color`` says, the restored selection highlighted.

    Returns:
        dropdown options, dropdown value, figure A, figure B, message, graphs' style, the
        shown selection (:func:`shown`), and the explanation naming the embedding method.
    """
    if not has_context(context):
        return _nothing("No comparison.")
    try:
        data = load_data(context)
    except ApiError as exc:
        body = "The comparison's compare job has not finished; reload when it has."
        title = "The embedding is not ready"
        return _nothing(
            "Not available.", not_ready_notice(exc, "the comparison table", title, body)
        )
    options = [{"label": c.label, "value": c.key} for c in data.options()]
    if not data.has_embedding:
        body = (
            "Run the compare job with an embedding (embedding: auto, aligned_umap or pca) to "
            "see A's and B's features side by side."
        )
        return _nothing(NO_EMBEDDING, notice(NO_EMBEDDING, body), options)
    choice = color_choice((context.get("query") or {}).get(QUERY_KEY), data)
    fig_a, fig_b = (side_figure(data, choice, side, _selected(current)) for side in "ab")
    return options, choice.key, fig_a, fig_b, None, None, shown(current), explanation(data.method)


def _drawable(context: Mapping[str, Any] | None) -> EmbeddingData | None:
    """The CONTEXT's table when it has an embedding to redraw (else nothing to do)."""
    if not has_context(context):
        return None
    try:
        data = load_data(context)
    except ApiError:
        return None
    return data if data.has_embedding else None


def change_color(
    color: Any,
    context: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
    query: Mapping[str, Any] | None,
) -> tuple[Any, Any, Any, Any]:
    """Callback: redraw both sides in the new colouring and record it in QUERY (``emb_color``,
    absent for the default). Nothing happens when the plots already show ``color`` (the load
    callback setting the dropdown)."""
    showing = (query or {}).get(QUERY_KEY) or DEFAULT_COLOR
    data = _drawable(context) if color and color != showing else None
    if data is None:
        return (dash.no_update,) * 4
    choice = color_choice(color, data)
    selected = _selected(current)
    new_query = merge_settings(
        query, **{QUERY_KEY: None if choice.key == DEFAULT_COLOR else choice.key}
    )
    return (
        side_figure(data, choice, "a", selected),
        side_figure(data, choice, "b", selected),
        new_query,
        shown(current),
    )


def ids_from_selected_data(selected_data: Mapping[str, Any] | None) -> list[int] | None:
    """Dataset indices of the points in a graph's ``selectedData`` (their ``customdata``);
    None when the selection was cleared (double-click: ``selectedData`` None)."""
    if selected_data is None:
        return None
    # legend-only traces have no samples
    points = [p for p in selected_data.get("points") or [] if p.get("curveNumber", 0) == 0]
    return customdata_ids(points)


def _select(selected_data: Mapping[str, Any] | None, source: str) -> Any:
    """The SELECTION a plot's box or lasso makes; a double-click (``selectedData`` None)
    clears it."""
    ids = ids_from_selected_data(selected_data)
    if ids is None:
        return None
    if not ids:
        # an empty box, or plotly re-running a box this view removed: not a new selection
        return dash.no_update
    return selection(ids, source)


def select_in_a(selected_data: Mapping[str, Any] | None) -> Any:
    """Callback: a lasso or box in embedding A becomes the linked SELECTION (see _select)."""
    return _select(selected_data, SOURCE_A)


def select_in_b(selected_data: Mapping[str, Any] | None) -> Any:
    """Callback: a lasso or box in embedding B becomes the linked SELECTION (see _select)."""
    return _select(selected_data, SOURCE_B)


def highlight_selection(
    value: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    color: Any,
    current: Mapping[str, Any] | None = None,
) -> tuple[Any, Any, Any]:
    """Callback: show the linked SELECTION in both plots.

    Only ``data[0].selectedpoints`` is patched (dash.Patch): the 10^4-point figures are not
    rebuilt or resent. None (no selection) lifts the dimming. A selection the figures already
    show (``current``, the ID_SHOWN store) is left alone; the box or lasso that made the
    selection is removed (the highlighted points show it).

    Returns:
        patch of figure A, patch of figure B, the new ID_SHOWN value.
    """
    new = shown(value)
    before = current or {}
    data = _drawable(context) if new["key"] != before.get("key") else None
    if data is None:
        return dash.no_update, dash.no_update, dash.no_update
    ids = _selected(value)
    choice = color_choice(color, data)
    patches = []
    for side, own in (("a", SOURCE_A), ("b", SOURCE_B)):
        patch = Patch()
        positions = None
        if ids is not None:
            positions = selected_positions(drawn_index(data, choice, side), ids)
        patch["data"][0]["selectedpoints"] = positions
        if own in (before.get("source"), new["source"]):
            # plotly keeps a box or lasso drawn here in layout.selections and re-applies it
            # over selectedpoints, by its own rounding (a point on the edge may flip): drop
            # it, so every plot shows exactly the SELECTION
            patch["layout"]["selections"] = []
        patches.append(patch)
    return patches[0], patches[1], new

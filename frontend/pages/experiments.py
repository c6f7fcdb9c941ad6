"""Experiments page ("/experiments"): every model of the workspace as one table.

One row per model (lineage, architecture, dataset, method and its parameters, sparsity and t,
seed, accuracy, mean corrupted accuracy, alpha_t against its original, compression, FLOPs,
measured latency, learning distance, instability (error barrier), created), paged, sorted and
filtered by the server (``GET /api/experiments``, one page at a time); a column chooser; a
scatter of accuracy against sparsity, FLOPs or latency over every match with the Pareto front
and lineage edges; rows or points selected -> "Compare" (their common original as A) or
"Download"; "Export CSV" of every match.

The view state lives in the URL, as on the compare page: ``method``, ``dataset``, ``arch``
(comma-separated), ``smin``/``smax``, ``q``, ``sort``/``order``, ``page``/``size``, ``cols``,
``x``/``y`` and ``sel`` (the selected model ids). :func:`layout` renders the page from it, the
controls then update the table and the scatter by callbacks, and :func:`view_query` writes
their state back into the address bar (``history.replaceState``: no navigation).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, dcc, html
from dash.dash_table.DataTable import DataTable

from frontend.client import (
    ApiClient,
    ApiError,
    ExperimentFacetsPublic,
    ExperimentPublic,
    acting_as,
    current_credential,
    get_client,
)
from frontend.components import api_error_notice, comparison_link, download_link, notice
from frontend.figures import empty_figure
from frontend.figures._common import FONT_FAMILY
from frontend.figures.experiments import X_AXES, Y_AXES, experiments_scatter
from frontend.figures.formatting import MISSING, format_count, format_percent, format_ratio
from frontend.forms import query_float, query_int
from frontend.session import can_write, current_user

PATH = "/experiments"
TITLE = "Experiments · PruneScope"
ORIGINAL = "original"  # the method filter's value for models that were not pruned
PAGE_SIZES = (25, 50, 100)
MAX_SELECTION = 100  # a comparison takes at most 100 pruned models
MAX_LISTED = 12  # selected models named in the selection panel
GRAPH_CONFIG: dcc.Graph.Config = {"displaylogo": False, "responsive": True}

ID_METHOD = "experiments-method"
ID_DATASET = "experiments-dataset"
ID_ARCH = "experiments-architecture"
ID_SPARSITY = "experiments-sparsity"
ID_TEXT = "experiments-text"
ID_COLUMNS = "experiments-columns"
ID_SIZE = "experiments-page-size"
ID_TABLE = "experiments-table"
ID_STATUS = "experiments-status"
ID_CSV = "experiments-csv"
ID_FILTERS = "experiments-filters"  # Store: the API filters the table shows (the scatter's)
ID_SELECTION = "experiments-selection"  # Store: selected model ids, in selection order
ID_QUERY = "experiments-query"  # Store: the view state as a URL query ("?method=...")
ID_X = "experiments-x"
ID_Y = "experiments-y"
ID_SCATTER = "experiments-scatter"
ID_PANEL = "experiments-selection-panel"
ID_COMPARE = "experiments-compare"
ID_COMPARE_RESULT = "experiments-compare-result"
ID_CLEAR = "experiments-clear-selection"


@dataclass(frozen=True)
class Column:
    """A table column: its id, header, the API sort key (None: not sortable), whether it is
    a number (right-aligned) and whether it is shown until the user chooses otherwise."""

    id: str
    name: str
    sort: str | None
    numeric: bool = False
    default: bool = True


COLUMNS = (
    Column("id", "#", "id", True, False),
    Column("name", "Model", "name"),
    Column("lineage", "Lineage", "original"),
    Column("architecture", "Architecture", "architecture"),
    Column("dataset", "Dataset", "dataset"),
    Column("method", "Method", "method"),
    Column("params", "Parameters", None),
    Column("sparsity", "Sparsity", "sparsity", True),
    Column("t", "t = 1/(1−s)", "t", True),
    Column("compression", "Compression (t, all params)", "compression_ratio", True),
    Column("seed", "Seed", "seed", True),
    Column("accuracy", "Accuracy", "accuracy", True),
    Column("corrupted", "Corrupted (mean)", "corrupted_accuracy", True),
    Column("alpha_t", "α_t vs original", "alpha_t", True),
    Column("flops_dense", "Dense FLOPs", "flops_dense", True, False),
    Column("flops_nonzero", "Nonzero FLOPs", "flops_nonzero", True),
    Column("latency", "Latency", "latency_ms", True),
    Column("learning_distance", "Learning distance", "learning_distance", True, False),
    Column("instability", "Instability (error barrier)", None, True, False),
    Column("n_params", "Parameters (count)", "n_params", True, False),
    Column("n_nonzero", "Nonzero", "n_nonzero", True, False),
    Column("created", "Created", "created_at"),
)
COLUMN_IDS = tuple(c.id for c in COLUMNS)
DEFAULT_COLUMNS = tuple(c.id for c in COLUMNS if c.default)
SORT_OF = {c.id: c.sort for c in COLUMNS}
COLUMN_OF_SORT = {c.sort: c.id for c in COLUMNS if c.sort is not None}
SORT_KEYS = ("parent", *COLUMN_OF_SORT)  # what ?sort= may name


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Experiments", layout=layout)
    filters = (
        Input(ID_METHOD, "value"),
        Input(ID_DATASET, "value"),
        Input(ID_ARCH, "value"),
        Input(ID_SPARSITY, "value"),
        Input(ID_TEXT, "value"),
    )
    app.callback(
        Output(ID_TABLE, "data"),
        Output(ID_TABLE, "page_count"),
        Output(ID_TABLE, "page_current"),
        Output(ID_STATUS, "children"),
        Output(ID_CSV, "href"),
        Output(ID_FILTERS, "data"),
        *filters,
        Input(ID_TABLE, "sort_by"),
        Input(ID_TABLE, "page_current"),
        Input(ID_SIZE, "value"),
        State(ID_FILTERS, "data"),
        prevent_initial_call=True,
    )(update_table)
    app.callback(Output(ID_TABLE, "page_size"), Input(ID_SIZE, "value"))(page_size)
    app.callback(Output(ID_TABLE, "hidden_columns"), Input(ID_COLUMNS, "value"))(hidden_columns)
    app.callback(
        Output(ID_SCATTER, "figure"),
        Input(ID_FILTERS, "data"),
        Input(ID_X, "value"),
        Input(ID_Y, "value"),
        State(ID_SELECTION, "data"),
    )(update_scatter)
    app.callback(
        Output(ID_PANEL, "children"),
        Output(ID_COMPARE, "disabled"),
        Input(ID_SELECTION, "data"),
    )(describe_selection)
    app.callback(
        Output(ID_COMPARE_RESULT, "children"),
        Input(ID_COMPARE, "n_clicks"),
        State(ID_SELECTION, "data"),
        prevent_initial_call=True,
    )(compare_selected)
    app.callback(
        Output(ID_QUERY, "data"),
        *filters,
        Input(ID_TABLE, "sort_by"),
        Input(ID_TABLE, "page_current"),
        Input(ID_SIZE, "value"),
        Input(ID_COLUMNS, "value"),
        Input(ID_X, "value"),
        Input(ID_Y, "value"),
        Input(ID_SELECTION, "data"),
        prevent_initial_call=True,
    )(view_query)
    # selection: table checkboxes, a click on a point (toggles), a box or lasso (adds), Clear
    app.clientside_callback(
        SELECT_JS,
        Output(ID_SELECTION, "data"),
        Input(ID_TABLE, "selected_rows"),
        Input(ID_SCATTER, "clickData"),
        Input(ID_SCATTER, "selectedData"),
        Input(ID_CLEAR, "n_clicks"),
        State(ID_TABLE, "data"),
        State(ID_SELECTION, "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        CHECK_ROWS_JS,
        Output(ID_TABLE, "selected_rows"),
        Input(ID_SELECTION, "data"),
        Input(ID_TABLE, "data"),
    )
    app.clientside_callback(
        HIGHLIGHT_JS,
        Output(ID_SCATTER, "figure", allow_duplicate=True),
        Input(ID_SELECTION, "data"),
        State(ID_SCATTER, "figure"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        MIRROR_URL_JS,
        Output("url", "search", allow_duplicate=True),
        Output("url", "href", allow_duplicate=True),
        Input(ID_QUERY, "data"),
        prevent_initial_call=True,
    )


# browser-side callbacks -------------------------------------------------------------------------
SELECT_JS = """
function(selectedRows, click, boxed, clear, data, current) {
    const nu = window.dash_clientside.no_update;
    const fired = (window.dash_clientside.callback_context.triggered || [])
        .map((t) => t.prop_id);
    const before = current || [];
    let ids = before.slice();
    const idOf = (p) => (p && Array.isArray(p.customdata) ? p.customdata[0] : null);
    if (fired.includes("CLEAR.n_clicks")) {
        ids = [];
    } else if (fired.includes("TABLE.selected_rows")) {
        const page = (data || []).map((r) => r.id);
        const on = new Set((selectedRows || []).map((i) => page[i]).filter((v) => v != null));
        ids = ids.filter((i) => !page.includes(i) || on.has(i));
        on.forEach((i) => { if (!ids.includes(i)) { ids.push(i); } });
    } else if (fired.includes("GRAPH.clickData")) {
        const id = idOf(click && click.points && click.points[0]);
        if (id == null) { return nu; }
        ids = ids.includes(id) ? ids.filter((i) => i !== id) : ids.concat([id]);
    } else if (fired.includes("GRAPH.selectedData")) {
        ((boxed && boxed.points) || []).forEach((p) => {
            const id = idOf(p);
            if (id != null && !ids.includes(id)) { ids.push(id); }
        });
    } else {
        return nu;
    }
    ids = ids.slice(0, MAX);
    const same = ids.length === before.length && ids.every((v, i) => v === before[i]);
    return same ? nu : ids;
}
"""
CHECK_ROWS_JS = """
function(selection, data) {
    const chosen = new Set(selection || []);
    const rows = [];
    (data || []).forEach((r, i) => { if (chosen.has(r.id)) { rows.push(i); } });
    return rows;
}
"""
HIGHLIGHT_JS = """
function(selection, figure) {
    if (!figure || !figure.data) { return window.dash_clientside.no_update; }
    const chosen = new Set(selection || []);
    const data = figure.data.map((trace) => {
        if (trace.meta !== "POINTS") { return trace; }
        const out = Object.assign({}, trace);
        if (chosen.size) {
            out.selectedpoints = (trace.customdata || [])
                .map((c, i) => (chosen.has(c[0]) ? i : -1)).filter((i) => i >= 0);
        } else {
            delete out.selectedpoints;
        }
        return out;
    });
    return Object.assign({}, figure, {data: data});
}
"""
# writes the view's query into the address bar with replaceState (no navigation, no re-render)
# and into Location "url"'s props, so that they keep agreeing with the address bar (a Location
# whose props disagree pushes its stale URL back when it next re-renders)
MIRROR_URL_JS = """
function(search) {
    const nu = window.dash_clientside.no_update;
    if (typeof search !== "string" || window.location.pathname !== "PATH") { return [nu, nu]; }
    if (search === window.location.search) { return [nu, nu]; }
    window.history.replaceState(
        window.history.state, "", window.location.pathname + search + window.location.hash
    );
    return [search, window.location.href];
}
"""
SELECT_JS = (
    SELECT_JS.replace("CLEAR", ID_CLEAR)
    .replace("TABLE", ID_TABLE)
    .replace("GRAPH", ID_SCATTER)
    .replace("MAX", str(MAX_SELECTION))
)
HIGHLIGHT_JS = HIGHLIGHT_JS.replace("POINTS", "points")
MIRROR_URL_JS = MIRROR_URL_JS.replace("PATH", PATH)


# view state -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewState:
    """Everything the URL holds; the defaults are what an address without a query shows."""

    method: tuple[str, ...] = ()
    dataset: tuple[int, ...] = ()
    architecture: tuple[str, ...] = ()
    sparsity: tuple[float, float] = (0.0, 1.0)
    q: str = ""
    sort: str = "id"
    order: str = "desc"
    page: int = 0
    size: int = PAGE_SIZES[0]
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    x: str = "sparsity"
    y: str = "accuracy"
    selected: tuple[int, ...] = field(default_factory=tuple)

    def filters(self) -> dict[str, Any]:
        """The keyword arguments of ``ApiClient.list_experiments`` these filters ask for."""
        low, high = self.sparsity
        return {
            "method": list(self.method),
            "dataset": list(self.dataset),
            "architecture": list(self.architecture),
            "sparsity_min": low if low > 0 else None,
            "sparsity_max": high if high < 1 else None,
            "q": self.q.strip() or None,
        }


def _words(value: Any) -> tuple[str, ...]:
    """A comma-separated query value (or a list of them, or a dropdown's list) as its items."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    out = [p.strip() for item in items for p in str(item).split(",")]
    return tuple(dict.fromkeys(p for p in out if p))


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(i for i in (query_int(w) for w in _words(value)) if i is not None and i > 0)


def _fraction(value: Any, default: float) -> float:
    number = query_float(value)
    return default if number is None else min(max(number, 0.0), 1.0)


def parse_state(query: Mapping[str, Any]) -> ViewState:
    """The view a URL query asks for; what is missing or malformed takes its default."""
    default = ViewState()
    low = _fraction(query.get("smin"), 0.0)
    high = _fraction(query.get("smax"), 1.0)
    sort = next(iter(_words(query.get("sort"))), "")
    order = str(query.get("order") or "")
    columns = tuple(c for c in _words(query.get("cols")) if c in COLUMN_IDS)
    size = query_int(query.get("size"))
    x, y = str(query.get("x") or ""), str(query.get("y") or "")
    return ViewState(
        method=_words(query.get("method")),
        dataset=_ints(query.get("dataset")),
        architecture=_words(query.get("arch")),
        sparsity=(low, high) if low <= high else (0.0, 1.0),
        q=str(query.get("q") or "")[:200],
        sort=sort if sort in SORT_KEYS else default.sort,
        order=order if order in ("asc", "desc") else default.order,
        page=max(query_int(query.get("page")) or 1, 1) - 1,
        size=size if size in PAGE_SIZES else default.size,
        columns=columns or default.columns,
        x=x if x in X_AXES else default.x,
        y=y if y in Y_AXES else default.y,
        selected=_ints(query.get("sel"))[:MAX_SELECTION],
    )


def state_query(state: ViewState) -> str:
    """The URL query of a view (``""`` for the default view): only what differs from the
    default, lists comma-separated, the page counted from 1."""
    default = ViewState()
    pairs: list[tuple[str, str]] = []

    def put(key: str, value: Any, unchanged: bool) -> None:
        if not unchanged:
            pairs.append((key, str(value)))

    put("method", ",".join(state.method), not state.method)
    put("dataset", ",".join(map(str, state.dataset)), not state.dataset)
    put("arch", ",".join(state.architecture), not state.architecture)
    put("smin", f"{state.sparsity[0]:g}", state.sparsity[0] <= 0)
    put("smax", f"{state.sparsity[1]:g}", state.sparsity[1] >= 1)
    put("q", state.q.strip(), not state.q.strip())
    put("sort", state.sort, state.sort == default.sort and state.order == default.order)
    put("order", state.order, state.sort == default.sort and state.order == default.order)
    put("page", state.page + 1, state.page == 0)
    put("size", state.size, state.size == default.size)
    put("cols", ",".join(state.columns), set(state.columns) == set(default.columns))
    put("x", state.x, state.x == default.x)
    put("y", state.y, state.y == default.y)
    put("sel", ",".join(map(str, state.selected)), not state.selected)
    return f"?{urlencode(pairs, safe=',/')}" if pairs else ""


def sort_by_of(state: ViewState) -> list[dict[str, str]]:
    """The DataTable ``sort_by`` showing the view's sort (none for a sort without a column,
    or the default sort)."""
    column = COLUMN_OF_SORT.get(state.sort)
    if column is None or (state.sort, state.order) == (ViewState.sort, ViewState.order):
        return []
    return [{"column_id": column, "direction": state.order}]


def sort_of(sort_by: Sequence[Mapping[str, Any]] | None) -> tuple[str, str]:
    """The API sort and order of a DataTable ``sort_by`` (the default for none, or for a
    column the server cannot sort by)."""
    for entry in sort_by or []:
        key = SORT_OF.get(str(entry.get("column_id")))
        if key is not None:
            return key, "asc" if entry.get("direction") == "asc" else "desc"
    return ViewState.sort, ViewState.order


def state_from_controls(
    method: Any,
    dataset: Any,
    architecture: Any,
    sparsity: Any,
    q: Any,
    sort_by: Any,
    page: Any,
    size: Any,
    columns: Any = None,
    x: Any = None,
    y: Any = None,
    selected: Any = None,
) -> ViewState:
    """The view the page's controls show (as :func:`parse_state` reads a URL)."""
    low, high = (list(sparsity) + [0.0, 1.0])[:2] if isinstance(sparsity, list) else (0.0, 1.0)
    sort, order = sort_of(sort_by)
    return parse_state(
        {
            "method": list(method or []),
            "dataset": [str(d) for d in dataset or []],
            "arch": list(architecture or []),
            "smin": str(low),
            "smax": str(high),
            "q": q or "",
            "sort": sort,
            "order": order,
            "page": str((query_int(page) or 0) + 1),
            "size": str(size),
            "cols": list(columns) if columns else None,
            "x": x,
            "y": y,
            "sel": [str(i) for i in selected or []],
        }
    )


# table ------------------------------------------------------------------------------------------
def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return f"{value:.{digits}f}"


def _barrier(value: Any) -> str:
    """An error barrier (a difference of test errors) in percentage points."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return f"{100 * float(value):.1f} pp"


def _params(params: Mapping[str, Any] | None) -> str:
    if not params:
        return ""
    return ", ".join(
        f"{k}={json.dumps(v) if isinstance(v, dict | list) else v}" for k, v in params.items()
    )


def _lineage(row: ExperimentPublic) -> str:
    if row["parent_id"] is None:
        return "original"
    if row["parent_id"] == row["original_id"]:
        return f"← #{row['original_id']}"
    return f"← #{row['parent_id']} ← … #{row['original_id']} ({row['depth']} steps)"


def table_row(row: ExperimentPublic) -> dict[str, Any]:
    """One experiments row as the DataTable shows it: text, formatted."""
    latency = row["latency_ms"]
    device = f" ({row['latency_device']})" if row["latency_device"] and latency else ""
    return {
        "id": row["id"],
        "name": row["name"],
        "lineage": _lineage(row),
        "architecture": row["architecture"],
        "dataset": row["dataset_name"] or MISSING,
        "method": row["pruning_method"] or ORIGINAL,
        "params": _params(row["method_params"]),
        "sparsity": format_percent(row["sparsity"]),
        "t": format_ratio(row["t"], 2),
        "compression": format_ratio(row["compression_ratio"], 2),
        "seed": MISSING if row["seed"] is None else str(row["seed"]),
        "accuracy": format_percent(row["accuracy"]),
        "corrupted": format_percent(row["corrupted_accuracy"]),
        "alpha_t": _number(row["alpha_t"]),
        "flops_dense": format_count(_int(row["flops_dense"])),
        "flops_nonzero": format_count(_int(row["flops_nonzero"])),
        "latency": MISSING if latency is None else f"{latency:.2f} ms{device}",
        "learning_distance": _number(row["learning_distance"]),
        "instability": _barrier(row["instability_barrier"]),
        "n_params": format_count(row["n_params"]),
        "n_nonzero": format_count(row["n_nonzero"]),
        "created": str(row["created_at"])[:16].replace("T", " "),
    }


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def status_text(count: int, page: int, pages: int) -> str:
    """The line above the table: how many models match, and the page."""
    if count == 0:
        return "No model matches these filters."
    matches = "model matches" if count == 1 else "models match"
    return f"{count:,} {matches} · page {page + 1} of {pages}"


def _pages(count: int, size: int) -> int:
    return max(1, math.ceil(count / size))


def load_page(client: ApiClient, state: ViewState) -> tuple[list[dict[str, Any]], int, int]:
    """The table rows of the view's page, the number of matches and the page shown (the last
    one when the view's page is past it)."""
    filters = state.filters()
    page = client.list_experiments(
        sort=state.sort,  # type: ignore[arg-type]
        order=state.order,
        offset=state.page * state.size,
        limit=state.size,
        **filters,
    )
    count, shown = page["count"], state.page
    if not page["data"] and count and state.page > 0:
        shown = _pages(count, state.size) - 1
        page = client.list_experiments(
            sort=state.sort,  # type: ignore[arg-type]
            order=state.order,
            offset=shown * state.size,
            limit=state.size,
            **filters,
        )
    return [table_row(r) for r in page["data"]], count, shown


def csv_href(state: ViewState) -> str:
    """The "Export CSV" link: every match of the view's filters, in its order."""
    return ApiClient.experiments_csv_path(sort=state.sort, order=state.order, **state.filters())


def update_table(
    method: Any,
    dataset: Any,
    architecture: Any,
    sparsity: Any,
    q: Any,
    sort_by: Any,
    page_current: Any,
    size: Any,
    previous: Mapping[str, Any] | None,
    paging: bool | None = None,
) -> tuple[Any, ...]:
    """Callback: the table's page for the controls (back to the first page when a filter,
    the sort or the page size changed); the count line, the CSV link and the filters store
    (left alone when the filters are the same, so the scatter is not drawn again).

    ``paging``: whether only the page changed (default: what fired the callback says)."""
    if paging is None:
        fired = {t["prop_id"].rsplit(".", 1)[-1] for t in dash.callback_context.triggered}
        paging = fired == {"page_current"}
    state = state_from_controls(method, dataset, architecture, sparsity, q, sort_by, 0, size)
    if paging:
        state = replace(state, page=max(query_int(page_current) or 0, 0))
    filters = state.filters()
    try:
        rows, count, shown = load_page(get_client(), state)
    except ApiError as exc:
        error = api_error_notice(exc, "the experiments")
        return [], 1, 0, error, dash.no_update, dash.no_update
    return (
        rows,
        _pages(count, state.size),
        shown,
        status_text(count, shown, _pages(count, state.size)),
        csv_href(state),
        dash.no_update if previous == filters else filters,
    )


def page_size(size: Any) -> int:
    """Callback: the table's page size from the page-size choice."""
    value = query_int(size)
    return value if value in PAGE_SIZES else PAGE_SIZES[0]


def hidden_columns(chosen: Any) -> list[str]:
    """Callback: the columns the chooser left out (the model's name always shows)."""
    shown = set(chosen or DEFAULT_COLUMNS) | {"name"}
    return [c for c in COLUMN_IDS if c not in shown]


def view_query(
    method: Any,
    dataset: Any,
    architecture: Any,
    sparsity: Any,
    q: Any,
    sort_by: Any,
    page_current: Any,
    size: Any,
    columns: Any,
    x: Any,
    y: Any,
    selected: Any,
) -> str:
    """Callback: the URL query of the view the controls show (mirrored into the address bar
    in the browser, :data:`MIRROR_URL_JS`)."""
    return state_query(
        state_from_controls(
            method,
            dataset,
            architecture,
            sparsity,
            q,
            sort_by,
            page_current,
            size,
            columns,
            x,
            y,
            selected,
        )
    )


# scatter, selection, comparison ----------------------------------------------------------------
PREFETCH = True  # the unit tests turn it off: a fake API answers them in order
PREFETCH_TTL_S = 30.0  # a prefetched scatter no callback took by then is dropped
_prefetch_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="experiments-scatter")
_prefetch_lock = threading.Lock()
_prefetched: dict[str, tuple[float, Future[Any]]] = {}


def scatter_figure(filters: Mapping[str, Any], x: str, y: str, selected: Sequence[int]) -> Any:
    """The scatter of every model ``filters`` match (every page of ``GET /api/experiments``)."""
    rows = get_client().experiments(**dict(filters))
    return experiments_scatter(rows, x, y, selected)


def _scatter_key(filters: Mapping[str, Any], x: str, y: str, selected: Sequence[int]) -> str:
    return json.dumps(
        [ApiClient.credential_key(), dict(filters), x, y, sorted(selected)],
        sort_keys=True,
        default=str,
    )


def prefetch_scatter(filters: Mapping[str, Any], x: str, y: str, selected: Sequence[int]) -> None:
    """Start building the scatter in the background while the browser takes in the layout:
    :func:`update_scatter` then takes it (waiting for it if it is still being built) instead
    of starting over. Errors are left for the callback, which fetches again and says why."""
    if not PREFETCH:
        return
    key = _scatter_key(filters, x, y, selected)
    credential = current_credential()  # the thread works for this page's user

    def build() -> Any:
        with acting_as(credential):
            return scatter_figure(filters, x, y, selected)

    now = time.monotonic()
    with _prefetch_lock:
        for old in [k for k, (t, _) in _prefetched.items() if now - t > PREFETCH_TTL_S]:
            del _prefetched[old]
        if key not in _prefetched:
            _prefetched[key] = (now, _prefetch_pool.submit(build))


def _take_prefetched(key: str) -> Future[Any] | None:
    with _prefetch_lock:
        found = _prefetched.pop(key, None)
    if found is None or time.monotonic() - found[0] > PREFETCH_TTL_S:
        return None
    return found[1]


def update_scatter(filters: Mapping[str, Any] | None, x: Any, y: Any, selected: Any) -> Any:
    """Callback: the scatter of every model the table's filters match."""
    x = x if x in X_AXES else ViewState.x
    y = y if y in Y_AXES else ViewState.y
    chosen = [i for i in (query_int(v) for v in selected or []) if i is not None]
    filters = dict(filters or {})
    ready = _take_prefetched(_scatter_key(filters, x, y, chosen))
    try:
        if ready is not None:
            try:
                return ready.result()
            except Exception:  # noqa: BLE001 - built again below, which says what failed
                pass
        return scatter_figure(filters, x, y, chosen)
    except ApiError as exc:
        return empty_figure(f"Could not load the models: {exc.detail}")


@dataclass(frozen=True)
class ComparisonPlan:
    """What "Compare" would create: model A and the models B, or why it cannot."""

    a: int | None
    b: list[int]
    message: str


def plan_comparison(rows: Sequence[ExperimentPublic]) -> ComparisonPlan:
    """A comparison of the selected models against their common original (the root of every
    one's lineage); B are the selected models but that original, by sparsity."""
    if not rows:
        return ComparisonPlan(None, [], "Select models in the table or the chart to compare.")
    originals = sorted({r["original_id"] for r in rows})
    if len(originals) > 1:
        names = {r["original_id"]: r["original_name"] for r in rows}
        listed = ", ".join(f"#{o} {names[o]}" for o in originals[:5])
        more = "" if len(originals) <= 5 else f" and {len(originals) - 5} more"
        return ComparisonPlan(
            None,
            [],
            f"These models have no common original: they come from {listed}{more}. "
            "Select models pruned from one original.",
        )
    a = originals[0]
    b = [r["id"] for r in sorted(rows, key=lambda r: (r["sparsity"], r["id"])) if r["id"] != a]
    name = next((r["original_name"] for r in rows), "")
    if not b:
        return ComparisonPlan(
            None, [], f"#{a} {name} is an original: select pruned models of it to compare."
        )
    shown = ", ".join(f"#{i}" for i in b[:MAX_LISTED])
    more = "" if len(b) <= MAX_LISTED else f" and {len(b) - MAX_LISTED} more"
    return ComparisonPlan(
        a, b, f"Compare A = #{a} {name} (their common original) with B = {shown}{more}."
    )


def _selected_rows(selected: Any) -> list[ExperimentPublic]:
    ids = [i for i in (query_int(v) for v in selected or []) if i is not None][:MAX_SELECTION]
    if not ids:
        return []
    rows = get_client().list_experiments(ids=ids, limit=len(ids), sort="id", order="asc")
    order = {i: k for k, i in enumerate(ids)}
    return sorted(rows["data"], key=lambda r: order.get(r["id"], len(order)))


def describe_selection(selected: Any) -> tuple[Any, bool]:
    """Callback: the selected models (with Download links), what "Compare" would create, and
    whether it is disabled."""
    try:
        rows = _selected_rows(selected)
    except ApiError as exc:
        return api_error_notice(exc, "the selected models"), True
    plan = plan_comparison(rows)
    if not rows:
        return html.P(plan.message, className="muted"), True
    items = [
        html.Li(
            [
                html.Span(f"#{r['id']} ", className="muted"),
                html.Span(r["name"]),
                " · ",
                download_link(r["id"]),
            ]
        )
        for r in rows[:MAX_LISTED]
    ]
    if len(rows) > MAX_LISTED:
        items.append(html.Li(f"and {len(rows) - MAX_LISTED} more", className="muted"))
    plan_line = html.P(plan.message, className="hint" if plan.a is not None else "notice-warning")
    return [html.Strong(f"{len(rows)} selected"), html.Ul(items), plan_line], plan.a is None


def compare_selected(n_clicks: Any, selected: Any) -> Any:
    """Callback: ``POST /api/comparisons`` with A = the selection's common original and B =
    the other selected models: a link to it, or why not."""
    if not n_clicks:
        return dash.no_update
    client = get_client()
    try:
        plan = plan_comparison(_selected_rows(selected))
        if plan.a is None:
            return notice("Nothing to compare", plan.message, kind="warning")
        comparison = client.create_comparison(plan.a, plan.b)
    except ApiError as exc:
        return notice("Could not create the comparison", exc.detail, kind="error")
    return comparison_link(comparison["id"], f"{ID_COMPARE_RESULT}-link")


# layout -----------------------------------------------------------------------------------------
def _options(facets: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [{"label": f"{f['label']} ({f['count']})", "value": f["value"]} for f in facets]


def _control(label: str, component: Any, width: str | None = None) -> html.Label:
    style = {"width": width, "flex": "none"} if width else None
    return html.Label(
        [html.Span(label, className="control-label"), component],
        className="control",
        style=style,
    )


def filter_controls(facets: ExperimentFacetsPublic, state: ViewState) -> html.Div:
    """Method, dataset and architecture pickers, the sparsity range and the text box."""
    known_datasets = {f["value"] for f in facets["datasets"]}
    return html.Div(
        [
            *(
                _control(
                    label,
                    dcc.Dropdown(
                        id=control_id,
                        options=_options(options),
                        value=value,
                        multi=True,
                        placeholder=f"every {word}",
                    ),
                )
                for label, control_id, word, options, value in (
                    ("Method", ID_METHOD, "method", facets["methods"], list(state.method)),
                    (
                        "Dataset",
                        ID_DATASET,
                        "dataset",
                        facets["datasets"],
                        [str(d) for d in state.dataset if str(d) in known_datasets],
                    ),
                    (
                        "Architecture",
                        ID_ARCH,
                        "architecture",
                        facets["architectures"],
                        list(state.architecture),
                    ),
                )
            ),
            _control(
                "Sparsity",
                dcc.RangeSlider(
                    id=ID_SPARSITY,
                    min=0,
                    max=1,
                    step=0.01,
                    value=list(state.sparsity),
                    marks={v / 10: f"{10 * v}%" for v in range(0, 11, 2)},
                    tooltip={"placement": "bottom", "always_visible": False},
                    allowCross=False,
                ),
            ),
            _control(
                "Search",
                dcc.Input(
                    id=ID_TEXT,
                    type="search",
                    value=state.q,
                    debounce=0.4,
                    placeholder="name, architecture, method, dataset",
                    className="input",
                    style={"width": "100%"},
                ),
            ),
        ],
        className="controls experiments-filters",
    )


def experiments_table(rows: list[dict[str, Any]], count: int, state: ViewState) -> Any:
    """The server-side paged, sorted DataTable, with its first page."""
    return DataTable(
        id=ID_TABLE,
        data=cast(Any, rows),
        columns=[{"id": c.id, "name": c.name} for c in COLUMNS],
        hidden_columns=hidden_columns(state.columns),
        row_selectable="multi",
        selected_rows=[i for i, r in enumerate(rows) if r["id"] in set(state.selected)],
        page_action="custom",
        page_current=state.page,
        page_size=state.size,
        page_count=_pages(count, state.size),
        sort_action="custom",
        sort_mode="single",
        sort_by=cast(Any, sort_by_of(state)),
        style_table={"overflowX": "auto"},
        style_cell={
            "fontFamily": FONT_FAMILY,
            "fontSize": "0.85rem",
            "padding": "4px 8px",
            "textAlign": "left",
            "maxWidth": "28rem",
            "overflow": "hidden",
            "textOverflow": "ellipsis",
        },
        style_cell_conditional=[  # type: ignore[arg-type]
            {"if": {"column_id": c.id}, "textAlign": "right"} for c in COLUMNS if c.numeric
        ],
        style_header={"fontWeight": "600", "whiteSpace": "normal"},
        tooltip_delay=400,
        tooltip_duration=None,
        css=[{"selector": ".show-hide", "rule": "display: none"}],
    )


def empty_page() -> html.Div:
    """What the page says when the workspace has no model yet."""
    return html.Div(
        [
            html.H1("Experiments"),
            notice(
                "No models yet",
                [
                    "Every model you train, prune or upload gets a row here. Train one on ",
                    dcc.Link("New job", href="/new"),
                    ", upload a checkpoint on ",
                    dcc.Link("Upload", href="/upload"),
                    ", or run ",
                    html.Code("prunescope demo"),
                    " for a trained network with pruned versions of it.",
                ],
                kind="info",
                notice_id="experiments-empty",
            ),
        ],
        className="page page-experiments",
    )


def layout(**query: Any) -> html.Div:
    """The experiments page for the view of the URL's query (see the module docstring)."""
    state = parse_state(query)
    client = get_client()
    prefetch_scatter(state.filters(), state.x, state.y, state.selected)
    try:
        facets = client.get_experiment_facets()
        if facets["count"] == 0:
            return empty_page()
        rows, count, shown = load_page(client, state)
    except ApiError as exc:
        return html.Div(
            [html.H1("Experiments"), api_error_notice(exc, "the experiments", link_home=True)],
            className="page page-experiments",
        )
    state = replace(state, page=shown)
    writer = can_write(current_user())
    column_options = [{"label": c.name, "value": c.id} for c in COLUMNS if c.id != "name"]
    return html.Div(
        [
            html.H1("Experiments"),
            html.P(
                f"Every model of the workspace ({facets['count']:,}), one row each. t = 1/(1−s) "
                "counts the prunable weights; compression = dense / nonzero parameters counts "
                "them all. α_t compares a model's recall balance with its original's on the "
                "same dataset (Good et al. 2022): above 1, pruning made the class imbalance "
                "worse. Missing figures were never measured.",
                className="lead",
            ),
            filter_controls(facets, state),
            html.Div(
                [
                    html.Span(
                        status_text(count, shown, _pages(count, state.size)),
                        id=ID_STATUS,
                    ),
                    html.A(
                        "Export CSV",
                        href=csv_href(state),
                        id=ID_CSV,
                        download="experiments.csv",
                        className="btn btn-small",
                    ),
                    _control(
                        "Columns",
                        dcc.Dropdown(
                            id=ID_COLUMNS,
                            options=column_options,
                            value=[c for c in state.columns if c != "name"],
                            multi=True,
                            clearable=False,
                        ),
                        width="22rem",
                    ),
                    _control(
                        "Rows per page",
                        dcc.Dropdown(
                            id=ID_SIZE,
                            options=[{"label": str(s), "value": s} for s in PAGE_SIZES],
                            value=state.size,
                            clearable=False,
                            searchable=False,
                        ),
                        width="7rem",
                    ),
                ],
                className="actions experiments-toolbar",
            ),
            experiments_table(rows, count, state),
            html.Section(
                [
                    html.Div(id=ID_PANEL, className="experiments-selection"),
                    html.Div(
                        [
                            html.Button(
                                "Compare",
                                id=ID_COMPARE,
                                className="btn btn-primary",
                                disabled=True,
                                title="Create a comparison of the selected models with their "
                                "common original",
                                style=None if writer else {"display": "none"},
                            ),
                            html.Button("Clear selection", id=ID_CLEAR, className="btn"),
                        ],
                        className="actions",
                    ),
                    html.Div(id=ID_COMPARE_RESULT),
                ],
                className="section",
            ),
            html.Section(
                [
                    html.Div(
                        [
                            _control(
                                "Accuracy",
                                dcc.RadioItems(
                                    id=ID_Y,
                                    options=[{"label": v, "value": k} for k, v in Y_AXES.items()],
                                    value=state.y,
                                    inline=True,
                                ),
                            ),
                            _control(
                                "against",
                                dcc.RadioItems(
                                    id=ID_X,
                                    options=[
                                        {"label": v[0], "value": k} for k, v in X_AXES.items()
                                    ],
                                    value=state.x,
                                    inline=True,
                                ),
                            ),
                        ],
                        className="controls",
                    ),
                    dcc.Graph(id=ID_SCATTER, config=GRAPH_CONFIG, style={"height": "520px"}),
                    html.P(
                        "Every model the filters match; the black steps are the Pareto front "
                        "(no other model is both more accurate and sparser, or cheaper), grey "
                        "lines join each model to the one it was pruned from. Click a point to "
                        "select it, or drag a box or lasso to select many.",
                        className="hint muted",
                    ),
                ],
                className="section",
            ),
            dcc.Store(id=ID_FILTERS, data=state.filters()),
            dcc.Store(id=ID_SELECTION, data=list(state.selected)),
            dcc.Store(id=ID_QUERY),
        ],
        className="page page-experiments",
    )

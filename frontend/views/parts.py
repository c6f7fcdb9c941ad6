"""What the compare-page views are built from: their section frame, graphs with the views'
mode-bar, labelled controls, and the checks and answers their callbacks share (the contract
between the views and the page is in ``frontend/views/__init__.py``; a job a view runs on
demand is :class:`frontend.jobs.CompactFollower`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard, TypeVar

import dash
import numpy as np
from dash import Input, Output, State, dcc, html

from frontend.client import (
    FLIP_CATEGORIES,
    ApiClient,
    ApiError,
    get_comparison_table_columns,
    get_comparison_table_page,
)
from frontend.components import api_error_notice, notice
from frontend.figures._common import empty_figure
from frontend.forms import query_int
from frontend.views import QUERY, merge_settings

T = TypeVar("T")
HIDDEN: dict[str, str] = {"display": "none"}
SHOWN: dict[str, str] = {}
LOADING = "Loading…"
# a flip category in words: "correct_to_wrong" -> "correct → wrong"
FLIP_WORDS: dict[str, str] = {
    c: c.replace("_to_", " → ").replace("_", " ") for c in FLIP_CATEGORIES
}

# mode-bar buttons: each view removes those its plots have no use for, and always these
ZOOM_BUTTONS = ("zoomIn2d", "zoomOut2d")
SELECT_BUTTONS = ("select2d", "lasso2d")
HOVER_CLOSEST = "hoverClosestCartesian"
NEVER_USED = ("autoScale2d", "hoverCompareCartesian", "toggleSpikelines", "sendDataToCloud")


def graph_config(*removed: str) -> dcc.Graph.Config:
    """A view graph's config: no logo or scroll zoom, without the ``removed`` mode-bar
    buttons (and the few no view uses)."""
    return {
        "displaylogo": False,
        "responsive": True,
        "scrollZoom": False,
        "modeBarButtonsToRemove": [*removed, *NEVER_USED],
    }


SELECTABLE = graph_config(*ZOOM_BUTTONS, HOVER_CLOSEST)  # box and lasso select samples
STATIC = graph_config(*SELECT_BUTTONS, *ZOOM_BUTTONS, HOVER_CLOSEST)  # selects nothing


def ident(component_id: str | None) -> dict[str, Any]:
    """``{"id": component_id}``, or nothing for None (Dash refuses ``id=None``)."""
    return {} if component_id is None else {"id": component_id}


def graph(
    graph_id: str,
    title: str | None,
    height: int,
    config: dcc.Graph.Config = STATIC,
    loading: str = LOADING,
    **kwargs: Any,
) -> dcc.Graph:
    """An empty graph of a view's skeleton: a "Loading…" figure until its callback draws it."""
    style = {"height": f"{height}px"}
    figure = empty_figure(loading, title)
    return dcc.Graph(id=graph_id, figure=figure, config=config, style=style, **kwargs)


def control(label: str, component: Any) -> html.Label:
    """A labelled control of a view's control row."""
    return html.Label([html.Span(label, className="control-label"), component], className="control")


def radio(radio_id: str, options: Sequence[Mapping[str, Any]], value: Any) -> dcc.RadioItems:
    """Radio buttons on one row."""
    options = list(options)
    return dcc.RadioItems(
        id=radio_id, options=options, value=value, inline=True, className="radio-row"
    )


def view_section(
    section_id: str, title: str, lead: Any, *children: Any, lead_id: str | None = None
) -> html.Section:
    """A view's section: its title, the line that says what it shows, then ``children``."""
    head = [html.H2(title), html.P(lead, className="muted hint", **ident(lead_id))]
    return html.Section([*head, *children], id=section_id, className="section card")


def hint(text: Any, hint_id: str | None = None) -> html.P:
    """A muted line of explanation."""
    return html.P(text, className="muted hint", **ident(hint_id))


def has_context(context: Mapping[str, Any] | None) -> TypeGuard[Mapping[str, Any]]:
    """Whether a CONTEXT value names a comparison (a lazy view's store may still be None)."""
    return bool(context) and query_int((context or {}).get("id")) is not None


def class_label(class_names: Sequence[str], value: Any) -> str:
    """A class index's name: "—" for none (or a negative index), "class 12" past the names."""
    i = query_int(value)
    if i is None or i < 0:
        return "—"
    return str(class_names[i]) if i < len(class_names) else f"class {i}"


def class_index(value: Any, n: int) -> int | None:
    """A class index in [0, n), or None."""
    cls = query_int(value)
    return cls if cls is not None and 0 <= cls < n else None


def not_ready_notice(
    exc: ApiError,
    what: str,
    title: str,
    body: Any = None,
    *,
    statuses: Sequence[int] = (409,),
    kind: str = "warning",
) -> html.Div:
    """Why a view has nothing to show: "not ready yet" (``title``) while the API answers one
    of ``statuses`` (the jobs it needs have not finished), else the API's error."""
    if exc.status in statuses:
        return notice(title, body, kind=kind)
    return api_error_notice(exc, what)


@dataclass
class Kept:
    """The base of what a view keeps of one (comparison, B): parts fetched on first use."""

    kept: dict[str, Any] = field(default_factory=dict, repr=False, kw_only=True)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, kw_only=True)

    def once(self, key: str, fetch: Callable[[], T]) -> T:
        """``fetch()``'s answer, kept under ``key`` (an answer that raises is not kept)."""
        with self.lock:
            if key in self.kept:
                return self.kept[key]
        value = fetch()
        with self.lock:
            self.kept[key] = value
        return value


INT_COLUMNS = ("index", "label", "pred", "pred_a", "pred_b", "fragile_a", "fragile_b")
BOOL_COLUMNS = ("pie", "made_fragile")


def column_array(name: str, values: Sequence[Any]) -> np.ndarray:
    """A comparison- or analysis-table column as an array: int64 (-1 for none), bool, the
    flip category ("" for none), or float64 (NaN for none)."""
    if name in INT_COLUMNS:
        return np.asarray([-1 if v is None else int(v) for v in values], dtype=np.int64)
    if name in BOOL_COLUMNS:
        return np.asarray([bool(v) for v in values], dtype=bool)
    if name == "category":
        return np.asarray([v or "" for v in values], dtype=object)
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def table_columns(
    client: ApiClient, comparison_id: int, b: int | None, wanted: Sequence[str]
) -> dict[str, np.ndarray]:
    """The comparison table's ``wanted`` columns that it has (an unknown one answers 422), as
    arrays (:func:`column_array`).

    Raises:
        ApiError: the table cannot be read (409 until the compare job has finished).
    """
    have = set(get_comparison_table_page(client, comparison_id, b=b, limit=1)["column_names"])
    columns = [c for c in dict.fromkeys(wanted) if c in have]
    raw = get_comparison_table_columns(client, comparison_id, b=b, columns=columns)["columns"]
    return {name: column_array(name, values) for name, values in raw.items()}


def customdata_ids(points: Sequence[Mapping[str, Any]]) -> list[int]:
    """Dataset indices of plotted points (their ``customdata``, or its first item)."""
    ids: list[int] = []
    for point in points:
        custom = point.get("customdata")
        value: Any = custom[0] if isinstance(custom, list | tuple) and custom else custom
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return ids


def signature(ids: Sequence[int] | None) -> str | None:
    """A short signature of sample indices (None for none), to notice a new selection."""
    if not ids:
        return None
    return f"{len(ids)}:{hash(tuple(int(i) for i in ids)) & 0xFFFFFFFFFFFF:x}"


def write_settings(query: Mapping[str, Any] | None, **updates: Any) -> Any:
    """The QUERY store's new value with ``updates`` (see :func:`merge_settings`), or
    ``dash.no_update`` when it already says so (a callback filling its controls)."""
    new = merge_settings(query, **updates)
    return dash.no_update if new == merge_settings(query) else new


def register_writer(
    app: dash.Dash, store: str, callback: Callable[..., Any], *deps: Input | State
) -> None:
    """Attach ``callback(*deps)`` that writes ``store``'s data, which other callbacks write
    too (the linked SELECTION, QUERY, the open sample)."""
    app.callback(Output(store, "data", allow_duplicate=True), *deps, prevent_initial_call=True)(
        callback
    )


def register_settings(
    app: dash.Dash, callback: Callable[..., Any], *inputs: Input, extra: Sequence[State] = ()
) -> None:
    """Attach a view's ``callback(*inputs, query, *extra)`` that writes its settings into
    QUERY (the URL; see :func:`write_settings`)."""
    register_writer(app, QUERY, callback, *inputs, State(QUERY, "data"), *extra)


def selected_count(n: int) -> str:
    """ "3 samples selected"."""
    return f"{n:,} sample{'s' if n != 1 else ''} selected"


def sample_image(src: str | None, alt: str, px: int, class_name: str, **kwargs: Any) -> html.Img:
    """A sample's image, ``px`` square."""
    return html.Img(src=src, alt=alt, width=str(px), height=str(px), className=class_name, **kwargs)


def number_card(
    title: str,
    value: str,
    help_text: str,
    *,
    note: str | None = None,
    class_name: str = "card",
    card_id: str | None = None,
) -> html.Div:
    """A headline card of one number (``help_text`` its tooltip, ``note`` a line under it)."""
    children = [html.Div(title, className="card-title"), html.Div(value, className="card-number")]
    if note is not None:
        children.append(html.Div(note, className="card-delta"))
    return html.Div(children, className=class_name, title=help_text, **ident(card_id))


class Outputs:
    """A callback's outputs by name, each with the value it sends unless the callback says
    otherwise: :meth:`outputs` registers them, ``answer(name=value, ...)`` is the tuple the
    callback returns, in the same order."""

    def __init__(self, **outputs: tuple[str, str, Any]) -> None:
        self.spec = outputs

    def outputs(self, *duplicates: str) -> list[Output]:
        """The ``Output`` of each, in order; those named in ``duplicates`` allow duplicates."""
        return [
            Output(i, prop, allow_duplicate=name in duplicates)
            for name, (i, prop, _) in self.spec.items()
        ]

    def register(
        self,
        app: dash.Dash,
        callback: Callable[..., Any],
        *deps: Input | State,
        lazy: bool = False,
        duplicates: Sequence[str] = (),
    ) -> None:
        """Attach ``callback(*deps)`` answering these outputs (see :meth:`outputs`); a
        ``lazy`` one does not run when the page loads, only once its inputs change."""
        app.callback(*self.outputs(*duplicates), *deps, prevent_initial_call=lazy)(callback)

    def __call__(self, **values: Any) -> tuple[Any, ...]:
        unknown = set(values) - set(self.spec)
        if unknown:  # a misspelt name would otherwise send the default silently
            raise TypeError(f"unknown outputs {sorted(unknown)}")
        return tuple(values.get(name, default) for name, (_, _, default) in self.spec.items())

"""The flagged-samples gallery: count cards, filters (category, PIE, made fragile, the page's
class, the linked SELECTION), a sort by the largest geometric shift, and a page of clickable
tiles (or table rows for samples that are not images). Clicking one opens its detail
(:mod:`frontend.views.samples.detail`) through the ID_OPEN store.

Settings in the URL query: ``smp_cat`` (category; absent for all flagged), ``smp_pie`` and
``smp_frag`` (``1``), ``smp_sort`` (absent for index order; ``nbr_jaccard``: neighbourhood
torn most first, SCIENCE.md sect. 7), ``smp_page`` (1-based; absent for
the first) and ``smp`` (the open sample).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import dash
import numpy as np
from dash import ALL, Input, State, dcc, html

from frontend.client import FLIP_CATEGORIES, ApiError, get_client
from frontend.forms import ON, choice, query_int
from frontend.views import SELECTION, selected_ids
from frontend.views.parts import (
    HIDDEN,
    SHOWN,
    Outputs,
    class_index,
    control,
    has_context,
    not_ready_notice,
    number_card,
    radio,
    register_settings,
    register_writer,
    sample_image,
    signature,
    write_settings,
)
from frontend.views.samples.common import (
    CATEGORY_LABELS,
    CTX,
    ID_OPEN,
    NBR_COLUMN,
    NBR_HELP,
    NBR_LABEL,
    TILE,
    SamplesData,
    fetch_table,
    load_data,
    prediction,
    sample_tags,
)

KEY_CATEGORY = "smp_cat"
KEY_PIE = "smp_pie"
KEY_FRAGILE = "smp_frag"
KEY_SORT = "smp_sort"
KEY_PAGE = "smp_page"
KEY_SAMPLE = "smp"

ID_MESSAGE = "compare-samples-message"
ID_COUNTS = "compare-samples-counts"
ID_CATEGORY = "compare-samples-category"
ID_PIE = "compare-samples-pie"
ID_FRAGILE = "compare-samples-fragile"
ID_FRAGILE_NOTE = "compare-samples-fragile-note"
ID_SORT = "compare-samples-sort"
ID_SUMMARY = "compare-samples-summary"
ID_CLEAR = "compare-samples-clear-selection"
ID_GALLERY = "compare-samples-gallery"
ID_PREV = "compare-samples-prev"
ID_NEXT = "compare-samples-next"
ID_PAGE_LABEL = "compare-samples-page"
ID_STATE = "compare-samples-state"

COUNTS_NOTE = "Counts over all classes; the gallery follows the selected class."
NOT_READY = "Flagged samples appear when the comparison's compare job has finished."
NO_FRAGILITY = "No corruption results: create the comparison with corruptions to use this filter."
FRAGILE_LABEL = "made fragile by pruning only"
PAGE_SIZE = 24
THUMB_PX = 72

FLAGGED = "flagged"
ALL_SAMPLES = "all"

CATEGORY_OPTIONS: list[dict[str, Any]] = [
    {"label": "All flagged", "value": FLAGGED},
    *({"label": CATEGORY_LABELS[c], "value": c} for c in FLIP_CATEGORIES),
    {"label": "All samples", "value": ALL_SAMPLES},
]
CATEGORIES = tuple(o["value"] for o in CATEGORY_OPTIONS)
SORT_INDEX = "index"
SORT_OPTIONS: list[dict[str, str]] = [
    {"label": "Index", "value": SORT_INDEX},
    {"label": "Largest margin decrease", "value": "d_margin"},
    {"label": "Largest angle increase", "value": "-d_angle"},
    {"label": "Largest length change", "value": "d_length"},
    {"label": "Neighbourhood torn most", "value": NBR_COLUMN},  # lowest Jaccard first
]
SORTS = tuple(o["value"] for o in SORT_OPTIONS)
SORT_WORDS = {
    "d_margin": "largest margin decrease first",
    "-d_angle": "largest angle increase first",
    "d_length": "largest length change first",
    NBR_COLUMN: "neighbourhood torn most first",
}
# sorts that need a column only newer comparisons have
SORT_NEEDS = {NBR_COLUMN: NBR_COLUMN}


# pure helpers: settings, filters, order ----------------------------------------------------


def parse_category(value: Any) -> str:
    """``smp_cat``: a flip category, "all", or the default "flagged"."""
    return str(value) if value in CATEGORIES else FLAGGED


def parse_sort(value: Any) -> str:
    """``smp_sort``: one of ``SORTS``, else index order."""
    return str(value) if value in SORTS else SORT_INDEX


def sort_options(table: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The sort choices ``table`` supports: "Neighbourhood torn most" only where it has the
    neighbourhood change (comparisons computed before it do not); all before it is loaded."""
    if table is None:
        return SORT_OPTIONS
    return [o for o in SORT_OPTIONS if SORT_NEEDS.get(o["value"], "index") in table]


def parse_flag(value: Any) -> bool:
    """A checkbox setting: ``"1"`` in the query, ``["on"]`` from a checklist."""
    if isinstance(value, list | tuple):
        return ON in value
    return str(value).strip().lower() in ("1", "true", "on", "yes")


def parse_page(value: Any) -> int:
    """``smp_page`` (1-based) as a 0-based page number."""
    page = query_int(value)
    return page - 1 if page is not None and page >= 1 else 0


def matching_rows(
    table: Mapping[str, np.ndarray],
    *,
    category: str = FLAGGED,
    pie: bool = False,
    fragile: bool = False,
    cls: int | None = None,
    selected: Sequence[int] | None = None,
) -> np.ndarray:
    """Row positions of the samples the gallery shows.

    Args:
        table: the comparison table's columns (``index``, ``label``, ``category``, ``pie`` and,
            when corruptions were analysed, ``made_fragile``).
        category: "flagged" (flipped, PIE or made fragile), a flip category, or "all".
        pie: only pruning-identified exemplars.
        fragile: only samples pruning made corruption-fragile (none without the column).
        cls: only samples of this true class.
        selected: only these sample indices; the category is then set aside (a selection
            shows what was selected, flagged or not). None: no selection.

    Returns:
        ``(M,)`` int64 row positions, in table order.
    """
    n = len(table["index"])
    cats = table.get("category")
    cats = cats if cats is not None else np.full(n, "", dtype=object)
    flipped = cats != ""
    pies = table.get("pie")
    pies = pies if pies is not None else np.zeros(n, dtype=bool)
    made = table.get("made_fragile")
    keep = np.ones(n, dtype=bool)
    if selected is not None:
        keep &= np.isin(table["index"], np.asarray(list(selected), dtype=np.int64))
    elif category == FLAGGED:
        keep &= flipped | pies | (made if made is not None else False)
    elif category in FLIP_CATEGORIES:
        keep &= cats == category
    if pie:
        keep &= pies
    if fragile:
        keep &= made if made is not None else False
    if cls is not None:
        keep &= table["label"] == cls
    return np.flatnonzero(keep).astype(np.int64)


def sort_rows(table: Mapping[str, np.ndarray], rows: np.ndarray, sort: str) -> np.ndarray:
    """``rows`` in the gallery's order: by index, by the largest shift first, or by the lowest
    neighbourhood Jaccard first (samples without the value last, ties by index)."""
    index = table["index"][rows]
    column = {
        "d_margin": "d_margin",
        "-d_angle": "d_angle",
        "d_length": "d_length_z",
        NBR_COLUMN: NBR_COLUMN,
    }.get(sort)
    if column is None or column not in table:
        return rows[np.argsort(index, kind="stable")]
    values = table[column][rows].astype(np.float64)
    if sort in ("d_margin", NBR_COLUMN):
        key = values  # most negative (largest decrease) / lowest similarity (most torn) first
    elif sort == "-d_angle":
        key = -values
    else:
        key = -np.abs(values)
    missing = np.isnan(key)
    key = np.where(missing, 0.0, key)
    return rows[np.lexsort((index, key, missing))]


def page_count(n: int) -> int:
    """Pages of ``PAGE_SIZE`` for ``n`` samples (at least one)."""
    return max(1, math.ceil(n / PAGE_SIZE))


def describe(
    category: str, pie: bool, fragile: bool, class_name: str | None, selection: bool = False
) -> str:
    """The samples shown, in words: "flagged samples of class cat that are PIEs"."""
    if selection:
        what = "selected samples"
    elif category == FLAGGED:
        what = "flagged samples"
    elif category == ALL_SAMPLES:
        what = "samples"
    else:
        what = f"{CATEGORY_LABELS.get(category, category)} samples"
    where = f" of class {class_name}" if class_name else ""
    extras = [e for e, on in (("are PIEs", pie), ("were made fragile by pruning", fragile)) if on]
    if extras:
        where += " that " + " and ".join(extras)
    return what + where


def empty_reason(category: str, pie: bool, fragile: bool, class_name: str | None) -> str:
    """Why the gallery is empty, and what to try."""
    shown = describe(category, pie, fragile, class_name)
    if category == FLAGGED and not pie and not fragile:
        return (
            f"No {shown}: A and B predict every sample the same way, and pruning made none "
            "fragile. Choose “All samples” to browse them by their geometric shift."
        )
    return f"No {shown}. Loosen a filter to see more."


# components ---------------------------------------------------------------------------------


def _row(table: Mapping[str, np.ndarray], r: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in table.items():
        v = values[r]
        out[name] = v.item() if hasattr(v, "item") else v
    return out


def jaccard_text(value: Any) -> str:
    """A neighbourhood Jaccard for a table cell: "0.35", "—" when missing."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{number:.2f}" if math.isfinite(number) else "—"


def jaccard_tag(value: Any) -> html.Span:
    """The neighbourhood kept as a small tag ("nbr 0.35")."""
    return html.Span(
        f"nbr {jaccard_text(value)}",
        className="flip-tag sample-tag-nbr",
        title=f"{NBR_LABEL}: {NBR_HELP}",
    )


def gallery_tile(
    data: SamplesData, row: Mapping[str, Any], show_jaccard: bool = False
) -> html.Button:
    """One gallery tile: the thumbnail, index, true label, A → B predictions and tags (and
    the neighbourhood kept, when ``show_jaccard``: the gallery is sorted by it)."""
    index, label = int(row["index"]), int(row["label"])
    pa, pb = int(row["pred_a"]), int(row["pred_b"])
    true_name = data.class_name(label)
    name_a, name_b = data.class_name(pa), data.class_name(pb)
    url = data.image_url(index)
    image: Any = (
        sample_image(url, f"test sample {index}", THUMB_PX, "sample-img sample-thumb")
        if url
        else html.Span("no image", className="sample-img sample-img-missing sample-thumb")
    )
    return html.Button(
        [
            image,
            html.Span(
                [
                    html.Span(f"#{index} · true ", className="muted"),
                    html.Strong(true_name),
                ],
                className="sample-caption",
            ),
            html.Span(
                [prediction("a", name_a, pa == label), prediction("b", name_b, pb == label)],
                className="sample-preds",
            ),
            html.Span(
                sample_tags(row)
                + ([jaccard_tag(row[NBR_COLUMN])] if show_jaccard and NBR_COLUMN in row else []),
                className="sample-tags",
            ),
        ],
        id={"type": TILE, "index": index},
        n_clicks=0,
        className="sample-tile",
        title=f"#{index}: true {true_name}; A predicts {name_a}, B predicts {name_b}"
        + (f"; neighbourhood kept {jaccard_text(row[NBR_COLUMN])}" if NBR_COLUMN in row else ""),
    )


ROWS_HEADER = ["Index", "True label", "A", "B", "Flags"]


def gallery_rows(data: SamplesData, rows: Sequence[Mapping[str, Any]]) -> html.Table:
    """The compact form for samples that are not images: one clickable table row each (with
    the neighbourhood kept where the comparison has it)."""
    nbr = any(NBR_COLUMN in row for row in rows)
    body = []
    for row in rows:
        index, label = int(row["index"]), int(row["label"])
        pa, pb = int(row["pred_a"]), int(row["pred_b"])
        body.append(
            html.Tr(
                [
                    html.Td(f"#{index}"),
                    html.Td(data.class_name(label)),
                    html.Td(prediction("a", data.class_name(pa), pa == label)),
                    html.Td(prediction("b", data.class_name(pb), pb == label)),
                    html.Td(html.Div(sample_tags(row), className="sample-tags")),
                    *([html.Td(jaccard_text(row.get(NBR_COLUMN)))] if nbr else []),
                ],
                id={"type": TILE, "index": index},
                n_clicks=0,
                className="sample-row",
            )
        )
    header = [html.Th(h) for h in ROWS_HEADER]
    if nbr:
        header.append(html.Th(html.Span(NBR_LABEL, className="has-help"), title=NBR_HELP))
    return html.Table(
        [html.Thead(html.Tr(header)), html.Tbody(body)],
        className="data-table sample-rows",
    )


# counted from the table once it is loaded: column -> card title, class, tooltip
TABLE_COUNTS = {
    "pie": (
        "PIE",
        "sample-card-pie",
        "pruning-identified exemplars: the pruned models' most common prediction differs "
        "from the originals'",
    ),
    "made_fragile": (
        "made fragile",
        "sample-card-fragile",
        "B fails under a corruption that A withstands (correct on the clean input)",
    ),
}


def count_cards(data: SamplesData) -> list[html.Div]:
    """Cards: samples per flip category (from the view), and PIE and made-fragile counts
    (from the table, when it is loaded and has them)."""
    counts = [
        (
            words,
            data.flip_counts.get(c, 0),
            f"flip-{c}",
            f"test samples whose prediction went {words} from A to B",
        )
        for c, words in ((c, CATEGORY_LABELS[c]) for c in FLIP_CATEGORIES)
    ]
    table = data.table or {}
    counts += [
        (title, int(table[column].sum()), kind, help_text)
        for column, (title, kind, help_text) in TABLE_COUNTS.items()
        if column in table
    ]
    return [
        number_card(t, f"{int(n):,}", h, class_name=f"card flip-card {k}") for t, n, k, h in counts
    ]


# layout -------------------------------------------------------------------------------------


def _flag(flag_id: str, label: str) -> dcc.Checklist:
    options = [{"label": label, "value": ON}]
    return dcc.Checklist(id=flag_id, options=options, value=[], inline=True, className="radio-row")


def layout() -> list[Any]:
    """The gallery's part of the section: counts, filters, summary and pager, the tiles."""
    filters = html.Div(
        [
            control("Show", radio(ID_CATEGORY, CATEGORY_OPTIONS, FLAGGED)),
            html.Div(
                [
                    _flag(ID_PIE, "PIE only"),
                    _flag(ID_FRAGILE, FRAGILE_LABEL),
                    html.Span(id=ID_FRAGILE_NOTE, className="muted hint"),
                ],
                className="samples-flags",
            ),
            control("Sort", choice(ID_SORT, SORT_OPTIONS, SORT_INDEX)),
        ],
        className="samples-filters",
    )
    pager = html.Div(
        [
            html.Button("← Previous", id=ID_PREV, n_clicks=0, disabled=True),
            html.Span(id=ID_PAGE_LABEL, className="muted"),
            html.Button("Next →", id=ID_NEXT, n_clicks=0, disabled=True),
        ],
        className="pager",
    )
    clear = html.Button(
        "· clear selection", id=ID_CLEAR, n_clicks=0, className="link-button", style=HIDDEN
    )
    return [
        html.Div(id=ID_COUNTS, className="card-row"),
        html.P(COUNTS_NOTE, className="muted hint"),
        html.Div(id=ID_MESSAGE),
        filters,
        html.Div(
            [html.Div([html.Span(id=ID_SUMMARY), clear], className="samples-summary muted"), pager],
            className="flips-controls",
        ),
        html.Div(id=ID_GALLERY, className="sample-gallery"),
        dcc.Store(id=ID_STATE),
    ]


# callbacks ----------------------------------------------------------------------------------


# init_samples' outputs, and what they send unless it says otherwise
INIT = Outputs(
    cards=(ID_COUNTS, "children", []),
    category=(ID_CATEGORY, "value", FLAGGED),
    pie=(ID_PIE, "value", []),
    fragile=(ID_FRAGILE, "value", []),
    fragile_options=(
        ID_FRAGILE,
        "options",
        [{"label": FRAGILE_LABEL, "value": ON, "disabled": True}],
    ),
    fragile_note=(ID_FRAGILE_NOTE, "children", None),
    sort=(ID_SORT, "value", SORT_INDEX),
    state=(ID_STATE, "data", None),
    open=(ID_OPEN, "data", None),
    message=(ID_MESSAGE, "children", None),
    sort_options=(ID_SORT, "options", SORT_OPTIONS),
)
# update_gallery's outputs, and what they send unless it says otherwise
GALLERY = Outputs(
    summary=(ID_SUMMARY, "children", dash.no_update),
    body=(ID_GALLERY, "children", dash.no_update),
    prev_disabled=(ID_PREV, "disabled", True),
    next_disabled=(ID_NEXT, "disabled", True),
    page=(ID_PAGE_LABEL, "children", ""),
    state=(ID_STATE, "data", dash.no_update),
    category_options=(ID_CATEGORY, "options", dash.no_update),
    clear_style=(ID_CLEAR, "style", HIDDEN),
)


def register(app: dash.Dash) -> None:
    """Attach the gallery's callbacks to ``app``."""
    INIT.register(app, init_samples, Input(CTX, "data"), State(SELECTION, "data"), lazy=True)
    settings = [Input(i, "value") for i in (ID_CATEGORY, ID_PIE, ID_FRAGILE, ID_SORT)]
    pager = [Input(i, "n_clicks") for i in (ID_PREV, ID_NEXT)]
    GALLERY.register(
        app,
        update_gallery,
        *settings,
        *pager,
        Input(SELECTION, "data"),
        State(ID_STATE, "data"),
        State(CTX, "data"),
        lazy=True,
        duplicates=["state"],
    )
    register_settings(app, write_samples_query, Input(ID_STATE, "data"), Input(ID_OPEN, "data"))
    tiles = Input({"type": TILE, "index": ALL}, "n_clicks")
    register_writer(app, ID_OPEN, _open_clicked, tiles, State(ID_OPEN, "data"))
    register_writer(app, SELECTION, clear_selection, Input(ID_CLEAR, "n_clicks"))


def _not_ready(exc: ApiError, what: str) -> html.Div:
    return not_ready_notice(exc, what, NOT_READY, "Reload the page once it has.")


def init_samples(
    context: Mapping[str, Any] | None, current: Mapping[str, Any] | None = None
) -> tuple[Any, ...]:
    """Callback: the count cards, and the filters, page and open sample from the URL query.

    Returns:
        The values of :data:`INIT`'s outputs (``state``: the settings the gallery starts
        from), in its order.
    """
    if not has_context(context):
        return INIT()
    query = context.get("query") or {}
    category, sort = parse_category(query.get(KEY_CATEGORY)), parse_sort(query.get(KEY_SORT))
    pie = [ON] if parse_flag(query.get(KEY_PIE)) else []
    try:
        data = load_data(context)
    except ApiError as exc:
        return INIT(
            category=category, pie=pie, sort=sort, message=_not_ready(exc, "the comparison")
        )
    message = None
    try:
        fetch_table(get_client(), data)
    except ApiError as exc:
        message = _not_ready(exc, "the flagged samples")
    fragile_ok = data.has_fragility
    fragile = [ON] if fragile_ok and parse_flag(query.get(KEY_FRAGILE)) else []
    options = sort_options(data.table)
    if sort not in {o["value"] for o in options}:
        sort = SORT_INDEX  # e.g. a link's "neighbourhood torn most" on an older comparison
    state = {
        "category": category,
        "pie": bool(pie),
        "fragile": bool(fragile),
        "sort": sort,
        "sel": signature(selected_ids(current)),
        "page": parse_page(query.get(KEY_PAGE)),
        "n_prev": 0,
        "n_next": 0,
    }
    return INIT(
        cards=count_cards(data),
        category=category,
        pie=pie,
        fragile=fragile,
        fragile_options=[{"label": FRAGILE_LABEL, "value": ON, "disabled": not fragile_ok}],
        fragile_note=None if fragile_ok or data.table is None else NO_FRAGILITY,
        sort=sort,
        state=state,
        open=query_int(query.get(KEY_SAMPLE)),
        message=message,
        sort_options=options,
    )


def update_gallery(
    category: Any,
    pie: Any,
    fragile: Any,
    sort: Any,
    n_prev: int | None,
    n_next: int | None,
    current: Mapping[str, Any] | None,
    state: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
) -> tuple[Any, ...]:
    """Callback: the gallery page for the filters, the sort, the pager and the SELECTION.

    Which input fired is read from ``state`` (the settings and click counts it was drawn
    with), so the function needs no callback context: changed settings or a new selection
    start from the first page, a pager click moves one page.

    Returns:
        The values of :data:`GALLERY`'s outputs (category options disabled while a selection
        is shown), in its order.
    """
    if not has_context(context) or not state:
        return GALLERY()
    try:
        data = load_data(context)
        table = fetch_table(get_client(), data)
    except ApiError as exc:
        # the message above the filters says why (init_samples)
        text = "" if exc.status in (404, 409) else f"Not available: {exc.detail}"
        return GALLERY(summary=text, body=[])
    ids = selected_ids(current)
    selecting = bool(ids)
    flags: dict[str, Any] = {
        "category": parse_category(category),
        "pie": parse_flag(pie or []),
        "fragile": parse_flag(fragile or []) and data.has_fragility,
    }
    settings = {**flags, "sort": parse_sort(sort), "sel": signature(ids)}
    clicks_prev, clicks_next = int(n_prev or 0), int(n_next or 0)
    page = int(state.get("page") or 0)
    if any(state.get(k) != v for k, v in settings.items()):
        page = 0
    elif clicks_prev > int(state.get("n_prev") or 0):
        page -= 1
    elif clicks_next > int(state.get("n_next") or 0):
        page += 1
    cls = class_index(context.get("cls"), len(data.class_names))
    rows = matching_rows(table, **flags, cls=cls, selected=ids if selecting else None)
    rows = sort_rows(table, rows, settings["sort"])
    pages = page_count(len(rows))
    page = min(max(page, 0), pages - 1)
    shown = rows[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    new_state = {**settings, "page": page, "n_prev": clicks_prev, "n_next": clicks_next}
    class_name = None if cls is None else data.class_name(cls)
    records = [_row(table, int(r)) for r in shown]
    summary = gallery_summary(
        len(rows), page, len(records), settings, class_name, len(ids) if selecting else None
    )
    if not records and selecting:
        body: Any = html.P(
            f"None of the {len(ids):,} selected samples match"
            + (f" class {class_name}" if class_name else "")
            + (" and the filters" if flags["pie"] or flags["fragile"] else "")
            + ". Clear the selection to see the flagged samples.",
            className="empty",
        )
    elif not records:
        body = html.P(empty_reason(**flags, class_name=class_name), className="empty")
    elif data.images:
        nbr = settings["sort"] == NBR_COLUMN
        body = html.Div(
            [gallery_tile(data, r, show_jaccard=nbr) for r in records], className="sample-grid"
        )
    else:
        body = html.Div(gallery_rows(data, records), className="table-scroll")
    return GALLERY(
        summary=summary,
        body=body,
        prev_disabled=page <= 0,
        next_disabled=page >= pages - 1,
        page=f"page {page + 1} of {pages}" if rows.size else "",
        state=new_state,
        category_options=[{**o, "disabled": selecting} for o in CATEGORY_OPTIONS],
        clear_style=SHOWN if selecting else HIDDEN,
    )


def gallery_summary(
    count: int,
    page: int,
    on_page: int,
    settings: Mapping[str, Any],
    class_name: str | None,
    n_selected: int | None = None,
) -> str:
    """ "Showing 1–24 of 132 flagged samples of class cat, largest margin decrease first"."""
    what = describe(
        str(settings.get("category")),
        bool(settings.get("pie")),
        bool(settings.get("fragile")),
        class_name,
        selection=n_selected is not None,
    )
    order = SORT_WORDS.get(str(settings.get("sort")), "")
    if n_selected is not None:
        head = f"{n_selected:,} selected sample{'s' if n_selected != 1 else ''}"
        if count == 0:
            return head
        if count != n_selected:
            head += f" ({count:,} match{'es' if count == 1 else ''} the filters)"
        first = page * PAGE_SIZE + 1
        return f"{head}: showing {first:,}–{first + on_page - 1:,}" + (
            f", {order}" if order else ""
        )
    if count == 0:
        return f"No {what}."
    first = page * PAGE_SIZE + 1
    text = f"Showing {first:,}–{first + on_page - 1:,} of {count:,} {what}"
    return text + (f", {order}." if order else ".")


def write_samples_query(
    state: Mapping[str, Any] | None, opened: Any, query: Mapping[str, Any] | None
) -> Any:
    """Callback: the gallery's settings, page and open sample into QUERY (defaults left out);
    ``dash.no_update`` when QUERY already says so."""
    if not state:
        updates: dict[str, Any] = {KEY_SAMPLE: query_int(opened)}
    else:
        category = parse_category(state.get("category"))
        sort = parse_sort(state.get("sort"))
        page = int(state.get("page") or 0)
        updates = {
            KEY_CATEGORY: None if category == FLAGGED else category,
            KEY_PIE: "1" if state.get("pie") else None,
            KEY_FRAGILE: "1" if state.get("fragile") else None,
            KEY_SORT: None if sort == SORT_INDEX else sort,
            KEY_PAGE: page + 1 if page > 0 else None,
            KEY_SAMPLE: query_int(opened),
        }
    return write_settings(query, **updates)


def open_sample(
    n_clicks: Sequence[int | None], ids: Sequence[Mapping[str, Any]], triggered: Any, current: Any
) -> Any:
    """Callback body: the clicked tile's sample becomes the open one.

    Args:
        n_clicks: clicks of every tile on the page.
        ids: their ids (``{"type": TILE, "index": sample index}``), in the same order.
        triggered: the id of the tile that fired (``dash.ctx.triggered_id``).
        current: the open sample.
    """
    if not isinstance(triggered, Mapping) or triggered.get("type") != TILE:
        return dash.no_update
    index = query_int(triggered.get("index"))
    clicks = {query_int(i.get("index")): n for n, i in zip(n_clicks, ids, strict=False)}
    if index is None or not clicks.get(index):
        return dash.no_update  # a tile appeared (a new page), nobody clicked
    return dash.no_update if query_int(current) == index else index


def _open_clicked(n_clicks: Sequence[int | None], current: Any) -> Any:
    ids = [i["id"] for i in dash.ctx.inputs_list[0]] if dash.ctx.inputs_list else []
    return open_sample(n_clicks, ids, dash.ctx.triggered_id, current)


def clear_selection(n_clicks: int | None) -> Any:
    """Callback: "clear selection" clears the linked SELECTION (every view follows)."""
    return None if n_clicks else dash.no_update

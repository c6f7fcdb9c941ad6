"""Compare-page view "Flagged samples" (SCIENCE.md sections 1 and 3).

A gallery of the test samples that pruning flagged: prediction flips (correct → wrong,
wrong → correct, wrong → other wrong), pruning-identified exemplars (PIE) and samples that
pruning made corruption-fragile, filterable and sortable by the largest geometric shifts
(margin, angle, length). It follows the page's class filter and the linked SELECTION (a
selection shows just the selected samples). Clicking a sample opens its detail: the image,
both models' top-5 probabilities, its angle, length and margin in A and B, its outcome under
every corruption and, on demand, its geometric attribution (occlusion maps of the change of
the three metrics, computed by an ``attribution`` job and kept by the API).

Data: the per-sample comparison table (``GET /api/comparisons/{id}/table``, the columns the
gallery needs, fetched once per (comparison, B)), ``GET /api/comparisons/{id}/samples/{index}``
for the detail and ``.../samples/{index}/attribution`` for the maps. Settings in the URL query:
``smp_cat`` (category; absent for all flagged), ``smp_pie`` and ``smp_frag`` (``1``),
``smp_sort`` (absent for index order), ``smp_page`` (1-based; absent for the first) and ``smp``
(the open sample).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dash
import numpy as np
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import (
    FLIP_CATEGORIES,
    ApiClient,
    ApiError,
    JobPublic,
    Split,
    get_client,
    get_comparison_table_columns,
    get_comparison_table_page,
)
from frontend.components import api_error_notice, download_link, job_line, notice
from frontend.figures._common import empty_figure
from frontend.figures.formatting import format_percent, model_label
from frontend.figures.samples import attribution_heatmaps, attribution_height, top5_bars
from frontend.views import (
    QUERY,
    SELECTION,
    FetchCache,
    as_int,
    merge_settings,
    selected_ids,
    view_context,
)

NAME = "samples"
CTX = view_context(NAME)  # this lazy view's copy of CONTEXT
KEY_CATEGORY = "smp_cat"
KEY_PIE = "smp_pie"
KEY_FRAGILE = "smp_frag"
KEY_SORT = "smp_sort"
KEY_PAGE = "smp_page"
KEY_SAMPLE = "smp"

ID_SECTION = "compare-samples"
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
ID_OPEN = "compare-samples-open"
ID_SCROLL = "compare-samples-scroll"
TILE = "compare-samples-tile"  # pattern-matching id type of a gallery tile (or table row)
ID_DETAIL = "compare-samples-detail"
ID_DETAIL_EMPTY = "compare-samples-detail-empty"
ID_DETAIL_BODY = "compare-samples-detail-body"
ID_HEAD = "compare-samples-head"
ID_CLOSE = "compare-samples-close"
ID_TOP5 = "compare-samples-top5"
ID_METRICS = "compare-samples-metrics"
ID_CORRUPTIONS = "compare-samples-corruptions"
ID_ATTR_INFO = "compare-samples-attr-info"
ID_COMPUTE = "compare-samples-compute"
ID_ATTR_NOTE = "compare-samples-attr-note"
ID_PROGRESS = "compare-samples-progress"
ID_POLL = "compare-samples-poll"
ID_JOB = "compare-samples-job"
ID_DONE = "compare-samples-done"
ID_ATTR_BODY = "compare-samples-attr-body"
ID_ATTR_FIG = "compare-samples-attribution"
ID_ATTR_IMAGE = "compare-samples-attr-image"
ID_CORRUPTED = "compare-samples-corrupted"

TITLE = "Flagged samples"
EXPLANATION = (
    "The test samples pruning changed: prediction flips, pruning-identified exemplars (PIE: "
    "the pruned models' most common prediction differs from the originals'), samples that "
    "pruning made fragile to corruptions, and the largest shifts of the penultimate features. "
    "Click a sample for its details."
)
COUNTS_NOTE = "Counts over all classes; the gallery follows the selected class."
NOT_READY = "Flagged samples appear when the comparison's compare job has finished."
NO_FRAGILITY = "No corruption results: create the comparison with corruptions to use this filter."
DETAIL_EMPTY = (
    "Click a sample above to see its image, both models' top-5 probabilities, its angle, "
    "length and margin in A and B, and its corrupted versions."
)
ATTRIBUTION_WHAT = (
    "Occludes the image one patch at a time and records how the angle, the length and the "
    "margin of A and B change: which pixels the two models' geometry depends on."
)
BUTTON = "Compute geometric attribution"
NEEDS_WRITE = "Computing attribution needs a write token."
PAGE_SIZE = 24
CACHE_SIZE = 8
POLL_INTERVAL_MS = 1000
ACTIVE = ("queued", "running", "cancelling")
THUMB_PX = 72
IMAGE_PX = 192
CORRUPTED_PX = 64
HIDDEN: dict[str, str] = {"display": "none"}
SHOWN: dict[str, str] = {}

FLAGGED = "flagged"
ALL_SAMPLES = "all"
CATEGORY_LABELS: dict[str, str] = {
    "correct_to_wrong": "correct → wrong",
    "wrong_to_correct": "wrong → correct",
    "wrong_to_other_wrong": "wrong → other wrong",
}
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
]
SORTS = tuple(o["value"] for o in SORT_OPTIONS)
SORT_WORDS = {
    "d_margin": "largest margin decrease first",
    "-d_angle": "largest angle increase first",
    "d_length": "largest length change first",
}
ON = "on"
TABLE_COLUMNS = (
    "index",
    "label",
    "pred_a",
    "pred_b",
    "category",
    "pie",
    "d_margin",
    "d_angle",
    "d_length_z",
    "fragile_a",
    "fragile_b",
    "made_fragile",
)
INT_COLUMNS = ("index", "label", "pred_a", "pred_b", "fragile_a", "fragile_b")
BOOL_COLUMNS = ("pie", "made_fragile")
METRIC_HELP = {
    "angle": "angle between the feature f and the true class direction W_y, in degrees; "
    "smaller is closer to the class",
    "length": "feature length ‖f‖ (in brackets: z-scored within the model, so A and B compare)",
    "margin": "signed distance to the nearest decision boundary in feature space; "
    "< 0: misclassified",
}
GRAPH_CONFIG: dcc.Graph.Config = {
    "displaylogo": False,
    "responsive": True,
    "scrollZoom": False,
    "modeBarButtonsToRemove": [
        "select2d",
        "lasso2d",
        "zoomIn2d",
        "zoomOut2d",
        "autoScale2d",
        "hoverCompareCartesian",
        "toggleSpikelines",
        "sendDataToCloud",
    ],
}
# a click on a tile brings the detail panel into view (it sits under the gallery)
SCROLL_JS = """
function(clicks) {
    if (!(clicks || []).some(n => n)) { return window.dash_clientside.no_update; }
    const el = document.getElementById("DETAIL");
    if (el) { el.scrollIntoView({behavior: "smooth", block: "start"}); }
    return window.dash_clientside.no_update;
}
""".replace("DETAIL", ID_DETAIL)


# data ---------------------------------------------------------------------------------------


@dataclass
class SamplesData:
    """What the gallery needs of one (comparison, B); the table is fetched on first use."""

    comparison_id: int
    b: int
    dataset_id: int
    split: str
    class_names: list[str]
    images: bool
    label_a: str
    label_b: str
    flip_counts: dict[str, int]
    table: dict[str, np.ndarray] | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    a: int | None = None  # model A's id (for its download link)

    def class_name(self, value: Any) -> str:
        i = as_int(value)
        if i is None or i < 0:
            return "—"
        return self.class_names[i] if i < len(self.class_names) else f"class {i}"

    def image_url(self, index: int) -> str | None:
        if not self.images:
            return None
        split: Split = "train" if self.split == "train" else "test"
        return ApiClient.dataset_image_path(self.dataset_id, split, int(index))

    @property
    def has_fragility(self) -> bool:
        return self.table is not None and "made_fragile" in self.table


def fetch_samples_data(client: ApiClient, comparison_id: int, b: int | None) -> SamplesData:
    """Class names, model labels, flip counts and whether the dataset has images.

    Raises:
        ApiError: the comparison view cannot be read.
    """
    view = client.get_comparison_view(comparison_id, b=b)
    dataset = view["dataset"]
    shape = dataset.get("input_shape") or []
    return SamplesData(
        comparison_id=int(comparison_id),
        b=int(view["model_b"]["id"]),
        dataset_id=int(dataset["id"]),
        split=str((view.get("analysis_a") or {}).get("split") or "test"),
        class_names=[str(c) for c in dataset["class_names"]],
        images=len(shape) in (2, 3),
        label_a=f"A: {view['model_a']['name']}",
        label_b=f"B: {model_label(view['model_b'])}",
        flip_counts={c: int((view.get("flip_counts") or {}).get(c, 0)) for c in FLIP_CATEGORIES},
        a=as_int(view["model_a"].get("id")),
    )


def _column(name: str, values: Sequence[Any]) -> np.ndarray:
    if name in INT_COLUMNS:
        return np.asarray([-1 if v is None else int(v) for v in values], dtype=np.int64)
    if name in BOOL_COLUMNS:
        return np.asarray([bool(v) for v in values], dtype=bool)
    if name == "category":
        return np.asarray([v or "" for v in values], dtype=object)
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def fetch_table(client: ApiClient, data: SamplesData) -> dict[str, np.ndarray]:
    """The comparison table's gallery columns (those it has) as arrays, fetched once.

    Raises:
        ApiError: the table cannot be read (409 until the compare job has finished); not kept.
    """
    with data.lock:
        if data.table is not None:
            return data.table
    probe = get_comparison_table_page(client, data.comparison_id, b=data.b, limit=1)
    have = set(probe["column_names"])
    columns = [c for c in TABLE_COLUMNS if c in have]
    raw = get_comparison_table_columns(client, data.comparison_id, b=data.b, columns=columns)
    table = {name: _column(name, values) for name, values in raw["columns"].items()}
    with data.lock:
        data.table = table
    return table


_cache = FetchCache(fetch_samples_data, CACHE_SIZE)


def clear_cache() -> None:
    """Forget everything fetched (tests isolate themselves with this)."""
    _cache.clear()


def load_data(context: Mapping[str, Any]) -> SamplesData:
    """The cached data of the CONTEXT's comparison and B (fetched on first use)."""
    b = as_int(context.get("b"))
    return _cache.get(get_client(), int(context["id"]), b)


# pure helpers: settings, filters, order ----------------------------------------------------


def parse_category(value: Any) -> str:
    """``smp_cat``: a flip category, "all", or the default "flagged"."""
    return str(value) if value in CATEGORIES else FLAGGED


def parse_sort(value: Any) -> str:
    """``smp_sort``: one of ``SORTS``, else index order."""
    return str(value) if value in SORTS else SORT_INDEX


def parse_flag(value: Any) -> bool:
    """A checkbox setting: ``"1"`` in the query, ``["on"]`` from a checklist."""
    if isinstance(value, list | tuple):
        return ON in value
    return str(value).strip().lower() in ("1", "true", "on", "yes")


def parse_page(value: Any) -> int:
    """``smp_page`` (1-based) as a 0-based page number."""
    page = as_int(value)
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
    """``rows`` in the gallery's order: by index, or by the largest shift first (samples
    without the value last, ties by index)."""
    index = table["index"][rows]
    column = {"d_margin": "d_margin", "-d_angle": "d_angle", "d_length": "d_length_z"}.get(sort)
    if column is None or column not in table:
        return rows[np.argsort(index, kind="stable")]
    values = table[column][rows].astype(np.float64)
    if sort == "d_margin":
        key = values  # most negative (largest decrease) first
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


def selection_key(value: Mapping[str, Any] | None) -> str | None:
    """A short signature of a SELECTION (None for none), to notice a new one."""
    ids = selected_ids(value)
    if not value or not ids:
        return None
    return f"{len(ids)}:{hash(tuple(ids)) & 0xFFFFFFFFFFFF:x}"


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


def _num(value: Any, fmt: str = ".3g") -> str:
    if value is None:
        return "—"
    number = float(value)
    return "—" if not math.isfinite(number) else format(number, fmt)


# pure helpers: components ------------------------------------------------------------------


def category_tag(category: str) -> html.Span | None:
    """The flip category as a coloured pill (None when the prediction did not flip)."""
    if not category:
        return None
    label = CATEGORY_LABELS.get(category, category)
    return html.Span(label, className=f"flip-tag flip-{category}")


def sample_tags(row: Mapping[str, Any]) -> list[html.Span]:
    """Small tags of one table row: flip category, PIE, made fragile, Δmargin."""
    tags: list[html.Span] = []
    cat = category_tag(str(row.get("category") or ""))
    if cat is not None:
        tags.append(cat)
    if row.get("pie"):
        tags.append(
            html.Span(
                "PIE", className="flip-tag sample-tag-pie", title="pruning-identified exemplar"
            )
        )
    if row.get("made_fragile"):
        tags.append(
            html.Span(
                "fragile",
                className="flip-tag sample-tag-fragile",
                title="pruning made it fragile: B fails under a corruption A withstands",
            )
        )
    d = row.get("d_margin")
    if d is not None and math.isfinite(float(d)):
        kind = "neg" if float(d) < 0 else "pos"
        tags.append(
            html.Span(
                f"Δm {float(d):+.2f}",
                className=f"flip-tag sample-tag-dm sample-tag-dm-{kind}",
                title="change of the signed margin from A to B (B − A)",
            )
        )
    return tags


def _row(table: Mapping[str, np.ndarray], r: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in table.items():
        v = values[r]
        out[name] = v.item() if hasattr(v, "item") else v
    return out


def _prediction(side: str, name: str, correct: bool) -> html.Span:
    return html.Span(
        [
            html.Span(side.upper(), className=f"tag tag-{side}"),
            name,
            html.Span(" ✓" if correct else " ✗", className="ok" if correct else "bad"),
        ],
        className="sample-pred",
    )


def gallery_tile(data: SamplesData, row: Mapping[str, Any]) -> html.Button:
    """One gallery tile: the thumbnail, index, true label, A → B predictions and tags."""
    index, label = int(row["index"]), int(row["label"])
    pa, pb = int(row["pred_a"]), int(row["pred_b"])
    true_name = data.class_name(label)
    name_a, name_b = data.class_name(pa), data.class_name(pb)
    url = data.image_url(index)
    image: Any = (
        html.Img(
            src=url,
            alt=f"test sample {index}",
            width=str(THUMB_PX),
            height=str(THUMB_PX),
            className="sample-img sample-thumb",
        )
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
                [_prediction("a", name_a, pa == label), _prediction("b", name_b, pb == label)],
                className="sample-preds",
            ),
            html.Span(sample_tags(row), className="sample-tags"),
        ],
        id={"type": TILE, "index": index},
        n_clicks=0,
        className="sample-tile",
        title=f"#{index}: true {true_name}; A predicts {name_a}, B predicts {name_b}",
    )


ROWS_HEADER = ["Index", "True label", "A", "B", "Flags"]


def gallery_rows(data: SamplesData, rows: Sequence[Mapping[str, Any]]) -> html.Table:
    """The compact form for samples that are not images: one clickable table row each."""
    body = []
    for row in rows:
        index, label = int(row["index"]), int(row["label"])
        pa, pb = int(row["pred_a"]), int(row["pred_b"])
        body.append(
            html.Tr(
                [
                    html.Td(f"#{index}"),
                    html.Td(data.class_name(label)),
                    html.Td(_prediction("a", data.class_name(pa), pa == label)),
                    html.Td(_prediction("b", data.class_name(pb), pb == label)),
                    html.Td(html.Div(sample_tags(row), className="sample-tags")),
                ],
                id={"type": TILE, "index": index},
                n_clicks=0,
                className="sample-row",
            )
        )
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in ROWS_HEADER])), html.Tbody(body)],
        className="data-table sample-rows",
    )


def count_cards(data: SamplesData) -> list[html.Div]:
    """Cards: samples per flip category (from the view), and PIE and made-fragile counts
    (from the table, when it is loaded and has them)."""

    def card(title: str, value: int, kind: str, help_text: str) -> html.Div:
        return html.Div(
            [
                html.Div(title, className="card-title"),
                html.Div(f"{int(value):,}", className="card-number"),
            ],
            className=f"card flip-card {kind}",
            title=help_text,
        )

    cards = [
        card(
            CATEGORY_LABELS[c],
            data.flip_counts.get(c, 0),
            f"flip-{c}",
            f"test samples whose prediction went {CATEGORY_LABELS[c]} from A to B",
        )
        for c in FLIP_CATEGORIES
    ]
    table = data.table
    if table is not None and "pie" in table:
        cards.append(
            card(
                "PIE",
                int(table["pie"].sum()),
                "sample-card-pie",
                "pruning-identified exemplars: the pruned models' most common prediction "
                "differs from the originals'",
            )
        )
    if table is not None and "made_fragile" in table:
        cards.append(
            card(
                "made fragile",
                int(table["made_fragile"].sum()),
                "sample-card-fragile",
                "B fails under a corruption that A withstands (correct on the clean input)",
            )
        )
    return cards


def metrics_table(detail: Mapping[str, Any]) -> html.Table:
    """Angle, length and margin of the sample in A, in B and their change, each row's header
    explaining its metric on hover."""
    a, b = detail.get("a") or {}, detail.get("b") or {}

    def val(side: Mapping[str, Any], key: str) -> float | None:
        v = side.get(key)
        if v is None:
            return None
        number = float(v)
        return number if math.isfinite(number) else None

    def delta(key: str) -> float | None:
        x, y = val(a, key), val(b, key)
        return None if x is None or y is None else y - x

    def length(side: Mapping[str, Any]) -> str:
        z = val(side, "length_z")
        return _num(val(side, "length")) + ("" if z is None else f" (z {z:+.2f})")

    margin_cls = {
        side: "bad" if (val(s, "margin") or 0) < 0 else None for side, s in (("a", a), ("b", b))
    }
    d_len = delta("length_z")
    rows: list[tuple[str, str, list[str], str, list[str | None]]] = [
        (
            "angle (°)",
            METRIC_HELP["angle"],
            [_num(val(a, "angle"), ".1f"), _num(val(b, "angle"), ".1f")],
            _num(delta("angle"), "+.1f"),
            [None, None],
        ),
        (
            "length ‖f‖",
            METRIC_HELP["length"],
            [length(a), length(b)],
            "—" if d_len is None else f"{d_len:+.2f} σ",
            [None, None],
        ),
        (
            "margin",
            METRIC_HELP["margin"],
            [_num(val(a, "margin")), _num(val(b, "margin"))],
            _num(delta("margin"), "+.3g"),
            [margin_cls["a"], margin_cls["b"]],
        ),
    ]
    body = []
    for name, help_text, (va, vb), d, (ca, cb) in rows:
        body.append(
            html.Tr(
                [
                    html.Th(html.Span(name, className="has-help"), title=help_text, scope="row"),
                    html.Td(va, className=ca),
                    html.Td(vb, className=cb),
                    html.Td(d),
                ]
            )
        )
    head = html.Tr(
        [
            html.Th("metric"),
            html.Th(html.Span("A", className="tag tag-a")),
            html.Th(html.Span("B", className="tag tag-b")),
            html.Th("Δ (B − A)"),
        ]
    )
    return html.Table(
        [html.Thead(head), html.Tbody(body)],
        id=ID_METRICS,
        className="data-table sample-metrics",
    )


def corruption_grid(corruptions: Mapping[str, Any] | None, class_names: Sequence[str]) -> Any:
    """Corruption × severity: ✓/✗ of A and of B per setting; settings where B fails and A
    holds are highlighted. An empty state when the comparison has no corruption results."""
    if not corruptions or not corruptions.get("names"):
        return html.P(
            "No corruption results for this comparison: create it with corruptions to see how "
            "this sample fares under them.",
            className="empty",
        )
    names = [str(n) for n in corruptions["names"]]
    sevs = [int(s) for s in corruptions.get("severities") or []]

    def cell(key: str, i: int, j: int) -> Any:
        try:
            return corruptions[key][i][j]
        except (KeyError, IndexError, TypeError):
            return None

    def name(pred: Any) -> str:
        p = as_int(pred)
        if p is None:
            return "—"
        return str(class_names[p]) if 0 <= p < len(class_names) else f"class {p}"

    def mark(ok: Any) -> str:
        return "·" if ok is None else "✓" if ok else "✗"

    body = []
    b_only = 0
    for i, corruption in enumerate(names):
        tds: list[Any] = [html.Th(corruption.replace("_", " "), scope="row")]
        for j, sev in enumerate(sevs):
            ca, cb = cell("correct_a", i, j), cell("correct_b", i, j)
            classes = ["corruption-cell"]
            if ca and cb is False:
                classes.append("corruption-b-only")
                b_only += 1
            elif ca is False and cb is False:
                classes.append("corruption-both")
            tds.append(
                html.Td(
                    [
                        html.Span(["A", mark(ca)], className="ok" if ca else "bad"),
                        " ",
                        html.Span(["B", mark(cb)], className="ok" if cb else "bad"),
                    ],
                    className=" ".join(classes),
                    title=(
                        f"{corruption}, severity {sev}: A predicts "
                        f"{name(cell('pred_a', i, j))} {mark(ca)}, B predicts "
                        f"{name(cell('pred_b', i, j))} {mark(cb)}"
                    ),
                )
            )
        body.append(html.Tr(tds))
    head = html.Tr([html.Th("corruption")] + [html.Th(f"severity {s}") for s in sevs])
    note = (
        f"Highlighted: B fails where A holds ({b_only} setting{'s' if b_only != 1 else ''})."
        if b_only
        else "B fails nowhere that A holds."
    )
    return html.Div(
        [
            html.Div(
                html.Table(
                    [html.Thead(head), html.Tbody(body)],
                    className="data-table corruption-grid",
                ),
                className="table-scroll",
            ),
            html.P(f"✓ correct, ✗ wrong. {note}", className="muted hint"),
        ]
    )


def detail_head(data: SamplesData, detail: Mapping[str, Any]) -> list[Any]:
    """The sample's image (large), true label, tags and both predictions."""
    index, label = int(detail["index"]), as_int(detail.get("label"))
    url = detail.get("image_url")
    image: Any = (
        html.Img(
            src=url,
            alt=f"test sample {index}",
            width=str(IMAGE_PX),
            height=str(IMAGE_PX),
            className="sample-img sample-large",
        )
        if url
        else html.Div(
            "no image: the samples are feature vectors",
            className="sample-img sample-img-missing sample-large",
        )
    )
    tags = sample_tags(
        {
            "category": detail.get("category") or "",
            "pie": detail.get("pie"),
            "made_fragile": detail.get("made_fragile"),
        }
    )
    preds = []
    for side in ("a", "b"):
        s = detail.get(side) or {}
        preds.append(
            html.Div(
                [
                    _prediction(side, data.class_name(s.get("pred")), bool(s.get("correct"))),
                    html.Span(f" {format_percent(s.get('confidence'), 0)}", className="muted"),
                ]
            )
        )
    return [
        image,
        html.Div(
            [
                html.H3(f"Test sample #{index}"),
                html.P(["True label ", html.Strong(data.class_name(label))]),
                html.Div(tags, className="sample-tags"),
                html.Div(preds, className="sample-detail-preds"),
                html.P(
                    [
                        html.Span("Models ", className="muted"),
                        None if data.a is None else html.Span("A", className="tag tag-a"),
                        None if data.a is None else download_link(data.a),
                        " ",
                        html.Span("B", className="tag tag-b"),
                        download_link(data.b),
                    ],
                    className="sample-detail-downloads",
                ),
            ],
            className="sample-head-text",
        ),
    ]


def corrupted_thumbnails(
    corrupted: Sequence[Mapping[str, Any]], class_names: Sequence[str]
) -> list[html.Figure]:
    """The corrupted versions of the sample with A's and B's predictions (✓/✗)."""

    def name(pred: Any) -> str:
        p = as_int(pred)
        if p is None:
            return "—"
        return str(class_names[p]) if 0 <= p < len(class_names) else f"class {p}"

    out = []
    for item in corrupted:
        corruption = str(item.get("corruption") or "").replace("_", " ")
        sev = item.get("severity")
        ca, cb = bool(item.get("correct_a")), bool(item.get("correct_b"))
        classes = "corrupted-item" + (" corruption-b-only" if ca and not cb else "")
        out.append(
            html.Figure(
                [
                    html.Img(
                        src=item.get("image"),
                        alt=f"{corruption} severity {sev}",
                        width=str(CORRUPTED_PX),
                        height=str(CORRUPTED_PX),
                        className="sample-img",
                    ),
                    html.Figcaption(
                        [
                            html.Div(f"{corruption} {sev}", className="muted"),
                            _prediction("a", name(item.get("pred_a")), ca),
                            _prediction("b", name(item.get("pred_b")), cb),
                        ]
                    ),
                ],
                className=classes,
            )
        )
    return out


# layout -------------------------------------------------------------------------------------


def _control(label: str, component: Any) -> html.Label:
    return html.Label([html.Span(label, className="control-label"), component], className="control")


def section() -> html.Section:
    """The view's skeleton: counts, filters, the gallery with its pager and the detail panel."""
    filters = html.Div(
        [
            _control(
                "Show",
                dcc.RadioItems(
                    id=ID_CATEGORY,
                    options=CATEGORY_OPTIONS,
                    value=FLAGGED,
                    inline=True,
                    className="radio-row",
                ),
            ),
            html.Div(
                [
                    dcc.Checklist(
                        id=ID_PIE,
                        options=[{"label": "PIE only", "value": ON}],
                        value=[],
                        inline=True,
                        className="radio-row",
                    ),
                    dcc.Checklist(
                        id=ID_FRAGILE,
                        options=[{"label": "made fragile by pruning only", "value": ON}],
                        value=[],
                        inline=True,
                        className="radio-row",
                    ),
                    html.Span(id=ID_FRAGILE_NOTE, className="muted hint"),
                ],
                className="samples-flags",
            ),
            _control(
                "Sort",
                dcc.Dropdown(
                    id=ID_SORT,
                    options=SORT_OPTIONS,
                    value=SORT_INDEX,
                    clearable=False,
                    searchable=False,
                ),
            ),
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
    attribution = html.Div(
        [
            html.H3("Geometric attribution"),
            html.P(ATTRIBUTION_WHAT, className="muted hint"),
            html.Div(
                [
                    html.Button(
                        BUTTON,
                        id=ID_COMPUTE,
                        n_clicks=0,
                        className="btn btn-primary needs-write",
                        style=HIDDEN,
                    ),
                    html.Span(NEEDS_WRITE, className="muted needs-write-note"),
                    html.Div(id=ID_ATTR_NOTE),
                ],
                className="actions",
            ),
            html.Div(id=ID_PROGRESS),
            html.Div(
                [
                    html.Div(
                        [
                            html.Div(id=ID_ATTR_IMAGE, className="attr-image"),
                            dcc.Graph(
                                id=ID_ATTR_FIG,
                                figure=empty_figure("Loading…"),
                                config=GRAPH_CONFIG,
                                className="attr-graph",
                                style={"height": f"{attribution_height()}px"},
                            ),
                        ],
                        className="attr-row",
                    ),
                    html.H4("Corrupted versions"),
                    html.Div(id=ID_CORRUPTED, className="corrupted-row"),
                ],
                id=ID_ATTR_BODY,
                style=HIDDEN,
            ),
        ],
        className="sample-attribution",
    )
    detail_body = html.Div(
        [
            html.Div(
                [
                    html.Div(id=ID_HEAD, className="sample-head"),
                    html.Button("Close", id=ID_CLOSE, n_clicks=0, className="btn btn-small"),
                ],
                className="sample-head-row",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.H4("Top-5 probabilities"),
                            dcc.Graph(
                                id=ID_TOP5,
                                figure=empty_figure("Loading…"),
                                config=GRAPH_CONFIG,
                                style={"height": "300px"},
                            ),
                        ]
                    ),
                    html.Div(
                        [
                            html.H4("Geometry of its penultimate features"),
                            html.Div(
                                metrics_table({}),
                                id=f"{ID_METRICS}-slot",
                                className="table-scroll",
                            ),
                            html.P(
                                "Hover a metric's name for what it measures.",
                                className="muted hint",
                            ),
                        ]
                    ),
                ],
                className="grid-2",
            ),
            html.H4("Under corruptions"),
            html.Div(id=ID_CORRUPTIONS),
            attribution,
        ],
        id=ID_DETAIL_BODY,
        style=HIDDEN,
    )
    return html.Section(
        [
            html.H2(TITLE),
            html.P(EXPLANATION, className="muted hint"),
            html.Div(id=ID_COUNTS, className="card-row"),
            html.P(COUNTS_NOTE, className="muted hint"),
            html.Div(id=ID_MESSAGE),
            filters,
            html.Div(
                [
                    html.Div(
                        [
                            html.Span(id=ID_SUMMARY),
                            html.Button(
                                "· clear selection",
                                id=ID_CLEAR,
                                n_clicks=0,
                                className="link-button",
                                style=HIDDEN,
                            ),
                        ],
                        className="samples-summary muted",
                    ),
                    pager,
                ],
                className="flips-controls",
            ),
            html.Div(id=ID_GALLERY, className="sample-gallery"),
            html.Div(
                [
                    html.P(DETAIL_EMPTY, id=ID_DETAIL_EMPTY, className="empty"),
                    detail_body,
                ],
                id=ID_DETAIL,
                className="sample-detail",
            ),
            dcc.Store(id=ID_STATE),
            dcc.Store(id=ID_OPEN),
            dcc.Store(id=ID_SCROLL),
            dcc.Store(id=ID_ATTR_INFO),
            dcc.Store(id=ID_JOB),
            dcc.Store(id=ID_DONE),
            dcc.Interval(id=ID_POLL, interval=POLL_INTERVAL_MS, disabled=True),
        ],
        id=ID_SECTION,
        className="section card",
    )


# callbacks ----------------------------------------------------------------------------------


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    app.callback(
        Output(ID_COUNTS, "children"),
        Output(ID_CATEGORY, "value"),
        Output(ID_PIE, "value"),
        Output(ID_FRAGILE, "value"),
        Output(ID_FRAGILE, "options"),
        Output(ID_FRAGILE_NOTE, "children"),
        Output(ID_SORT, "value"),
        Output(ID_STATE, "data"),
        Output(ID_OPEN, "data"),
        Output(ID_MESSAGE, "children"),
        Input(CTX, "data"),
        State(SELECTION, "data"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(init_samples)
    app.callback(
        Output(ID_SUMMARY, "children"),
        Output(ID_GALLERY, "children"),
        Output(ID_PREV, "disabled"),
        Output(ID_NEXT, "disabled"),
        Output(ID_PAGE_LABEL, "children"),
        Output(ID_STATE, "data", allow_duplicate=True),
        Output(ID_CATEGORY, "options"),
        Output(ID_CLEAR, "style"),
        Input(ID_CATEGORY, "value"),
        Input(ID_PIE, "value"),
        Input(ID_FRAGILE, "value"),
        Input(ID_SORT, "value"),
        Input(ID_PREV, "n_clicks"),
        Input(ID_NEXT, "n_clicks"),
        Input(SELECTION, "data"),
        State(ID_STATE, "data"),
        State(CTX, "data"),
        prevent_initial_call=True,
    )(update_gallery)
    app.callback(
        Output(QUERY, "data", allow_duplicate=True),
        Input(ID_STATE, "data"),
        Input(ID_OPEN, "data"),
        State(QUERY, "data"),
        prevent_initial_call=True,
    )(write_samples_query)
    app.callback(
        Output(ID_OPEN, "data", allow_duplicate=True),
        Input({"type": TILE, "index": ALL}, "n_clicks"),
        State(ID_OPEN, "data"),
        prevent_initial_call=True,
    )(_open_clicked)
    app.clientside_callback(
        SCROLL_JS,
        Output(ID_SCROLL, "data"),
        Input({"type": TILE, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    app.callback(
        Output(ID_OPEN, "data", allow_duplicate=True),
        Input(ID_CLOSE, "n_clicks"),
        prevent_initial_call=True,
    )(close_sample)
    app.callback(
        Output(SELECTION, "data", allow_duplicate=True),
        Input(ID_CLEAR, "n_clicks"),
        prevent_initial_call=True,
    )(clear_selection)
    app.callback(
        Output(ID_DETAIL_EMPTY, "style"),
        Output(ID_DETAIL_BODY, "style"),
        Output(ID_HEAD, "children"),
        Output(ID_TOP5, "figure"),
        Output(f"{ID_METRICS}-slot", "children"),
        Output(ID_CORRUPTIONS, "children"),
        Output(ID_ATTR_INFO, "data"),
        Input(ID_OPEN, "data"),
        State(CTX, "data"),
        prevent_initial_call=True,
    )(render_detail)
    app.callback(
        Output(ID_COMPUTE, "style"),
        Output(ID_ATTR_NOTE, "children"),
        Output(ID_PROGRESS, "children"),
        Output(ID_JOB, "data"),
        Output(ID_ATTR_BODY, "style"),
        Output(ID_ATTR_FIG, "figure"),
        Output(ID_ATTR_IMAGE, "children"),
        Output(ID_CORRUPTED, "children"),
        Input(ID_ATTR_INFO, "data"),
        Input(ID_DONE, "data"),
        State(CTX, "data"),
        prevent_initial_call=True,
    )(render_attribution)
    app.callback(
        Output(ID_JOB, "data", allow_duplicate=True),
        Output(ID_PROGRESS, "children", allow_duplicate=True),
        Input(ID_COMPUTE, "n_clicks"),
        State(ID_ATTR_INFO, "data"),
        State(CTX, "data"),
        prevent_initial_call=True,
    )(start_attribution)
    app.callback(
        Output(ID_POLL, "disabled"),
        Output(ID_COMPUTE, "disabled"),
        Input(ID_JOB, "data"),
    )(follow_job)
    app.callback(
        Output(ID_PROGRESS, "children", allow_duplicate=True),
        Output(ID_POLL, "disabled", allow_duplicate=True),
        Output(ID_COMPUTE, "disabled", allow_duplicate=True),
        Output(ID_DONE, "data"),
        Input(ID_POLL, "n_intervals"),
        State(ID_JOB, "data"),
        prevent_initial_call=True,
    )(poll_attribution_job)


def _has_context(context: Mapping[str, Any] | None) -> bool:
    return bool(context) and as_int((context or {}).get("id")) is not None


def _context_class(context: Mapping[str, Any], n: int) -> int | None:
    cls = as_int(context.get("cls"))
    return cls if cls is not None and 0 <= cls < n else None


def _fragile_options(available: bool) -> list[dict[str, Any]]:
    return [{"label": "made fragile by pruning only", "value": ON, "disabled": not available}]


def init_samples(
    context: Mapping[str, Any] | None, current: Mapping[str, Any] | None = None
) -> tuple[Any, ...]:
    """Callback: the count cards, and the filters, page and open sample from the URL query.

    Returns:
        count cards, category, PIE, fragile, fragile options, fragile note, sort, gallery state
        (the settings the gallery starts from), open sample, message.
    """
    if not _has_context(context):
        return ([], FLAGGED, [], [], _fragile_options(False), None, SORT_INDEX, None, None, None)
    assert context is not None
    query = context.get("query") or {}
    category, sort = parse_category(query.get(KEY_CATEGORY)), parse_sort(query.get(KEY_SORT))
    pie = [ON] if parse_flag(query.get(KEY_PIE)) else []
    opened = as_int(query.get(KEY_SAMPLE))
    message = None
    try:
        data = load_data(context)
    except ApiError as exc:
        message = api_error_notice(exc, "the comparison")
        if exc.status == 409:
            message = notice(NOT_READY, "Reload the page once it has.", kind="warning")
        return ([], category, pie, [], _fragile_options(False), None, sort, None, None, message)
    try:
        fetch_table(get_client(), data)
    except ApiError as exc:
        message = api_error_notice(exc, "the flagged samples")
        if exc.status == 409:
            message = notice(NOT_READY, "Reload the page once it has.", kind="warning")
    fragile_ok = data.has_fragility
    fragile = [ON] if fragile_ok and parse_flag(query.get(KEY_FRAGILE)) else []
    state = {
        "category": category,
        "pie": bool(pie),
        "fragile": bool(fragile),
        "sort": sort,
        "sel": selection_key(current),
        "page": parse_page(query.get(KEY_PAGE)),
        "n_prev": 0,
        "n_next": 0,
    }
    return (
        count_cards(data),
        category,
        pie,
        fragile,
        _fragile_options(fragile_ok),
        None if fragile_ok or data.table is None else NO_FRAGILITY,
        sort,
        state,
        opened,
        message,
    )


def _category_options(selection_active: bool) -> list[dict[str, Any]]:
    return [{**o, "disabled": selection_active} for o in CATEGORY_OPTIONS]


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
        summary, gallery children, previous disabled, next disabled, page label, new state,
        category options (disabled while a selection is shown), clear-selection style.
    """
    skip = dash.no_update
    if not _has_context(context) or not state:
        return (skip, skip, True, True, "", skip, skip, HIDDEN)
    assert context is not None
    try:
        data = load_data(context)
        table = fetch_table(get_client(), data)
    except ApiError as exc:
        # the message above the filters says why (init_samples)
        text = "" if exc.status in (404, 409) else f"Not available: {exc.detail}"
        return (text, [], True, True, "", skip, skip, HIDDEN)
    ids = selected_ids(current)
    selecting = bool(ids)
    settings: dict[str, Any] = {
        "category": parse_category(category),
        "pie": parse_flag(pie or []),
        "fragile": parse_flag(fragile or []) and data.has_fragility,
        "sort": parse_sort(sort),
        "sel": selection_key(current),
    }
    clicks_prev, clicks_next = int(n_prev or 0), int(n_next or 0)
    page = int(state.get("page") or 0)
    if any(state.get(k) != v for k, v in settings.items()):
        page = 0
    elif clicks_prev > int(state.get("n_prev") or 0):
        page -= 1
    elif clicks_next > int(state.get("n_next") or 0):
        page += 1
    n_classes = len(data.class_names)
    cls = _context_class(context, n_classes)
    rows = matching_rows(
        table,
        category=settings["category"],
        pie=settings["pie"],
        fragile=settings["fragile"],
        cls=cls,
        selected=ids if selecting else None,
    )
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
    if not records:
        if selecting:
            body: Any = html.P(
                f"None of the {len(ids):,} selected samples match"
                + (f" class {class_name}" if class_name else "")
                + (" and the filters" if settings["pie"] or settings["fragile"] else "")
                + ". Clear the selection to see the flagged samples.",
                className="empty",
            )
        else:
            body = html.P(
                empty_reason(
                    settings["category"], settings["pie"], settings["fragile"], class_name
                ),
                className="empty",
            )
    elif data.images:
        body = html.Div([gallery_tile(data, r) for r in records], className="sample-grid")
    else:
        body = html.Div(gallery_rows(data, records), className="table-scroll")
    return (
        summary,
        body,
        page <= 0,
        page >= pages - 1,
        f"page {page + 1} of {pages}" if rows.size else "",
        new_state,
        _category_options(selecting),
        SHOWN if selecting else HIDDEN,
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
        updates: dict[str, Any] = {KEY_SAMPLE: as_int(opened)}
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
            KEY_SAMPLE: as_int(opened),
        }
    new = merge_settings(query, **updates)
    if new == merge_settings(query):
        return dash.no_update
    return new


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
    index = as_int(triggered.get("index"))
    clicks = {as_int(i.get("index")): n for n, i in zip(n_clicks, ids, strict=False)}
    if index is None or not clicks.get(index):
        return dash.no_update  # a tile appeared (a new page), nobody clicked
    return dash.no_update if as_int(current) == index else index


def _open_clicked(n_clicks: Sequence[int | None], current: Any) -> Any:
    ids = [i["id"] for i in dash.ctx.inputs_list[0]] if dash.ctx.inputs_list else []
    return open_sample(n_clicks, ids, dash.ctx.triggered_id, current)


def close_sample(n_clicks: int | None) -> Any:
    """Callback: "Close" empties the detail panel."""
    return None if n_clicks else dash.no_update


def clear_selection(n_clicks: int | None) -> Any:
    """Callback: "clear selection" clears the linked SELECTION (every view follows)."""
    return None if n_clicks else dash.no_update


def render_detail(opened: Any, context: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """Callback: the open sample's detail (``GET .../samples/{index}``).

    Returns:
        empty-state style, body style, head, top-5 figure, metrics table, corruption grid,
        attribution info (``{"index", "status", "job_id", "progress", "message", "error"}``,
        or None).
    """
    index = as_int(opened)
    skip = dash.no_update
    if index is None or not _has_context(context):
        return (SHOWN, HIDDEN, [], skip, skip, [], None)
    assert context is not None
    try:
        data = load_data(context)
        detail = get_client().get_comparison_sample(int(context["id"]), index, b=data.b)
    except ApiError as exc:
        if exc.status == 404:
            message = notice(
                f"Test sample #{index} not found",
                "The link may name a sample this dataset does not have.",
                kind="warning",
            )
        else:
            message = api_error_notice(exc, f"test sample #{index}")
        return (HIDDEN, SHOWN, [message], empty_figure("No sample."), [], [], None)
    a, b = detail.get("a") or {}, detail.get("b") or {}
    fig = top5_bars(
        a.get("top5") or [],
        b.get("top5") or [],
        data.class_names,
        label_a=data.label_a,
        label_b=data.label_b,
        true_label=detail.get("label"),
        title=None,
    )
    info = dict(detail.get("attribution") or {"status": "none"})
    info["index"] = index
    return (
        HIDDEN,
        SHOWN,
        detail_head(data, detail),
        fig,
        metrics_table(detail),
        corruption_grid(detail.get("corruptions"), data.class_names),
        info,
    )


def render_attribution(
    info: Mapping[str, Any] | None, done: Any, context: Mapping[str, Any] | None
) -> tuple[Any, ...]:
    """Callback: the open sample's attribution: its maps once computed, the job's progress
    while it runs, else the button (with the error of a failed job).

    ``done`` is ``{"index", "job_id"}`` of a followed job that has just succeeded.

    Returns:
        button style, note, progress, followed job, body style, figure, image, corrupted
        thumbnails.
    """
    skip = dash.no_update
    index = as_int((info or {}).get("index"))
    if index is None or not _has_context(context):
        return (HIDDEN, None, None, None, HIDDEN, skip, [], [])
    assert context is not None and info is not None
    status = str(info.get("status") or "none")
    if isinstance(done, Mapping) and as_int(done.get("index")) == index:
        status = "succeeded"
    if status in ACTIVE:
        job = {"id": as_int(info.get("job_id")), "index": index}
        progress = job_line({"id": job["id"], **info})
        return (HIDDEN, None, progress, job, HIDDEN, skip, [], [])
    if status != "succeeded":
        note: Any = html.Span(
            "Runs an attribution job on A and B for this sample; the result is kept.",
            className="muted hint",
        )
        if status in ("failed", "cancelled"):
            note = notice(
                f"The attribution job {status}",
                str(info.get("error") or info.get("message") or "no reason was given"),
                kind="error" if status == "failed" else "warning",
            )
        return (SHOWN, note, None, None, HIDDEN, skip, [], [])
    try:
        data = load_data(context)
        result = get_client().get_attribution(int(context["id"]), index, b=data.b)
    except ApiError as exc:
        if exc.status == 409:  # not computed after all (e.g. removed): offer it again
            return (SHOWN, None, None, None, HIDDEN, skip, [], [])
        return (HIDDEN, api_error_notice(exc, "the attribution"), None, None, HIDDEN, skip, [], [])
    fig = attribution_heatmaps(
        result.get("a") or {},
        result.get("b") or {},
        label_a=data.label_a,
        label_b=data.label_b,
        metrics=result.get("metrics") or ("angle", "length", "margin"),
        base_a=(result.get("base") or {}).get("a"),
        base_b=(result.get("base") or {}).get("b"),
        patch=as_int(result.get("patch")),
        stride=as_int(result.get("stride")),
        rows=result.get("rows"),
        cols=result.get("cols"),
    )
    url = data.image_url(index)
    image = (
        [
            html.Img(
                src=url,
                alt=f"test sample {index}",
                width=str(IMAGE_PX),
                height=str(IMAGE_PX),
                className="sample-img sample-large",
            ),
            html.P(f"Test sample #{index}", className="muted hint"),
        ]
        if url
        else []
    )
    corrupted: list[Any] = corrupted_thumbnails(result.get("corrupted") or [], data.class_names)
    if not corrupted:
        corrupted = [html.P("No corrupted versions: no corruption results.", className="empty")]
    return (HIDDEN, None, None, None, SHOWN, fig, image, corrupted)


def start_attribution(
    n_clicks: int | None, info: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Callback: submit the open sample's attribution job; the job store starts the polling.

    Returns:
        The followed job (``{"id", "index"}``) and the progress panel (the API's refusal when
        it did not accept the job).
    """
    index = as_int((info or {}).get("index"))
    if not n_clicks or index is None or not _has_context(context):
        return dash.no_update, dash.no_update
    assert context is not None
    try:
        data = load_data(context)
        job = get_client().submit_attribution(int(context["id"]), index, b=data.b)
    except ApiError as exc:
        return dash.no_update, api_error_notice(exc, "the attribution job")
    return {"id": int(job["id"]), "index": index}, job_line(job)


def follow_job(job: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """Callback: poll while a job is followed; the button waits for it.

    Returns:
        Interval disabled, button disabled.
    """
    if not job or job.get("id") is None:
        return True, False
    return False, True


def poll_attribution_job(n_intervals: int | None, job: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """Callback: the followed job's progress; when it succeeds the maps are loaded.

    Returns:
        Progress panel, interval disabled, button disabled, and ``done`` (``{"index",
        "job_id"}``, which draws the maps) or no update.
    """
    if not job or job.get("id") is None:
        return dash.no_update, True, False, dash.no_update
    try:
        current: JobPublic = get_client().get_job(int(job["id"]))
    except ApiError as exc:
        return api_error_notice(exc, f"job #{job['id']}"), True, False, dash.no_update
    status = current.get("status")
    if status in ACTIVE:
        return job_line(current), False, True, dash.no_update
    if status == "succeeded":
        done = {"index": as_int(job.get("index")), "job_id": int(current["id"])}
        return None, True, True, done
    error = current.get("error") or f"the job ended as {status}"
    panel = html.Div(
        [
            job_line(current),
            notice(
                f"The attribution job {status}",
                error,
                kind="error" if status == "failed" else "warning",
            ),
        ]
    )
    return panel, True, False, dash.no_update

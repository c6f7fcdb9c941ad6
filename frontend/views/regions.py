"""Compare-page view "Linear regions" (issue 8; SCIENCE.md section 5).

Without results: what linear regions are, and a button that submits a small ``regions`` job
and follows it (:class:`frontend.jobs.CompactFollower`); a job already running for the
comparison is picked up when the page opens. With results (``GET
/api/comparisons/{id}/regions``): headline numbers, the distribution of region counts per
segment and of each sample's distance to the nearest boundary, A next to B, each sample's
certified interval for its distance to the decision boundary (both ends drawn, what each is said
in words), and the exact 2-D region maps of A and B on the same plane through three test samples
(``.../regions/{model_id}/slice``). URL setting: ``reg_count`` (the count drawn; absent for
linear regions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    get_client,
    get_comparison_regions,
    get_comparison_table_columns,
    get_region_map,
    get_region_table_columns,
)
from frontend.components import api_error_notice, notice, stat_card
from frontend.figures.formatting import format_percent, model_label
from frontend.figures.regions import (
    COUNT_METRICS,
    INTERVAL_TITLE,
    decision_interval_figure,
    distance_boxes,
    interval_directions,
    interval_sentence,
    region_count_boxes,
    region_map_figure,
)
from frontend.forms import query_int
from frontend.jobs import CompactFollower, is_active
from frontend.views import view_context
from frontend.views.parts import (
    HIDDEN,
    SELECT_BUTTONS,
    SHOWN,
    Outputs,
    graph,
    graph_config,
    has_context,
    hint,
    not_ready_notice,
    radio,
    register_settings,
    sample_image,
    view_section,
    write_settings,
)

NAME = "regions"
KEY_COUNT = "reg_count"
DEFAULT_COUNT = "linear_pieces"

CTX = view_context(NAME)

ID_SECTION = "compare-regions"
# the regions job the button submits; once it has succeeded, ID_DONE reloads the view
JOB = CompactFollower(ID_SECTION, "regions", announce=True)
ID_COMPUTE, ID_JOB, ID_POLL, ID_PROGRESS, ID_DONE = JOB.ids
follow_job, poll_regions_job = JOB.follow, JOB.poll  # the callbacks
ID_MESSAGE = "compare-regions-message"
ID_INTRO = "compare-regions-intro"
ID_JOB_NOTE = "compare-regions-job-note"
ID_SPEC = "compare-regions-spec"
ID_BODY = "compare-regions-body"
ID_CARDS = "compare-regions-cards"
ID_METRIC = "compare-regions-metric"
ID_COUNTS = "compare-regions-counts"
ID_DISTANCES = "compare-regions-distances"
ID_INTERVALS = "compare-regions-intervals"
ID_INTERVAL_NOTE = "compare-regions-interval-note"
ID_MAP_A = "compare-regions-map-a"
ID_MAP_B = "compare-regions-map-b"
ID_MAP_NOTE = "compare-regions-map-note"
ID_DATA = "compare-regions-data"

TITLE = "Linear regions"
WHAT = (
    "A ReLU network cuts its input space into linear regions, pieces on which it computes a "
    "single affine function; pruning changes how many there are and where their boundaries "
    "run."
)
LEAD = (
    "How pruning changed the network's piecewise-linear structure: regions along segments "
    "between test samples, each sample's distance to the nearest boundary, and the exact "
    "partition of a plane through three test samples."
)
EMPTY_TITLE = "No linear-region results yet"
BUTTON = "Compute linear regions"
# small enough for an interactive wait (digits models: a minute or two); big inputs get less
INTERACTIVE_SPEC: dict[str, Any] = {
    "n_pairs": 2,
    "n_samples": 8,
    "slice_extent": 0.03,
    "slice_max_regions": 5_000,
}
LARGE_INPUT_SPEC: dict[str, Any] = {
    "n_pairs": 1,
    "n_samples": 2,
    "slice_extent": 0.02,
    "slice_max_regions": 2_000,
}
LARGE_INPUT = 1024  # input values (pixels x channels) past which LARGE_INPUT_SPEC applies
SLICE_COLUMNS = ["index", "label", "pred_a", "pred_b", "margin_a", "margin_b"]
MAP_HEIGHT_PX = 560
DIST_HEIGHT_PX = 420
CONTROL_ROW: dict[str, str] = {"margin": "0.75rem 0", "minHeight": "1.6rem"}
COUNT_OPTIONS = [
    {"label": "Linear regions", "value": "linear_pieces"},
    {"label": "Activation regions", "value": "activation_pieces"},
    {"label": "Class changes", "value": "decision_crossings"},
]
INTERVAL_LEAD = (
    "Each test sample's distance to the decision boundary is known to lie between two ends, "
    "drawn as a segment (a diamond where both agree):"
)
MAP_NOTE = (
    "The exact partition of the plane x = p0 + u (p1 − p0) + v (p2 − p0) near test sample p0: "
    "thin grey lines are region boundaries, colours the predicted class, the black line the "
    "decision boundary. Same plane for A and B."
)
GRAPH_CONFIG = graph_config(*SELECT_BUTTONS)  # zoom in to the maps' small regions


# pure helpers -------------------------------------------------------------------------------


def parse_count(value: Any) -> str:
    """``reg_count``: one of ``COUNT_METRICS``, else the default (linear regions)."""
    return str(value) if value in COUNT_METRICS else DEFAULT_COUNT


def interactive_spec(input_shape: Sequence[int] | None) -> dict[str, Any]:
    """The button's job spec (beyond ``comparison_id``): small, smaller for large inputs."""
    size = 1
    for d in input_shape or []:
        size *= int(d)
    return dict(LARGE_INPUT_SPEC if size > LARGE_INPUT else INTERACTIVE_SPEC)


def pick_slice_samples(table: Mapping[str, Sequence[Any]]) -> list[int] | None:
    """Three test samples for the region map, so that a decision boundary crosses it.

    The map covers a small neighbourhood of p0, so p0 is the sample closest to both models'
    decision boundaries (smallest max(|margin_a|, |margin_b|)), preferably one whose prediction
    pruning flipped; p1 is a sample of the class it is confused with (the other prediction,
    else the lowest other class) and p2 one of a third class, both predicted right by A and B.

    Args:
        table: comparison-table columns ``SLICE_COLUMNS``.

    Returns:
        ``[p0, p1, p2]`` test-sample indices, or None when the table cannot provide them.
    """
    try:
        rows = [
            (int(i), int(y), int(pa), int(pb), abs(float(ma)), abs(float(mb)))
            for i, y, pa, pb, ma, mb in zip(*(table[c] for c in SLICE_COLUMNS), strict=True)
            if None not in (i, y, pa, pb, ma, mb)
        ]
    except (KeyError, TypeError, ValueError):
        return None
    if not rows:
        return None
    flipped = [r for r in rows if r[2] != r[3]]
    i0, y0, pa, pb, *_ = min(flipped or rows, key=lambda r: (max(r[4], r[5]), r[0]))
    classes = sorted({r[1] for r in rows})
    others = [c for c in (pb, pa) if c != y0] + [c for c in classes if c != y0]
    k1 = others[0] if others else None
    k2 = next((c for c in classes if c not in (y0, k1)), None)
    if k1 is None or k2 is None:
        return None
    picked = [i0]
    for k in (k1, k2):
        sure = [r for r in rows if r[1] == k and r[2] == k and r[3] == k]
        pool = sure or [r for r in rows if r[1] == k]
        if not pool:
            return None
        picked.append(min(pool, key=lambda r: r[0])[0])
    return picked


def spec_text(spec: Mapping[str, Any]) -> str:
    """The button's job in words."""
    plane = "three test samples"
    if spec.get("slice_samples"):
        p0, p1, p2 = (int(i) for i in spec["slice_samples"])
        plane = f"test #{p0} (near both decision boundaries), #{p1} and #{p2}"
    return (
        f"Runs a regions job on A and B: {spec.get('n_pairs')} segments of each kind, "
        f"{spec.get('n_samples')} test samples for the distances, and a map of the plane "
        f"through {plane} (at most {int(spec.get('slice_max_regions') or 0):,} regions). "
        "For larger runs submit "
    )


def active_job(jobs: Sequence[Mapping[str, Any]], comparison_id: int) -> Mapping[str, Any] | None:
    """The latest queued or running regions job of the comparison, if any."""
    found = [
        j
        for j in jobs
        if j.get("kind") == "regions"
        and (j.get("spec") or {}).get("comparison_id") == comparison_id
        and is_active(j)
    ]
    return max(found, key=lambda j: int(j["id"])) if found else None


def _at(value: Any, *path: str) -> float | None:
    for key in path:
        value = (value or {}).get(key)
    return None if value is None else float(value)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if value != 0 and abs(value) < 1e-2:
        return f"{value:.{digits - 1}e}"  # distances in input units are often ~1e-4
    return f"{value:.{digits}g}"


def _dead_rate(result: Mapping[str, Any]) -> float | None:
    rates = list((result.get("dead_neuron_rate") or {}).values())
    return sum(rates) / len(rates) if rates else None


def _segments(kind: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda r: _at(r, "segments", kind, "linear_pieces", "mean")


PIECES_HELP = "pieces along a segment on which the network is affine"
# title, value of one result, its format, whether B/A is shown, the tooltip
CARDS: tuple[tuple[str, Callable[[Mapping[str, Any]], float | None], Callable, bool, str], ...] = (
    (
        "Linear regions per segment, across classes (mean)",
        _segments("across_class"),
        _num,
        True,
        PIECES_HELP,
    ),
    ("Linear regions per segment, short local (mean)", _segments("local"), _num, True, PIECES_HELP),
    (
        "Activation regions in the 2-D map",
        lambda r: _at(r, "slice", "n_patterns"),
        lambda v: "—" if v is None else f"{int(v):,}",
        True,
        "distinct activation patterns met by the plane through the three samples",
    ),
    (
        "Distance to region boundary (median)",
        lambda r: _at(r, "samples", "region_distance", "median"),
        _num,
        True,
        "L2 distance from a test sample to the boundary of its activation region",
    ),
    (
        "Dead ReLU outputs (mean over layers)",
        _dead_rate,
        format_percent,
        False,
        "share of ReLU outputs that are zero on the measured test samples",
    ),
)


def region_cards(result_a: Mapping[str, Any], result_b: Mapping[str, Any]) -> list[html.Div]:
    """Headline numbers of A and B: regions per segment, map regions, distance, dead units;
    each card's wrapper carries its one-line explanation as a tooltip."""
    cards = []
    for title, value, fmt, ratio, help_text in CARDS:
        a, b = value(result_a), value(result_b)
        delta = f"B/A = {b / a:.2f}" if ratio and a and b is not None else None
        cards.append(html.Div(stat_card(title, fmt(a), fmt(b), delta), title=help_text))
    return cards


def sample_names(samples: Sequence[int] | None) -> list[str]:
    """Names of p0, p1, p2 on the maps: ``"p0: test #12"``."""
    return [f"p{k}: test #{int(i)}" for k, i in enumerate(samples or [])] or ["p0", "p1", "p2"]


def map_note(
    region_map: Mapping[str, Any], dataset: Mapping[str, Any] | None, result: Mapping[str, Any]
) -> list[Any]:
    """The plane's three samples (with their images when the dataset has them) and the map's
    counts."""
    samples = [int(i) for i in region_map.get("samples") or []]
    children: list[Any] = [hint(MAP_NOTE)]
    if samples and dataset and len(dataset.get("input_shape") or []) in (2, 3):
        figures = [
            html.Figure(
                [
                    sample_image(
                        ApiClient.dataset_image_path(int(dataset["id"]), "test", i),
                        f"test sample {i}",
                        56,
                        "sample-img",
                        style={"imageRendering": "pixelated"},
                    ),
                    html.Figcaption(f"p{k}: test #{i}", className="muted hint"),
                ],
                style={"margin": "0", "textAlign": "center"},
            )
            for k, i in enumerate(samples)
        ]
        row = {"display": "flex", "gap": "1rem", "margin": "0.5rem 0"}
        children.append(html.Div(figures, style=row))
    s = result.get("slice") or {}
    if s.get("truncated"):
        n = int(s.get("n_polygons") or 0)
        children.append(hint(f"The map holds {n:,} polygons; the largest are drawn."))
    return children


# data ---------------------------------------------------------------------------------------


def interval_note(samples_a: Mapping[str, Any], samples_b: Mapping[str, Any]) -> list[Any]:
    """What each end of the decision interval is, with the number of directions walked (the
    most for one sample, from the tables' ``decision_rays``)."""
    n = interval_directions(samples_a, samples_b)
    return [hint([INTERVAL_LEAD, " ", interval_sentence(n)])]


def _map_or_error(client: ApiClient, comparison_id: int, model_id: int) -> dict[str, Any]:
    try:
        return dict(get_region_map(client, comparison_id, model_id))
    except ApiError as exc:
        return {"error": exc.detail}


def _unsupported(side: str, model: Mapping[str, Any]) -> html.Div | None:
    reason = str(model.get("regions_unsupported") or "")
    if not reason:
        return None
    return notice(
        f"No linear regions for {side}: {model.get('architecture', '')}",
        f"{reason[0].upper()}{reason[1:]}. Linear-region statistics need a piecewise-linear "
        "network the exact counter can follow (README, Linear regions).",
        kind="info",
    )


def _empty(client: ApiClient, comparison_id: int, b_id: int, spec: dict[str, Any]) -> Any:
    """The empty state's job already running, and the plane of the job the button offers."""
    try:
        job = active_job(client.list_jobs(), comparison_id)
    except ApiError:
        job = None
    try:
        columns = list(SLICE_COLUMNS)
        table = get_comparison_table_columns(client, comparison_id, b=b_id, columns=columns)
        picked = pick_slice_samples(table["columns"])
    except ApiError:
        picked = None  # the job's default plane (first samples of three classes)
    if picked is not None:
        spec["slice_samples"] = picked
    return job


def fetch_regions(context: Mapping[str, Any]) -> dict[str, Any]:
    """What the view shows for the CONTEXT's comparison and B.

    Returns:
        ``{"state": "results", ...}`` with tables and maps; ``{"state": "empty", "job": ...,
        "spec": ...}`` before a regions job has finished; ``{"state": "error", "message": ...}``.
    """
    client, comparison_id = get_client(), int(context["id"])
    try:
        view = client.get_comparison_view(comparison_id, b=query_int(context.get("b")))
    except ApiError as exc:
        title = "Regions appear once A and B are analysed."
        return {
            "state": "error",
            "message": not_ready_notice(exc, "the comparison", title, kind="info"),
        }
    dataset = view.get("dataset") or {}
    spec = interactive_spec(dataset.get("input_shape"))
    model_a, model_b = view["model_a"], view["model_b"]
    a_id, b_id = int(model_a["id"]), int(model_b["id"])
    # say why instead of offering a job that the server would refuse
    unsupported = _unsupported("A", model_a) or _unsupported("B", model_b)
    if unsupported is not None:
        return {"state": "error", "message": unsupported}
    try:
        results = get_comparison_regions(client, comparison_id)
    except ApiError as exc:
        if exc.status != 409:
            return {"state": "error", "message": api_error_notice(exc, "the linear regions")}
        results = []
    result_a, result_b = (
        next((r for r in results if r.get("model_id") == m), None) for m in (a_id, b_id)
    )
    if result_a is None or result_b is None:
        job = _empty(client, comparison_id, b_id, spec)
        return {"state": "empty", "spec": spec, "job": job, "partial": bool(results)}
    try:
        tables = {
            f"{which}_{side}": get_region_table_columns(client, comparison_id, mid, which)
            for side, mid in (("a", a_id), ("b", b_id))
            for which in ("segments", "samples")
        }
    except ApiError as exc:
        return {"state": "error", "message": api_error_notice(exc, "the region tables")}
    return {
        "state": "results",
        "spec": spec,
        "dataset": dataset,
        "result_a": result_a,
        "result_b": result_b,
        "map_a": _map_or_error(client, comparison_id, a_id),
        "map_b": _map_or_error(client, comparison_id, b_id),
        "label_a": f"A: {model_a['name']}",
        "label_b": f"B: {model_label(model_b)}",
        **tables,
    }


# layout -------------------------------------------------------------------------------------


def _graph(graph_id: str, title: str, height: int = DIST_HEIGHT_PX) -> dcc.Graph:
    return graph(graph_id, title, height, GRAPH_CONFIG)


def section() -> html.Section:
    """The view's skeleton: the empty state with its button, and the results (hidden)."""
    write_note = html.Span(
        "Computing them needs a write token.", className="muted needs-write-note"
    )
    intro = html.Div(
        [
            html.Strong(EMPTY_TITLE),
            html.P(WHAT),
            html.Div(
                [JOB.button(BUTTON), write_note, html.Span(id=ID_JOB_NOTE, className="muted hint")],
                className="actions",
            ),
            html.Div(id=ID_PROGRESS, style={"marginTop": "0.75rem"}),
        ],
        id=ID_INTRO,
        className="notice notice-info",
        style=HIDDEN,
    )
    hover = html.Span("Each point a test sample; hover for what it measures.", className="muted")
    charts = [
        (
            radio(ID_METRIC, COUNT_OPTIONS, DEFAULT_COUNT),
            _graph(ID_COUNTS, "Regions along segments"),
        ),
        (hover, _graph(ID_DISTANCES, "Distance to the nearest boundary")),
    ]
    intervals = html.Div([html.Div(id=ID_INTERVAL_NOTE), _graph(ID_INTERVALS, INTERVAL_TITLE)])
    maps = [
        _graph(i, f"{side}: region map", MAP_HEIGHT_PX)
        for i, side in ((ID_MAP_A, "A"), (ID_MAP_B, "B"))
    ]
    results = html.Div(
        [
            html.Div(id=ID_CARDS, className="card-row"),
            html.Div(
                [html.Div([html.Div(top, style=CONTROL_ROW), chart]) for top, chart in charts],
                className="grid-2",
            ),
            intervals,
            html.H3("Exact 2-D region maps"),
            html.Div(maps, className="grid-2"),
            html.Div(id=ID_MAP_NOTE),
        ],
        id=ID_BODY,
        style=HIDDEN,
    )
    stores = [*JOB.stores(), dcc.Store(id=ID_SPEC), dcc.Store(id=ID_DATA)]
    return view_section(ID_SECTION, TITLE, LEAD, html.Div(id=ID_MESSAGE), intro, results, *stores)


# callbacks ----------------------------------------------------------------------------------

# load_regions' outputs, and what they say when the view shows nothing
LOADED = Outputs(
    message=(ID_MESSAGE, "children", None),
    intro=(ID_INTRO, "style", HIDDEN),
    body=(ID_BODY, "style", HIDDEN),
    spec=(ID_SPEC, "data", None),
    note=(ID_JOB_NOTE, "children", None),
    job=(ID_JOB, "data", None),
    data=(ID_DATA, "data", None),
    cards=(ID_CARDS, "children", []),
    distances=(ID_DISTANCES, "figure", dash.no_update),
    map_a=(ID_MAP_A, "figure", dash.no_update),
    map_b=(ID_MAP_B, "figure", dash.no_update),
    map_note=(ID_MAP_NOTE, "children", []),
    metric=(ID_METRIC, "value", dash.no_update),
    intervals=(ID_INTERVALS, "figure", dash.no_update),
    interval_note=(ID_INTERVAL_NOTE, "children", []),
)


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    LOADED.register(app, load_regions, Input(CTX, "data"), Input(ID_DONE, "data"), lazy=True)
    app.callback(
        Output(ID_COUNTS, "figure"),
        Input(ID_DATA, "data"),
        Input(ID_METRIC, "value"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(render_counts)
    register_settings(app, store_count, Input(ID_METRIC, "value"))
    JOB.register(app, start_regions_job, State(CTX, "data"), State(ID_SPEC, "data"))


def load_regions(context: Mapping[str, Any] | None, done: Any = None) -> tuple[Any, ...]:
    """Callback: the results of the CONTEXT's A and B, or the empty state with its button;
    again when a followed job has succeeded (``done``).

    Returns:
        The values of :data:`LOADED`'s outputs, in its order.
    """
    if not has_context(context):
        return LOADED()
    found = fetch_regions(context)
    metric = parse_count((context.get("query") or {}).get(KEY_COUNT))
    if found["state"] == "error":
        return LOADED(message=found["message"])
    spec = found["spec"]
    code = html.Code('POST /api/jobs {"kind": "regions", ...}')
    note = [spec_text(spec), code, " (README, Linear regions)."]
    if found["state"] == "empty":
        job, message = found.get("job"), None
        if found.get("partial"):
            message = notice(
                "These region results do not cover this A and B",
                "Compute them again to include the selected pruned model.",
                kind="warning",
            )
        followed = (
            None if job is None else {"id": int(job["id"]), "comparison_id": int(context["id"])}
        )
        return LOADED(
            message=message, intro=SHOWN, spec=spec, note=note, job=followed, metric=metric
        )
    class_names = list((found.get("dataset") or {}).get("class_names") or [])
    label_a, label_b = found["label_a"], found["label_b"]
    map_a, map_b = found["map_a"], found["map_b"]
    names = sample_names(
        map_a.get("samples") or (found["result_a"].get("slice") or {}).get("samples")
    )
    data = {k: found[k] for k in ("segments_a", "segments_b", "label_a", "label_b")}
    return LOADED(
        body=SHOWN,
        spec=spec,
        note=note,
        data=data,
        cards=region_cards(found["result_a"], found["result_b"]),
        distances=distance_boxes(found["samples_a"], found["samples_b"], label_a, label_b),
        intervals=decision_interval_figure(
            found["samples_a"], found["samples_b"], label_a, label_b, class_names
        ),
        interval_note=interval_note(found["samples_a"], found["samples_b"]),
        map_a=region_map_figure(map_a, class_names, f"{label_a}: region map", names),
        map_b=region_map_figure(map_b, class_names, f"{label_b}: region map", names),
        map_note=map_note(map_a, found.get("dataset"), found["result_a"]),
        metric=metric,
    )


def render_counts(data: Mapping[str, Any] | None, metric: Any) -> Any:
    """Callback: the per-segment count distribution of A and B for the chosen count."""
    if not data:
        return dash.no_update
    return region_count_boxes(
        data.get("segments_a") or {},
        data.get("segments_b") or {},
        str(data.get("label_a", "A")),
        str(data.get("label_b", "B")),
        metric=parse_count(metric),
    )


def store_count(metric: Any, query: Mapping[str, Any] | None) -> Any:
    """Callback: the chosen count into the URL query (``reg_count``; absent for the default)."""
    value = parse_count(metric)
    return write_settings(query, **{KEY_COUNT: None if value == DEFAULT_COUNT else value})


def start_regions_job(
    n_clicks: int | None, context: Mapping[str, Any] | None, spec: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Callback: submit the comparison's regions job (``{"id", "comparison_id"}`` followed) and
    its first progress line, or the API's refusal."""
    if not n_clicks or not has_context(context):
        return dash.no_update, dash.no_update
    comparison_id = int(context["id"])
    job_spec = {"comparison_id": comparison_id, **(spec or INTERACTIVE_SPEC)}
    return JOB.start(job_spec, comparison_id=comparison_id)

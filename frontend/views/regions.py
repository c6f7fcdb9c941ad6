"""Compare-page view "Linear regions" (issue 8; SCIENCE.md section 5).

Without results: what linear regions are, and a button that submits a small ``regions`` job
(``POST /api/jobs``) and follows its progress (``dcc.Interval`` polling ``GET /api/jobs/{id}``);
a job already running for the comparison is picked up when the page opens. With results
(``GET /api/comparisons/{id}/regions``): headline numbers, the distribution of region counts per
segment and of each sample's distance to the nearest region and decision boundary, A next to B,
and the exact 2-D region maps of A and B on the same plane through three test samples
(``.../regions/{model_id}/slice``). Settings in the URL query: ``reg_count`` (the count drawn;
absent for linear regions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    RegionResult,
    create_regions_job,
    get_client,
    get_comparison_regions,
    get_comparison_table_columns,
    get_region_map,
    get_region_table_columns,
)
from frontend.components import api_error_notice, job_line, notice, stat_card
from frontend.figures.formatting import format_percent, model_label
from frontend.figures.regions import (
    COUNT_METRICS,
    distance_boxes,
    region_count_boxes,
    region_map_figure,
)
from frontend.forms import query_int
from frontend.jobs import ACTIVE_STATUSES
from frontend.views import merge_settings, view_context
from frontend.views.parts import (
    HIDDEN,
    SELECT_BUTTONS,
    SHOWN,
    ViewJob,
    graph,
    graph_config,
    has_context,
    not_ready_notice,
    radio,
    register_settings,
    sample_image,
    view_section,
)

NAME = "regions"
KEY_COUNT = "reg_count"
DEFAULT_COUNT = "linear_pieces"

CTX = view_context(NAME)

ID_SECTION = "compare-regions"
ID_MESSAGE = "compare-regions-message"
ID_INTRO = "compare-regions-intro"
ID_JOB_NOTE = "compare-regions-job-note"
# the regions job the button submits, followed until it ends; once it has succeeded, its id
# (in ID_DONE) reloads the view
JOB = ViewJob(
    "compare-regions", "regions", lambda _, job: (job_line(job), int(job["id"])), announce=True
)
ID_COMPUTE, ID_JOB, ID_POLL = JOB.compute, JOB.job, JOB.poll_id
ID_PROGRESS, ID_DONE = JOB.progress, JOB.done
follow_job, poll_regions_job = JOB.follow, JOB.poll  # the callbacks
ID_SPEC = "compare-regions-spec"
ID_BODY = "compare-regions-body"
ID_CARDS = "compare-regions-cards"
ID_METRIC = "compare-regions-metric"
ID_COUNTS = "compare-regions-counts"
ID_DISTANCES = "compare-regions-distances"
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
        table: comparison-table columns ``index``, ``label``, ``pred_a``, ``pred_b``,
            ``margin_a``, ``margin_b``.

    Returns:
        ``[p0, p1, p2]`` test-sample indices, or None when the table cannot provide them.
    """
    try:
        rows = [
            (int(i), int(y), int(pa), int(pb), abs(float(ma)), abs(float(mb)))
            for i, y, pa, pb, ma, mb in zip(
                *(table[c] for c in SLICE_COLUMNS),
                strict=True,
            )
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
        and j.get("status") in ACTIVE_STATUSES
    ]
    return max(found, key=lambda j: int(j["id"])) if found else None


def _mean(stats: Mapping[str, Any] | None, key: str = "mean") -> float | None:
    value = (stats or {}).get(key)
    return None if value is None else float(value)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if value != 0 and abs(value) < 1e-2:
        return f"{value:.{digits - 1}e}"  # distances in input units are often ~1e-4
    return f"{value:.{digits}g}"


def _ratio(a: float | None, b: float | None) -> str | None:
    if a is None or b is None or a == 0:
        return None
    return f"B/A = {b / a:.2f}"


def _card(title: str, value_a: str, value_b: str, delta: str | None, help_text: str) -> html.Div:
    # the wrapper carries the one-line explanation as a tooltip
    return html.Div(stat_card(title, value_a, value_b, delta), title=help_text)


def region_cards(result_a: Mapping[str, Any], result_b: Mapping[str, Any]) -> list[html.Div]:
    """Headline numbers of A and B: regions per segment, map regions, distance, dead units."""
    cards = []
    for kind, label in (("across_class", "across classes"), ("local", "short local")):
        a = _mean(((result_a.get("segments") or {}).get(kind) or {}).get("linear_pieces"))
        b = _mean(((result_b.get("segments") or {}).get(kind) or {}).get("linear_pieces"))
        cards.append(
            _card(
                f"Linear regions per segment, {label} (mean)",
                _num(a),
                _num(b),
                _ratio(a, b),
                "pieces along a segment on which the network is affine",
            )
        )
    sa, sb = result_a.get("slice") or {}, result_b.get("slice") or {}
    na, nb = sa.get("n_patterns"), sb.get("n_patterns")
    cards.append(
        _card(
            "Activation regions in the 2-D map",
            "—" if na is None else f"{int(na):,}",
            "—" if nb is None else f"{int(nb):,}",
            _ratio(None if na is None else float(na), None if nb is None else float(nb)),
            "distinct activation patterns met by the plane through the three samples",
        )
    )
    da = _mean((result_a.get("samples") or {}).get("region_distance"), "median")
    db = _mean((result_b.get("samples") or {}).get("region_distance"), "median")
    cards.append(
        _card(
            "Distance to region boundary (median)",
            _num(da),
            _num(db),
            _ratio(da, db),
            "L2 distance from a test sample to the boundary of its activation region",
        )
    )
    dead_a = list((result_a.get("dead_neuron_rate") or {}).values())
    dead_b = list((result_b.get("dead_neuron_rate") or {}).values())
    cards.append(
        _card(
            "Dead ReLU outputs (mean over layers)",
            format_percent(sum(dead_a) / len(dead_a) if dead_a else None),
            format_percent(sum(dead_b) / len(dead_b) if dead_b else None),
            None,
            "share of ReLU outputs that are zero on the measured test samples",
        )
    )
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
    children: list[Any] = [html.P(MAP_NOTE, className="muted hint")]
    shape = (dataset or {}).get("input_shape") or []
    if samples and dataset and len(shape) in (2, 3):
        figures = []
        for k, i in enumerate(samples):
            figures.append(
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
            )
        children.append(
            html.Div(figures, style={"display": "flex", "gap": "1rem", "margin": "0.5rem 0"})
        )
    s = result.get("slice") or {}
    if s.get("truncated"):
        children.append(
            html.P(
                f"The map holds {int(s.get('n_polygons') or 0):,} polygons; the largest are drawn.",
                className="muted hint",
            )
        )
    return children


# data ---------------------------------------------------------------------------------------


def _results_of(results: Sequence[RegionResult], model_id: int) -> RegionResult | None:
    for r in results:
        if r.get("model_id") == model_id:
            return r
    return None


def _map_or_error(client: ApiClient, comparison_id: int, model_id: int) -> dict[str, Any]:
    try:
        return dict(get_region_map(client, comparison_id, model_id))
    except ApiError as exc:
        return {"error": exc.detail}


def fetch_regions(context: Mapping[str, Any]) -> dict[str, Any]:
    """What the view shows for the CONTEXT's comparison and B.

    Returns:
        ``{"state": "results", ...}`` with tables and maps; ``{"state": "empty", "job": ...,
        "spec": ...}`` before a regions job has finished; ``{"state": "error", "message": ...}``.
    """
    client = get_client()
    comparison_id = int(context["id"])
    b = query_int(context.get("b"))
    try:
        view = client.get_comparison_view(comparison_id, b=b)
    except ApiError as exc:
        title = "Regions appear once A and B are analysed."
        message = not_ready_notice(exc, "the comparison", title, kind="info")
        return {"state": "error", "message": message}
    dataset = view.get("dataset") or {}
    spec = interactive_spec(dataset.get("input_shape"))
    a_id, b_id = int(view["model_a"]["id"]), int(view["model_b"]["id"])
    for side, model in (("A", view["model_a"]), ("B", view["model_b"])):
        reason = str(model.get("regions_unsupported") or "")
        if reason:  # say why instead of offering a job that the server would refuse
            return {
                "state": "error",
                "message": notice(
                    f"No linear regions for {side}: {model.get('architecture', '')}",
                    f"{reason[0].upper()}{reason[1:]}. Linear-region statistics need a "
                    "piecewise-linear network the exact counter can follow (README, Linear "
                    "regions).",
                    kind="info",
                ),
            }
    labels = {
        "label_a": f"A: {view['model_a']['name']}",
        "label_b": f"B: {model_label(view['model_b'])}",
    }
    try:
        results = get_comparison_regions(client, comparison_id)
    except ApiError as exc:
        if exc.status != 409:
            return {"state": "error", "message": api_error_notice(exc, "the linear regions")}
        results = []
    result_a, result_b = _results_of(results, a_id), _results_of(results, b_id)
    if result_a is None or result_b is None:
        try:
            job = active_job(client.list_jobs(), comparison_id)
        except ApiError:
            job = None
        try:
            table = get_comparison_table_columns(
                client, comparison_id, b=b_id, columns=list(SLICE_COLUMNS)
            )
            picked = pick_slice_samples(table["columns"])
        except ApiError:
            picked = None  # the job's default plane (first samples of three classes)
        if picked is not None:
            spec["slice_samples"] = picked
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
        **tables,
        **labels,
    }


# layout -------------------------------------------------------------------------------------


def _graph(graph_id: str, title: str, height: int) -> dcc.Graph:
    return graph(graph_id, title, height, GRAPH_CONFIG)


def section() -> html.Section:
    """The view's skeleton: the empty state with its button, and the results (hidden)."""
    intro = html.Div(
        [
            html.Strong(EMPTY_TITLE),
            html.P(WHAT),
            html.Div(
                [
                    JOB.button(BUTTON),
                    html.Span(
                        "Computing them needs a write token.", className="muted needs-write-note"
                    ),
                    html.Span(id=ID_JOB_NOTE, className="muted hint"),
                ],
                className="actions",
            ),
            html.Div(id=ID_PROGRESS, style={"marginTop": "0.75rem"}),
        ],
        id=ID_INTRO,
        className="notice notice-info",
        style=HIDDEN,
    )
    hover = html.Span("Each point a test sample; hover for what it measures.", className="muted")
    results = html.Div(
        [
            html.Div(id=ID_CARDS, className="card-row"),
            html.Div(
                [
                    html.Div(
                        [
                            html.Div(
                                radio(ID_METRIC, COUNT_OPTIONS, DEFAULT_COUNT), style=CONTROL_ROW
                            ),
                            _graph(ID_COUNTS, "Regions along segments", DIST_HEIGHT_PX),
                        ]
                    ),
                    html.Div(
                        [
                            html.Div(hover, style=CONTROL_ROW),
                            _graph(
                                ID_DISTANCES, "Distance to the nearest boundary", DIST_HEIGHT_PX
                            ),
                        ]
                    ),
                ],
                className="grid-2",
            ),
            html.H3("Exact 2-D region maps"),
            html.Div(
                [
                    _graph(ID_MAP_A, "A: region map", MAP_HEIGHT_PX),
                    _graph(ID_MAP_B, "B: region map", MAP_HEIGHT_PX),
                ],
                className="grid-2",
            ),
            html.Div(id=ID_MAP_NOTE),
        ],
        id=ID_BODY,
        style=HIDDEN,
    )
    stores = [*JOB.stores(), dcc.Store(id=ID_SPEC), dcc.Store(id=ID_DATA)]
    return view_section(ID_SECTION, TITLE, LEAD, html.Div(id=ID_MESSAGE), intro, results, *stores)


# callbacks ----------------------------------------------------------------------------------


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    app.callback(
        Output(ID_MESSAGE, "children"),
        Output(ID_INTRO, "style"),
        Output(ID_BODY, "style"),
        Output(ID_SPEC, "data"),
        Output(ID_JOB_NOTE, "children"),
        Output(ID_JOB, "data"),
        Output(ID_DATA, "data"),
        Output(ID_CARDS, "children"),
        Output(ID_DISTANCES, "figure"),
        Output(ID_MAP_A, "figure"),
        Output(ID_MAP_B, "figure"),
        Output(ID_MAP_NOTE, "children"),
        Output(ID_METRIC, "value"),
        Input(CTX, "data"),
        Input(ID_DONE, "data"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(load_regions)
    app.callback(
        Output(ID_COUNTS, "figure"),
        Input(ID_DATA, "data"),
        Input(ID_METRIC, "value"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(render_counts)
    register_settings(app, store_count, Input(ID_METRIC, "value"))
    JOB.register(app, start_regions_job, State(CTX, "data"), State(ID_SPEC, "data"))


def _loaded(**values: Any) -> tuple[Any, ...]:
    """:func:`load_regions`' answer: ``values`` over those of a view that shows nothing."""
    skip = dash.no_update
    out: dict[str, Any] = {
        "message": None,
        "intro": HIDDEN,
        "body": HIDDEN,
        "spec": None,
        "note": None,
        "job": None,
        "data": None,
        "cards": [],
        "distances": skip,
        "map_a": skip,
        "map_b": skip,
        "map_note": [],
        "metric": skip,
    }
    return tuple({**out, **values}.values())


def load_regions(context: Mapping[str, Any] | None, done: Any = None) -> tuple[Any, ...]:
    """Callback: the results of the CONTEXT's A and B, or the empty state with its button.

    Runs when the page opens and again when a followed job has finished (``done``).

    Returns:
        message, intro style, body style, job spec, spec note, followed job, segment data (for
        the count chart), cards, distance figure, map of A, map of B, map note, count setting.
    """
    if not has_context(context):
        return _loaded()
    found = fetch_regions(context)
    metric = parse_count((context.get("query") or {}).get(KEY_COUNT))
    if found["state"] == "error":
        return _loaded(message=found["message"])
    spec = found["spec"]
    note = [
        spec_text(spec),
        html.Code('POST /api/jobs {"kind": "regions", ...}'),
        " (README, Linear regions).",
    ]
    if found["state"] == "empty":
        job = found.get("job")
        message = None
        if found.get("partial"):
            message = notice(
                "These region results do not cover this A and B",
                "Compute them again to include the selected pruned model.",
                kind="warning",
            )
        job_store = (
            None if job is None else {"id": int(job["id"]), "comparison_id": int(context["id"])}
        )
        return _loaded(
            message=message, intro=SHOWN, spec=spec, note=note, job=job_store, metric=metric
        )
    class_names = list((found.get("dataset") or {}).get("class_names") or [])
    label_a, label_b = found["label_a"], found["label_b"]
    map_a, map_b = found["map_a"], found["map_b"]
    names = sample_names(
        map_a.get("samples") or (found["result_a"].get("slice") or {}).get("samples")
    )
    data = {
        "segments_a": found["segments_a"],
        "segments_b": found["segments_b"],
        "label_a": label_a,
        "label_b": label_b,
    }
    return _loaded(
        body=SHOWN,
        spec=spec,
        note=note,
        data=data,
        cards=region_cards(found["result_a"], found["result_b"]),
        distances=distance_boxes(found["samples_a"], found["samples_b"], label_a, label_b),
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
    current = parse_count((query or {}).get(KEY_COUNT))
    if value == current:
        return dash.no_update
    return merge_settings(query, **{KEY_COUNT: None if value == DEFAULT_COUNT else value})


def start_regions_job(
    n_clicks: int | None, context: Mapping[str, Any] | None, spec: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Callback: submit the regions job of the comparison; the job store starts the polling.

    Returns:
        The followed job (``{"id", "comparison_id"}``) and the progress panel (the API's refusal
        when it did not accept the job).
    """
    if not n_clicks or not has_context(context):
        return dash.no_update, dash.no_update
    comparison_id = int(context["id"])
    job_spec = dict(spec or INTERACTIVE_SPEC)
    return JOB.start(
        lambda: create_regions_job(get_client(), comparison_id, **job_spec),
        comparison_id=comparison_id,
    )

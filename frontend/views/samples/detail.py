"""A flagged sample's detail, opened from the gallery (the ID_OPEN store): its image, both
models' top-5 probabilities, its angle, length and margin in A and B, its k nearest test
samples in A and in B side by side (the neighbourhood change, SCIENCE.md sect. 7; a click on
one opens it), its outcome under every corruption and, on demand, its geometric attribution
(occlusion maps of the change of the three metrics, computed by an ``attribution`` job and
kept by the API).

Data: ``GET /api/comparisons/{id}/samples/{index}`` for the detail,
``.../neighbours/{index}`` for the neighbours and ``.../samples/{index}/attribution`` for the
maps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import ApiError, get_client
from frontend.components import api_error_notice, download_link, notice
from frontend.figures._common import empty_figure
from frontend.figures.formatting import format_percent
from frontend.figures.samples import attribution_heatmaps, attribution_height, top5_bars
from frontend.forms import query_int
from frontend.jobs import ACTIVE_STATUSES, CompactFollower, ended_notice
from frontend.views.parts import (
    HIDDEN,
    SELECT_BUTTONS,
    SHOWN,
    ZOOM_BUTTONS,
    Outputs,
    graph,
    graph_config,
    has_context,
    hint,
    register_writer,
    sample_image,
)
from frontend.views.samples.common import (
    CTX,
    ID_OPEN,
    NBR_COLUMN,
    NBR_HELP,
    TILE,
    SamplesData,
    class_label,
    fetch_table,
    load_data,
    prediction,
    sample_tags,
)

ID_SCROLL = "compare-samples-scroll"
ID_DETAIL = "compare-samples-detail"
ID_DETAIL_EMPTY = "compare-samples-detail-empty"
ID_DETAIL_BODY = "compare-samples-detail-body"
ID_HEAD = "compare-samples-head"
ID_CLOSE = "compare-samples-close"
ID_TOP5 = "compare-samples-top5"
ID_METRICS = "compare-samples-metrics"
ID_CORRUPTIONS = "compare-samples-corruptions"
ID_ATTR_INFO = "compare-samples-attr-info"
ID_ATTR_NOTE = "compare-samples-attr-note"
ID_ATTR_BODY = "compare-samples-attr-body"
ID_ATTR_FIG = "compare-samples-attribution"
ID_ATTR_IMAGE = "compare-samples-attr-image"
ID_CORRUPTED = "compare-samples-corrupted"
ID_NEIGHBOURS = "compare-samples-neighbours"
NBR_TILE = "compare-samples-nbr"  # pattern-matching id type of a neighbour's thumbnail
# the open sample's attribution job; once it has succeeded, ID_DONE (its {"id", "index"})
# draws the maps
JOB = CompactFollower("compare-samples", "attribution")
ID_COMPUTE, ID_JOB, ID_POLL, ID_PROGRESS, ID_DONE = JOB.ids
follow_job, poll_attribution_job = JOB.follow, JOB.poll  # the callbacks

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
IMAGE_PX = 192
CORRUPTED_PX = 64
NBR_PX = 48
NEIGHBOURS_WHAT = (
    "The sample's k nearest test samples (cosine distance of the penultimate features) in A "
    "and in B, nearest first; those in both are marked. Click one to open it."
)
NO_NEIGHBOURS = (
    "This comparison was computed before the neighbourhood change: add a model to it or "
    "create it again to see this sample's neighbours in A and B."
)
METRIC_HELP = {
    "angle": "angle between the feature f and the true class direction W_y, in degrees; "
    "smaller is closer to the class",
    "length": "feature length ‖f‖ (in brackets: z-scored within the model, so A and B compare)",
    "margin": "signed distance to the nearest decision boundary in feature space; "
    "< 0: misclassified",
}
GRAPH_CONFIG = graph_config(*SELECT_BUTTONS, *ZOOM_BUTTONS)
# a click on a tile brings the detail panel into view (it sits under the gallery)
SCROLL_JS = """
function(clicks) {
    if (!(clicks || []).some(n => n)) { return window.dash_clientside.no_update; }
    const el = document.getElementById("DETAIL");
    if (el) { el.scrollIntoView({behavior: "smooth", block: "start"}); }
    return window.dash_clientside.no_update;
}
""".replace("DETAIL", ID_DETAIL)


# components ---------------------------------------------------------------------------------


def _finite(side: Mapping[str, Any], key: str) -> float | None:
    value = side.get(key)
    number = None if value is None else float(value)
    return number if number is not None and math.isfinite(number) else None


def _num(value: float | None, fmt: str = ".3g", unit: str = "") -> str:
    return "—" if value is None else format(value, fmt) + unit


def metrics_table(detail: Mapping[str, Any]) -> html.Table:
    """Angle, length and margin of the sample in A, in B and their change, each row's header
    explaining its metric on hover."""
    sides = [detail.get("a") or {}, detail.get("b") or {}]

    def values(key: str) -> list[float | None]:
        return [_finite(side, key) for side in sides]

    def change(key: str, fmt: str, unit: str = "") -> str:
        a, b = values(key)
        return _num(None if a is None or b is None else b - a, fmt, unit)

    def length(side: Mapping[str, Any]) -> str:
        z = _finite(side, "length_z")
        return _num(_finite(side, "length")) + ("" if z is None else f" (z {z:+.2f})")

    rows = [
        ("angle (°)", "angle", [_num(v, ".1f") for v in values("angle")], change("angle", "+.1f")),
        (
            "length ‖f‖",
            "length",
            [length(side) for side in sides],
            change("length_z", "+.2f", " σ"),
        ),
        ("margin", "margin", [_num(v) for v in values("margin")], change("margin", "+.3g")),
    ]
    bad = ["bad" if (v or 0) < 0 else None for v in values("margin")]
    body = [
        html.Tr(
            [
                html.Th(html.Span(name, className="has-help"), title=METRIC_HELP[key], scope="row"),
                *(
                    html.Td(v, className=bad[i] if key == "margin" else None)
                    for i, v in enumerate(ab)
                ),
                html.Td(d),
            ]
        )
        for name, key, ab, d in rows
    ]
    tags = [html.Th(html.Span(side, className=f"tag tag-{side.lower()}")) for side in "AB"]
    head = html.Tr([html.Th("metric"), *tags, html.Th("Δ (B − A)")])
    table = [html.Thead(head), html.Tbody(body)]
    return html.Table(table, id=ID_METRICS, className="data-table sample-metrics")


def corruption_grid(corruptions: Mapping[str, Any] | None, class_names: Sequence[str]) -> Any:
    """Corruption × severity: ✓/✗ of A and of B per setting; settings where B fails and A
    holds are highlighted. An empty state when the comparison has no corruption results."""
    if not corruptions or not corruptions.get("names"):
        return html.P(
            "No corruption results for this comparison: create it with corruptions to see how "
            "this sample fares under them.",
            className="empty",
        )
    sevs = [int(s) for s in corruptions.get("severities") or []]

    def cell(key: str, i: int, j: int) -> Any:
        try:
            return corruptions[key][i][j]
        except (KeyError, IndexError, TypeError):
            return None

    def mark(ok: Any) -> str:
        return "·" if ok is None else "✓" if ok else "✗"

    body, b_only = [], 0
    for i, corruption in enumerate(str(n) for n in corruptions["names"]):
        tds: list[Any] = [html.Th(corruption.replace("_", " "), scope="row")]
        for j, sev in enumerate(sevs):
            ca, cb = cell("correct_a", i, j), cell("correct_b", i, j)
            b_only += bool(ca and cb is False)
            extra = " corruption-b-only" if ca and cb is False else ""
            extra += " corruption-both" if ca is False and cb is False else ""
            sides = (("A", ca, cell("pred_a", i, j)), ("B", cb, cell("pred_b", i, j)))
            said = ", ".join(
                f"{side} predicts {class_label(class_names, pred)} {mark(ok)}"
                for side, ok, pred in sides
            )
            marks = [
                html.Span([s, mark(ok)], className="ok" if ok else "bad") for s, ok, _ in sides
            ]
            title = f"{corruption}, severity {sev}: {said}"
            tds.append(
                html.Td([marks[0], " ", marks[1]], className=f"corruption-cell{extra}", title=title)
            )
        body.append(html.Tr(tds))
    head = html.Tr([html.Th("corruption")] + [html.Th(f"severity {s}") for s in sevs])
    note = (
        f"Highlighted: B fails where A holds ({b_only} setting{'s' if b_only != 1 else ''})."
        if b_only
        else "B fails nowhere that A holds."
    )
    table = html.Table([html.Thead(head), html.Tbody(body)], className="data-table corruption-grid")
    return html.Div(
        [html.Div(table, className="table-scroll"), hint(f"✓ correct, ✗ wrong. {note}")]
    )


def detail_head(data: SamplesData, detail: Mapping[str, Any]) -> list[Any]:
    """The sample's image (large), true label, tags and both predictions."""
    index, label = int(detail["index"]), query_int(detail.get("label"))
    url = detail.get("image_url")
    image: Any = (
        sample_image(url, f"test sample {index}", IMAGE_PX, "sample-img sample-large")
        if url
        else html.Div(
            "no image: the samples are feature vectors",
            className="sample-img sample-img-missing sample-large",
        )
    )
    tags = sample_tags({k: detail.get(k) for k in ("category", "pie", "made_fragile")})
    preds = [
        html.Div(
            [
                prediction(side, data.class_name(s.get("pred")), bool(s.get("correct"))),
                html.Span(f" {format_percent(s.get('confidence'), 0)}", className="muted"),
            ]
        )
        for side, s in ((side, detail.get(side) or {}) for side in ("a", "b"))
    ]
    a_link = (
        [] if data.a is None else [html.Span("A", className="tag tag-a"), download_link(data.a)]
    )
    models: list[Any] = [
        html.Span("Models ", className="muted"),
        *a_link,
        " ",
        html.Span("B", className="tag tag-b"),
        download_link(data.b),
    ]
    return [
        image,
        html.Div(
            [
                html.H3(f"Test sample #{index}"),
                html.P(["True label ", html.Strong(data.class_name(label))]),
                html.Div(tags, className="sample-tags"),
                html.Div(preds, className="sample-detail-preds"),
                html.P(models, className="sample-detail-downloads"),
            ],
            className="sample-head-text",
        ),
    ]


def neighbour_tile(data: SamplesData, side: str, index: int, shared: bool) -> html.Button:
    """One neighbour: its thumbnail (or "#index" for samples that are not images), marked
    when it is a neighbour on both sides; a click opens it."""
    url = data.image_url(index)
    body: list[Any] = [
        sample_image(url, f"test sample {index}", NBR_PX, "sample-img nbr-thumb")
        if url
        else html.Span(f"#{index}", className="nbr-index")
    ]
    if shared:
        body.append(html.Span("●", className="nbr-shared-mark"))
    other = "B" if side == "a" else "A"
    title = f"#{index}" + (
        f": a neighbour in {other} too" if shared else f": not a neighbour in {other}"
    )
    return html.Button(
        body,
        id={"type": NBR_TILE, "side": side, "index": int(index)},
        n_clicks=0,
        className="nbr-tile" + (" nbr-shared" if shared else ""),
        title=title,
    )


def neighbours_panel(data: SamplesData, neighbours: Mapping[str, Any]) -> list[Any]:
    """The sample's neighbours in A and in B side by side, the shared ones marked, with the
    Jaccard similarity stated."""
    k, jaccard = int(neighbours.get("k") or 0), float(neighbours.get("jaccard") or 0.0)
    shared = {int(i) for i in neighbours.get("shared") or []}
    line = html.P(
        [
            html.Span("Neighbourhood kept ", className="has-help", title=NBR_HELP),
            html.Strong(f"Jaccard {jaccard:.2f}"),
            f": {len(shared)} of its {k} nearest test samples are the same in A and B "
            f"({len(shared)} / {2 * k - len(shared)} in either).",
        ],
        className="nbr-summary",
    )
    columns = []
    for side, label in (("a", data.label_a), ("b", data.label_b)):
        tiles = [neighbour_tile(data, side, int(i), int(i) in shared) for i in neighbours[side]]
        columns.append(
            html.Div(
                [
                    html.Div(
                        [html.Span(side.upper(), className=f"tag tag-{side}"), label],
                        className="nbr-side-title",
                    ),
                    html.Div(tiles, className="nbr-grid", id=f"{ID_NEIGHBOURS}-{side}"),
                ],
                className="nbr-side",
            )
        )
    return [line, html.Div(columns, className="grid-2 nbr-columns")]


def corrupted_thumbnails(
    corrupted: Sequence[Mapping[str, Any]], class_names: Sequence[str]
) -> list[html.Figure]:
    """The corrupted versions of the sample with A's and B's predictions (✓/✗)."""
    out = []
    for item in corrupted:
        corruption = str(item.get("corruption") or "").replace("_", " ")
        sev = item.get("severity")
        ca, cb = bool(item.get("correct_a")), bool(item.get("correct_b"))
        caption = [
            html.Div(f"{corruption} {sev}", className="muted"),
            prediction("a", class_label(class_names, item.get("pred_a")), ca),
            prediction("b", class_label(class_names, item.get("pred_b")), cb),
        ]
        image = sample_image(
            item.get("image"), f"{corruption} severity {sev}", CORRUPTED_PX, "sample-img"
        )
        classes = "corrupted-item" + (" corruption-b-only" if ca and not cb else "")
        out.append(html.Figure([image, html.Figcaption(caption)], className=classes))
    return out


# layout -------------------------------------------------------------------------------------


def layout() -> list[Any]:
    """The detail's part of the section: the panel under the gallery (empty until a sample is
    opened) and its stores."""
    write_note = html.Span(NEEDS_WRITE, className="muted needs-write-note")
    attr_figure = graph(
        ID_ATTR_FIG, None, attribution_height(), GRAPH_CONFIG, className="attr-graph"
    )
    maps = html.Div(
        [html.Div(id=ID_ATTR_IMAGE, className="attr-image"), attr_figure], className="attr-row"
    )
    attribution = html.Div(
        [
            html.H3("Geometric attribution"),
            hint(ATTRIBUTION_WHAT),
            html.Div(
                [JOB.button(BUTTON, style=HIDDEN), write_note, html.Div(id=ID_ATTR_NOTE)],
                className="actions",
            ),
            html.Div(id=ID_PROGRESS),
            html.Div(
                [
                    maps,
                    html.H4("Corrupted versions"),
                    html.Div(id=ID_CORRUPTED, className="corrupted-row"),
                ],
                id=ID_ATTR_BODY,
                style=HIDDEN,
            ),
        ],
        className="sample-attribution",
    )
    close = html.Button("Close", id=ID_CLOSE, n_clicks=0, className="btn btn-small")
    top5 = [html.H4("Top-5 probabilities"), graph(ID_TOP5, None, 300, GRAPH_CONFIG)]
    metrics = [
        html.H4("Geometry of its penultimate features"),
        html.Div(metrics_table({}), id=f"{ID_METRICS}-slot", className="table-scroll"),
        hint("Hover a metric's name for what it measures."),
    ]
    detail_body = html.Div(
        [
            html.Div(
                [html.Div(id=ID_HEAD, className="sample-head"), close], className="sample-head-row"
            ),
            html.Div([html.Div(top5), html.Div(metrics)], className="grid-2"),
            html.H4("Neighbours in A and in B"),
            hint(NEIGHBOURS_WHAT),
            html.Div(id=ID_NEIGHBOURS, className="sample-neighbours"),
            html.H4("Under corruptions"),
            html.Div(id=ID_CORRUPTIONS),
            attribution,
        ],
        id=ID_DETAIL_BODY,
        style=HIDDEN,
    )
    empty = html.P(DETAIL_EMPTY, id=ID_DETAIL_EMPTY, className="empty")
    return [
        html.Div([empty, detail_body], id=ID_DETAIL, className="sample-detail"),
        dcc.Store(id=ID_SCROLL),
        dcc.Store(id=ID_ATTR_INFO),
        *JOB.stores(),
    ]


# callbacks ----------------------------------------------------------------------------------

# render_attribution's outputs, and what they send unless it says otherwise
ATTRIBUTION = Outputs(
    button=(ID_COMPUTE, "style", HIDDEN),
    note=(ID_ATTR_NOTE, "children", None),
    progress=(ID_PROGRESS, "children", None),
    job=(ID_JOB, "data", None),
    body=(ID_ATTR_BODY, "style", HIDDEN),
    figure=(ID_ATTR_FIG, "figure", dash.no_update),
    image=(ID_ATTR_IMAGE, "children", []),
    corrupted=(ID_CORRUPTED, "children", []),
)


def register(app: dash.Dash) -> None:
    """Attach the detail's callbacks to ``app``."""
    app.clientside_callback(
        SCROLL_JS,
        Output(ID_SCROLL, "data"),
        Input({"type": TILE, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    register_writer(app, ID_OPEN, close_sample, Input(ID_CLOSE, "n_clicks"))
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
        Output(ID_NEIGHBOURS, "children"),
        Input(ID_OPEN, "data"),
        State(CTX, "data"),
        prevent_initial_call=True,
    )(render_neighbours)
    nbr_tiles = Input({"type": NBR_TILE, "side": ALL, "index": ALL}, "n_clicks")
    register_writer(app, ID_OPEN, _neighbour_clicked, nbr_tiles, State(ID_OPEN, "data"))
    deps = (Input(ID_ATTR_INFO, "data"), Input(ID_DONE, "data"), State(CTX, "data"))
    ATTRIBUTION.register(app, render_attribution, *deps, lazy=True)
    JOB.register(app, start_attribution, State(ID_ATTR_INFO, "data"), State(CTX, "data"))


def close_sample(n_clicks: int | None) -> Any:
    """Callback: "Close" empties the detail panel."""
    return None if n_clicks else dash.no_update


def render_detail(opened: Any, context: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """Callback: the open sample's detail (``GET .../samples/{index}``).

    Returns:
        empty-state style, body style, head, top-5 figure, metrics table, corruption grid,
        attribution info (``{"index", "status", "job_id", "progress", "message", "error"}``,
        or None).
    """
    index = query_int(opened)
    if index is None or not has_context(context):
        return (SHOWN, HIDDEN, [], dash.no_update, dash.no_update, [], None)
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
    info = {**(detail.get("attribution") or {"status": "none"}), "index": index}
    grid = corruption_grid(detail.get("corruptions"), data.class_names)
    return (HIDDEN, SHOWN, detail_head(data, detail), fig, metrics_table(detail), grid, info)


def render_neighbours(opened: Any, context: Mapping[str, Any] | None) -> list[Any]:
    """Callback: the open sample's neighbours in A and B (``GET .../neighbours/{index}``), or
    why there are none (a comparison computed before the neighbourhood change)."""
    index = query_int(opened)
    if index is None or not has_context(context):
        return []
    try:
        data = load_data(context)
        table = fetch_table(get_client(), data)
        if NBR_COLUMN not in table:
            return [html.P(NO_NEIGHBOURS, className="empty")]
        neighbours = get_client().get_comparison_neighbours(int(context["id"]), index, b=data.b)
    except ApiError as exc:
        if exc.status == 409:
            return [html.P(NO_NEIGHBOURS, className="empty")]
        return [api_error_notice(exc, f"the neighbours of test sample #{index}")]
    return neighbours_panel(data, neighbours)


def open_neighbour(
    n_clicks: Sequence[int | None], ids: Sequence[Mapping[str, Any]], triggered: Any, current: Any
) -> Any:
    """Callback body: the clicked neighbour becomes the open sample (``ids``: the neighbour
    tiles' ids, in ``n_clicks``' order; ``triggered``: the one that fired)."""
    if not isinstance(triggered, Mapping) or triggered.get("type") != NBR_TILE:
        return dash.no_update
    for n, ident in zip(n_clicks, ids, strict=False):
        if ident == triggered and n:
            index = query_int(triggered.get("index"))
            return dash.no_update if index is None or query_int(current) == index else index
    return dash.no_update  # tiles appeared (another sample opened), nobody clicked


def _neighbour_clicked(n_clicks: Sequence[int | None], current: Any) -> Any:
    ids = [i["id"] for i in dash.ctx.inputs_list[0]] if dash.ctx.inputs_list else []
    return open_neighbour(n_clicks, ids, dash.ctx.triggered_id, current)


def render_attribution(
    info: Mapping[str, Any] | None, done: Any, context: Mapping[str, Any] | None
) -> tuple[Any, ...]:
    """Callback: the open sample's attribution: its maps once computed, the job's progress
    while it runs, else the button (with the error of a failed job). ``done`` is the followed
    job (``{"id", "index"}``) once it has succeeded.

    Returns:
        The values of :data:`ATTRIBUTION`'s outputs, in its order.
    """
    index = query_int((info or {}).get("index"))
    if info is None or index is None or not has_context(context):
        return ATTRIBUTION()
    status = str(info.get("status") or "none")
    if isinstance(done, Mapping) and query_int(done.get("index")) == index:
        status = "succeeded"
    if status in ACTIVE_STATUSES:
        job = {"id": query_int(info.get("job_id")), "index": index}
        line = JOB.line({**info, "id": job["id"], "stage": info.get("message")})
        return ATTRIBUTION(progress=line, job=job)
    if status != "succeeded":
        note: Any = html.Span(
            "Runs an attribution job on A and B for this sample; the result is kept.",
            className="muted hint",
        )
        if status in ("failed", "cancelled"):
            error = info.get("error") or info.get("message")
            note = ended_notice({"status": status, "error": error}, "attribution")
        return ATTRIBUTION(button=SHOWN, note=note)
    try:
        data = load_data(context)
        result = get_client().get_attribution(int(context["id"]), index, b=data.b)
    except ApiError as exc:
        if exc.status == 409:  # not computed after all (e.g. removed): offer it again
            return ATTRIBUTION(button=SHOWN)
        return ATTRIBUTION(note=api_error_notice(exc, "the attribution"))
    base = result.get("base") or {}
    fig = attribution_heatmaps(
        result.get("a") or {},
        result.get("b") or {},
        label_a=data.label_a,
        label_b=data.label_b,
        metrics=result.get("metrics") or ("angle", "length", "margin"),
        base_a=base.get("a"),
        base_b=base.get("b"),
        patch=query_int(result.get("patch")),
        stride=query_int(result.get("stride")),
        rows=result.get("rows"),
        cols=result.get("cols"),
    )
    url = data.image_url(index)
    image = [
        sample_image(url, f"test sample {index}", IMAGE_PX, "sample-img sample-large"),
        hint(f"Test sample #{index}"),
    ]
    corrupted: list[Any] = corrupted_thumbnails(result.get("corrupted") or [], data.class_names)
    if not corrupted:
        corrupted = [html.P("No corrupted versions: no corruption results.", className="empty")]
    return ATTRIBUTION(body=SHOWN, figure=fig, image=image if url else [], corrupted=corrupted)


def start_attribution(
    n_clicks: int | None, info: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Callback: submit the open sample's attribution job (``{"id", "index"}`` followed) and its
    first progress line, or why it was not taken."""
    index = query_int((info or {}).get("index"))
    if not n_clicks or index is None or not has_context(context):
        return dash.no_update, dash.no_update
    try:
        b = load_data(context).b
    except ApiError as exc:
        return dash.no_update, api_error_notice(exc, "the comparison")
    spec = {"comparison_id": int(context["id"]), "index": index, "model_b_id": b}
    return JOB.start(spec, index=index)

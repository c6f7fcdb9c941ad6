"""A flagged sample's detail, opened from the gallery (the ID_OPEN store): its image, both
models' top-5 probabilities, its angle, length and margin in A and B, its outcome under every
corruption and, on demand, its geometric attribution (occlusion maps of the change of the
three metrics, computed by an ``attribution`` job and kept by the API).

Data: ``GET /api/comparisons/{id}/samples/{index}`` for the detail and
``.../samples/{index}/attribution`` for the maps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import ApiError, get_client
from frontend.components import api_error_notice, download_link, job_line, notice
from frontend.figures._common import empty_figure
from frontend.figures.formatting import format_percent
from frontend.figures.samples import attribution_heatmaps, attribution_height, top5_bars
from frontend.forms import query_int
from frontend.jobs import ACTIVE_STATUSES, ended_notice
from frontend.views.parts import (
    HIDDEN,
    SELECT_BUTTONS,
    SHOWN,
    ZOOM_BUTTONS,
    ViewJob,
    graph,
    graph_config,
    has_context,
    sample_image,
)
from frontend.views.samples.common import (
    CTX,
    ID_OPEN,
    TILE,
    SamplesData,
    class_label,
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
# the open sample's attribution job, followed until it ends; once it has succeeded,
# ``{"index", "job_id"}`` (in ID_DONE) draws the maps
JOB = ViewJob(
    "compare-samples",
    "attribution",
    lambda followed, job: (None, {"index": query_int(followed.get("index")), "job_id": job["id"]}),
)
ID_COMPUTE, ID_JOB, ID_POLL = JOB.compute, JOB.job, JOB.poll_id
ID_PROGRESS, ID_DONE = JOB.progress, JOB.done
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
THUMB_PX = 72
IMAGE_PX = 192
CORRUPTED_PX = 64
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


def _num(value: Any, fmt: str = ".3g") -> str:
    if value is None:
        return "—"
    number = float(value)
    return "—" if not math.isfinite(number) else format(number, fmt)


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
                        f"{class_label(class_names, cell('pred_a', i, j))} {mark(ca)}, B predicts "
                        f"{class_label(class_names, cell('pred_b', i, j))} {mark(cb)}"
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
                    prediction(side, data.class_name(s.get("pred")), bool(s.get("correct"))),
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
    out = []
    for item in corrupted:
        corruption = str(item.get("corruption") or "").replace("_", " ")
        sev = item.get("severity")
        ca, cb = bool(item.get("correct_a")), bool(item.get("correct_b"))
        classes = "corrupted-item" + (" corruption-b-only" if ca and not cb else "")
        alt = f"{corruption} severity {sev}"
        out.append(
            html.Figure(
                [
                    sample_image(item.get("image"), alt, CORRUPTED_PX, "sample-img"),
                    html.Figcaption(
                        [
                            html.Div(f"{corruption} {sev}", className="muted"),
                            prediction("a", class_label(class_names, item.get("pred_a")), ca),
                            prediction("b", class_label(class_names, item.get("pred_b")), cb),
                        ]
                    ),
                ],
                className=classes,
            )
        )
    return out


# layout -------------------------------------------------------------------------------------


def layout() -> list[Any]:
    """The detail's part of the section: the panel under the gallery (empty until a sample is
    opened) and its stores."""
    attribution = html.Div(
        [
            html.H3("Geometric attribution"),
            html.P(ATTRIBUTION_WHAT, className="muted hint"),
            html.Div(
                [
                    JOB.button(BUTTON, style=HIDDEN),
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
                            graph(
                                ID_ATTR_FIG,
                                None,
                                attribution_height(),
                                GRAPH_CONFIG,
                                className="attr-graph",
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
    top5 = graph(ID_TOP5, None, 300, GRAPH_CONFIG)
    metrics = html.Div(metrics_table({}), id=f"{ID_METRICS}-slot", className="table-scroll")
    hover = html.P("Hover a metric's name for what it measures.", className="muted hint")
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
                    html.Div([html.H4("Top-5 probabilities"), top5]),
                    html.Div([html.H4("Geometry of its penultimate features"), metrics, hover]),
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
    return [
        html.Div(
            [html.P(DETAIL_EMPTY, id=ID_DETAIL_EMPTY, className="empty"), detail_body],
            id=ID_DETAIL,
            className="sample-detail",
        ),
        dcc.Store(id=ID_SCROLL),
        dcc.Store(id=ID_ATTR_INFO),
        *JOB.stores(),
    ]


# callbacks ----------------------------------------------------------------------------------


def register(app: dash.Dash) -> None:
    """Attach the detail's callbacks to ``app``."""
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
    skip = dash.no_update
    if index is None or not has_context(context):
        return (SHOWN, HIDDEN, [], skip, skip, [], None)
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
    index = query_int((info or {}).get("index"))
    if index is None or not has_context(context):
        return (HIDDEN, None, None, None, HIDDEN, skip, [], [])
    assert info is not None
    status = str(info.get("status") or "none")
    if isinstance(done, Mapping) and query_int(done.get("index")) == index:
        status = "succeeded"
    if status in ACTIVE_STATUSES:
        job = {"id": query_int(info.get("job_id")), "index": index}
        progress = job_line({"id": job["id"], **info})
        return (HIDDEN, None, progress, job, HIDDEN, skip, [], [])
    if status != "succeeded":
        note: Any = html.Span(
            "Runs an attribution job on A and B for this sample; the result is kept.",
            className="muted hint",
        )
        if status in ("failed", "cancelled"):
            error = info.get("error") or info.get("message") or "no reason was given"
            note = ended_notice({"status": status, "error": error}, "attribution")
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
        patch=query_int(result.get("patch")),
        stride=query_int(result.get("stride")),
        rows=result.get("rows"),
        cols=result.get("cols"),
    )
    url = data.image_url(index)
    image = (
        [
            sample_image(url, f"test sample {index}", IMAGE_PX, "sample-img sample-large"),
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
    index = query_int((info or {}).get("index"))
    if not n_clicks or index is None or not has_context(context):
        return dash.no_update, dash.no_update
    comparison_id = int(context["id"])
    return JOB.start(
        lambda: get_client().submit_attribution(comparison_id, index, b=load_data(context).b),
        index=index,
    )

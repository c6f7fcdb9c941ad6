"""Similarity map page ("/similarity?id=<comparison>").

The geometric similarity map of Li et al. (SCIENCE.md section 1): the fingerprint of every
(model, corruption) pair of a comparison projected to 2-D and linked by its minimum spanning tree
(``GET /api/comparisons/{id}/similarity``). Points are coloured by pruning method, sized by
sparsity and shaped clean or corrupted; hovering names the pair and its accuracy, clicking opens
that model's comparison view. Until the compare job has produced the map the page shows the
job's progress and re-renders itself every second. Without ``id`` it lists the comparisons.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from frontend.client import ApiError, ComparisonPublic, get_client, get_comparison_similarity
from frontend.components import api_error_notice, notice
from frontend.figures.similarity import (
    CLEAN,
    map_points,
    mst_pairs,
    similarity_figure,
)
from frontend.pages.home import is_active
from frontend.pages.overview import (
    compare_href,
    compare_job,
    comparison_picker,
    header,
    job_pending,
    load_accuracies,
    not_found,
    parse_int,
)

PATH = "/similarity"
TITLE = "Similarity map · PruneScope"
POLL_INTERVAL_MS = 1000
URL_ID = "url"  # the shell's one dcc.Location (frontend/app.py); clicks navigate through it

ID_BODY = "similarity-body"
ID_POLL = "similarity-poll"
ID_STATE = "similarity-state"  # dcc.Store {"id": comparison id}
ID_MAP = "similarity-map"
ID_SUMMARY = "similarity-summary"
ID_PICKER = "similarity-picker"
ID_PENDING = "similarity-pending"


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Similarity", layout=layout)
    app.callback(
        Output(ID_BODY, "children"),
        Output(ID_POLL, "disabled"),
        Input(ID_POLL, "n_intervals"),
        State(ID_STATE, "data"),
        prevent_initial_call=True,
    )(refresh_similarity)
    app.callback(
        Output(URL_ID, "href", allow_duplicate=True),
        Input(ID_MAP, "clickData"),
        State(ID_STATE, "data"),
        prevent_initial_call=True,
    )(open_point)


def point_href(comparison_id: int, model_a_id: int | None, click_data: Any) -> str | None:
    """Where a click on the map leads: the clicked model's comparison with its corruption.

    A pruned model opens as B; the original opens the comparison's default view.

    Args:
        comparison_id: the comparison.
        model_a_id: its original, or None when unknown.
        click_data: a ``dcc.Graph`` ``clickData``; the points carry ``customdata`` =
            ``[model_id, corruption, hover text]`` (see :func:`similarity_figure`).

    Returns:
        ``/compare?id=&b=&rob_c=``, or None when the click was not on a model's point.
    """
    try:
        custom = click_data["points"][0]["customdata"]
        model_id, corruption = int(custom[0]), str(custom[1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    b = None if model_id == model_a_id else model_id
    return compare_href(comparison_id, b, None if corruption == CLEAN else corruption)


def _summary(similarity: Mapping[str, Any], n_models: int) -> html.P:
    points = similarity.get("points") or []
    n = len(points)
    corruptions = sorted({str(p.get("corruption")) for p in points} - {CLEAN})
    severities = sorted({int(p.get("severity") or 0) for p in points} - {0})
    projection = "UMAP" if similarity.get("method") == "umap" else "PCA"
    parts = [
        f"{n} fingerprints: {n_models} models × (clean"
        + (f" + {len(corruptions)} corruptions" if corruptions else "")
        + ")",
    ]
    if severities:
        parts.append(f"corruptions at severity {', '.join(str(s) for s in severities)}")
    parts.append(f"projected with {projection}")
    parts.append(f"{len(similarity.get('mst_edges') or [])} tree edges")
    parts.extend(str(note) for note in similarity.get("notes") or [])
    return html.P(" · ".join(parts), id=ID_SUMMARY, className="muted")


def similarity_body(comparison_id: int) -> tuple[list[Any], bool, int | None]:
    """The page below its title, whether to fetch it again (the map is still computed), and
    the comparison's original model (None when the comparison could not be read)."""
    client = get_client()
    try:
        comparison = client.get_comparison(comparison_id)
    except ApiError as exc:
        return [not_found(comparison_id, exc, "similarity")], False, None
    children, active = _map_section(comparison)
    return children, active, int(comparison["model_a_id"])


def _map_section(comparison: ComparisonPublic) -> tuple[list[Any], bool]:
    client = get_client()
    comparison_id = int(comparison["id"])
    children: list[Any] = header(comparison, PATH)
    try:
        similarity = get_comparison_similarity(client, comparison_id)
    except ApiError as exc:
        if exc.status != 409:
            return [*children, api_error_notice(exc, "the similarity map")], False
        job = compare_job(client, comparison)
        active = job is not None and is_active(job)
        return [*children, job_pending(job, "The similarity map", ID_PENDING)], active
    try:
        models = {m["id"]: dict(m) for m in client.list_models()}
        clean, robustness = load_accuracies(client, comparison)
    except ApiError:
        models, clean, robustness = {}, {}, {}  # the map still stands; hovers lose names
    try:
        points = map_points(similarity, models, clean, dict(robustness))
        figure = similarity_figure(points, mst_pairs(similarity), str(similarity.get("method")))
    except (KeyError, TypeError, ValueError) as exc:
        return [
            *children,
            notice(
                "The similarity map could not be drawn",
                f"The API returned data this page does not understand ({type(exc).__name__}: "
                f"{exc}).",
                kind="error",
            ),
        ], False
    n_models = len({p.model_id for p in points})
    children.append(
        html.Section(
            [
                _summary(similarity, n_models),
                dcc.Graph(
                    id=ID_MAP,
                    figure=figure,
                    config={"displaylogo": False, "responsive": True},
                    clear_on_unhover=True,
                ),
                html.P(
                    "Each point is one model on the clean test set (circle) or under one "
                    "corruption (diamond), placed by its geometric fingerprint: the angle, length "
                    "and margin of every test sample's penultimate features. Nearby points and "
                    "tree edges mean the pairs behave alike; the tree is computed on the "
                    "fingerprints themselves, so an edge holds even where the 2-D projection "
                    "tears neighbours apart. Click a point to open that model's comparison.",
                    className="hint muted",
                ),
            ],
            className="section",
        )
    )
    return children, False


# layout and callbacks -------------------------------------------------------------------------


def layout(
    id: str | None = None,  # named after the query parameter, shadowing the builtin
    **_query: Any,
) -> html.Div:
    """The similarity map of ``?id=<comparison>``; without id, a list to pick from."""
    title = html.H1("Similarity map")
    comparison_id = parse_int(id)
    if comparison_id is None:
        intro = (
            "Which pruning methods and which corruptions behave alike: every (model, corruption) "
            "pair of a comparison placed by its geometric fingerprint."
        )
        if id is not None:
            intro = f"'{id}' is not a comparison id. " + intro
        return html.Div(
            [
                title,
                html.P(intro, className="lead"),
                comparison_picker(PATH, "similarity map", ID_PICKER),
            ],
            className="page page-similarity",
        )
    body, active, model_a = similarity_body(comparison_id)
    return html.Div(
        [
            title,
            html.Div(body, id=ID_BODY),
            dcc.Interval(id=ID_POLL, interval=POLL_INTERVAL_MS, disabled=not active),
            dcc.Store(id=ID_STATE, data={"id": comparison_id, "model_a_id": model_a}),
        ],
        className="page page-similarity",
    )


def refresh_similarity(
    n_intervals: int | None, state: Mapping[str, Any] | None
) -> tuple[Any, bool]:
    """Callback: re-render while the compare job runs; stop polling once the map is there.

    Returns:
        The body's children and whether polling stops (``similarity-poll`` disabled).
    """
    comparison_id = parse_int((state or {}).get("id"))
    if comparison_id is None:
        return dash.no_update, True
    body, active, _model_a = similarity_body(comparison_id)
    return body, not active


def open_point(click_data: Any, state: Mapping[str, Any] | None) -> Any:
    """Callback: a click on a point navigates to that model's comparison view."""
    comparison_id = parse_int((state or {}).get("id"))
    if comparison_id is None or not click_data:
        return dash.no_update
    href = point_href(comparison_id, parse_int((state or {}).get("model_a_id")), click_data)
    return dash.no_update if href is None else href

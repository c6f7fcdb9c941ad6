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
from frontend.components import (
    api_error_notice,
    compare_href,
    comparison_page,
    load_accuracies,
    notice,
    refresh_comparison_page,
    register_comparison_page,
)
from frontend.figures.similarity import CLEAN, map_points, mst_pairs, similarity_figure
from frontend.forms import query_int
from frontend.jobs import compare_job_pending

PREFIX = "similarity"  # of the ids of the comparison page (components.comparison_page)
PATH = f"/{PREFIX}"
TITLE = "Similarity map · PruneScope"
URL_ID = "url"  # the shell's one dcc.Location (frontend/app.py); clicks navigate through it

ID_BODY = "similarity-body"
ID_POLL = "similarity-poll"
ID_STATE = "similarity-state"  # dcc.Store {"id": comparison id}
ID_MAP = "similarity-map"
ID_SUMMARY = "similarity-summary"
ID_PICKER = "similarity-picker"
ID_PENDING = "similarity-pending"
GRAPH_CONFIG: dcc.Graph.Config = {"displaylogo": False, "responsive": True}


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Similarity", layout=layout)
    register_comparison_page(app, PREFIX, refresh_similarity)
    # a click on a point navigates through the shell's Location
    navigate = Output(URL_ID, "href", allow_duplicate=True)
    app.callback(
        navigate, [Input(ID_MAP, "clickData"), State(ID_STATE, "data")], prevent_initial_call=True
    )(open_point)


def point_href(comparison_id: int, model_a_id: int | None, click_data: Any) -> str | None:
    """Where a click on the map (``clickData``, its points' ``customdata`` ``[model_id,
    corruption, hover text]``) leads: ``/compare?id=&b=&rob_c=``, the clicked model's comparison
    with its corruption (the original, ``model_a_id``, opens the default view); None when the
    click was not on a model's point."""
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
    plus = f" + {len(corruptions)} corruptions" if corruptions else ""
    parts = [f"{n} fingerprints: {n_models} models × (clean{plus})"]
    if severities:
        parts.append(f"corruptions at severity {', '.join(str(s) for s in severities)}")
    parts += [
        f"projected with {projection}",
        f"{len(similarity.get('mst_edges') or [])} tree edges",
    ]
    parts += [str(note) for note in similarity.get("notes") or []]
    return html.P(" · ".join(parts), id=ID_SUMMARY, className="muted")


def similarity_body(comparison: ComparisonPublic) -> tuple[list[Any], bool, dict[str, Any]]:
    """The map below the comparison's header, whether to fetch it again (it is still being
    computed), and the page's state: the comparison's original model."""
    client = get_client()
    state = {"model_a_id": int(comparison["model_a_id"])}
    try:
        similarity = get_comparison_similarity(client, int(comparison["id"]))
    except ApiError as exc:
        if exc.status != 409:
            return [api_error_notice(exc, "the similarity map")], False, state
        _, pending, active = compare_job_pending(
            client, comparison, "The similarity map", ID_PENDING
        )
        return [pending], active, state
    try:
        models = {i: dict(m) for i, m in client.comparison_models(comparison).items()}
        clean, robustness = load_accuracies(client, comparison)
    except ApiError:
        models, clean, robustness = {}, {}, {}  # the map still stands; hovers lose names
    try:
        points = map_points(similarity, models, clean, dict(robustness))
        figure = similarity_figure(points, mst_pairs(similarity), str(similarity.get("method")))
    except (KeyError, TypeError, ValueError) as exc:
        why = f"The API returned data this page does not understand ({type(exc).__name__}: {exc})."
        return [notice("The similarity map could not be drawn", why, kind="error")], False, state
    n_models = len({p.model_id for p in points})
    section = html.Section(
        [
            _summary(similarity, n_models),
            dcc.Graph(id=ID_MAP, figure=figure, config=GRAPH_CONFIG, clear_on_unhover=True),
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
    return [section], False, state


# layout and callbacks -------------------------------------------------------------------------


def layout(id: str | None = None, **_query: Any) -> html.Div:
    """The similarity map of ``?id=<comparison>``; without id, a list to pick from (``id`` is
    named after the query parameter, shadowing the builtin)."""
    return comparison_page(
        PREFIX,
        "Similarity map",
        id,
        similarity_body,
        intro="Which pruning methods and which corruptions behave alike: every (model, "
        "corruption) pair of a comparison placed by its geometric fingerprint.",
        what="similarity map",
    )


def refresh_similarity(
    n_intervals: int | None, state: Mapping[str, Any] | None
) -> tuple[Any, bool]:
    """Callback: re-render while the compare job runs: the body's children and whether polling
    stops (``similarity-poll`` disabled), once the map is there."""
    return refresh_comparison_page(PREFIX, state, similarity_body)


def open_point(click_data: Any, state: Mapping[str, Any] | None) -> Any:
    """Callback: a click on a point navigates to that model's comparison view."""
    state = state or {}
    comparison_id = query_int(state.get("id"))
    href = None
    if comparison_id is not None and click_data:
        href = point_href(comparison_id, query_int(state.get("model_a_id")), click_data)
    return dash.no_update if href is None else href

"""New-job page ("/new?kind=train|analyze&dataset=&architecture=&model=&job="): train or analyse.

The "New job" pages are this one and the prune page, joined by the job-kind strip
"Train | Prune | Sweep | Analyze" (:func:`frontend.components.job_kind_tabs`): train and analyze
are set up here, prune and sweep on ``/prune``. This package is one page:

- ``__init__`` (here): ``register_page``, ``layout(**query)``, the kind, and the followed job;
- :mod:`.train`: the train form, its callbacks and what a trained model leads to;
- :mod:`.analyze`: the analyze form, its callbacks and where an analysis is seen;
- :mod:`.common`: the page's ids, the submit row, and asking the server about a spec.

Neither form re-implements the server's rules: as the user types, each asks the server's dry
run (``POST /api/jobs?dry_run=true``), shows every message next to its field, disables submit
while the server refuses, and says what will run, defaults filled in. Submitting checks again,
then posts ``POST /api/jobs``; the job panel (:class:`frontend.jobs.JobFollower`) then polls
``GET /api/jobs/{id}`` once a second while the job is not final, offers "Cancel job", and on
success links to what the job produced: a trained model to prune, an analysis to look at.

The kind, the chosen dataset, architecture or model and the followed job live in the URL
(written to a page-level Location with ``refresh=False``, as on the prune page), so a link such as
``/new?kind=train&dataset=1&architecture=timm/resnet18`` reopens the form filled in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from frontend.client import ApiClient, ApiError, JobPublic, get_client
from frontend.components import api_error_notice, job_kind_href, job_kind_tabs, notice, search_with
from frontend.forms import query_int, search_of
from frontend.jobs import JobFollower
from frontend.pages.new_job import analyze, train
from frontend.pages.new_job.common import ID_KIND_TABS, ID_RESULT_LINK, ID_URL, ID_VIEW, PREFIX

PATH = "/new"
TITLE = "New job · PruneScope"
KINDS = ("train", "analyze")  # the kinds set up on this page; prune and sweep are on /prune
DEFAULT_KIND = "train"
FORMS = {"train": train, "analyze": analyze}


def render_result(client: ApiClient, job: JobPublic) -> Any:
    """What a succeeded job made: a trained model, an analysis, or (a prune or sweep job named
    in the URL) a link to the prune page."""
    kind = job.get("kind")
    if kind in FORMS:
        return FORMS[str(kind)].render_result(client, job)
    if kind in ("prune", "sweep"):
        href = f"/prune?job={job['id']}&model={(job.get('spec') or {}).get('model_id')}"
        return html.P(dcc.Link("See it on the prune page →", href=href, id=ID_RESULT_LINK))
    return None


FOLLOW = JobFollower(
    PREFIX, render_result=render_result, class_name="section progress-panel new-job-panel"
)
# the followed job's callbacks and panel, by their names on this page
poll_job, cancel_followed_job, job_panel = FOLLOW.poll, FOLLOW.cancel, FOLLOW.panel


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="New job", layout=layout)
    for module in (train, analyze, FOLLOW):
        module.register(app)
    app.callback(
        Output(ID_URL, "search", allow_duplicate=True),
        Input(FOLLOW.ids.job, "data"),
        State(ID_URL, "search"),
        State(ID_VIEW, "data"),
        prevent_initial_call=True,
    )(update_job_url)


def _page(kind: str, *children: Any, **tabs: Any) -> html.Div:
    return html.Div(
        [
            job_kind_tabs(kind, **tabs, tabs_id=ID_KIND_TABS),
            html.H1(analyze.HEADING if kind == "analyze" else train.HEADING),
            *children,
        ],
        className="page page-prune page-new-job",
    )


def layout(
    kind: str | None = None,
    dataset: str | None = None,
    architecture: str | None = None,
    model: str | None = None,
    job: str | None = None,
    **query: Any,
) -> html.Div:
    """The new-job form for ``?kind=&dataset=&architecture=&model=&job=``: ``kind`` "train"
    (default) or "analyze" ("prune" and "sweep" point to the prune page), the dataset,
    architecture or model to preselect (see each form's ``form``), a job to follow in the
    progress panel; other query parameters are kept in the URL."""
    if kind in ("prune", "sweep"):
        link = dcc.Link(f"Open the {kind} form →", href=job_kind_href(kind, model=model))
        return _page(kind, notice(f"{kind.capitalize()} jobs are set up on the prune page", [link]))
    warnings: list[Any] = []
    if kind is not None and kind not in KINDS:
        known = "Known kinds: train, prune, sweep, analyze. Showing the train form."
        warnings.append(notice(f"Unknown job kind '{kind}'", known, kind="warning"))
    chosen = kind if kind in KINDS else DEFAULT_KIND
    try:
        if chosen == "train":
            form = train.form(get_client(), dataset, architecture)
        else:
            form = analyze.form(get_client(), model, dataset)
    except ApiError as exc:
        return _page(chosen, *warnings, api_error_notice(exc, "the form's choices"))
    wanted = {"kind": kind, "dataset": dataset, "architecture": architecture, "model": model}
    view = {"search": search_of({**wanted, "job": job, **query})}
    return _page(
        chosen,
        dcc.Location(id=ID_URL, refresh=False),
        dcc.Store(id=ID_VIEW, data=view),
        html.P(FORMS[chosen].LEAD, className="lead"),
        *warnings,
        *form.warnings,
        *form.children,
        FOLLOW.layout(query_int(job)),
        **form.tabs,
    )


def update_job_url(
    job_state: Mapping[str, Any] | None, search: str | None, view: Mapping[str, Any] | None = None
) -> str | dash.NoUpdate:
    """Callback: write the followed job into the URL (``job=<id>``), other keys kept."""
    if search is None:
        search = str((view or {}).get("search") or "")
    new = search_with(search, {"job": (job_state or {}).get("id")})
    return dash.no_update if new is None else new

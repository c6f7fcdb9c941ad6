"""What every compare-page view is built from: its section frame, graphs with the views'
mode-bar, labelled controls, and the checks and answers its callbacks share.

The contract between the views and the page (stores, settings, lazy loading) is in
``frontend/views/__init__.py``; this module only keeps the views from writing the same
layout and callback code five times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

import dash
from dash import Input, Output, State, dcc, html

from frontend.client import FLIP_CATEGORIES, ApiError, JobPublic
from frontend.components import api_error_notice, job_line, notice
from frontend.figures._common import empty_figure
from frontend.forms import query_int
from frontend.jobs import ACTIVE_STATUSES, POLL_INTERVAL_MS, ended_notice, read_job
from frontend.views import QUERY, merge_settings

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


# a plot whose box and lasso select samples (the linked SELECTION)
SELECTABLE = graph_config(*ZOOM_BUTTONS, HOVER_CLOSEST)
# a plot that selects nothing
STATIC = graph_config(*SELECT_BUTTONS, *ZOOM_BUTTONS, HOVER_CLOSEST)


def graph(
    graph_id: str,
    title: str | None,
    height: int,
    config: dcc.Graph.Config = STATIC,
    loading: str = LOADING,
    **kwargs: Any,
) -> dcc.Graph:
    """An empty graph of a view's skeleton: a "Loading…" figure until its callback draws it."""
    return dcc.Graph(
        id=graph_id,
        figure=empty_figure(loading, title),
        config=config,
        style={"height": f"{height}px"},
        **kwargs,
    )


def control(label: str, component: Any) -> html.Label:
    """A labelled control of a view's control row."""
    return html.Label([html.Span(label, className="control-label"), component], className="control")


def radio(radio_id: str, options: Sequence[Mapping[str, Any]], value: Any) -> dcc.RadioItems:
    """Radio buttons on one row."""
    return dcc.RadioItems(
        id=radio_id, options=list(options), value=value, inline=True, className="radio-row"
    )


def view_section(
    section_id: str, title: str, lead: Any, *children: Any, lead_id: str | None = None
) -> html.Section:
    """A view's section: its title, the line that says what it shows, then ``children``."""
    extra: dict[str, Any] = {} if lead_id is None else {"id": lead_id}
    return html.Section(
        [html.H2(title), html.P(lead, className="muted hint", **extra), *children],
        id=section_id,
        className="section card",
    )


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


def write_settings(query: Mapping[str, Any] | None, **updates: Any) -> Any:
    """The QUERY store's new value with ``updates`` (see :func:`merge_settings`), or
    ``dash.no_update`` when it already says so (a callback filling its controls)."""
    new = merge_settings(query, **updates)
    return dash.no_update if new == merge_settings(query) else new


def register_settings(
    app: dash.Dash, callback: Callable[..., Any], *inputs: Input, extra: Sequence[State] = ()
) -> None:
    """Attach a view's ``callback(*inputs, query, *extra)`` that writes its settings into
    QUERY (the URL; see :func:`write_settings`)."""
    app.callback(
        Output(QUERY, "data", allow_duplicate=True),
        *inputs,
        State(QUERY, "data"),
        *extra,
        prevent_initial_call=True,
    )(callback)


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
    extra: dict[str, Any] = {} if card_id is None else {"id": card_id}
    return html.Div(children, className=class_name, title=help_text, **extra)


# a job the view runs on demand ---------------------------------------------------------------

Submit = Callable[[], JobPublic]
Done = Callable[[Mapping[str, Any], JobPublic], tuple[Any, Any]]


class ViewJob:
    """A job a view runs on demand (the linear regions, a sample's attribution), in the view's
    own words: a button submits it, its progress is one line under the button, and when it
    has succeeded a *done* store changes, which the view's loading callback listens to.

    It speaks :mod:`frontend.jobs`' vocabulary (active statuses, the ended-job notice) but is
    not its :class:`~frontend.jobs.JobFollower`, the followed-job section of a job form: a view
    shows no "Job #n" heading or cancel row, and a succeeded job reloads the view's own
    outputs (figures, cards) rather than rendering into the job's panel.

    Component ids, from the view's prefix: ``<prefix>-compute`` (the button), ``-job`` (the
    followed job, ``{"id": job id, ...}``), ``-poll`` (its ``dcc.Interval``), ``-progress``
    and ``-done``.

    Args:
        prefix: the view's id prefix ("compare-regions").
        what: the job in words ("regions": "The regions job failed").
        done: ``(followed job, succeeded job) -> (progress, done value)``.
        announce: the followed job's first line is "Job #n submitted…" until its first poll.
    """

    def __init__(self, prefix: str, what: str, done: Done, *, announce: bool = False) -> None:
        self.compute, self.job, self.poll_id, self.progress, self.done = (
            f"{prefix}-{name}" for name in ("compute", "job", "poll", "progress", "done")
        )
        self.what, self.on_done, self.announce = what, done, announce

    def stores(self) -> list[Any]:
        """The followed-job and done stores and the poll (off until a job is followed)."""
        poll = dcc.Interval(id=self.poll_id, interval=POLL_INTERVAL_MS, disabled=True)
        return [poll, dcc.Store(id=self.job), dcc.Store(id=self.done)]

    def button(self, label: str, **kwargs: Any) -> html.Button:
        """The button that submits the job (hidden without a write token, see style.css)."""
        return html.Button(
            label, id=self.compute, n_clicks=0, className="btn btn-primary needs-write", **kwargs
        )

    def start(self, submit: Submit, **followed: Any) -> tuple[Any, Any]:
        """Submit the job (``submit()``); returns the followed job (``{"id", **followed}``),
        which starts the polling, and its first progress line (or the API's refusal)."""
        try:
            job = submit()
        except ApiError as exc:
            return dash.no_update, api_error_notice(exc, f"the {self.what} job")
        return {"id": int(job["id"]), **followed}, job_line(job)

    def follow(self, job: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """Callback: poll while a job is followed; the button waits for it.

        Returns:
            Interval disabled, button disabled (and, announcing, the progress line).
        """
        job_id = (job or {}).get("id")
        out: tuple[Any, ...] = (job_id is None, job_id is not None)
        if not self.announce:
            return out
        if job_id is None:
            return (*out, dash.no_update)
        return (*out, html.Span(f"Job #{job_id} submitted…", className="muted"))

    def poll(self, n_intervals: int | None, job: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """Callback: the followed job's progress; when it has succeeded, ``done``.

        Returns:
            Progress, interval disabled, button disabled, and the done value or no update.
        """
        if not job or job.get("id") is None:
            return dash.no_update, True, False, dash.no_update
        current, notices, stop = read_job(int(job["id"]))
        if current is None:  # an unknown job ends the following; a failing server does not
            return notices, stop, not stop, dash.no_update
        if current.get("status") in ACTIVE_STATUSES:
            return job_line(current), False, True, dash.no_update
        if current.get("status") == "succeeded":
            progress, done = self.on_done(job, current)
            return progress, True, True, done
        panel = html.Div([job_line(current), ended_notice(current, self.what)])
        return panel, True, False, dash.no_update

    def register(self, app: dash.Dash, start: Callable[..., Any], *states: State) -> None:
        """Attach the view's ``start(n_clicks, *states)`` callback (the button's: it submits
        with :meth:`start`), then the follow and poll callbacks."""
        app.callback(
            Output(self.job, "data", allow_duplicate=True),
            Output(self.progress, "children", allow_duplicate=True),
            Input(self.compute, "n_clicks"),
            *states,
            prevent_initial_call=True,
        )(start)
        announced = [Output(self.progress, "children")] if self.announce else []
        app.callback(
            Output(self.poll_id, "disabled"),
            Output(self.compute, "disabled"),
            *announced,
            Input(self.job, "data"),
        )(self.follow)
        app.callback(
            Output(self.progress, "children", allow_duplicate=True),
            Output(self.poll_id, "disabled", allow_duplicate=True),
            Output(self.compute, "disabled", allow_duplicate=True),
            Output(self.done, "data"),
            Input(self.poll_id, "n_intervals"),
            State(self.job, "data"),
            prevent_initial_call=True,
        )(self.poll)

"""Start, follow and cancel a job: the one component every page uses.

The status vocabulary (:data:`FINAL_STATUSES`, :func:`is_active`, :func:`can_cancel`), job
titles, submitting a spec (:func:`start_job`; checking one is :func:`frontend.forms.dry_run`),
reading a followed job (:func:`read_job`) and the two followers, keyed by a page prefix, that
poll ``GET /api/jobs/{id}`` (a ``dcc.Interval``) until the job is final and draw it with the
same pieces (:func:`status_line`, :func:`ended_notice`):

- :class:`JobFollower`, the followed-job section of a job form: a progress panel ("Job #n",
  status, progress bar, stage, error, "Stopping…", what a succeeded job made) and a "Cancel
  job" button;
- :class:`CompactFollower`, a job a compare-page view runs on demand: a start button, one
  progress line under it, and a *done* store that reloads the view once the job succeeded.

"Compare with the original" (the prune and upload pages) puts a new model into its original's
comparison, whose compare job then computes what it needs: :func:`compare_with_original`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    ApiUnreachableError,
    ComparisonPublic,
    JobKind,
    JobPublic,
    get_client,
)
from frontend.components import (
    api_error_notice,
    compare_href,
    comparison_job,
    job_pending,
    notice,
    progress_bar,
)
from frontend.forms import api_errors, as_states, query_int

POLL_INTERVAL_MS = 1000
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
CANCELLABLE_STATUSES = ("queued", "running")  # "cancelling" was already asked to stop
ACTIVE_STATUSES = ("queued", "running", "cancelling")
UNREACHABLE = "Cannot reach the PruneScope API"


def is_active(job: Mapping[str, Any] | None) -> bool:
    """Whether a job may still change: queued, running or cancelling."""
    return job is not None and job.get("status") not in FINAL_STATUSES


def can_cancel(job: Mapping[str, Any] | None) -> bool:
    """Whether "Cancel" is offered: only while the job is queued or running (a cancelling job
    was already asked to stop, a final one has nothing left to cancel)."""
    return job is not None and job.get("status") in CANCELLABLE_STATUSES


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _percent(fraction: Any) -> str:
    try:
        return f"{100 * float(fraction):.3g}%"
    except (TypeError, ValueError):
        return "—"


def job_title(job: Mapping[str, Any]) -> str:
    """What a job works on: ``"rigl at 90%"``, ``"sweep of rigl: 3 sparsities × 2 seeds"``,
    ``"digits_cnn on dataset #1, 15 epochs"``, ``"model #3 on the test split, 15 corruptions
    × 5 severities"``; else its kind."""
    spec, kind = job.get("spec") or {}, job.get("kind")
    if kind == "prune" and spec.get("method"):
        return f"{spec['method']} at {_percent(spec.get('sparsity'))}"
    if kind == "sweep" and spec.get("methods"):
        names = [m if isinstance(m, str) else str(m.get("method")) for m in spec["methods"]]
        n_s, n_seeds = len(spec.get("sparsities") or []), len(spec.get("seeds") or [])
        return (
            f"sweep of {', '.join(names)}: {_plural(n_s, 'sparsity', 'sparsities')} × "
            f"{_plural(n_seeds, 'seed', 'seeds')}"
        )
    if kind == "train" and spec.get("architecture"):
        title = f"{spec['architecture']} on dataset #{spec.get('dataset_id')}"
        epochs = spec.get("epochs")
        return title if epochs is None else f"{title}, {_plural(epochs, 'epoch', 'epochs')}"
    if kind == "analyze" and spec.get("model_id") is not None:
        title = f"model #{spec['model_id']} on the {spec.get('split') or 'test'} split"
        corruptions = spec.get("corruptions") or []
        if corruptions:
            n_s = len(spec.get("severities") or range(5))
            title += (
                f", {_plural(len(corruptions), 'corruption', 'corruptions')} × "
                f"{_plural(n_s, 'severity', 'severities')}"
            )
        return title
    return str(kind)


# submitting ---------------------------------------


def refusal_notice(
    exc: ApiError, notice_id: str | None = None, *, what: str = "the job", status: bool = False
) -> html.Div:
    """Why the API did not take ``what``: unreachable, refused (4xx, its detail verbatim; with
    ``status``, the status code in the title too) or broken (5xx)."""
    if isinstance(exc, ApiUnreachableError):
        title = UNREACHABLE
    elif 400 <= exc.status < 500:
        title = f"The API refused {what}" + (f" ({exc.status})" if status else "")
    else:
        title = f"The API answered {exc.status}"
    return notice(title, exc.detail, kind="error", notice_id=notice_id)


class Started(NamedTuple):
    """What :func:`start_job` did: the followed-job store's ``{"id", "kind"}``, or why not (a
    notice, and the refusal's field errors by spec path, see :func:`frontend.forms.api_errors`).
    """

    job: dict[str, Any] | None
    notice: html.Div | None
    errors: dict[str, str]


def start_job(kind: str, spec: Mapping[str, Any], *, notice_id: str | None = None) -> Started:
    """``POST /api/jobs`` (a sweep too); a refusal is explained by :func:`refusal_notice`."""
    try:
        job = get_client().create_job(cast(JobKind, kind), dict(spec))
    except ApiError as exc:
        return Started(None, refusal_notice(exc, notice_id), api_errors(exc))
    return Started({"id": job["id"], "kind": kind}, None, {})


# reading a followed job --------------------------------------------------------------------------


def read_job(job_id: int) -> tuple[JobPublic | None, list[Any], bool]:
    """``GET /api/jobs/{id}`` for a poll: ``(job, [], False)``, or ``(None, [notice], stop)``:
    an unknown job stops the following, any other error (a restarting server) does not."""
    try:
        return get_client().get_job(job_id), [], False
    except ApiError as exc:
        if exc.status == 404:
            return None, [notice(f"Job {job_id} not found", exc.detail, kind="warning")], True
        return None, [api_error_notice(exc, f"job {job_id}")], False


def ended_notice(job: Mapping[str, Any], what: str = "", notice_id: str | None = None) -> html.Div:
    """A failed job ("The job failed", "The regions job failed") with its error verbatim, or a
    cancelled one ("The job was cancelled")."""
    the_job = f"The {what} job" if what else "The job"
    if job.get("status") == "failed":
        error = str(job.get("error") or "no error message")
        return notice(f"{the_job} failed", error, kind="error", notice_id=notice_id)
    return notice(f"{the_job} was cancelled", job.get("error"), kind="warning", notice_id=notice_id)


def stopping_notice(job: Mapping[str, Any], notice_id: str | None = None) -> html.Div:
    """What a cancelling job's panel says until its worker has stopped it."""
    what = (
        "The sweep's prune jobs stop"
        if job.get("kind") == "sweep"
        else "The job stops at its next check"
    )
    return notice(
        "Stopping…",
        f"Cancellation was requested. {what}; then this panel shows it as cancelled.",
        kind="info",
        notice_id=notice_id,
    )


def cancel_notice(exc: ApiError, job_id: int) -> tuple[html.Div, bool]:
    """What the cancel row says when ``POST /api/jobs/{id}/cancel`` failed, and whether the
    button is hidden: a job that ended meanwhile (409) or is unknown (404) has nothing left to
    cancel; an unreachable or failing server leaves the button, to try again."""
    if exc.status == 409:
        box = notice(
            f"Job #{job_id} had already finished",
            "There was nothing left to cancel; the panel above shows how it ended.",
            kind="info",
        )
        return box, True
    if exc.status == 404:
        return notice(f"Job #{job_id} not found", exc.detail, kind="warning"), True
    unreachable = isinstance(exc, ApiUnreachableError)
    title = UNREACHABLE if unreachable else f"Could not cancel job #{job_id}"
    return notice(title, exc.detail, kind="error"), False


def compare_job_pending(
    client: ApiClient, comparison: Mapping[str, Any], what: str, pending_id: str
) -> tuple[JobPublic | None, html.Div, bool]:
    """The comparison's compare job, what the page says until it has finished (see
    :func:`job_pending`), and whether it is still active (the page then polls)."""
    job = comparison_job(client, comparison)
    return job, job_pending(job, what, pending_id), is_active(job)


# the followed-job section of a job form ----------------------------------------------------------


class FollowIds(NamedTuple):
    """The component ids of one :class:`JobFollower`, all derived from its prefix."""

    job: str  # dcc.Store {"id": job id, "kind": kind} or None
    poll: str  # dcc.Interval
    panel: str  # the section
    progress: str  # the polled panel inside it
    status: str
    progress_bar: str
    stage: str
    job_error: str  # the failed / cancelled notice
    stopping: str  # the "Stopping…" notice
    cancel: str  # the "Cancel job" button, outside the polled panel
    cancel_notice: str


def follow_ids(prefix: str) -> FollowIds:
    """``<prefix>-job``, ``-poll``, ``-panel``, ``-progress``, ``-status``, ``-progress-bar``,
    ``-stage``, ``-job-error``, ``-job-stopping``, ``-job-cancel`` and ``-job-cancel-notice``."""
    parts = "job poll panel progress status progress-bar stage job-error job-stopping job-cancel"
    parts += " job-cancel-notice"
    return FollowIds._make(f"{prefix}-{part}" for part in parts.split())


def _id(component_id: str | None) -> dict[str, Any]:
    return {} if component_id is None else {"id": component_id}


def status_line(
    job: Mapping[str, Any], *, label: str | None = None, ids: FollowIds | None = None
) -> html.Div:
    """A job's status, progress bar and stage on one line (``label`` before them), with the
    ids of a :class:`JobFollower`'s panel when ``ids`` are given."""
    status = str(job.get("status") or "")
    status_id, bar_id, stage_id = (ids.status, ids.progress_bar, ids.stage) if ids else (None,) * 3
    return html.Div(
        [
            *([] if label is None else [html.Span(label, className="muted")]),
            html.Span(status, className=f"status status-{status}", **_id(status_id)),
            progress_bar(job, bar_id),
            html.Span(str(job.get("stage") or ""), className="muted", **_id(stage_id)),
        ],
        className="job-line",
    )


ResultRenderer = Callable[[ApiClient, JobPublic], Any]


class JobFollower:
    """The followed job of a job form, keyed by a page prefix.

    A page places :meth:`layout` once, calls :meth:`register` from its own ``register(app)``,
    writes ``{"id": <job id>, "kind": <kind>}`` into ``ids.job`` when it has submitted a job
    (see :func:`start_job`), and may expose :meth:`poll`, :meth:`cancel` and :meth:`panel` as
    its named callbacks.

    Args:
        prefix: the page prefix of every id (see :func:`follow_ids`).
        render_result: ``(client, job) -> component(s)`` shown under a succeeded job's status;
            it may fetch what it needs and should not raise.
        title: ``job -> str`` next to "Job #n"; :func:`job_title` by default.
        cancel_title: the "Cancel job" button's tooltip.
        class_name: CSS classes of the section.
    """

    def __init__(
        self,
        prefix: str,
        *,
        render_result: ResultRenderer | None = None,
        title: Callable[[Mapping[str, Any]], str] = job_title,
        cancel_title: str = "Stop the job",
        class_name: str = "section progress-panel",
    ) -> None:
        self.prefix = prefix
        self.ids = follow_ids(prefix)
        self.render_result = render_result
        self.title = title
        self.cancel_title = cancel_title
        self.class_name = class_name

    def layout(self, job_id: int | None = None) -> html.Section:
        """The section: the job store and poll, the panel :meth:`poll` renders, then the cancel
        row. The button lives outside the re-rendered panel, so that it exists from the start;
        the poll shows it while the job can be cancelled."""
        ids = self.ids
        button = html.Button(
            "Cancel job",
            id=ids.cancel,
            n_clicks=0,
            hidden=True,
            className="btn btn-danger",
            title=self.cancel_title,
        )
        return html.Section(
            [
                dcc.Store(id=ids.job, data=None if job_id is None else {"id": job_id}),
                dcc.Interval(id=ids.poll, interval=POLL_INTERVAL_MS, disabled=job_id is None),
                html.Div(id=ids.progress, className="job-progress"),
                html.Div([button, html.Div(id=ids.cancel_notice)], className="actions job-actions"),
            ],
            id=ids.panel,
            className=self.class_name,
        )

    def panel(self, job: JobPublic, extra: Any = None) -> list[Any]:
        """The progress panel of one job: "Job #n" and its title, status, progress bar and
        stage, then the error of a failed job, "Stopping…" while it is being cancelled, that it
        was cancelled, or ``extra`` (what a succeeded job made)."""
        ids, status = self.ids, str(job.get("status"))
        children: list[Any] = [
            html.H2([f"Job #{job['id']} ", html.Span(self.title(job), className="muted")]),
            status_line(job, ids=ids),
        ]
        if status in ("failed", "cancelled"):
            children.append(ended_notice(job, notice_id=ids.job_error))
        elif status == "cancelling":
            children.append(stopping_notice(job, ids.stopping))
        elif status == "succeeded" and extra is not None:
            children.extend(extra if isinstance(extra, list) else [extra])
        return children

    def poll(
        self, n_intervals: int | None, job_state: Mapping[str, Any] | None
    ) -> tuple[Any, bool, bool]:
        """Callback: re-fetch the followed job and render its panel; runs when a job is
        submitted (or named in the URL), then every :data:`POLL_INTERVAL_MS` until it is final.

        Returns:
            The panel's children, whether polling stops (the interval disabled) and whether
            the "Cancel job" button is hidden (shown only while :func:`can_cancel`).
        """
        job_id = query_int((job_state or {}).get("id"))
        if job_id is None:
            return [], True, True
        job, panel, stop = read_job(job_id)
        if job is None:
            return panel, stop, True
        if is_active(job):
            return self.panel(job), False, not can_cancel(job)
        extra = None
        if job.get("status") == "succeeded" and self.render_result is not None:
            extra = self.render_result(get_client(), job)
        return self.panel(job, extra), True, True

    def cancel(self, n_clicks: int | None, job_state: Mapping[str, Any] | None) -> dict[str, Any]:
        """Callback: ``POST /api/jobs/{id}/cancel`` for the followed job ("Cancel job" clicked).

        A queued job is cancelled at once; a running one turns "cancelling" ("Stopping…") until
        its worker stops it, which the poll then shows (a sweep's prune jobs stop with it).

        Returns:
            ``{"panel": <panel children> or no_update, "hidden": whether the button is hidden
            (or no_update), "notice": <what the cancel row says> or None}``.
        """
        job_id = query_int((job_state or {}).get("id"))
        if not n_clicks or job_id is None:
            return {"panel": dash.no_update, "hidden": dash.no_update, "notice": dash.no_update}
        try:
            job = get_client().cancel_job(job_id)
        except ApiError as exc:
            box, hidden = cancel_notice(exc, job_id)
            return {"panel": dash.no_update, "hidden": hidden, "notice": box}
        return {"panel": self.panel(job), "hidden": not can_cancel(job), "notice": None}

    def register_form(
        self,
        app: dash.Dash,
        submit: Callable[..., Mapping[str, Any]],
        *,
        submit_id: str,
        submit_error_id: str,
        error_type: str,
        inputs: Mapping[str, Any],
    ) -> None:
        """Attach a job form's ``submit(n_clicks, **form, error_ids)`` (its button
        ``submit_id``, the form's ``inputs`` as States, the ids of its message slots of
        ``error_type``), answering ``{"errors", "submit_error", "job", "cancel_notice"}``,
        then :meth:`register`: the one way a form starts the job this follower follows."""
        slots = {"type": error_type, "field": ALL}
        app.callback(
            output={
                "errors": Output(slots, "children", allow_duplicate=True),
                "submit_error": Output(submit_error_id, "children"),
                "job": Output(self.ids.job, "data"),
                "cancel_notice": Output(self.ids.cancel_notice, "children", allow_duplicate=True),
            },
            inputs={
                "n_clicks": Input(submit_id, "n_clicks"),
                **as_states(inputs),
                "error_ids": State(slots, "id"),
            },
            prevent_initial_call=True,
        )(submit)
        self.register(app)

    def register(self, app: dash.Dash) -> None:
        """Attach the poll and the cancel callbacks; the page calls this from its register.

        Both write the panel and the button (the cancel callback with ``allow_duplicate``); a
        page's submit callback that clears ``ids.cancel_notice`` must allow duplicates too.
        """
        ids = self.ids
        outputs = [Output(i, p) for i, p in ((ids.progress, "children"), (ids.poll, "disabled"))]
        app.callback(
            [*outputs, Output(ids.cancel, "hidden")],
            [Input(ids.poll, "n_intervals"), Input(ids.job, "data")],
        )(self.poll)
        app.callback(
            output={
                "panel": Output(ids.progress, "children", allow_duplicate=True),
                "hidden": Output(ids.cancel, "hidden", allow_duplicate=True),
                "notice": Output(ids.cancel_notice, "children"),
            },
            inputs={"n_clicks": Input(ids.cancel, "n_clicks"), "job_state": State(ids.job, "data")},
            prevent_initial_call=True,
        )(self.cancel)


# a job a compare-page view runs on demand --------------------------------------------------------


class CompactIds(NamedTuple):
    """The component ids of one :class:`CompactFollower`, all derived from its prefix."""

    compute: str  # the button that starts the job
    job: str  # dcc.Store: the followed job, {"id": job id, ...} or None
    poll: str  # dcc.Interval
    progress: str  # the progress line under the button
    done: str  # dcc.Store: the followed job's store value, once that job has succeeded


def compact_ids(prefix: str) -> CompactIds:
    """``<prefix>-compute``, ``-job``, ``-poll``, ``-progress`` and ``-done``."""
    return CompactIds._make(f"{prefix}-{part}" for part in CompactIds._fields)


class CompactFollower:
    """A job a view runs on demand, keyed by the view's prefix: a button starts it, one line
    under the button follows it (:func:`status_line`; :func:`ended_notice` when it fails),
    and once it has succeeded the *done* store gets the followed job's store value, which
    the view's loading callback takes as an Input to redraw. No "Job #n" heading, no cancel.

    A view places :meth:`button` and ``ids.progress`` where they belong and :meth:`stores`
    anywhere, writes ``{"id": <job id>, ...}`` into ``ids.job`` to follow a job already
    running, and calls :meth:`register` with its start callback (which returns
    :meth:`start`'s answer).

    Args:
        prefix: the view's id prefix (see :func:`compact_ids`).
        kind: the job kind it submits, in its words too ("The regions job failed").
        announce: the line says "Job #n submitted…" as soon as a job is followed (one picked
            up when the view opens has no line before its first poll otherwise).
    """

    def __init__(self, prefix: str, kind: str, *, announce: bool = False) -> None:
        self.ids = compact_ids(prefix)
        self.kind, self.announce = kind, announce

    def stores(self) -> list[Any]:
        """The followed-job and done stores and the poll (off until a job is followed)."""
        ids = self.ids
        poll = dcc.Interval(id=ids.poll, interval=POLL_INTERVAL_MS, disabled=True)
        return [poll, dcc.Store(id=ids.job), dcc.Store(id=ids.done)]

    def button(self, label: str, **kwargs: Any) -> html.Button:
        """The button that starts the job (hidden without a write token, see style.css)."""
        return html.Button(
            label,
            id=self.ids.compute,
            n_clicks=0,
            className="btn btn-primary needs-write",
            **kwargs,
        )

    def line(self, job: Mapping[str, Any]) -> html.Div:
        """The progress line of a followed job: "Job #n", status, progress bar, stage."""
        return status_line(job, label=f"Job #{job.get('id')} ")

    def start(self, spec: Mapping[str, Any], **followed: Any) -> tuple[Any, Any]:
        """``POST /api/jobs`` with ``spec``: the followed job (``{"id", **followed}``, which
        starts the polling) and its first line, or no update and why the API refused it (its
        HTTP status kept)."""
        try:
            job = get_client().create_job(cast(JobKind, self.kind), dict(spec))
        except ApiError as exc:
            refused = refusal_notice(exc, what=f"the {self.kind} job", status=True)
            return dash.no_update, refused
        return {"id": int(job["id"]), **followed}, self.line(job)

    def follow(self, job_state: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """Callback: poll while a job is followed; the button waits for it.

        Returns:
            Interval disabled, button disabled (and, announcing, the line or no update).
        """
        job_id = (job_state or {}).get("id")
        out: tuple[Any, ...] = (job_id is None, job_id is not None)
        if not self.announce:
            return out
        said = html.Span(f"Job #{job_id} submitted…", className="muted")
        return (*out, dash.no_update if job_id is None else said)

    def poll(self, n_intervals: int | None, job_state: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """Callback: the followed job's line; once it has succeeded, the done store.

        An unknown job ends the following (its notice); a failing server does not.

        Returns:
            The line, interval disabled, button disabled, and the done value or no update.
        """
        job_id = query_int((job_state or {}).get("id"))
        if job_id is None:
            return dash.no_update, True, False, dash.no_update
        job, notices, stop = read_job(job_id)
        if job is None:
            return notices, stop, not stop, dash.no_update
        if is_active(job):
            return self.line(job), False, True, dash.no_update
        if job.get("status") == "succeeded":
            return self.line(job), True, True, dict(job_state or {})
        return html.Div([self.line(job), ended_notice(job, self.kind)]), True, False, dash.no_update

    def register(self, app: dash.Dash, start: Callable[..., Any], *states: State) -> None:
        """Attach the view's ``start(n_clicks, *states)`` (the button's callback, answering
        with :meth:`start`), then the follow and poll callbacks."""
        ids = self.ids
        line = Output(ids.progress, "children", allow_duplicate=True)
        app.callback(
            Output(ids.job, "data", allow_duplicate=True),
            line,
            Input(ids.compute, "n_clicks"),
            *states,
            prevent_initial_call=True,
        )(start)
        announced = [Output(ids.progress, "children")] if self.announce else []
        app.callback(
            Output(ids.poll, "disabled"),
            Output(ids.compute, "disabled"),
            *announced,
            Input(ids.job, "data"),
        )(self.follow)
        app.callback(
            line,
            Output(ids.poll, "disabled", allow_duplicate=True),
            Output(ids.compute, "disabled", allow_duplicate=True),
            Output(ids.done, "data"),
            Input(ids.poll, "n_intervals"),
            State(ids.job, "data"),
            prevent_initial_call=True,
        )(self.poll)


# a new model into its original's comparison ------------------------------------------------------


class OriginalComparison(NamedTuple):
    """What :func:`compare_with_original` did: the comparison, and "added", "already" or
    "created"."""

    comparison: ComparisonPublic
    done: str


def original_comparison_name(original: Mapping[str, Any]) -> str:
    """The name of the comparison "Compare with the original" creates for an original:
    ``"digits_cnn (#1) vs its pruned models"`` (later ones are added to it)."""
    return f"{original.get('name') or 'model'} (#{original.get('id')}) vs its pruned models"


def compare_with_original(
    client: ApiClient, original_id: int, model_ids: list[int]
) -> OriginalComparison:
    """Put new models (pruned from, or uploaded as versions of, ``original_id``) into the
    original's latest comparison on their dataset, or create it.

    The comparison is the newest whose model A is the original, on the dataset of the first new
    model (else the original's). Models not in it yet are added (``POST
    /api/comparisons/{id}/models``: its compare job computes only what they need); without one,
    a comparison is created with the demo's defaults (``prunescope demo``: every corruption the
    API lists, all severities, the default embedding; no corruptions when the server's dry run
    refuses them for the dataset, which is then not images), named by
    :func:`original_comparison_name`.

    Returns:
        The comparison, and ``done``: "added", "already" (every model was in it) or "created".

    Raises:
        ApiError: a refusal (e.g. 409 while the comparison's compare job is still going).
    """
    ids = [int(m) for m in model_ids]
    original = client.get_model(int(original_id))
    dataset_id = client.get_model(ids[0]).get("dataset_id") if ids else None
    dataset_id = dataset_id if dataset_id is not None else original.get("dataset_id")
    mine = [
        c
        for c in client.list_comparisons()
        if c["model_a_id"] == original["id"]
        and (dataset_id is None or c["dataset_id"] == dataset_id)
    ]
    if mine:
        latest = max(mine, key=lambda c: c["id"])
        missing = [m for m in ids if m not in latest["model_b_ids"]]
        if not missing:
            return OriginalComparison(latest, "already")
        return OriginalComparison(client.add_comparison_models(latest["id"], missing), "added")
    fields: dict[str, Any] = {"name": original_comparison_name(original)}
    corruptions = client.list_corruptions()
    if corruptions:
        try:
            client.validate_comparison(
                original["id"], ids, dataset_id, **fields, corruptions=corruptions
            )
            fields["corruptions"] = corruptions
        except ApiError as exc:
            if "corruptions" not in exc.field_errors:
                raise
    created = client.create_comparison(original["id"], ids, dataset_id, **fields)
    return OriginalComparison(created, "created")


def original_comparison_link(made: OriginalComparison, b: int | None, link_id: str) -> html.P:
    """ "Open comparison #N →" (``/compare?id=N&b=<the new model>``) and what was done."""
    comparison, done = made
    cid, name = comparison["id"], comparison.get("name") or f"comparison {comparison['id']}"
    said = {
        "added": f"Added to “{name}”; its compare job computes what the new model needs.",
        "already": f"Already in “{name}”.",
        "created": f"Created “{name}” with the demo's corruptions; its compare job analyses "
        "the models first.",
    }[done]
    link = dcc.Link(f"Open comparison #{cid} →", href=compare_href(cid, b), id=link_id)
    return html.P([link, html.Span(f" {said}", className="muted")])

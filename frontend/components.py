"""Small Dash component builders shared by the pages (notices, tables, cards)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qsl, urlencode

import dash
import httpx
from dash import Input, Output, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    ApiUnreachableError,
    ArchitecturePublic,
    get_client,
)
from frontend.figures.formatting import MISSING


def notice(
    title: str,
    body: Sequence[Any] | str | None = None,
    *,
    kind: str = "info",
    link_home: bool = False,
    notice_id: str | None = None,
) -> html.Div:
    """A boxed message: an empty state, a not-found or an error.

    Args:
        title: the headline.
        body: text or components under the headline.
        kind: "info", "warning" or "error"; selects the CSS class ``notice-<kind>``.
        link_home: add a link back to the home page.
        notice_id: optional component id.
    """
    children: list[Any] = [html.Strong(title)]
    if body:
        children.append(html.P(body if isinstance(body, str) else list(body)))
    if link_home:
        children.append(html.P(dcc.Link("← Back to home", href="/")))
    kwargs: dict[str, Any] = {"className": f"notice notice-{kind}"}
    if notice_id is not None:
        kwargs["id"] = notice_id
    return html.Div(children, **kwargs)


def api_error_notice(
    exc: ApiError, what: str, *, link_home: bool = False, notice_id: str | None = None
) -> html.Div:
    """Explain a failed API call without a traceback.

    Args:
        exc: the error raised by the client.
        what: what was being loaded, e.g. "the comparison".
        link_home: add a link back to the home page.
        notice_id: optional component id.
    """
    if isinstance(exc, ApiUnreachableError):
        return notice(
            "Cannot reach the PruneScope API",
            [
                f"Could not load {what}: {exc.detail}. Is ",
                html.Code("prunescope serve"),
                " running? Reload the page once it is.",
            ],
            kind="error",
            link_home=link_home,
            notice_id=notice_id,
        )
    return notice(
        f"Could not load {what}",
        f"The API answered {exc.status}: {exc.detail}",
        kind="error",
        link_home=link_home,
        notice_id=notice_id,
    )


def empty_state(*parts: Any) -> html.P:
    """A muted paragraph saying a list is empty and what to do about it."""
    return html.P(list(parts), className="empty")


def data_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    table_id: str | None = None,
    row_class_names: Sequence[str | None] | None = None,
) -> html.Table:
    """A plain HTML table: one ``Th`` per header, one ``Tr`` in the body per row.

    Args:
        header: column titles.
        rows: cell contents, one sequence per row, each as long as ``header``.
        table_id: optional component id of the table.
        row_class_names: optional CSS class per row.

    Raises:
        ValueError: when a row's length differs from the header's.
    """
    body = []
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells but the header has {len(header)}")
        tr_kwargs: dict[str, Any] = {}
        if row_class_names is not None and row_class_names[i]:
            tr_kwargs["className"] = row_class_names[i]
        body.append(html.Tr([html.Td(cell) for cell in row], **tr_kwargs))
    kwargs: dict[str, Any] = {"className": "data-table"}
    if table_id is not None:
        kwargs["id"] = table_id
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(body)], **kwargs
    )


def stat_card(
    title: str, value_a: str, value_b: str, delta: str | None = None, *, card_id: str | None = None
) -> html.Div:
    """A headline card: one metric of A and of B, and optionally the change.

    Args:
        title: the metric, e.g. "Accuracy".
        value_a: formatted value of the original model.
        value_b: formatted value of the pruned model.
        delta: formatted change from A to B, or None.
        card_id: optional component id.
    """
    children: list[Any] = [
        html.Div(title, className="card-title"),
        html.Div(
            [
                html.Div([html.Span("A", className="tag tag-a"), html.Span(value_a)]),
                html.Div([html.Span("B", className="tag tag-b"), html.Span(value_b)]),
            ],
            className="card-values",
        ),
    ]
    if delta is not None:
        children.append(html.Div(delta, className="card-delta"))
    kwargs: dict[str, Any] = {"className": "card stat-card"}
    if card_id is not None:
        kwargs["id"] = card_id
    return html.Div(children, **kwargs)


# the job-kind tab strip of the "New job" pages (/new and /prune) ------------------------------

JOB_KIND_TABS: tuple[tuple[str, str, str], ...] = (
    ("train", "Train", "Train a network from scratch on a registered dataset"),
    ("prune", "Prune", "Prune one model with one method at one sparsity, then fine-tune it"),
    ("sweep", "Sweep", "Prune one model with a method at several sparsities and seeds"),
    ("analyze", "Analyze", "Evaluate a model on a dataset split, optionally under corruptions"),
)


def _query_value(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def job_kind_href(kind: str, *, model: Any = None, dataset: Any = None) -> str:
    """Where the tab of job ``kind`` leads, carrying the model or dataset already chosen.

    Train and analyze live on ``/new``, prune and sweep on ``/prune`` (a sweep with
    ``kind=sweep``); the train tab carries the dataset, the others the model.

    Raises:
        ValueError: for a kind that is not one of :data:`JOB_KIND_TABS`.
    """
    kinds = [k for k, _, _ in JOB_KIND_TABS]
    if kind not in kinds:
        raise ValueError(f"kind={kind!r} should be one of {', '.join(kinds)}")
    path = "/prune" if kind in ("prune", "sweep") else "/new"
    params: list[tuple[str, str]] = []
    if kind != "prune":
        params.append(("kind", kind))
    carried = (
        ("dataset", _query_value(dataset)) if kind == "train" else ("model", _query_value(model))
    )
    if carried[1] is not None:
        params.append((carried[0], carried[1]))
    return f"{path}?{urlencode(params)}" if params else path


def job_kind_links(active: str, *, model: Any = None, dataset: Any = None) -> list[dcc.Link]:
    """The tabs of :func:`job_kind_tabs` (a callback re-renders them when the kind changes)."""
    links = []
    for kind, label, doc in JOB_KIND_TABS:
        class_name = "job-tab job-tab-active" if kind == active else "job-tab"
        links.append(
            dcc.Link(
                label,
                href=job_kind_href(kind, model=model, dataset=dataset),
                id=f"job-tab-{kind}",
                className=class_name,
                title=doc,
            )
        )
    return links


def job_kind_tabs(
    active: str, *, model: Any = None, dataset: Any = None, tabs_id: str | None = None
) -> html.Nav:
    """The "Train | Prune | Sweep | Analyze" strip that makes /new and /prune one "New job" page.

    Args:
        active: the kind whose tab is highlighted.
        model: id of the model chosen so far; the prune, sweep and analyze tabs carry it.
        dataset: id of the dataset chosen so far; the train tab carries it.
        tabs_id: optional component id of the strip.
    """
    kwargs: dict[str, Any] = {"className": "job-tabs"}
    if tabs_id is not None:
        kwargs["id"] = tabs_id
    return html.Nav(job_kind_links(active, model=model, dataset=dataset), **kwargs)


def progress_bar(job: Mapping[str, Any], bar_id: str | None = None) -> html.Div:
    """A job's progress bar with its percentage; full for a succeeded job.

    Args:
        job: a job (``status``, ``progress`` in [0, 1]).
        bar_id: id of the ``<progress>`` element (tests and pages find it by it).
    """
    progress = float(job.get("progress") or 0.0)
    if job.get("status") == "succeeded":
        progress = 1.0
    progress = min(max(progress, 0.0), 1.0)
    extra: dict[str, Any] = {} if bar_id is None else {"id": bar_id}
    bar = html.Progress(
        value=f"{progress:.3f}", max="1", className=f"progress-{job.get('status')}", **extra
    )
    return html.Div(
        [bar, html.Span(f"{100 * progress:.0f}%", className="progress-text")],
        className="progress",
    )


def job_line(job: Mapping[str, Any]) -> html.Div:
    """One line about a job: "Job #n", its status, its progress bar and its stage (or the
    ``message`` of a job state that carries one, as the attribution state does)."""
    status = str(job.get("status") or "")
    return html.Div(
        [
            html.Span(f"Job #{job.get('id') or job.get('job_id')} ", className="muted"),
            html.Span(status, className=f"status status-{status}"),
            progress_bar(job),
            html.Span(str(job.get("stage") or job.get("message") or ""), className="muted"),
        ],
        className="job-line",
        style={"display": "flex", "alignItems": "center", "gap": "0.75rem", "flexWrap": "wrap"},
    )


def job_status(job: Mapping[str, Any], title: Any, prefix: str, stopping: Any) -> list[Any]:
    """The top of a job form's progress panel (prune and new-job pages): "Job #n" and its
    title, status, progress bar and stage, then the error of a failed job, ``stopping`` while
    it is being cancelled, or that it was cancelled. What a succeeded job made is the page's.

    Component ids: ``<prefix>-status``, ``-progress-bar``, ``-stage`` and ``-job-error``.
    """
    status = str(job.get("status"))
    children: list[Any] = [
        html.H2([f"Job #{job['id']} ", html.Span(title, className="muted")]),
        html.Div(
            [
                html.Span(status, id=f"{prefix}-status", className=f"status status-{status}"),
                progress_bar(job, f"{prefix}-progress-bar"),
                html.Span(job.get("stage") or "", id=f"{prefix}-stage", className="muted"),
            ],
            className="job-line",
        ),
    ]
    error_id = f"{prefix}-job-error"
    if status == "failed":
        error = job.get("error") or "no error message"
        children.append(notice("The job failed", error, kind="error", notice_id=error_id))
    elif status == "cancelling":
        children.append(stopping)
    elif status == "cancelled":
        children.append(notice("The job was cancelled", kind="warning", notice_id=error_id))
    return children


def job_follow_section(
    *, progress_id: str, cancel_id: str, cancel_notice_id: str, cancel_title: str
) -> list[Any]:
    """The children of a job form's followed-job section: the panel its poll re-renders, then
    the "Cancel job" row. The button lives outside the re-rendered panel, so that it exists
    from the start; the poll shows it while the job can be cancelled."""
    return [
        html.Div(id=progress_id),
        html.Div(
            [
                html.Button(
                    "Cancel job",
                    id=cancel_id,
                    n_clicks=0,
                    hidden=True,
                    className="btn btn-danger",
                    title=cancel_title,
                ),
                html.Div(id=cancel_notice_id),
            ],
            className="actions job-actions",
        ),
    ]


# the architecture picker (train form, checkpoint upload) --------------------------------------
# About 1,450 architectures resolve by name (built-ins, plug-ins, torchvision/<name> and
# timm/<name>): too many to send to the browser. The dropdown offers the registered ones until
# something is typed, then the server's matches for what is typed (GET /api/architectures?q=).
# A page places it with architecture_picker(prefix, ...) and attaches its callbacks with
# register_architecture_picker(app, prefix) from its own register(app).

ARCHITECTURE_SEARCH_LIMIT = 50  # matches shown at once; the API allows up to 200
ARCHITECTURE_LOOKUP_LIMIT = 200  # names searched for the exact one a URL names
LIBRARY_SOURCES = ("torchvision", "timm")  # listed only when searched for
ARCHITECTURE_NOTE = "\u2026"  # value of a disabled note among the options: never a name
MAX_SHOWN_DEFAULTS = 6
# Offered when GET /api/architectures cannot be read (an older server): the built-ins as
# models.registry.model_info describes them.
FALLBACK_ARCHITECTURES: tuple[ArchitecturePublic, ...] = (
    {
        "name": "digits_cnn",
        "doc": "Small 3-conv CNN for 8x8 inputs (sklearn digits), no BatchNorm.",
        "defaults": {"num_classes": 10, "in_channels": 1},
        "required": [],
        "source": "builtin",
    },
    {
        "name": "mlp",
        "doc": "Fully connected ReLU network on the flattened input.",
        "defaults": {"hidden": [128, 64]},
        "required": ["input_shape", "num_classes"],
        "source": "builtin",
    },
    {
        "name": "resnet20",
        "doc": 'ResNet-20 for 32x32 images (He et al., "Deep Residual Learning", CVPR 2016).',
        "defaults": {"num_classes": 10, "in_channels": 3},
        "required": [],
        "source": "builtin",
    },
)


class ArchitecturePickerIds(NamedTuple):
    """The component ids of one architecture picker."""

    dropdown: str  # the dcc.Dropdown; its value is the chosen name
    entries: str  # dcc.Store: the API's entries behind the options (the chosen one included)
    about: str  # the line under the dropdown: doc, required and default arguments


def architecture_picker_ids(id_prefix: str) -> ArchitecturePickerIds:
    """``<prefix>`` (the dropdown), ``<prefix>-entries`` and ``<prefix>-about``."""
    return ArchitecturePickerIds(id_prefix, f"{id_prefix}-entries", f"{id_prefix}-about")


def architecture_source(entry: Mapping[str, Any]) -> str:
    """Where an architecture comes from ("builtin", "plugin", "timm", ...); an older API
    names none: then the ``timm/`` or ``torchvision/`` prefix says it, else ""."""
    source = entry.get("source")
    if source:
        return str(source)
    name = str(entry.get("name") or "")
    return next((lib for lib in LIBRARY_SOURCES if name.startswith(f"{lib}/")), "")


def architecture_option(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One option: labelled ``"timm/resnet18 · timm"``, the doc as its tooltip, and found by
    the dropdown's own filter by its name, source or doc."""
    name, source, doc = (
        str(entry["name"]),
        architecture_source(entry),
        str(entry.get("doc") or ""),
    )
    return {
        "label": f"{name} · {source}" if source else name,
        "value": name,
        "title": doc,
        "search": " ".join(part for part in (name, source, doc) if part),
    }


def _note_option(label: str, search_value: str) -> dict[str, Any]:
    # disabled, and found by whatever was typed so that the dropdown's filter keeps it
    return {"label": label, "value": ARCHITECTURE_NOTE, "disabled": True, "search": search_value}


def architecture_options(
    entries: Sequence[Mapping[str, Any]], *, more: int = 0, search_value: str = ""
) -> list[dict[str, Any]]:
    """The dropdown's options for ``entries``, in their order; ``more`` > 0 (the server matched
    that many more than it sent) adds a last, disabled option saying so."""
    options = [architecture_option(e) for e in entries]
    if more > 0:
        options.append(
            _note_option(
                f"… {more:,} more match {search_value!r}: type more of the name", search_value
            )
        )
    return options


def _shown_defaults(defaults: Mapping[str, Any]) -> str:
    items = [f"{k}={json.dumps(v)}" for k, v in defaults.items()]
    if len(items) > MAX_SHOWN_DEFAULTS:
        items = [*items[:MAX_SHOWN_DEFAULTS], f"… ({len(items)} in all)"]
    return ", ".join(items)


def architecture_about(value: Any, entries: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    """The line under the picker: the chosen architecture's source and doc, the arguments it
    needs and its defaults (for a timm or torchvision model: the arguments set from the
    dataset unless given). Empty when none is chosen."""
    if value is None or not str(value).strip():
        return []
    name = str(value).strip()
    entry = next((e for e in entries or [] if e.get("name") == name), None)
    if entry is None:
        return [f"{name!r} is not a listed architecture; the server will check it."]
    source = architecture_source(entry)
    parts: list[Any] = [html.Strong(name)]
    if source:
        parts.append(f" ({source})")
    if entry.get("doc"):
        parts.append(f" — {entry['doc']}")
    required = [str(r) for r in entry.get("required") or []]
    if required:
        parts.append(f" Needs {', '.join(required)} in the arguments.")
    defaults = dict(entry.get("defaults") or {})
    if defaults and source in LIBRARY_SOURCES:
        parts.append(f" Set from the dataset unless given: {', '.join(defaults)}.")
    elif defaults:
        parts.append(f" Defaults: {_shown_defaults(defaults)}.")
    return parts


def registered_architectures(client: ApiClient) -> list[ArchitecturePublic]:
    """What the picker offers before anything is typed: the built-in and plug-in architectures
    (not torchvision's and timm's, which are searched for); the built-ins of
    :data:`FALLBACK_ARCHITECTURES` when the API does not list architectures or does not
    answer in time.

    Raises:
        ApiUnreachableError: when the API cannot be reached at all.
    """
    try:
        listed = client.list_architectures(limit=ARCHITECTURE_SEARCH_LIMIT)["data"]
    except ApiUnreachableError as exc:
        if not isinstance(exc.__cause__, httpx.TimeoutException):
            raise
        # a registry still loading (its first use imports timm and torchvision) must not
        # keep the form from showing: the built-ins for now, the search once it has loaded
        listed = []
    except ApiError:
        # an API without the listing: 404, or the dashboard's own page for an unknown path
        listed = []
    own = [a for a in listed if architecture_source(a) not in LIBRARY_SOURCES]
    return own or listed or [cast(ArchitecturePublic, dict(a)) for a in FALLBACK_ARCHITECTURES]


def find_architecture_entry(client: ApiClient, name: Any) -> ArchitecturePublic | None:
    """The API's entry named exactly ``name`` (a URL may name any of them), or None when
    no architecture has that name or the API does not list them.

    Raises:
        ApiUnreachableError: when the API cannot be reached at all.
    """
    wanted = str(name or "").strip()
    if not wanted:
        return None
    try:
        page = client.list_architectures(q=wanted, limit=ARCHITECTURE_LOOKUP_LIMIT)
    except ApiUnreachableError:
        raise
    except ApiError:
        return None
    return next((a for a in page["data"] if a.get("name") == wanted), None)


def architecture_picker(
    id_prefix: str,
    value: str | None = None,
    entries: Sequence[ArchitecturePublic] = (),
    *,
    clearable: bool = False,
    placeholder: str = "Choose or search: resnet, vit, mobilenet…",
) -> html.Div:
    """A searchable architecture dropdown over the whole registry, with an about line.

    Args:
        id_prefix: page-prefixed id of the dropdown; see :func:`architecture_picker_ids`.
        value: the chosen name, or None.
        entries: what is offered before anything is typed (see
            :func:`registered_architectures`), the chosen one's entry included.
        clearable: whether the choice may be cleared (a blank architecture).
        placeholder: shown while nothing is chosen.
    """
    ids = architecture_picker_ids(id_prefix)
    offered = list(entries)
    return html.Div(
        [
            dcc.Dropdown(
                id=ids.dropdown,
                options=architecture_options(offered),
                value=value,
                clearable=clearable,
                searchable=True,
                search_order="original",  # the server's order: built-ins first
                placeholder=placeholder,
                maxHeight=320,
                labels={
                    "search": "Search built-ins, plug-ins, torchvision and timm",
                    "no_options_found": "No architecture name holds every word typed",
                },
            ),
            dcc.Store(id=ids.entries, data=offered),
            html.Div(architecture_about(value, offered), id=ids.about, className="muted hint"),
        ],
        className="architecture-picker",
    )


def search_architectures(
    search_value: str | None,
    value: Any,
    entries: Sequence[Mapping[str, Any]] | None,
) -> tuple[list[dict[str, Any]], list[Mapping[str, Any]]]:
    """Callback (text typed into a picker's search box): its options and the entries behind
    them.

    Nothing typed: the registered architectures; else the server's first
    :data:`ARCHITECTURE_SEARCH_LIMIT` matches and, when it has more, a disabled last option
    saying how many. The chosen architecture always stays among the options (the dropdown
    drops a value its options lack); a failed search says why in a disabled option.
    """
    text = (search_value or "").strip()
    chosen = [e for e in entries or [] if value is not None and e.get("name") == value][:1]
    more = 0
    try:
        if text:
            page = get_client().list_architectures(q=text, limit=ARCHITECTURE_SEARCH_LIMIT)
            found: list[Mapping[str, Any]] = list(page["data"])
            more = int(page["total"]) - len(found)
        else:
            found = list(registered_architectures(get_client()))
    except ApiError as exc:
        return [
            *architecture_options(chosen),
            _note_option(f"Search failed: {exc.detail}", text),
        ], chosen
    names = {a.get("name") for a in found}
    offered = found + [e for e in chosen if e.get("name") not in names]
    return architecture_options(offered, more=more, search_value=text), offered


def describe_architecture_choice(
    value: Any, entries: Sequence[Mapping[str, Any]] | None
) -> list[Any]:
    """Callback (a picker's value changed): its about line."""
    return architecture_about(value, entries)


def register_architecture_picker(app: dash.Dash, id_prefix: str) -> None:
    """Attach the callbacks of the picker ``id_prefix`` to ``app``; the page that places the
    picker calls this from its ``register(app)``."""
    ids = architecture_picker_ids(id_prefix)
    app.callback(
        Output(ids.dropdown, "options"),
        Output(ids.entries, "data"),
        Input(ids.dropdown, "search_value"),
        State(ids.dropdown, "value"),
        State(ids.entries, "data"),
        prevent_initial_call=True,
    )(search_architectures)
    app.callback(
        Output(ids.about, "children"),
        Input(ids.dropdown, "value"),
        State(ids.entries, "data"),
        prevent_initial_call=True,
    )(describe_architecture_choice)


def search_with(search: str | None, wanted: Mapping[str, Any]) -> str | None:
    """A Location's ``search`` with the ``wanted`` keys set (None or "" removes one) and the
    other keys kept after them; None when it already says so (writing it again would add a
    history entry)."""
    current = parse_qsl((search or "").lstrip("?"), keep_blank_values=True)
    first: dict[str, str] = {}
    for key, value in current:
        first.setdefault(key, value)
    text = {k: None if v is None or v == "" else str(v) for k, v in wanted.items()}
    if all(first.get(k) == v for k, v in text.items()):
        return None
    params = [(k, v) for k, v in text.items() if v is not None]
    params += [(k, v) for k, v in current if k not in wanted]
    return f"?{urlencode(params)}" if params else ""


def _compact_count(n: int) -> str:
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= threshold:
            return f"{n / threshold:.3g}{suffix}"
    return str(n)


def model_architecture_summary(model: Mapping[str, Any]) -> str:
    """``"timm/resnet18 · 11.2M params · 3×32×32"``: a model's architecture, its parameter
    count and the input shape it was proven to accept; what is not known is left out."""
    parts = [str(model.get("architecture") or MISSING)]
    n_params = model.get("n_params")
    if isinstance(n_params, int | float) and not isinstance(n_params, bool):
        parts.append(f"{_compact_count(int(n_params))} params")
    shape = model.get("input_shape")
    if shape:
        parts.append("×".join(str(s) for s in shape))
    return " · ".join(parts)


# downloading a model (GET /api/models/{id}/download) -----------------------------------------

DOWNLOAD_FORMATS: tuple[tuple[str, str, str], ...] = (
    ("safetensors", ".safetensors", "plain state_dict, masks folded in: load_state_dict() it"),
    ("pt", ".pt", "the same state_dict, written with torch.save"),
    ("onnx", ".onnx", "the pruned network, for onnxruntime and other runtimes"),
    ("prunescope", "PruneScope checkpoint", "masks and lineage: upload it to another PruneScope"),
)


def download_href(model_id: Any, fmt: str = "safetensors") -> str:
    """The API route of a model's file (relative: the dashboard and the API share an origin,
    so the browser sends its sign-in or share-link cookie along)."""
    return f"/api/models/{int(model_id)}/download?{urlencode({'format': fmt})}"


def download_link(model_id: Any, fmt: str = "safetensors") -> html.Span:
    """A "Download" link to a model's file in ``fmt``, with a small menu of the other formats.

    Plain links with the ``download`` attribute (the API names the file): no callback, and
    nothing a read-only user or a share link's viewer could not use for the comparison's
    models.
    """
    formats = {name: (label, doc) for name, label, doc in DOWNLOAD_FORMATS}
    if fmt not in formats:
        raise ValueError(f"fmt={fmt!r} should be one of {', '.join(formats)}")
    others = [
        html.Li(html.A(label, href=download_href(model_id, name), download="", title=doc))
        for name, (label, doc) in formats.items()
        if name != fmt
    ]
    return html.Span(
        [
            html.A(
                "Download",
                href=download_href(model_id, fmt),
                download="",
                title=f"{formats[fmt][0]}: {formats[fmt][1]}",
                className="download-link",
            ),
            html.Details(
                [
                    html.Summary("▾", title="other formats"),
                    html.Ul(others, style={"listStyle": "none", "margin": 0, "padding": 0}),
                ],
                className="download-formats",
                style={"display": "inline-block", "marginLeft": "0.25em"},
            ),
        ],
        className="download",
    )

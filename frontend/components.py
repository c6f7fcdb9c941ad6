"""Dash component builders shared by the pages: notices, tables, cards, the job-kind tabs,
the architecture picker, download links and the blocks of the comparison pages."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

import dash
import httpx
from dash import Input, Output, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    ApiUnreachableError,
    ArchitecturePublic,
    ComparisonPublic,
    JobPublic,
    RobustnessTable,
    get_analysis_robustness,
    get_client,
)
from frontend.figures.overview import MEAN_CORRUPTED
from frontend.figures.similarity import CLEAN
from frontend.forms import find_by_id, query_int


def _id(component_id: Any) -> dict[str, Any]:
    return {} if component_id is None else {"id": component_id}


def notice(
    title: str,
    body: Sequence[Any] | str | None = None,
    *,
    kind: str = "info",
    link_home: bool = False,
    notice_id: str | None = None,
) -> html.Div:
    """A boxed message (an empty state, a not-found, an error): ``title``, then ``body`` (text
    or components); ``kind`` "info", "warning" or "error" selects the CSS class
    ``notice-<kind>``, ``link_home`` adds a link back to the home page."""
    children: list[Any] = [html.Strong(title)]
    if body:
        children.append(html.P(body if isinstance(body, str) else list(body)))
    if link_home:
        children.append(html.P(dcc.Link("← Back to home", href="/")))
    return html.Div(children, className=f"notice notice-{kind}", **_id(notice_id))


def api_error_notice(
    exc: ApiError, what: str, *, link_home: bool = False, notice_id: str | None = None
) -> html.Div:
    """Explain a failed API call without a traceback; ``what`` was being loaded, e.g. "the
    comparison" (see :func:`notice` for the rest)."""
    if isinstance(exc, ApiUnreachableError):
        title = "Cannot reach the PruneScope API"
        body: Any = [
            f"Could not load {what}: {exc.detail}. Is ",
            html.Code("prunescope serve"),
            " running? Reload the page once it is.",
        ]
    else:
        title, body = f"Could not load {what}", f"The API answered {exc.status}: {exc.detail}"
    return notice(title, body, kind="error", link_home=link_home, notice_id=notice_id)


def chosen_id(
    rows: Sequence[Mapping[str, Any]], raw: Any, what: str, default: Any = None
) -> tuple[Any, list[html.Div]]:
    """The id of the row a URL's ``raw`` value names (``default`` when absent), or None and a
    warning that no ``what`` has it."""
    if raw is None:
        return default, []
    if find_by_id(rows, raw) is not None:
        return query_int(raw), []
    return None, [
        notice(f"{what.capitalize()} '{raw}' not found", f"Choose a {what} below.", kind="warning")
    ]


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
    """A plain HTML table: one ``Th`` per header, one ``Tr`` per row (with its CSS class from
    ``row_class_names``, if any); :class:`ValueError` when a row's length differs from the
    header's."""
    body = []
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells but the header has {len(header)}")
        css = row_class_names[i] if row_class_names is not None else None
        extra: dict[str, Any] = {"className": css} if css else {}
        body.append(html.Tr([html.Td(cell) for cell in row], **extra))
    head = html.Thead(html.Tr([html.Th(h) for h in header]))
    return html.Table([head, html.Tbody(body)], className="data-table", **_id(table_id))


def _card(css: str, title: str, body: html.Div, detail: Any, card_id: str | None) -> html.Div:
    tail = [] if detail is None else [html.Div(detail, className="card-delta")]
    children = [html.Div(title, className="card-title"), body, *tail]
    return html.Div(children, className=f"card {css}", **_id(card_id))


def stat_card(
    title: str, value_a: str, value_b: str, delta: str | None = None, *, card_id: str | None = None
) -> html.Div:
    """A headline card: one metric (``title``, e.g. "Accuracy") of A and of B, formatted, and
    optionally the change from A to B."""
    values = [
        html.Div([html.Span(tag, className=f"tag tag-{tag.lower()}"), html.Span(value)])
        for tag, value in (("A", value_a), ("B", value_b))
    ]
    return _card("stat-card", title, html.Div(values, className="card-values"), delta, card_id)


def result_card(
    title: str, value: str, detail: str | None = None, *, card_id: str | None = None
) -> html.Div:
    """A card with one figure of what a job made: its title, the number and a detail line."""
    number = html.Div(value, className="card-number")
    return _card("result-card", title, number, detail or None, card_id)


def comparison_link(comparison_id: int, link_id: str) -> html.P:
    """ "Open comparison #N →", after a page has created one."""
    href, label = f"/compare?id={comparison_id}", f"Open comparison #{comparison_id} →"
    note = " Models without an analysis are analysed first; until then the comparison page says so."
    return html.P([dcc.Link(label, href=href, id=link_id), html.Span(note, className="muted")])


# the job-kind tab strip of the "New job" pages (/new and /prune) ------------------------------

JOB_KIND_TABS: tuple[tuple[str, str, str], ...] = (
    ("train", "Train", "Train a network from scratch on a registered dataset"),
    ("prune", "Prune", "Prune one model with one method at one sparsity, then fine-tune it"),
    ("sweep", "Sweep", "Prune one model with a method at several sparsities and seeds"),
    ("analyze", "Analyze", "Evaluate a model on a dataset split, optionally under corruptions"),
)


def job_kind_href(kind: str, *, model: Any = None, dataset: Any = None) -> str:
    """Where the tab of job ``kind`` leads: train and analyze live on ``/new``, prune and sweep
    on ``/prune`` (a sweep with ``kind=sweep``); the train tab carries the dataset chosen so
    far, the others the model. :class:`ValueError` for a kind not in :data:`JOB_KIND_TABS`."""
    kinds = [k for k, _, _ in JOB_KIND_TABS]
    if kind not in kinds:
        raise ValueError(f"kind={kind!r} should be one of {', '.join(kinds)}")
    path = "/prune" if kind in ("prune", "sweep") else "/new"
    params = [] if kind == "prune" else [("kind", kind)]
    key, value = ("dataset", dataset) if kind == "train" else ("model", model)
    text = "" if value is None or isinstance(value, bool) else str(value).strip()
    params += [(key, text)] if text else []
    return f"{path}?{urlencode(params)}" if params else path


def job_kind_links(active: str, *, model: Any = None, dataset: Any = None) -> list[dcc.Link]:
    """The tabs of :func:`job_kind_tabs` (a callback re-renders them when the kind changes)."""
    return [
        dcc.Link(
            label,
            href=job_kind_href(kind, model=model, dataset=dataset),
            id=f"job-tab-{kind}",
            className="job-tab job-tab-active" if kind == active else "job-tab",
            title=doc,
        )
        for kind, label, doc in JOB_KIND_TABS
    ]


def job_kind_tabs(
    active: str, *, model: Any = None, dataset: Any = None, tabs_id: str | None = None
) -> html.Nav:
    """The "Train | Prune | Sweep | Analyze" strip that makes /new and /prune one "New job"
    page: ``active`` highlighted, the prune, sweep and analyze tabs carrying the ``model``
    chosen so far, the train tab the ``dataset``."""
    links = job_kind_links(active, model=model, dataset=dataset)
    return html.Nav(links, className="job-tabs", **_id(tabs_id))


def progress_bar(job: Mapping[str, Any], bar_id: str | None = None) -> html.Div:
    """A job's progress bar (``<progress>`` id ``bar_id``) with its percentage; full for a
    succeeded job."""
    progress = 1.0 if job.get("status") == "succeeded" else float(job.get("progress") or 0.0)
    progress = min(max(progress, 0.0), 1.0)
    bar = html.Progress(
        value=f"{progress:.3f}", max="1", className=f"progress-{job.get('status')}", **_id(bar_id)
    )
    return html.Div(
        [bar, html.Span(f"{100 * progress:.0f}%", className="progress-text")],
        className="progress",
    )


def job_line(
    job: Mapping[str, Any], *, label: str | None = None, status_id: str | None = None
) -> html.Div:
    """One line about a job: ``label`` ("Job #n" by default), its status (with ``status_id``),
    its progress bar and its stage (or the ``message`` of a job state that carries one, as the
    attribution state does)."""
    status = str(job.get("status") or "")
    return html.Div(
        [
            html.Span(label or f"Job #{job.get('id') or job.get('job_id')} ", className="muted"),
            html.Span(status, className=f"status status-{status}", **_id(status_id)),
            progress_bar(job),
            html.Span(str(job.get("stage") or job.get("message") or ""), className="muted"),
        ],
        className="job-line",
        style={"display": "flex", "alignItems": "center", "gap": "0.75rem", "flexWrap": "wrap"},
    )


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
    name, source, doc = str(entry["name"]), architecture_source(entry), str(entry.get("doc") or "")
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
    note = f"… {more:,} more match {search_value!r}: type more of the name"
    return options + ([_note_option(note, search_value)] if more > 0 else [])


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
    required = ", ".join(str(r) for r in entry.get("required") or [])
    defaults = dict(entry.get("defaults") or {})
    if source in LIBRARY_SOURCES:
        shown = f" Set from the dataset unless given: {', '.join(defaults)}."
    else:
        shown = f" Defaults: {_shown_defaults(defaults)}."
    notes = (
        f" ({source})" if source else "",
        f" — {entry['doc']}" if entry.get("doc") else "",
        f" Needs {required} in the arguments." if required else "",
        shown if defaults else "",
    )
    return [html.Strong(name), *(note for note in notes if note)]


def registered_architectures(client: ApiClient) -> list[ArchitecturePublic]:
    """What the picker offers before anything is typed: the built-in and plug-in architectures
    (not torchvision's and timm's, which are searched for); none when the API does not list
    them or does not answer in time. Raises :class:`ApiUnreachableError` when the API cannot
    be reached at all."""
    try:
        listed = client.list_architectures(limit=ARCHITECTURE_SEARCH_LIMIT)["data"]
    except ApiUnreachableError as exc:
        if not isinstance(exc.__cause__, httpx.TimeoutException):
            raise
        # a registry still loading (its first use imports timm and torchvision) must not
        # keep the form from showing: the search works once it has loaded
        return []
    except ApiError:
        return []  # an API without the listing
    own = [a for a in listed if architecture_source(a) not in LIBRARY_SOURCES]
    return own or list(listed)


def find_architecture_entry(client: ApiClient, name: Any) -> ArchitecturePublic | None:
    """The API's entry named exactly ``name`` (a URL may name any of them), or None; raises
    :class:`ApiUnreachableError` when the API cannot be reached at all."""
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
    """A searchable architecture dropdown over the whole registry (ids: see
    :func:`architecture_picker_ids`), with an about line; ``entries`` are offered before
    anything is typed (see :func:`registered_architectures`), ``value``'s included."""
    ids, offered = architecture_picker_ids(id_prefix), list(entries)
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
    search_value: str | None, value: Any, entries: Sequence[Mapping[str, Any]] | None
) -> tuple[list[dict[str, Any]], list[Mapping[str, Any]]]:
    """Callback (text typed into a picker's search box): its options and the entries behind
    them. Nothing typed: the registered architectures; else the server's first
    :data:`ARCHITECTURE_SEARCH_LIMIT` matches and, when it has more, a disabled last option
    saying how many. The chosen architecture always stays among the options (the dropdown
    drops a value its options lack); a failed search says why in a disabled option."""
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
        failed = _note_option(f"Search failed: {exc.detail}", text)
        return [*architecture_options(chosen), failed], chosen
    names = {a.get("name") for a in found}
    offered = found + [e for e in chosen if e.get("name") not in names]
    return architecture_options(offered, more=more, search_value=text), offered


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
    )(architecture_about)


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
    """A "Download" link to a model's file in ``fmt``, with a small menu of the other formats:
    plain links with the ``download`` attribute (the API names the file), no callback."""
    formats = {name: (label, doc) for name, label, doc in DOWNLOAD_FORMATS}
    if fmt not in formats:
        raise ValueError(f"fmt={fmt!r} should be one of {', '.join(formats)}")
    others = [
        html.Li(html.A(label, href=download_href(model_id, name), download="", title=doc))
        for name, (label, doc) in formats.items()
        if name != fmt
    ]
    label, doc = formats[fmt]
    main = html.A(
        "Download",
        href=download_href(model_id, fmt),
        download="",
        title=f"{label}: {doc}",
        className="download-link",
    )
    menu = html.Details(
        [
            html.Summary("▾", title="other formats"),
            html.Ul(others, style={"listStyle": "none", "margin": 0, "padding": 0}),
        ],
        className="download-formats",
        style={"display": "inline-block", "marginLeft": "0.25em"},
    )
    return html.Span([main, menu], className="download")


# the comparison pages (compare, overview, similarity) ------------------------------------------


def compare_href(comparison_id: int, b: int | None = None, corruption: str | None = None) -> str:
    """``/compare?id=&b=&rob_c=``: the comparison with B and a corruption selected (the clean
    set and the corruptions' mean select none)."""
    params: list[tuple[str, Any]] = [("id", comparison_id)]
    if b is not None:
        params.append(("b", b))
    if corruption and corruption not in (CLEAN, MEAN_CORRUPTED):
        params.append(("rob_c", corruption))
    return f"/compare?{urlencode(params)}"


def comparison_job(client: ApiClient, comparison: Mapping[str, Any]) -> JobPublic | None:
    """The comparison's latest compare job, None when it has none or it cannot be read."""
    try:
        job_id = comparison.get("job_id")
        return client.get_job(int(job_id)) if job_id is not None else None
    except (ApiError, TypeError, ValueError):
        return None


def load_accuracies(
    client: ApiClient, comparison: Mapping[str, Any]
) -> tuple[dict[int, float | None], dict[int, RobustnessTable | None]]:
    """Clean test accuracy and robustness table of every model of a comparison, from the
    latest test-split analysis of each on its dataset (``/comparisons/{id}/analyses``): a model
    without one is absent from both maps, one analysed without corruptions maps to None.
    Raises :class:`ApiError` when the analyses cannot be listed."""
    latest: dict[int, Mapping[str, Any]] = {
        int(a["model_id"]): a for a in client.list_comparison_analyses(int(comparison["id"]))
    }
    clean = {mid: chosen.get("accuracy") for mid, chosen in latest.items()}
    robustness: dict[int, RobustnessTable | None] = {}
    for mid, chosen in latest.items():
        try:
            robustness[mid] = get_analysis_robustness(client, int(chosen["id"]))
        except ApiError as exc:
            if exc.status != 404:  # 404: analysed without corruptions
                raise
            robustness[mid] = None
    return clean, robustness


def comparison_picker(page_path: str, what: str, picker_id: str) -> html.Div | html.Section:
    """Every comparison with a link to ``page_path?id=N``, or what to do when there is none."""
    try:
        comparisons = get_client().list_comparisons()
    except ApiError as exc:
        return html.Div(api_error_notice(exc, "the comparisons", link_home=True), id=picker_id)
    if not comparisons:
        body = [
            f"The {what} needs a comparison of an original model with pruned ones. Run ",
            html.Code("prunescope demo"),
            ", or prune a model on the ",
            dcc.Link("Prune page", href="/prune"),
            " and choose “Compare with the original”.",
        ]
        return html.Div(notice("No comparisons yet", body, link_home=True), id=picker_id)
    rows = [
        [
            dcc.Link(c["name"] or f"comparison {c['id']}", href=f"{page_path}?id={c['id']}"),
            str(len(c.get("model_b_ids") or [])),
            str(c.get("created_at") or "")[:16].replace("T", " "),
        ]
        for c in sorted(comparisons, key=lambda c: c["id"], reverse=True)
    ]
    table = data_table(["Comparison", "Pruned models", "Created"], rows)
    return html.Section([html.H2("Pick a comparison"), table], id=picker_id, className="section")


def job_pending(job: JobPublic | None, what: str, pending_id: str) -> html.Div:
    """What a page says (notice ``pending_id``) while, or because, the comparison's compare job
    (None: it has none) has not finished; ``what`` appears then, e.g. "The similarity map"."""
    if job is None:
        title, kind = f"{what} is not ready", "warning"
        body: Any = (
            "This comparison has no compare job; create the comparison again (POST "
            "/api/comparisons) to compute it."
        )
    elif job["status"] == "failed":
        title, kind = f"{what} could not be computed", "error"
        body = [f"Compare job #{job['id']} failed: ", html.Code(job.get("error") or "no message")]
    elif job["status"] in ("cancelled", "cancelling"):
        title, kind = f"{what} is not ready", "warning"
        body = f"Compare job #{job['id']} was cancelled; create the comparison again to compute it."
    else:
        return html.Div(
            [
                html.Strong(f"{what} appears when the compare job has finished"),
                job_line(job),
                html.P("This page updates itself; no need to reload.", className="muted"),
            ],
            id=pending_id,
            className="notice notice-info",
        )
    return notice(title, body, kind=kind, notice_id=pending_id)


def comparison_header(comparison: Mapping[str, Any], here: str) -> list[Any]:
    """The comparison's name and links to its other views (``here``, a path, is left out)."""
    cid = comparison["id"]
    views = (("Comparison", "/compare"), ("Evaluation overview", "/overview"))
    parts: list[Any] = []
    for label, path in (*views, ("Similarity map", "/similarity")):
        link = dcc.Link(f"{label} →", href=f"{path}?id={cid}")
        if path != here:
            parts += [html.Span(" · ", className="muted"), link] if parts else [link]
    name: list[Any] = [html.Strong(comparison.get("name") or f"comparison {cid}"), f" (#{cid})"]
    return [html.P(name, className="subtitle"), html.P(parts, className="view-links")]


def comparison_not_found(comparison_id: int, exc: ApiError, picker_path: str) -> html.Div:
    """The notice for a comparison the API could not give; a 404 links to the page's picker."""
    if exc.status == 404:
        return notice(
            f"Comparison {comparison_id} not found",
            [f"{exc.detail}. ", dcc.Link("Pick another one", href=picker_path), "."],
            kind="warning",
            link_home=True,
        )
    return api_error_notice(exc, "the comparison", link_home=True)


PageBody = Callable[[ComparisonPublic], tuple[list[Any], bool, dict[str, Any]]]


def comparison_body(prefix: str, comparison_id: int, body: PageBody) -> tuple[list[Any], bool, Any]:
    """What a :func:`comparison_page` shows below its title: the comparison's header (or why
    it could not be read) and ``body(comparison)`` = ``(children, compare job active, state)``."""
    try:
        comparison = get_client().get_comparison(comparison_id)
    except ApiError as exc:
        return [comparison_not_found(comparison_id, exc, f"/{prefix}")], False, {}
    children, active, state = body(comparison)
    return [*comparison_header(comparison, f"/{prefix}"), *children], active, state


def comparison_page(
    prefix: str, title: str, raw_id: Any, body: PageBody, *, intro: str, what: str
) -> html.Div:
    """A page about one comparison (``/<prefix>?id=``), e.g. the overview: without a valid id,
    an intro and the comparisons to pick from (``<prefix>-picker``); else its header and
    ``body(comparison)`` (see :func:`comparison_body`) in ``<prefix>-body``, re-rendered every
    second by ``<prefix>-poll`` while the compare job is active (see
    :func:`register_comparison_page`), and ``{"id", **state}`` in ``<prefix>-state``."""
    comparison_id = query_int(raw_id)
    page = f"page page-{prefix}"
    if comparison_id is None:
        if raw_id is not None:
            intro = f"'{raw_id}' is not a comparison id. {intro}"
        picker = comparison_picker(f"/{prefix}", what, f"{prefix}-picker")
        return html.Div([html.H1(title), html.P(intro, className="lead"), picker], className=page)
    children, active, state = comparison_body(prefix, comparison_id, body)
    return html.Div(
        [
            html.H1(title),
            html.Div(children, id=f"{prefix}-body"),
            dcc.Interval(id=f"{prefix}-poll", interval=1000, disabled=not active),
            dcc.Store(id=f"{prefix}-state", data={"id": comparison_id, **state}),
        ],
        className=page,
    )


def refresh_comparison_page(
    prefix: str, state: Mapping[str, Any] | None, body: PageBody
) -> tuple[Any, bool]:
    """The poll of a :func:`comparison_page`: its body again, and whether polling stops (the
    compare job has ended)."""
    comparison_id = query_int((state or {}).get("id"))
    if comparison_id is None:
        return dash.no_update, True
    children, active, _ = comparison_body(prefix, comparison_id, body)
    return children, not active


def register_comparison_page(app: dash.Dash, prefix: str, refresh: Callable[..., Any]) -> None:
    """Attach the poll of the :func:`comparison_page` ``prefix``: ``refresh(n_intervals,
    state)`` re-renders its body (see :func:`refresh_comparison_page`)."""
    app.callback(
        Output(f"{prefix}-body", "children"),
        Output(f"{prefix}-poll", "disabled"),
        Input(f"{prefix}-poll", "n_intervals"),
        State(f"{prefix}-state", "data"),
        prevent_initial_call=True,
    )(refresh)

"""New comparison page ("/comparisons/new?a=&b=&job=", "/comparisons/new?add=<id>").

Two forms on one page, the same fields:

- a new comparison: model A, any number of models B (searchable, grouped by lineage: A's
  pruned descendants first, each labelled with its method and sparsity, then the other models
  of A's dataset), the corruptions (all that ``GET /api/corruptions`` lists, at severities 1, 3
  and 5, ticked by default; shown only for an image dataset), the embedding and a name; on
  submit ``POST /api/comparisons``;
- ``?add=<id>``, "Add models" (linked from the comparison's Overview page): model A is the
  comparison's, the Bs offered are those not in it yet, and the comparison's own corruptions
  and embedding apply; on submit ``POST /api/comparisons/{id}/models``, whose compare job
  computes only what the new models need.

As the form is filled in, the server checks it with its dry run (the same routes with
``dry_run=true``, through :func:`frontend.forms.register_validation`) and each message appears
next to its field; nothing here repeats the server's rules. After submission the compare job is
followed with :class:`frontend.jobs.JobFollower`, which ends with links to the comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args

import dash
from dash import Input, Output, State, dcc, html

from frontend import components, forms
from frontend.client import (
    ApiClient,
    ApiError,
    ComparisonPublic,
    Embedding,
    JobPublic,
    ModelPublic,
    get_client,
)
from frontend.forms import control, query_int
from frontend.jobs import JobFollower, refusal_notice

PATH = "/comparisons/new"
TITLE = "New comparison · PruneScope"

ID_A = "newcmp-a"
ID_B = "newcmp-b"
ID_DATASET = "newcmp-dataset"
ID_SETTINGS = "newcmp-settings"  # corruptions, embedding, name: a new comparison's only
ID_CORRUPTION_FIELDS = "newcmp-corruption-fields"  # shown for an image dataset
ID_CORRUPTIONS = "newcmp-corruptions"
ID_SEVERITIES = "newcmp-severities"
ID_EMBEDDING = "newcmp-embedding"
ID_NAME = "newcmp-name"
ID_ADDING = "newcmp-adding"  # what "Add models" keeps: the comparison's settings
ID_MODE = "newcmp-mode"  # dcc.Store {"add": comparison id or None, "members": [B ids]}
ID_MODELS = "newcmp-models"  # dcc.Store: the models and datasets the options are made of
ID_SUBMIT = "newcmp-submit"
ID_SUBMIT_ERROR = "newcmp-submit-error"
ID_EMPTY = "newcmp-empty"
ID_OPEN = "newcmp-open-link"
ID_OVERVIEW = "newcmp-overview-link"
ERROR_TYPE = "newcmp-field-error"  # {"type": ERROR_TYPE, "field": <body field>}

EMBEDDINGS: tuple[str, ...] = get_args(Embedding)
EMBEDDING_LABELS = {
    "auto": "auto (aligned UMAP; PCA below 50 samples)",
    "aligned_umap": "aligned UMAP",
    "umap_init": "UMAP of B started from A's layout",
    "pca": "PCA (instant)",
}
SEVERITIES = (1, 2, 3, 4, 5)
DEFAULT_SEVERITIES = (1, 3, 5)
# Body fields with a message slot; "" is the slot under the form (the body as a whole).
FIELDS = ("model_a_id", "model_b_ids", "corruptions", "severities", "embedding", "name")
FORM_INPUTS = {
    "a": ID_A,
    "b": ID_B,
    "corruptions": ID_CORRUPTIONS,
    "severities": ID_SEVERITIES,
    "embedding": ID_EMBEDDING,
    "name": ID_NAME,
}
GROUP = "group:"  # the value prefix of a group heading among the B options (never chosen)


def comparison_made(client: ApiClient, job: JobPublic) -> list[Any]:
    """What a succeeded compare job of this page made: links to its comparison (with the first
    added model selected, for "Add models") and to its overview."""
    spec = job.get("spec") or {}
    cid = query_int(spec.get("comparison_id"))
    if cid is None:
        return []
    added = spec.get("added_model_b_ids") or []
    b = query_int(added[0]) if added else None
    done = f"{len(added)} model(s) added; " if added else ""
    return [
        html.P(
            [
                dcc.Link(
                    f"Open comparison #{cid} →", href=components.compare_href(cid, b), id=ID_OPEN
                ),
                html.Span(" · ", className="muted"),
                dcc.Link("Evaluation overview →", href=f"/overview?id={cid}", id=ID_OVERVIEW),
                html.Span(" · ", className="muted"),
                dcc.Link("Similarity map →", href=f"/similarity?id={cid}"),
            ]
        ),
        html.P(f"{done}the comparison's results are ready.", className="muted"),
    ]


FOLLOW = JobFollower(
    "newcmp",
    render_result=comparison_made,
    title=lambda job: f"compare, comparison #{(job.get('spec') or {}).get('comparison_id')}",
    cancel_title="Stop the compare job",
)
poll_job, cancel_followed_job = FOLLOW.poll, FOLLOW.cancel


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="New comparison", layout=layout)
    app.callback(
        Output(ID_B, "options"),
        Output(ID_B, "value"),
        Output(ID_DATASET, "children"),
        Output(ID_CORRUPTION_FIELDS, "style"),
        Input(ID_A, "value"),
        State(ID_B, "value"),
        State(ID_MODE, "data"),
        State(ID_MODELS, "data"),
        prevent_initial_call=True,
    )(choose_a)
    inputs: dict[str, Any] = {key: Input(cid, "value") for key, cid in FORM_INPUTS.items()}
    inputs["mode"] = State(ID_MODE, "data")
    inputs["models"] = State(ID_MODELS, "data")
    forms.register_validation(
        app,
        validate_form,
        prefix=ID_SUBMIT,
        inputs=inputs,
        outputs={"placeholder": Output(ID_NAME, "placeholder")},
        error_type=ERROR_TYPE,
    )
    FOLLOW.register_form(
        app,
        submit,
        submit_id=ID_SUBMIT,
        submit_error_id=ID_SUBMIT_ERROR,
        error_type=ERROR_TYPE,
        inputs=inputs,
    )


# options ---------------------------------------------------------------------------------------


def _dataset_of(
    models: Sequence[Mapping[str, Any]], datasets: Sequence[Mapping[str, Any]], a: Any
) -> Mapping[str, Any] | None:
    model = forms.find_by_id(models, a)
    return forms.find_by_id(datasets, (model or {}).get("dataset_id"))


def is_image_dataset(dataset: Mapping[str, Any] | None) -> bool:
    """Whether to offer corruptions: inputs (C, H, W). Display only: the server decides (its
    dry run refuses corruptions for a dataset they do not apply to, at the field)."""
    return dataset is not None and len(dataset.get("input_shape") or []) == 3


def b_options(
    models: Sequence[ModelPublic], a: Any, exclude: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """The models B to choose from for model ``a``, grouped by lineage: a disabled heading,
    A's pruned descendants (indented under each other, with method and sparsity), then a
    heading and the other models of A's dataset (or of none), each in lineage order. A itself
    and ``exclude`` (a comparison's Bs) are left out; no A: every model, in lineage order."""
    a_id = query_int(a)
    model_a = forms.find_by_id(models, a_id)
    skip = {a_id, *exclude}
    if model_a is None:
        return [o for o in forms.model_options(models) if o["value"] not in skip]
    dataset = model_a.get("dataset_id")
    same = [m for m in models if m.get("dataset_id") in (dataset, None)]
    ordered = forms.lineage_order(same)
    start = next(i for i, (_, m) in enumerate(ordered) if m["id"] == a_id)
    depth_a = ordered[start][0]
    end = next(
        (i for i in range(start + 1, len(ordered)) if ordered[i][0] <= depth_a), len(ordered)
    )
    children = [(d - depth_a, m) for d, m in ordered[start + 1 : end]]
    others = ordered[:start] + ordered[end:]

    def group(title: str, rows: Sequence[tuple[int, Mapping[str, Any]]], key: str) -> list[Any]:
        shown = [
            {"label": forms.model_option_label(m, depth), "value": m["id"]}
            for depth, m in rows
            if m["id"] not in skip
        ]
        heading = {"label": title, "value": f"{GROUP}{key}", "disabled": True}
        return [heading, *shown] if shown else []

    name = f"#{a_id} {model_a.get('name')}"
    return [
        *group(f"Pruned from {name}", children, "children"),
        *group(f"Other models of {name}'s dataset", others, "others"),
    ]


def chosen_bs(value: Any) -> list[int]:
    """The model ids among a B multi-select's value (group headings and junk left out)."""
    values = value if isinstance(value, list) else [] if value is None else [value]
    ids = [query_int(v) for v in values if not str(v).startswith(GROUP)]
    return list(dict.fromkeys(i for i in ids if i is not None))


def dataset_line(dataset: Mapping[str, Any] | None) -> str:
    """Which dataset the comparison runs on (model A's)."""
    if dataset is None:
        return "Dataset: model A's (it names none; the server says if that is a problem)."
    return f"Dataset: {forms.dataset_label(dataset)} (model A's)"


def _shown(on: bool) -> dict[str, str]:
    return {} if on else {"display": "none"}


# the body the server checks -----------------------------------------------------------------


def comparison_body(
    a: Any,
    b: Any,
    corruptions: Any,
    severities: Any,
    embedding: Any,
    name: Any,
    image: bool = True,
) -> dict[str, Any]:
    """``POST /api/comparisons``'s body for the form's values: A, the chosen Bs, the ticked
    corruptions (none when the dataset is not images or none is ticked) at the ticked
    severities (in order), the embedding, and the name (left out when blank: the server's)."""
    ticked = [str(c) for c in corruptions or []] if image else []
    body: dict[str, Any] = {"model_a_id": query_int(a), "model_b_ids": chosen_bs(b)}
    if ticked:
        body["corruptions"] = ticked
        body["severities"] = sorted({int(s) for s in severities or []})
    if embedding:
        body["embedding"] = str(embedding)
    if not forms.blank(name):
        body["name"] = str(name).strip()
    return body


def field_errors(errors: Mapping[str, str]) -> dict[str, str]:
    """The server's messages by the form's fields: ``model_b_ids.2`` and ``severities.0`` in
    their list's slot (joined), a field without a slot in the form's (``""``)."""
    out: dict[str, str] = {}
    for path, msg in errors.items():
        head = path.split(".")[0]
        key = head if head in FIELDS else forms.WHOLE
        text = msg if key != forms.WHOLE or not path else f"{path}: {msg}"
        out[key] = f"{out[key]}; {text}" if key in out else text
    return out


def _ask(mode: Mapping[str, Any] | None, body: Mapping[str, Any], dry_run: bool) -> Any:
    """The create or add request (or its dry run) for ``body``."""
    client = get_client()
    add = query_int((mode or {}).get("add"))
    bs = body["model_b_ids"]
    if add is not None:
        if dry_run:
            return client.validate_comparison_models(add, bs)
        return client.add_comparison_models(add, bs)
    fields = {k: v for k, v in body.items() if k not in ("model_a_id", "model_b_ids")}
    if dry_run:
        return client.validate_comparison(body["model_a_id"], bs, **fields)
    return client.create_comparison(body["model_a_id"], bs, **fields)


def _body(form: Mapping[str, Any]) -> dict[str, Any]:
    models = form.get("models") or {}
    dataset = _dataset_of(models.get("models") or [], models.get("datasets") or [], form.get("a"))
    return comparison_body(
        form.get("a"),
        form.get("b"),
        form.get("corruptions"),
        form.get("severities"),
        form.get("embedding"),
        form.get("name"),
        image=is_image_dataset(dataset),
    )


def validate_form(
    error_ids: Sequence[Mapping[str, Any]] | None = None, **form: Any
) -> dict[str, Any]:
    """Callback: the server's dry run of the form as it is filled in (the values of
    :data:`FORM_INPUTS`, ``mode`` and ``models``): ``{"errors": [message per slot],
    "placeholder": the name the server would give}``. Until a model A and a model B are
    chosen, nothing is said about them."""
    body, add = _body(form), (form.get("mode") or {}).get("add")
    quiet = {"errors": forms.slot_messages(error_ids, {}), "placeholder": dash.no_update}
    if body["model_a_id"] is None or (add is not None and not body["model_b_ids"]):
        return quiet
    try:
        answer = _ask(form.get("mode"), body, dry_run=True)
    except ApiError as exc:
        errors = field_errors(forms.api_errors(exc))
        if not body["model_b_ids"]:
            errors.pop("model_b_ids", None)
        return {"errors": forms.slot_messages(error_ids, errors), "placeholder": dash.no_update}
    placeholder = answer.get("name") if add is None else None
    return {
        "errors": forms.slot_messages(error_ids, {}),
        "placeholder": placeholder or dash.no_update,
    }


def submit(
    n_clicks: int | None, error_ids: Sequence[Mapping[str, Any]] | None = None, **form: Any
) -> dict[str, Any]:
    """Callback: create the comparison (or add the models) when ``newcmp-submit`` is clicked:
    ``{"errors": [message per slot], "submit_error": <box> or None, "job": {"id", "kind"} of
    its compare job, or no_update, "cancel_notice": None or no_update}``."""
    keep = {"job": dash.no_update, "cancel_notice": dash.no_update}
    if not n_clicks:
        return {"errors": forms.slot_messages(error_ids, {}), "submit_error": None, **keep}
    body = _body(form)
    if body["model_a_id"] is None:
        errors = {"model_a_id": "Choose model A."}
        return {"errors": forms.slot_messages(error_ids, errors), "submit_error": None, **keep}
    adding = (form.get("mode") or {}).get("add") is not None
    what = "the models" if adding else "the comparison"
    try:
        comparison: ComparisonPublic = _ask(form.get("mode"), body, dry_run=False)
    except ApiError as exc:
        fields = {k: v for k, v in field_errors(forms.api_errors(exc)).items() if k}
        box = refusal_notice(exc, ID_SUBMIT_ERROR, what=what)
        return {"errors": forms.slot_messages(error_ids, fields), "submit_error": box, **keep}
    job_id = comparison.get("job_id")
    out = {"errors": forms.slot_messages(error_ids, {}), "submit_error": None}
    if job_id is None:
        return out | keep
    return out | {"job": {"id": int(job_id), "kind": "compare"}, "cancel_notice": None}


def choose_a(
    a: Any, b: Any, mode: Mapping[str, Any] | None, models: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], list[int], str, dict[str, str]]:
    """Callback: model A chosen: the B options for it (the chosen Bs still offered are kept),
    its dataset, and whether the corruptions are shown."""
    rows, datasets = (models or {}).get("models") or [], (models or {}).get("datasets") or []
    options = b_options(rows, a, (mode or {}).get("members") or [])
    offered = {o["value"] for o in options if not o.get("disabled")}
    dataset = _dataset_of(rows, datasets, a)
    kept = [v for v in chosen_bs(b) if v in offered]
    return options, kept, dataset_line(dataset), _shown(is_image_dataset(dataset))


# layout ----------------------------------------------------------------------------------------


def _slot(field: str) -> html.Div:
    return forms.field_error(ERROR_TYPE, field)


def _message_page(title: str, *children: Any) -> html.Div:
    return html.Div([html.H1(title), *children], className="page page-new-comparison")


def _settings_text(client: ApiClient, comparison: Mapping[str, Any]) -> str:
    """What the added models are analysed with: the comparison's latest compare job's spec."""
    spec: Mapping[str, Any] = {}
    try:
        if comparison.get("job_id"):
            spec = client.get_job(int(comparison["job_id"])).get("spec") or {}
    except ApiError:
        pass  # the defaults are said then
    corruptions, severities = spec.get("corruptions") or [], spec.get("severities") or []
    robust = (
        f"{len(corruptions)} corruption(s) at severities {', '.join(map(str, severities))}"
        if corruptions
        else "no corruptions"
    )
    embedding = spec.get("embedding") or "auto"
    return (
        f"The new models are analysed as the others were: {robust}, embedding {embedding}. "
        "The compare job computes only what they need (the other models' results are kept), "
        "then the similarity map over all models."
    )


def layout(
    add: Any = None, a: Any = None, b: Any = None, job: Any = None, **_query: Any
) -> html.Div:
    """The form: a new comparison (``?a=<model A>&b=<model B>&b=...`` preselected), or
    ``?add=<comparison>`` to add models to one; ``job=<id>`` follows a compare job."""
    client = get_client()
    add_id = query_int(add)
    title = "Add models to a comparison" if add is not None else "New comparison"
    try:
        models = client.list_models()
        datasets = client.list_datasets()
        corruption_names = client.list_corruptions()
        comparison = client.get_comparison(add_id) if add_id is not None else None
    except ApiError as exc:
        if add_id is not None and exc.status == 404:
            gone = components.comparison_not_found(add_id, exc, "/overview")
            return _message_page(title, gone)
        return _message_page(title, components.api_error_notice(exc, "the models", link_home=True))
    if add is not None and add_id is None:
        bad = components.notice(f"'{add}' is not a comparison id", kind="warning", link_home=True)
        return _message_page(title, bad)
    if not models:
        empty = components.empty_state(
            "No models yet — run ",
            html.Code("prunescope demo"),
            " or train and prune a model first, then come back to compare them.",
        )
        return _message_page(title, html.Div(empty, id=ID_EMPTY))
    warnings: list[Any] = []
    members: list[int] = list(comparison["model_b_ids"]) if comparison else []
    if comparison is not None:
        a_id: Any = comparison["model_a_id"]
    else:
        originals = [m["id"] for m in models if m.get("parent_id") is None]
        default = originals[0] if originals else forms.model_options(models)[0]["value"]
        a_id, warnings = components.chosen_id(models, a, "model", default)
    options = b_options(models, a_id, members)
    offered = {o["value"] for o in options if not o.get("disabled")}
    wanted = [v for v in chosen_bs(b if isinstance(b, list) else [b]) if v in offered]
    dataset = _dataset_of(models, datasets, a_id)
    image = is_image_dataset(dataset)
    corruption_options = [{"label": c.replace("_", " "), "value": c} for c in corruption_names]
    severity_options = [{"label": str(s), "value": s} for s in SEVERITIES]
    a_field = control(
        "Model A (original)",
        forms.dropdown(
            ID_A,
            forms.model_options(models),
            a_id,
            "Choose the original model",
            disabled=comparison is not None,
        ),
        html.Div(dataset_line(dataset), id=ID_DATASET, className="muted hint"),
        error=_slot("model_a_id"),
    )
    b_field = control(
        "Models B (pruned)",
        dcc.Dropdown(
            id=ID_B,
            options=options,
            value=wanted,
            multi=True,
            searchable=True,
            search_order="original",
            placeholder="Choose one or more models to compare with A (type to search)",
            maxHeight=320,
        ),
        hint="A's pruned descendants first, with their method and sparsity.",
        error=_slot("model_b_ids"),
    )
    corruption_fields = html.Div(
        [
            control(
                "Corruptions",
                dcc.Checklist(
                    id=ID_CORRUPTIONS,
                    options=corruption_options,
                    value=list(corruption_names),
                    className="checklist checklist-columns",
                ),
                hint="The corruptions of CIFAR-10-C (Hendrycks & Dietterich 2019); untick "
                "all for clean accuracy only.",
                error=_slot("corruptions"),
            ),
            control(
                "Severities",
                dcc.Checklist(
                    id=ID_SEVERITIES,
                    options=severity_options,
                    value=list(DEFAULT_SEVERITIES),
                    inline=True,
                    className="checklist",
                ),
                error=_slot("severities"),
            ),
        ],
        id=ID_CORRUPTION_FIELDS,
        style=_shown(image),
    )
    settings = html.Section(
        [
            html.H2("Analysis"),
            corruption_fields,
            control(
                "Embedding",
                forms.choice(
                    ID_EMBEDDING,
                    [{"label": EMBEDDING_LABELS.get(e, e), "value": e} for e in EMBEDDINGS],
                    EMBEDDINGS[0],
                ),
                error=_slot("embedding"),
            ),
            control(
                "Name",
                forms.text_input(ID_NAME, None, ""),
                hint="Blank: the server's name, shown in grey.",
                error=_slot("name"),
            ),
        ],
        id=ID_SETTINGS,
        className="section",
        style=_shown(comparison is None),
    )
    if comparison is not None:
        adding: list[Any] = [
            *components.comparison_header(comparison, PATH),
            html.P(_settings_text(client, comparison), className="muted", id=ID_ADDING),
        ]
        lead = "Choose the models to add; the comparison's pages show them once its job is done."
        button = "Add models"
    else:
        adding = [html.Div(id=ID_ADDING)]
        lead = (
            "Compare an original model with any number of pruned ones: accuracy and recall "
            "distortion, flips, geometry, embeddings and robustness under corruptions."
        )
        button = "Create comparison"
    return html.Div(
        [
            dcc.Store(id=ID_MODE, data={"add": add_id, "members": members}),
            dcc.Store(id=ID_MODELS, data={"models": models, "datasets": datasets}),
            html.H1(title),
            html.P(lead, className="lead"),
            *adding,
            *warnings,
            html.Section([html.H2("Models"), a_field, b_field], className="section"),
            settings,
            html.Section(
                [
                    _slot(forms.WHOLE),
                    html.Div(
                        html.Button(button, id=ID_SUBMIT, n_clicks=0, className="btn btn-primary"),
                        className="actions",
                    ),
                    html.Div(id=ID_SUBMIT_ERROR),
                    *forms.validation_stores(ID_SUBMIT),
                ],
                className="section",
            ),
            FOLLOW.layout(query_int(job)),
        ],
        className="page page-new-comparison",
    )

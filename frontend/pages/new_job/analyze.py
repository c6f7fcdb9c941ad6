"""The analyze form of the new-job page (``/new?kind=analyze&model=&dataset=``).

A model (listed by lineage, with its architecture, parameter count and input shape, its
method, sparsity and accuracy), a dataset (the model's own by default), the split, corruptions
from ``GET /api/corruptions`` (or all of them) and their severities. As on the train form, the
server's dry run says what is wrong with the form, field by field, as the user types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from frontend import components, forms
from frontend.client import ApiClient, ApiError, ApiUnreachableError, DatasetPublic, ModelPublic
from frontend.figures.formatting import format_count, format_percent
from frontend.pages.new_job import common

HEADING = "Analyse a model"
LEAD = (
    "Evaluate a model on a dataset split, optionally under corruptions: per-class metrics and "
    "per-sample geometry, the material of every comparison."
)
SPLITS = ("test", "train")  # the split's choices
SEVERITIES = (1, 2, 3, 4, 5)  # the severities' choices
ANALYZE_HELP: dict[str, str] = {
    "model_id": "The model to evaluate; pruned models are listed under the model they were "
    "pruned from.",
    "dataset_id": "Blank: the dataset the model was trained on. Another dataset must have the "
    "same number of classes.",
    "split": "Which split's samples are evaluated; comparisons use the test split.",
    "corruptions": "Each sample is also evaluated under these corruptions (Hendrycks & "
    "Dietterich 2019), at every severity below. None: clean accuracy only.",
    "severities": "Corruption strengths, 1 (mild) to 5 (strong); used only with corruptions.",
    "feature_layer": "Name of the final Linear layer, when it is not the model's classifier. "
    "Blank: found automatically.",
}
# the spec paths with a message slot ("" is the spec as a whole)
ANALYZE_FIELDS = (*ANALYZE_HELP, forms.WHOLE)

FORM = common.form_ids("analyze")
# form keyword -> component id (new-analyze-<keyword>); the check takes them as Inputs
ANALYZE_INPUTS = common.input_ids(
    "analyze",
    ("model", "dataset", "split", "all_corruptions", "corruptions", "severities", "feature_layer"),
)
ID_ANALYZE_MODEL, ID_ANALYZE_DATASET = ANALYZE_INPUTS["model"], ANALYZE_INPUTS["dataset"]
ID_ANALYZE_ALL, ID_ANALYZE_CORRUPTIONS = (
    ANALYZE_INPUTS[k] for k in ("all_corruptions", "corruptions")
)
ID_ANALYZE_MODEL_INFO = "new-analyze-model-info"
ID_ANALYZE_MODELS = "new-analyze-models"
ID_ANALYZE_DATASETS = "new-analyze-datasets"
ID_ANALYZE_CORRUPTION_NAMES = "new-analyze-corruption-names"


def register(app: dash.Dash) -> None:
    """Attach the analyze form's callbacks to ``app`` (the page's ``register`` calls this)."""
    app.callback(
        Output(ID_ANALYZE_MODEL_INFO, "children"),
        Output(ID_ANALYZE_DATASET, "placeholder"),
        Input(ID_ANALYZE_MODEL, "value"),
        State(ID_ANALYZE_MODELS, "data"),
        State(ID_ANALYZE_DATASETS, "data"),
        prevent_initial_call=True,
    )(describe_analyze_model)
    app.callback(Output(ID_ANALYZE_CORRUPTIONS, "disabled"), Input(ID_ANALYZE_ALL, "value"))(
        toggle_all_corruptions
    )
    inputs: dict[str, Any] = {key: Input(cid, "value") for key, cid in ANALYZE_INPUTS.items()}
    inputs["corruption_names"] = State(ID_ANALYZE_CORRUPTION_NAMES, "data")
    common.register_form(app, FORM, inputs, validate_analyze, submit_analyze)
    common.register_url(app, update_analyze_url, ID_ANALYZE_MODEL, ID_ANALYZE_DATASET)


def analyze_spec_of(form: Mapping[str, Any]) -> dict[str, Any]:
    """The ``spec`` of a ``POST /api/jobs`` of kind "analyze" from the callbacks' keyword
    arguments (see :data:`ANALYZE_INPUTS`, plus the listed ``corruption_names``).

    A blank dataset (the model's own) or feature layer is left out; "All corruptions" sends
    every listed name; the severities, in order, only with corruptions.
    """
    corruptions = form.get("corruptions")
    if forms.is_on(form.get("all_corruptions")):
        chosen = list(form.get("corruption_names") or [])
    elif isinstance(corruptions, str):
        chosen = [corruptions] if corruptions.strip() else []
    else:
        chosen = list(corruptions or [])
    layer = form.get("feature_layer")
    spec: dict[str, Any] = {
        "model_id": forms.as_number(form.get("model")),
        "dataset_id": forms.as_number(form.get("dataset")),
        "split": form.get("split"),
        "feature_layer": None if forms.blank(layer) else str(layer).strip(),
    }
    spec = {key: value for key, value in spec.items() if not forms.blank(value)}
    if chosen:
        spec["corruptions"] = list(dict.fromkeys(str(c) for c in chosen))
        spec["severities"] = sorted(set(form.get("severities") or []))
    return spec


# pure renderers --------------------------------------------------------------------------------


def model_info(
    model: Mapping[str, Any] | None,
    models: Sequence[Mapping[str, Any]] | None,
    datasets: Sequence[Mapping[str, Any]] | None,
) -> list[Any]:
    """The model's lineage, dataset and accuracy, in one line."""
    if model is None:
        return [html.P("Choose a model.", className="muted")]
    parts = [forms.model_architecture_summary(model)]
    if model.get("pruning_method"):
        parts.append(
            f"pruned with {model.get('pruning_method')} to "
            f"{format_percent(model.get('sparsity'))} sparsity"
        )
        parent = forms.find_by_id(models, model.get("parent_id"))
        if parent is not None:
            parts.append(f"from #{parent['id']} {parent.get('name')}")
    else:
        parts.append("original")
    own = forms.find_by_id(datasets, model.get("dataset_id"))
    if own is not None:
        parts.append(f"trained on #{own['id']} {own.get('name')}")
    parts.append(f"test accuracy {format_percent(model.get('accuracy'))}")
    name = html.Strong(f"#{model['id']} {model.get('name')}")
    return [html.P([name, " — ", ", ".join(parts) + "."])]


def own_dataset_placeholder(
    model: Mapping[str, Any] | None, datasets: Sequence[Mapping[str, Any]] | None
) -> str:
    """The dataset dropdown's placeholder: which dataset a blank choice means."""
    own = None if model is None else forms.find_by_id(datasets, model.get("dataset_id"))
    if own is None:
        return "the model's own dataset"
    return f"the model's own: #{own['id']} {own.get('name')}"


def analysis_links(
    model_id: int | None, comparisons: Sequence[Mapping[str, Any]]
) -> list[dcc.Link]:
    """Where an analysis of ``model_id`` is seen: its comparisons, else the home page."""
    targets: list[tuple[str, str]] = []
    for comp in comparisons:
        if model_id == comp.get("model_a_id"):
            targets.append((f"Open comparison #{comp['id']} →", f"/compare?id={comp['id']}"))
        elif model_id in list(comp.get("model_b_ids") or []):
            href = f"/compare?id={comp['id']}&b={model_id}"
            targets.append((f"Open comparison #{comp['id']} →", href))
    if not targets:
        targets.append(("See it on the home page →", "/"))
    if model_id is not None:
        targets.append(("Prune this model", f"/prune?model={model_id}"))
    return common.result_links(targets)


def analyze_result(
    job: Mapping[str, Any],
    analysis: Mapping[str, Any] | None,
    comparisons: Sequence[Mapping[str, Any]],
) -> html.Div:
    """The analysis's accuracy and where to look at it (id ``new-result``)."""
    spec, result, analysis = job.get("spec") or {}, job.get("result") or {}, analysis or {}
    corruptions = spec.get("corruptions") or []
    split = analysis.get("split") or spec.get("split") or SPLITS[0]
    severities = f"× {len(spec.get('severities') or SEVERITIES)} severities"
    n_corruptions = str(len(corruptions)) if corruptions else "none"
    samples = format_count(analysis.get("n_samples")), f"analysis #{result.get('analysis_id')}"
    cards = [
        ("Accuracy", format_percent(result.get("accuracy")), f"{split} split", "accuracy"),
        ("Samples", *samples, "samples"),
        ("Corruptions", n_corruptions, severities if corruptions else None, "corruptions"),
    ]
    links = analysis_links(forms.query_int(spec.get("model_id")), comparisons)
    return common.result_block(cards, links)


def render_result(client: ApiClient, job: Mapping[str, Any]) -> html.Div:
    """A succeeded analyze job: :func:`analyze_result` with its analysis and the
    comparisons."""
    analysis: Mapping[str, Any] | None = None
    comparisons: Sequence[Mapping[str, Any]] = []
    try:
        analysis_id = forms.query_int((job.get("result") or {}).get("analysis_id"))
        analysis = client.get_analysis(analysis_id) if analysis_id is not None else None
        comparisons = client.list_comparisons()
    except ApiError:
        pass
    return analyze_result(job, analysis, comparisons)


# layout ----------------------------------------------------------------------------------------


def _field(label: str, key: str, *inputs: Any) -> Any:
    return common.field(FORM, ANALYZE_HELP, label, key, *inputs)


def _corruption_controls(corruption_names: Sequence[str]) -> list[Any]:
    if not corruption_names:
        hidden: dict[str, Any] = {"options": [], "value": [], "style": {"display": "none"}}
        return [
            html.P("The API lists no corruptions: clean accuracy only.", className="muted"),
            dcc.Checklist(id=ID_ANALYZE_ALL, **hidden),
            dcc.Dropdown(id=ID_ANALYZE_CORRUPTIONS, **hidden),
            forms.field_error(FORM.error_type, "corruptions"),
        ]
    options = [{"label": c.replace("_", " "), "value": c} for c in corruption_names]
    chosen = dcc.Dropdown(
        id=ID_ANALYZE_CORRUPTIONS,
        options=options,
        value=[],
        multi=True,
        placeholder="None: clean accuracy only",
    )
    return [
        forms.checkbox(ID_ANALYZE_ALL, f"All {len(corruption_names)} corruptions", False),
        _field("Corruptions", "corruptions", chosen),
    ]


def _sections(
    models: Sequence[ModelPublic],
    datasets: Sequence[DatasetPublic],
    corruption_names: Sequence[str],
    model_id: int | None,
    dataset_id: int | None,
) -> list[Any]:
    model = forms.find_by_id(models, model_id)
    # the server's dry run of the form as first shown: whether it may be submitted as it is,
    # and the split and severities it defaults to
    verdict = forms.dry_run("analyze", analyze_spec_of({"model": model_id, "dataset": dataset_id}))
    defaults = verdict.spec or {}
    models_list = forms.model_options(models)
    placeholder = own_dataset_placeholder(model, datasets)
    split = dcc.RadioItems(
        id=ANALYZE_INPUTS["split"],
        options=[{"label": s, "value": s} for s in SPLITS],
        value=defaults.get("split", SPLITS[0]),
        inline=True,
        className="radio-row",
    )
    target = [
        _field(
            "Model",
            "model_id",
            forms.dropdown(ID_ANALYZE_MODEL, models_list, model_id, "Choose a model"),
        ),
        _field(
            "Dataset",
            "dataset_id",
            forms.dropdown(
                ID_ANALYZE_DATASET,
                forms.dataset_options(datasets),
                dataset_id,
                placeholder,
                clearable=True,
            ),
        ),
        _field("Split", "split", split),
    ]
    severities = dcc.Checklist(
        id=ANALYZE_INPUTS["severities"],
        options=[{"label": str(s), "value": s} for s in SEVERITIES],
        value=list(defaults.get("severities", SEVERITIES)),
        inline=True,
        className="checkbox radio-row",
    )
    layer = forms.text_input(ANALYZE_INPUTS["feature_layer"], "blank: the model's classifier")
    info = model_info(model, models, datasets)
    sections = [
        [
            html.H2("What to analyse"),
            html.Div(target, className="form-grid"),
            html.Div(info, id=ID_ANALYZE_MODEL_INFO, className="method-info"),
        ],
        [
            html.H2("Corruptions"),
            *_corruption_controls(corruption_names),
            _field("Severities", "severities", severities),
        ],
        [
            html.H2("Advanced"),
            html.Div(
                _field("Feature layer (optional)", "feature_layer", layer), className="form-grid"
            ),
        ],
    ]
    stores = {
        ID_ANALYZE_MODELS: list(models),
        ID_ANALYZE_DATASETS: list(datasets),
        ID_ANALYZE_CORRUPTION_NAMES: list(corruption_names),
    }
    return common.form_layout(FORM, "Analyse", "analyze", verdict, sections, stores)


def _no_models() -> html.Div:
    return html.Div(
        components.empty_state(
            "No models yet: ",
            dcc.Link("train one", href=components.job_kind_href("train")),
            ", ",
            dcc.Link("upload a checkpoint", href="/upload"),
            " or run ",
            html.Code("prunescope demo"),
            ".",
        ),
        id=common.ID_EMPTY,
        className="section",
    )


def form(client: ApiClient, model: str | None, dataset: str | None) -> common.Form:
    """The analyze form for ``?model=&dataset=`` (the first original and its own dataset when
    absent); an unknown one is said so and not chosen. Raises :class:`ApiError` when the API
    cannot list the datasets, the models or the corruptions."""
    datasets = client.list_datasets()
    models = client.list_models()
    try:
        corruption_names = client.list_corruptions()
    except ApiUnreachableError:
        raise
    except ApiError:
        corruption_names = []  # an API without the listing offers none
    dataset_id, warnings = components.chosen_id(datasets, dataset, "dataset")
    if not models:
        return common.Form({"model": None}, warnings, [_no_models()])
    first = forms.model_options(models)[0]["value"]
    model_id, unknown = components.chosen_id(models, model, "model", first)
    children = _sections(models, datasets, corruption_names, model_id, dataset_id)
    return common.Form({"model": model_id}, warnings + unknown, children)


# callbacks -------------------------------------------------------------------------------------


def describe_analyze_model(
    model: Any,
    models: Sequence[Mapping[str, Any]] | None,
    datasets: Sequence[Mapping[str, Any]] | None,
) -> tuple[list[Any], str]:
    """Callback: the chosen model's lineage, and which dataset a blank choice means."""
    chosen = forms.find_by_id(models, model)
    return model_info(chosen, models, datasets), own_dataset_placeholder(chosen, datasets)


def toggle_all_corruptions(all_corruptions: Any) -> bool:
    """Callback: "All corruptions" ticked makes the list's choice moot."""
    return forms.is_on(all_corruptions)


def validate_analyze(error_ids: Any = None, **form: Any) -> dict[str, Any]:
    """Callback: the server's dry run of the analyze form (:func:`common.check`)."""
    return common.check("analyze", analyze_spec_of(form), error_ids)


def submit_analyze(n_clicks: int | None = None, **form: Any) -> dict[str, Any]:
    """Callback: submit the analyze form (:func:`common.submit`)."""
    return common.submit("analyze", analyze_spec_of(form), n_clicks)


def update_analyze_url(model: Any, dataset: Any, search: str | None) -> Any:
    """Callback: the model and dataset (none: the model's own) into the URL
    (:func:`common.update_url`)."""
    return common.update_url("analyze", search, {"model": model, "dataset": dataset}, "model")

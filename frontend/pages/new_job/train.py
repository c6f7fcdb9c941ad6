"""The train form of the new-job page (``/new?kind=train&dataset=&architecture=``).

A dataset, an architecture chosen with the searchable picker of
:func:`frontend.components.architecture_picker` (the built-ins and plug-ins, and any
``timm/<name>`` or ``torchvision/<name>`` that ``GET /api/architectures?q=`` finds for what is
typed), its keyword arguments (each with its default; the number of classes, the input shape,
the channels and a fixed image size come from the dataset unless set), every training setting
with the server's default filled in, and an optional name.

The form only turns its fields into JSON (:func:`train_spec_of`); the server's dry run says
what is wrong with it, field by field, as the user types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend import components, forms
from frontend.client import ApiClient, ApiError, ArchitecturePublic, DatasetPublic, get_client
from frontend.figures.formatting import MISSING, format_count, format_percent
from frontend.pages.new_job import common

HEADING = "Train a model"
LEAD = (
    "Train a network from scratch on a registered dataset. The job runs in the background; "
    "this page follows it, then offers to prune the new model."
)
# Keyword arguments a train job fills from the dataset when they are not given
# (models.registry.fill_kwargs): their inputs start blank, "from the dataset".
DATASET_KWARGS = ("num_classes", "input_shape", "in_channels", "in_chans", "img_size", "image_size")
MAX_KNOWN_SHOWN = 12  # names an "unknown architecture" message lists
# Preferred architecture for a dataset's input shape when the URL names none.
PREFERRED_ARCHITECTURES: tuple[tuple[tuple[int, ...], str], ...] = (
    ((8, 8), "digits_cnn"),
    ((32, 32), "resnet20"),
)
FALLBACK_ARCHITECTURE = "mlp"
BUILTIN_DATASET = "digits"

# One line per field, shown under it and as its tooltip; the server checks the values.
TRAIN_HELP: dict[str, str] = {
    "dataset_id": "The registered dataset whose train split the network learns; its test "
    "split measures the accuracy.",
    "architecture": "The network to build: a built-in or plug-in, or any timm/… or "
    "torchvision/… model (type part of its name to search).",
    "name": "Shown in the model lists. Blank: '<architecture> on <dataset>'.",
    "epochs": "Passes over the training split; 0 keeps the random initialisation.",
    "batch_size": "Training samples per optimisation step.",
    "lr": "Learning rate: the optimiser's step size, > 0.",
    "lr_schedule": "constant; cosine anneals to 0 over all steps; step multiplies by 0.1 at "
    "50% and again at 75% of the steps.",
    "optimizer": "Adam, or SGD with the momentum below.",
    "momentum": "SGD momentum in [0, 1); Adam ignores it.",
    "weight_decay": "L2 penalty passed to the optimiser, >= 0; 0 turns it off.",
    "seed": "Seeds the initialisation and the shuffling: the same seed trains the same model.",
    "amp": "bfloat16 autocast on a CUDA device (faster); ignored on the CPU.",
}
# the training settings' controls, in form order: label, spec field, and the choices of a
# dropdown (empty for a number)
TRAIN_CONTROLS: tuple[tuple[str, str, Sequence[str]], ...] = (
    ("Epochs", "epochs", ()),
    ("Batch size", "batch_size", ()),
    ("Learning rate", "lr", ()),
    ("Learning-rate schedule", "lr_schedule", forms.LR_SCHEDULES),
    ("Optimizer", "optimizer", forms.OPTIMIZERS),
    ("Momentum", "momentum", ()),
    ("Weight decay", "weight_decay", ()),
    ("Seed", "seed", ()),
)
SETTINGS = tuple(key for _, key, _ in TRAIN_CONTROLS)
# the spec paths with a message slot besides one per architecture argument ("" is the spec)
TRAIN_FIELDS = ("dataset_id", "architecture", "name", "arch_kwargs", *SETTINGS, forms.WHOLE)

FORM = common.form_ids("train")
# form keyword -> component id (new-train-<keyword>); the check takes them as Inputs
TRAIN_INPUTS = common.input_ids("train", ("dataset", "architecture", "name", *SETTINGS, "amp"))
ID_TRAIN_DATASET, ID_TRAIN_ARCH = TRAIN_INPUTS["dataset"], TRAIN_INPUTS["architecture"]
ID_TRAIN_DATASETS = "new-train-datasets"
ID_TRAIN_DATASET_INFO = "new-train-dataset-info"
ARCH_PICKER = components.architecture_picker_ids(ID_TRAIN_ARCH)  # its entries and about line
ID_TRAIN_KWARGS = "new-train-kwargs"
ID_BUILTIN = "new-builtin"
ID_BUILTIN_RESULT = "new-builtin-result"
KWARG_TYPE = "new-arch-kwarg"  # pattern-matching ids {"type": KWARG_TYPE, "name": <kwarg>}


def register(app: dash.Dash) -> None:
    """Attach the train form's callbacks to ``app`` (the page's ``register`` calls this)."""
    for output, changed, state, describe in (
        (ID_TRAIN_DATASET_INFO, ID_TRAIN_DATASET, ID_TRAIN_DATASETS, describe_train_dataset),
        (ID_TRAIN_KWARGS, ID_TRAIN_ARCH, ARCH_PICKER.entries, describe_train_architecture),
    ):
        app.callback(
            Output(output, "children"),
            Input(changed, "value"),
            State(state, "data"),
            prevent_initial_call=True,
        )(describe)
    components.register_architecture_picker(app, ID_TRAIN_ARCH)
    app.callback(
        Output(TRAIN_INPUTS["momentum"], "disabled"), Input(TRAIN_INPUTS["optimizer"], "value")
    )(toggle_momentum)
    kwargs = {"type": KWARG_TYPE, "name": ALL}
    inputs: dict[str, Any] = {key: Input(cid, "value") for key, cid in TRAIN_INPUTS.items()}
    inputs |= {
        "kwarg_values": Input(kwargs, "value"),
        "kwarg_ids": State(kwargs, "id"),
        "architectures": State(ARCH_PICKER.entries, "data"),
    }
    common.register_form(app, FORM, inputs, validate_train, submit_train)
    common.register_url(app, update_train_url, ID_TRAIN_DATASET, ID_TRAIN_ARCH)
    app.callback(
        Output(common.URL_ID, "search", allow_duplicate=True),
        Output(ID_BUILTIN_RESULT, "children"),
        Input(ID_BUILTIN, "n_clicks"),
        prevent_initial_call=True,
    )(add_builtin_dataset)


# the form's values as JSON ---------------------------------------------------------------------


def find_architecture(
    architectures: Sequence[Mapping[str, Any]] | None, name: Any
) -> Mapping[str, Any] | None:
    """The ``GET /api/architectures`` entry named ``name``, or None."""
    return next((a for a in architectures or [] if a.get("name") == name), None)


def known_names(architectures: Sequence[Mapping[str, Any]]) -> str:
    """``"digits_cnn, mlp, resnet20"``: the first :data:`MAX_KNOWN_SHOWN` names, and how
    many there are when there are more."""
    names = [str(a.get("name")) for a in architectures]
    if len(names) <= MAX_KNOWN_SHOWN:
        return ", ".join(names)
    return f"{', '.join(names[:MAX_KNOWN_SHOWN])}, … ({len(names)} listed)"


def architecture_kwargs(arch: Mapping[str, Any] | None) -> list[tuple[str, Any, bool]]:
    """``(name, default, required)`` of each keyword argument, required ones first (a
    required argument has no default: ``None`` here)."""
    if arch is None:
        return []
    out: list[tuple[str, Any, bool]] = [(n, None, True) for n in arch.get("required") or []]
    return out + [(n, d, False) for n, d in (arch.get("defaults") or {}).items()]


def kwarg_value(value: Any, default: Any) -> Any:
    """One architecture argument's field as JSON: typed after its default
    (:func:`frontend.forms.parse_param`); without one (required, or filled from the dataset),
    JSON text as its value (``[1, 8, 8]``), other text as typed."""
    if default is not None or not isinstance(value, str):
        return forms.parse_param(value, default)
    try:
        return json.loads(value)
    except ValueError:
        return value.strip()


def arch_kwargs_of(
    arch: Mapping[str, Any] | None,
    kwarg_ids: Sequence[Mapping[str, Any]] | None,
    kwarg_values: Sequence[Any] | None,
) -> dict[str, Any]:
    """The arguments that are set and differ from the architecture's defaults (a blank one:
    the default, or the dataset's value); a stale field the architecture lacks is sent as typed,
    for the server to name."""
    raw = {
        str(kid.get("name")): value
        for kid, value in zip(kwarg_ids or [], kwarg_values or [], strict=False)
    }
    out: dict[str, Any] = {}
    for name, default, required in architecture_kwargs(arch):
        value = raw.pop(name, None)
        if forms.blank(value) and not isinstance(default, bool):
            continue
        value = kwarg_value(value, None if name in DATASET_KWARGS else default)
        if required or name in DATASET_KWARGS or value != default:
            out[name] = value
    out.update({name: kwarg_value(v, None) for name, v in raw.items() if not forms.blank(v)})
    return out


def train_spec_of(form: Mapping[str, Any]) -> dict[str, Any]:
    """The ``spec`` of a ``POST /api/jobs`` of kind "train" from the callbacks' keyword
    arguments (see :data:`TRAIN_INPUTS`, plus ``kwarg_ids`` / ``kwarg_values`` and the picker's
    ``architectures``): blank fields are left out (the server's default applies)."""
    architecture, name = form.get("architecture"), form.get("name")
    spec: dict[str, Any] = {
        "dataset_id": forms.as_number(form.get("dataset")),
        "architecture": None if forms.blank(architecture) else str(architecture).strip(),
        "arch_kwargs": arch_kwargs_of(
            find_architecture(form.get("architectures"), architecture),
            form.get("kwarg_ids"),
            form.get("kwarg_values"),
        ),
    }
    spec.update({key: forms.as_number(form.get(key)) for key in SETTINGS})
    spec["amp"] = forms.is_on(form.get("amp"))
    spec["name"] = None if forms.blank(name) else str(name).strip()
    return {key: value for key, value in spec.items() if not forms.blank(value)}


# pure renderers --------------------------------------------------------------------------------


def dataset_info(dataset: Mapping[str, Any] | None) -> list[Any]:
    """Where the dataset comes from and its classes (the names as text, never as HTML)."""
    if dataset is None:
        return ["Choose a dataset."]
    names = [str(c) for c in dataset.get("class_names") or []]
    shown = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "")
    shape = "×".join(str(s) for s in dataset.get("input_shape") or []) or MISSING
    n_train, n_test = int(dataset.get("n_train") or 0), int(dataset.get("n_test") or 0)
    return [
        f"{n_train:,} training and {n_test:,} test samples of shape {shape}; "
        f"classes: {shown or MISSING} (source: {dataset.get('source')})."
    ]


def default_architecture(
    dataset: Mapping[str, Any] | None, architectures: Sequence[Mapping[str, Any]]
) -> str | None:
    """The architecture preselected for ``dataset``: one built for its image size, else an MLP,
    else the first listed."""
    names = [str(a["name"]) for a in architectures]
    shape = tuple(int(s) for s in (dataset or {}).get("input_shape") or [])
    for size, name in PREFERRED_ARCHITECTURES:
        if len(shape) == 3 and shape[1:] == size and name in names:
            return name
    if FALLBACK_ARCHITECTURE in names:
        return FALLBACK_ARCHITECTURE
    return names[0] if names else None


def _kwarg_hint(name: str, default: Any, required: bool) -> str:
    if name in DATASET_KWARGS:
        return "Blank: taken from the dataset."
    if required:
        return "Required: this architecture has no default for it (JSON, e.g. [64, 32])."
    if isinstance(default, list | dict):
        return f"Default: {json.dumps(default)} (JSON)."
    if isinstance(default, bool):
        return f"Default: {'on' if default else 'off'}."
    return f"Default: {json.dumps(default)}."


def kwarg_input(name: str, default: Any, required: bool) -> Any:
    """The input of one architecture argument, filled with its default (blank when the dataset
    or the user must supply it)."""
    kid, from_dataset = {"type": KWARG_TYPE, "name": name}, name in DATASET_KWARGS
    default = None if from_dataset or required else default
    return forms.param_input(kid, name, default, "from the dataset" if from_dataset else "JSON")


def kwargs_editor(arch: Mapping[str, Any] | None) -> list[Any]:
    """One labelled input per keyword argument of ``arch``."""
    if arch is None:
        return []
    entries = architecture_kwargs(arch)
    if not entries:
        return [html.P("This architecture takes no arguments.", className="muted")]
    return [
        forms.param_field(
            name,
            kwarg_input(name, default, required),
            _kwarg_hint(name, default, required),
            forms.field_error(FORM.error_type, f"arch_kwargs.{name}"),
        )
        for name, default, required in entries
    ]


def train_result(result: Mapping[str, Any], model: Mapping[str, Any] | None) -> html.Div:
    """The trained model's figures and what to do with it next (id ``new-result``)."""
    model_id = forms.query_int(result.get("model_id"))
    summary = None if model is None else forms.model_architecture_summary(model)
    cards = [
        ("Model", f"#{model_id} {(model or {}).get('name') or MISSING}", None, "model"),
        ("Test accuracy", format_percent(result.get("accuracy")), None, "accuracy"),
        ("Parameters", format_count((model or {}).get("n_params")), summary, "params"),
    ]
    links = []
    if model_id is not None:
        analyse = components.job_kind_href("analyze", model=model_id)
        targets = [("Prune this model →", f"/prune?model={model_id}"), ("Analyse it", analyse)]
        links = common.result_links([*targets, ("All models", "/")])
    return common.result_block(cards, links)


def render_result(client: ApiClient, job: Mapping[str, Any]) -> html.Div:
    """A succeeded train job: :func:`train_result` with the new model's row."""
    result = job.get("result") or {}
    model_id = forms.query_int(result.get("model_id"))
    try:
        model = client.get_model(model_id) if model_id is not None else None
    except ApiError:
        model = None  # the figures come from the job's result; the model only adds its name
    return train_result(result, model)


# layout ----------------------------------------------------------------------------------------


def _field(label: str, key: str, *inputs: Any) -> Any:
    return common.field(FORM, TRAIN_HELP, label, key, *inputs)


def _helped(child: Any, key: str) -> html.Div:
    return html.Div(child, title=TRAIN_HELP[key])  # dcc inputs take no title: their wrapper does


def _setting(key: str, choices: Sequence[str], value: Any) -> Any:
    if choices:
        return forms.choice(TRAIN_INPUTS[key], choices, value)
    placeholder = "default" if value is None else f"default {value}"
    return forms.number_input(TRAIN_INPUTS[key], placeholder, value=value)


def _sections(
    datasets: Sequence[DatasetPublic],
    architectures: Sequence[ArchitecturePublic],
    dataset_id: int | None,
    arch: Mapping[str, Any] | None,
) -> list[Any]:
    name = None if arch is None else str(arch["name"])
    # the server's dry run of the form as first shown: whether it may be submitted as it is,
    # and the default of every setting (a refused form shows them blank: the defaults apply)
    verdict = forms.dry_run("train", train_spec_of({"dataset": dataset_id, "architecture": name}))
    defaults = verdict.spec or {}
    options = forms.dataset_options(datasets)
    info = dataset_info(forms.find_by_id(datasets, dataset_id))
    picker = components.architecture_picker(ID_TRAIN_ARCH, name, architectures, clearable=False)
    target = [
        _field(
            "Dataset",
            "dataset_id",
            forms.dropdown(ID_TRAIN_DATASET, options, dataset_id, "Choose a dataset"),
            html.Div(info, id=ID_TRAIN_DATASET_INFO, className="hint"),
        ),
        _field("Architecture", "architecture", picker),
        _field(
            "Name (optional)",
            "name",
            forms.text_input(TRAIN_INPUTS["name"], "default: <architecture> on <dataset>"),
        ),
    ]
    settings = [
        _field(label, key, _helped(_setting(key, choices, defaults.get(key)), key))
        for label, key, choices in TRAIN_CONTROLS
    ]
    amp = forms.checkbox(TRAIN_INPUTS["amp"], "Mixed precision (AMP)", bool(defaults.get("amp")))
    sections = [
        [html.H2("What to train"), html.Div(target, className="form-grid")],
        [
            html.H2("Architecture arguments"),
            html.Div(kwargs_editor(arch), id=ID_TRAIN_KWARGS, className="params-grid"),
            forms.field_error(FORM.error_type, "arch_kwargs"),
        ],
        [
            html.H2("Training"),
            html.Div(settings, className="form-grid"),
            _helped(amp, "amp"),
            html.Div(TRAIN_HELP["amp"], className="muted hint"),
        ],
    ]
    stores = {ID_TRAIN_DATASETS: list(datasets)}
    return common.form_layout(FORM, "Train", "train", verdict, sections, stores)


def _no_datasets() -> html.Div:
    builtin = html.Button(
        "Add the built-in digits dataset",
        id=ID_BUILTIN,
        n_clicks=0,
        className="btn btn-primary",
        title="scikit-learn digits: 1,797 8×8 greyscale images of 10 classes",
    )
    return html.Div(
        [
            components.empty_state(
                "No datasets yet: ",
                dcc.Link("upload one", href="/upload"),
                " (npz, CIFAR-10, MNIST, an image folder) or use a built-in one.",
            ),
            html.Div(builtin, className="actions"),
            html.Div(id=ID_BUILTIN_RESULT),
        ],
        id=common.ID_EMPTY,
        className="section",
    )


def form(client: ApiClient, dataset: str | None, architecture: str | None) -> common.Form:
    """The train form for ``?dataset=&architecture=`` (the first dataset, and the architecture
    made for its inputs, when absent); an unknown one is said so and not chosen. Raises
    :class:`ApiError` when the API cannot list the datasets or the architectures."""
    datasets = client.list_datasets()
    architectures = components.registered_architectures(client)
    if architecture is not None and find_architecture(architectures, architecture) is None:
        # any timm/torchvision name: its entry joins the picker's
        entry = components.find_architecture_entry(client, architecture)
        architectures += [] if entry is None else [entry]
    first = datasets[0]["id"] if datasets else None
    dataset_id, warnings = components.chosen_id(datasets, dataset, "dataset", first)
    if not datasets:
        return common.Form({"dataset": dataset_id}, warnings, [_no_datasets()])
    name = architecture
    if name is None:
        name = default_architecture(forms.find_by_id(datasets, dataset_id), architectures)
    elif find_architecture(architectures, name) is None:
        warnings.append(
            components.notice(
                f"Unknown architecture '{name}'",
                f"No architecture has that name. Registered: {known_names(architectures)}"
                "; search the Architecture field for timm/… and torchvision/… models.",
                kind="warning",
            )
        )
    arch = find_architecture(architectures, name)
    children = _sections(datasets, architectures, dataset_id, arch)
    return common.Form({"dataset": dataset_id}, warnings, children)


# callbacks -------------------------------------------------------------------------------------


def describe_train_dataset(dataset: Any, datasets: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    """Callback: the chosen dataset's source and classes."""
    return dataset_info(forms.find_by_id(datasets, dataset))


def describe_train_architecture(
    architecture: Any, architectures: Sequence[Mapping[str, Any]] | None
) -> list[Any]:
    """Callback: an editor of the chosen architecture's keyword arguments (the picker's own
    callback describes it)."""
    return kwargs_editor(find_architecture(architectures, architecture))


def toggle_momentum(optimizer: Any) -> bool:
    """Callback: momentum is an SGD setting; Adam ignores it."""
    return optimizer != "sgd"


def validate_train(error_ids: Any = None, **form: Any) -> dict[str, Any]:
    """Callback: the server's dry run of the train form (:func:`common.check`)."""
    return common.check("train", train_spec_of(form), error_ids)


def submit_train(n_clicks: int | None = None, **form: Any) -> dict[str, Any]:
    """Callback: submit the train form (:func:`common.submit`)."""
    return common.submit("train", train_spec_of(form), n_clicks)


def update_train_url(dataset: Any, architecture: Any, search: str | None) -> Any:
    """Callback: the dataset and architecture into the URL (:func:`common.update_url`)."""
    chosen = {"dataset": dataset, "architecture": architecture}
    return common.update_url("train", search, chosen, "dataset")


def register_builtin_dataset(client: ApiClient, name: str) -> DatasetPublic:
    """``POST /api/datasets`` with ``{"builtin": name}``: register a built-in dataset."""
    return cast(DatasetPublic, client._request("POST", "/api/datasets", json={"builtin": name}))


def add_builtin_dataset(n_clicks: int | None) -> tuple[Any, Any]:
    """Callback: register the built-in digits dataset, then reopen the train form with it
    (the shell Location's search ``?kind=train&dataset=<id>``), and say so, or why not."""
    if not n_clicks:
        return dash.no_update, dash.no_update
    try:
        dataset = register_builtin_dataset(get_client(), BUILTIN_DATASET)
    except ApiError as exc:
        return dash.no_update, components.notice(
            "Could not add the built-in dataset", exc.detail, kind="error"
        )
    href = components.job_kind_href("train", dataset=dataset["id"])
    return f"?{href.split('?', 1)[1]}", components.notice(
        f"Added dataset #{dataset['id']} {dataset['name']}",
        [dcc.Link("Train on it →", href=href)],
    )

"""New-job page ("/new?kind=train|analyze&dataset=&architecture=&model=&job="): train or analyse.

The "New job" pages are this one and the prune page, joined by the job-kind strip
"Train | Prune | Sweep | Analyze" (:func:`frontend.components.job_kind_tabs`): train and analyze
are set up here, prune and sweep on ``/prune``.

- Train: a dataset, an architecture chosen with the searchable picker of
  :func:`frontend.components.architecture_picker` (the built-ins and plug-ins, and any
  ``timm/<name>`` or ``torchvision/<name>`` that ``GET /api/architectures?q=`` finds for what is
  typed), its keyword arguments (each with its default; the number of classes, the input shape,
  the channels and a fixed image size come from the dataset unless set), every training
  setting of the API's ``TrainSettings`` with its default filled in, and an optional name.
- Analyze: a model (listed by lineage, with its architecture, parameter count and input
  shape, its method, sparsity and accuracy), a dataset (the
  model's own by default), the split, corruptions from ``GET /api/corruptions`` (or all of them)
  and their severities.

The form is validated as it is filled in, by the pure :func:`build_train_spec` and
:func:`build_analyze_spec`: each bad field says which rule it breaks, and the submit button is
disabled while any is bad. Submitting posts ``POST /api/jobs``; a progress panel then polls
``GET /api/jobs/{id}`` once a second (only while the job is not final), offers "Cancel job", and
on success links to what the job produced: a trained model to prune, an analysis to look at.

The kind, the chosen dataset, architecture or model and the followed job live in the URL
(written to a page-level Location with ``refresh=False``, as on the prune page), so a link such as
``/new?kind=train&dataset=1&architecture=timm/resnet18`` reopens the form filled in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlencode

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    ApiUnreachableError,
    ArchitecturePublic,
    DatasetPublic,
    JobKind,
    JobPublic,
    ModelPublic,
    get_client,
)
from frontend.components import (
    api_error_notice,
    architecture_picker,
    architecture_picker_ids,
    empty_state,
    find_architecture_entry,
    job_follow_section,
    job_kind_href,
    job_kind_links,
    job_kind_tabs,
    job_status,
    model_architecture_summary,
    notice,
    register_architecture_picker,
    registered_architectures,
    search_with,
)
from frontend.figures.formatting import MISSING, format_count, format_percent
from frontend.pages.home import lineage_order
from frontend.pages.prune import (
    FINAL_STATUSES,
    LR_SCHEDULES,
    ON,
    OPTIMIZERS,
    FormError,
    can_cancel,
    is_on,
    parse_float,
    parse_int,
    parse_param,
    parse_whole,
)

PATH = "/new"
TITLE = "New job · PruneScope"
POLL_INTERVAL_MS = 1000
KINDS = ("train", "analyze")  # the kinds set up on this page; prune and sweep are on /prune
DEFAULT_KIND = "train"
URL_ID = "url"  # the shell's Location (frontend/app.py): writing it re-renders the page

# Mirrors of backend.jobs.specs.TrainSettings (the tests check them against the schema).
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 15,
    "batch_size": 64,
    "lr": 1e-3,
    "lr_schedule": "constant",
    "optimizer": "adam",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "seed": 0,
    "amp": False,
}
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_LR = 10.0
MAX_SEED = 2**63 - 1
MAX_NAME_LENGTH = 200
SPLITS = ("test", "train")
DEFAULT_SPLIT = "test"
SEVERITIES = (1, 2, 3, 4, 5)
# Keyword arguments a train job fills from the dataset when they are not given
# (models.registry.fill_kwargs): timm's in_chans and img_size (a ViT's fixed input size) and
# torchvision's image_size too.
DATASET_KWARGS = ("num_classes", "input_shape", "in_channels", "in_chans", "img_size", "image_size")
IMAGE_SIZE_KWARGS = ("img_size", "image_size")
MAX_KNOWN_SHOWN = 12  # names an "unknown architecture" message lists
# Preferred architecture for a dataset's input shape when the URL names none.
PREFERRED_ARCHITECTURES: tuple[tuple[tuple[int, ...], str], ...] = (
    ((8, 8), "digits_cnn"),
    ((32, 32), "resnet20"),
)
FALLBACK_ARCHITECTURE = "mlp"
BUILTIN_DATASET = "digits"

# One line per field, shown under it and as its tooltip.
TRAIN_HELP: dict[str, str] = {
    "dataset_id": "The registered dataset whose train split the network learns; its test "
    "split measures the accuracy.",
    "architecture": "The network to build: a built-in or plug-in, or any timm/… or "
    "torchvision/… model (type part of its name to search).",
    "name": f"Shown in the model lists; at most {MAX_NAME_LENGTH} characters. Blank: "
    "'<architecture> on <dataset>'.",
    "epochs": f"Passes over the training split, 0 to {MAX_EPOCHS}; 0 keeps the random "
    "initialisation.",
    "batch_size": f"Training samples per optimisation step, 1 to {MAX_BATCH_SIZE}.",
    "lr": f"Learning rate: the optimiser's step size, > 0 and at most {MAX_LR:g}.",
    "lr_schedule": "constant; cosine anneals to 0 over all steps; step multiplies by 0.1 at "
    "50% and again at 75% of the steps.",
    "optimizer": "Adam, or SGD with the momentum below.",
    "momentum": "SGD momentum in [0, 1); Adam ignores it.",
    "weight_decay": "L2 penalty passed to the optimiser, >= 0; 0 turns it off.",
    "seed": "Seeds the initialisation and the shuffling (>= 0): the same seed trains the same "
    "model.",
    "amp": "bfloat16 autocast on a CUDA device (faster); ignored on the CPU.",
}
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

ID_URL = "new-url"
ID_VIEW = "new-view"
ID_KIND_TABS = "new-kind-tabs"
ID_EMPTY = "new-empty"
ID_BUILTIN = "new-builtin"
ID_BUILTIN_RESULT = "new-builtin-result"
# train form
ID_TRAIN_FORM = "new-train-form"
ID_TRAIN_DATASETS = "new-train-datasets"
ID_TRAIN_DATASET = "new-train-dataset"
ID_TRAIN_DATASET_INFO = "new-train-dataset-info"
ARCH_PICKER = architecture_picker_ids("new-train-architecture")
ID_TRAIN_ARCH = ARCH_PICKER.dropdown  # the searchable dropdown
ID_TRAIN_ARCHS = ARCH_PICKER.entries  # the API's entries behind its options
ID_TRAIN_ARCH_INFO = ARCH_PICKER.about  # its doc and arguments
ID_TRAIN_KWARGS = "new-train-kwargs"
ID_TRAIN_NAME = "new-train-name"
ID_TRAIN_EPOCHS = "new-train-epochs"
ID_TRAIN_BATCH_SIZE = "new-train-batch-size"
ID_TRAIN_LR = "new-train-lr"
ID_TRAIN_LR_SCHEDULE = "new-train-lr-schedule"
ID_TRAIN_OPTIMIZER = "new-train-optimizer"
ID_TRAIN_MOMENTUM = "new-train-momentum"
ID_TRAIN_WEIGHT_DECAY = "new-train-weight-decay"
ID_TRAIN_SEED = "new-train-seed"
ID_TRAIN_AMP = "new-train-amp"
ID_TRAIN_SUBMIT = "new-train-submit"
ID_TRAIN_SUMMARY = "new-train-summary"
ID_TRAIN_SUBMIT_ERROR = "new-train-submit-error"
KWARG_TYPE = "new-arch-kwarg"  # pattern-matching ids {"type": KWARG_TYPE, "name": <kwarg>}
TRAIN_ERROR_TYPE = "new-train-error"  # {"type": TRAIN_ERROR_TYPE, "field": <spec path>}
# analyze form
ID_ANALYZE_FORM = "new-analyze-form"
ID_ANALYZE_MODELS = "new-analyze-models"
ID_ANALYZE_DATASETS = "new-analyze-datasets"
ID_ANALYZE_CORRUPTION_NAMES = "new-analyze-corruption-names"
ID_ANALYZE_MODEL = "new-analyze-model"
ID_ANALYZE_MODEL_INFO = "new-analyze-model-info"
ID_ANALYZE_DATASET = "new-analyze-dataset"
ID_ANALYZE_SPLIT = "new-analyze-split"
ID_ANALYZE_ALL = "new-analyze-all-corruptions"
ID_ANALYZE_CORRUPTIONS = "new-analyze-corruptions"
ID_ANALYZE_SEVERITIES = "new-analyze-severities"
ID_ANALYZE_FEATURE_LAYER = "new-analyze-feature-layer"
ID_ANALYZE_SUBMIT = "new-analyze-submit"
ID_ANALYZE_SUMMARY = "new-analyze-summary"
ID_ANALYZE_SUBMIT_ERROR = "new-analyze-submit-error"
ANALYZE_ERROR_TYPE = "new-analyze-error"
# the followed job
ID_JOB = "new-job"
ID_POLL = "new-poll"
ID_PANEL = "new-panel"
ID_PROGRESS = "new-progress"
PREFIX = "new"  # of the job panel's ids (components.job_status)
ID_STATUS = f"{PREFIX}-status"
ID_PROGRESS_BAR = f"{PREFIX}-progress-bar"
ID_STAGE = f"{PREFIX}-stage"
ID_JOB_ERROR = f"{PREFIX}-job-error"
ID_STOPPING = "new-job-stopping"
ID_CANCEL = "new-job-cancel"
ID_CANCEL_NOTICE = "new-job-cancel-notice"
ID_RESULT = "new-result"
ID_RESULT_LINK = "new-result-link"  # the main "what next" link of a finished job

TRAIN_FIELDS = (
    "dataset_id",
    "architecture",
    "name",
    "epochs",
    "batch_size",
    "lr",
    "lr_schedule",
    "optimizer",
    "momentum",
    "weight_decay",
    "seed",
)
ANALYZE_FIELDS = ("model_id", "dataset_id", "split", "corruptions", "severities", "feature_layer")
# form keyword -> component id; validation takes them as Inputs, submission as States
TRAIN_INPUTS: dict[str, str] = {
    "dataset": ID_TRAIN_DATASET,
    "architecture": ID_TRAIN_ARCH,
    "name": ID_TRAIN_NAME,
    "epochs": ID_TRAIN_EPOCHS,
    "batch_size": ID_TRAIN_BATCH_SIZE,
    "lr": ID_TRAIN_LR,
    "lr_schedule": ID_TRAIN_LR_SCHEDULE,
    "optimizer": ID_TRAIN_OPTIMIZER,
    "momentum": ID_TRAIN_MOMENTUM,
    "weight_decay": ID_TRAIN_WEIGHT_DECAY,
    "seed": ID_TRAIN_SEED,
    "amp": ID_TRAIN_AMP,
}
ANALYZE_INPUTS: dict[str, str] = {
    "model": ID_ANALYZE_MODEL,
    "dataset": ID_ANALYZE_DATASET,
    "split": ID_ANALYZE_SPLIT,
    "all_corruptions": ID_ANALYZE_ALL,
    "corruptions": ID_ANALYZE_CORRUPTIONS,
    "severities": ID_ANALYZE_SEVERITIES,
    "feature_layer": ID_ANALYZE_FEATURE_LAYER,
}


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="New job", layout=layout)
    # train form
    app.callback(
        Output(ID_TRAIN_DATASET_INFO, "children"),
        Input(ID_TRAIN_DATASET, "value"),
        State(ID_TRAIN_DATASETS, "data"),
        prevent_initial_call=True,
    )(describe_train_dataset)
    register_architecture_picker(app, ID_TRAIN_ARCH)
    app.callback(
        Output(ID_TRAIN_KWARGS, "children"),
        Input(ID_TRAIN_ARCH, "value"),
        State(ID_TRAIN_ARCHS, "data"),
        prevent_initial_call=True,
    )(describe_train_architecture)
    app.callback(
        Output(ID_TRAIN_MOMENTUM, "disabled"),
        Input(ID_TRAIN_OPTIMIZER, "value"),
    )(toggle_momentum)
    train_form = {key: Input(cid, "value") for key, cid in TRAIN_INPUTS.items()}
    kwargs_form = {
        "kwarg_values": Input({"type": KWARG_TYPE, "name": ALL}, "value"),
        "kwarg_ids": State({"type": KWARG_TYPE, "name": ALL}, "id"),
    }
    train_context = {
        "error_ids": State({"type": TRAIN_ERROR_TYPE, "field": ALL}, "id"),
        "datasets": State(ID_TRAIN_DATASETS, "data"),
        "architectures": State(ID_TRAIN_ARCHS, "data"),
    }
    app.callback(
        output={
            "errors": Output({"type": TRAIN_ERROR_TYPE, "field": ALL}, "children"),
            "disabled": Output(ID_TRAIN_SUBMIT, "disabled"),
            "summary": Output(ID_TRAIN_SUMMARY, "children"),
        },
        inputs={**train_form, **kwargs_form, **train_context},
    )(validate_train)
    app.callback(
        output={
            "submit_error": Output(ID_TRAIN_SUBMIT_ERROR, "children"),
            "job": Output(ID_JOB, "data", allow_duplicate=True),
            "cancel_notice": Output(ID_CANCEL_NOTICE, "children", allow_duplicate=True),
        },
        inputs={
            "n_clicks": Input(ID_TRAIN_SUBMIT, "n_clicks"),
            **{key: State(cid, "value") for key, cid in TRAIN_INPUTS.items()},
            "kwarg_values": State({"type": KWARG_TYPE, "name": ALL}, "value"),
            "kwarg_ids": State({"type": KWARG_TYPE, "name": ALL}, "id"),
            "datasets": State(ID_TRAIN_DATASETS, "data"),
            "architectures": State(ID_TRAIN_ARCHS, "data"),
        },
        prevent_initial_call=True,
    )(submit_train)
    app.callback(
        Output(ID_URL, "search", allow_duplicate=True),
        Output(ID_KIND_TABS, "children", allow_duplicate=True),
        Input(ID_TRAIN_DATASET, "value"),
        Input(ID_TRAIN_ARCH, "value"),
        State(ID_URL, "search"),
        prevent_initial_call=True,
    )(update_train_url)
    app.callback(
        Output(URL_ID, "search", allow_duplicate=True),
        Output(ID_BUILTIN_RESULT, "children"),
        Input(ID_BUILTIN, "n_clicks"),
        prevent_initial_call=True,
    )(add_builtin_dataset)
    # analyze form
    app.callback(
        Output(ID_ANALYZE_MODEL_INFO, "children"),
        Output(ID_ANALYZE_DATASET, "placeholder"),
        Input(ID_ANALYZE_MODEL, "value"),
        State(ID_ANALYZE_MODELS, "data"),
        State(ID_ANALYZE_DATASETS, "data"),
        prevent_initial_call=True,
    )(describe_analyze_model)
    app.callback(
        Output(ID_ANALYZE_CORRUPTIONS, "disabled"),
        Input(ID_ANALYZE_ALL, "value"),
    )(toggle_all_corruptions)
    analyze_context = {
        "error_ids": State({"type": ANALYZE_ERROR_TYPE, "field": ALL}, "id"),
        "models": State(ID_ANALYZE_MODELS, "data"),
        "datasets": State(ID_ANALYZE_DATASETS, "data"),
        "corruption_names": State(ID_ANALYZE_CORRUPTION_NAMES, "data"),
    }
    app.callback(
        output={
            "errors": Output({"type": ANALYZE_ERROR_TYPE, "field": ALL}, "children"),
            "disabled": Output(ID_ANALYZE_SUBMIT, "disabled"),
            "summary": Output(ID_ANALYZE_SUMMARY, "children"),
        },
        inputs={
            **{key: Input(cid, "value") for key, cid in ANALYZE_INPUTS.items()},
            **analyze_context,
        },
    )(validate_analyze)
    app.callback(
        output={
            "submit_error": Output(ID_ANALYZE_SUBMIT_ERROR, "children"),
            "job": Output(ID_JOB, "data", allow_duplicate=True),
            "cancel_notice": Output(ID_CANCEL_NOTICE, "children", allow_duplicate=True),
        },
        inputs={
            "n_clicks": Input(ID_ANALYZE_SUBMIT, "n_clicks"),
            **{key: State(cid, "value") for key, cid in ANALYZE_INPUTS.items()},
            "models": State(ID_ANALYZE_MODELS, "data"),
            "datasets": State(ID_ANALYZE_DATASETS, "data"),
            "corruption_names": State(ID_ANALYZE_CORRUPTION_NAMES, "data"),
        },
        prevent_initial_call=True,
    )(submit_analyze)
    app.callback(
        Output(ID_URL, "search", allow_duplicate=True),
        Output(ID_KIND_TABS, "children", allow_duplicate=True),
        Input(ID_ANALYZE_MODEL, "value"),
        Input(ID_ANALYZE_DATASET, "value"),
        State(ID_URL, "search"),
        prevent_initial_call=True,
    )(update_analyze_url)
    # the followed job
    app.callback(
        Output(ID_URL, "search", allow_duplicate=True),
        Input(ID_JOB, "data"),
        State(ID_URL, "search"),
        State(ID_VIEW, "data"),
        prevent_initial_call=True,
    )(update_job_url)
    app.callback(
        Output(ID_PROGRESS, "children"),
        Output(ID_POLL, "disabled"),
        Output(ID_CANCEL, "hidden"),
        Input(ID_POLL, "n_intervals"),
        Input(ID_JOB, "data"),
    )(poll_job)
    app.callback(
        output={
            "panel": Output(ID_PROGRESS, "children", allow_duplicate=True),
            "hidden": Output(ID_CANCEL, "hidden", allow_duplicate=True),
            "notice": Output(ID_CANCEL_NOTICE, "children"),
        },
        inputs={"n_clicks": Input(ID_CANCEL, "n_clicks"), "job_state": State(ID_JOB, "data")},
        prevent_initial_call=True,
    )(cancel_followed_job)


# parsing and the job specs -------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _ranged_whole(value: Any, low: int, high: int) -> int:
    """A whole number in [low, high], with a message naming the range and the value."""
    what = f"a whole number in [{low}, {high}]"
    try:
        number = parse_whole(value)
    except ValueError:
        raise ValueError(f"should be {what}, got {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"should be {what}, got {value!r}")
    return number


def _ranged_float(value: Any, rule: str, ok: Any) -> float:
    """A number for which ``ok(number)`` holds; ``rule`` words it ("> 0 and at most 10")."""
    try:
        number = parse_float(value)
    except ValueError:
        raise ValueError(f"should be a number {rule}, got {value!r}") from None
    if not ok(number):
        raise ValueError(f"should be a number {rule}, got {value!r}")
    return number


def find_by_id(items: Sequence[Mapping[str, Any]] | None, item_id: Any) -> Mapping[str, Any] | None:
    """The entry of ``items`` whose ``id`` is ``item_id`` (an int or its text), or None."""
    wanted = parse_int(item_id)
    for item in items or []:
        if item.get("id") == wanted:
            return item
    return None


def find_architecture(
    architectures: Sequence[Mapping[str, Any]] | None, name: Any
) -> Mapping[str, Any] | None:
    """The ``GET /api/architectures`` entry named ``name``, or None."""
    for arch in architectures or []:
        if arch.get("name") == name:
            return arch
    return None


def known_names(architectures: Sequence[Mapping[str, Any]]) -> str:
    """``"digits_cnn, mlp, resnet20"``: the first :data:`MAX_KNOWN_SHOWN` names, and how
    many there are when there are more."""
    names = [str(a.get("name")) for a in architectures]
    if len(names) <= MAX_KNOWN_SHOWN:
        return ", ".join(names)
    return f"{', '.join(names[:MAX_KNOWN_SHOWN])}, … ({len(names)} listed)"


def architecture_kwargs(arch: Mapping[str, Any] | None) -> list[tuple[str, Any, bool]]:
    """``(name, default, required)`` of each keyword argument, required ones first.

    A required argument has no default (``None`` here); the dataset fills the ones in
    :data:`DATASET_KWARGS` when they are left blank.
    """
    if arch is None:
        return []
    out: list[tuple[str, Any, bool]] = [(n, None, True) for n in arch.get("required") or []]
    out += [(n, d, False) for n, d in (arch.get("defaults") or {}).items()]
    return out


def parse_kwarg(value: Any, default: Any) -> Any:
    """One architecture argument, typed after its default; JSON when it has none.

    ``[128, 64]`` is read as JSON for a list default; a required argument (no default) takes
    any JSON value, else the text itself.

    Raises:
        ValueError: when the value does not fit the default's type, naming the value.
    """
    if default is None:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value.strip()
    parsed = parse_param(value, default)
    if isinstance(default, list) and not isinstance(parsed, list):
        raise ValueError(f"should be a JSON list like {json.dumps(default)}, got {value!r}")
    return parsed


def _check_dataset_kwarg(name: str, value: Any, dataset: Mapping[str, Any] | None) -> None:
    """The dataset-derived arguments must agree with the dataset, or training fails later."""
    if dataset is None:
        return
    if name == "num_classes" and value != dataset.get("num_classes"):
        raise ValueError(
            f"should be {dataset.get('num_classes')}, the number of classes of the dataset "
            f"(blank: taken from it), got {value!r}"
        )
    shape = list(dataset.get("input_shape") or [])
    if name == "input_shape" and value != shape:
        raise ValueError(f"should be {json.dumps(shape)}, the dataset's input shape, got {value!r}")
    if name in ("in_channels", "in_chans") and len(shape) == 3 and value != shape[0]:
        raise ValueError(
            f"should be {shape[0]}, the dataset's channels (blank: taken from it), got {value!r}"
        )
    if name in IMAGE_SIZE_KWARGS and len(shape) == 3:
        size: Any = shape[1] if shape[1] == shape[2] else shape[1:]
        if value != size:
            raise ValueError(
                f"should be {json.dumps(size)}, the dataset's image size (blank: taken from it), "
                f"got {value!r}"
            )


def build_train_spec(
    *,
    dataset_id: Any,
    architecture: Any,
    datasets: Sequence[Mapping[str, Any]] | None = None,
    architectures: Sequence[Mapping[str, Any]] | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
    name: Any = None,
    epochs: Any = TRAIN_DEFAULTS["epochs"],
    batch_size: Any = TRAIN_DEFAULTS["batch_size"],
    lr: Any = TRAIN_DEFAULTS["lr"],
    lr_schedule: Any = TRAIN_DEFAULTS["lr_schedule"],
    optimizer: Any = TRAIN_DEFAULTS["optimizer"],
    momentum: Any = TRAIN_DEFAULTS["momentum"],
    weight_decay: Any = TRAIN_DEFAULTS["weight_decay"],
    seed: Any = TRAIN_DEFAULTS["seed"],
    amp: Any = TRAIN_DEFAULTS["amp"],
) -> dict[str, Any]:
    """The ``spec`` of a ``POST /api/jobs`` of kind "train", validated field by field.

    The spec is ``{dataset_id, architecture, arch_kwargs, epochs, batch_size, lr, lr_schedule,
    optimizer, momentum, weight_decay, seed, amp[, name]}`` (the API's ``TrainSpec``). A blank
    training field is left out: the API's default applies. ``arch_kwargs`` keeps only the
    arguments that are set and differ from the architecture's defaults; a blank number of
    classes, input shape or channels is taken from the dataset by the job.

    Args:
        dataset_id: the dataset to train on (an id).
        architecture: a name from ``GET /api/architectures``.
        datasets: ``GET /api/datasets``; checks that the dataset exists and the arguments that
            must agree with it. None skips those checks.
        architectures: ``GET /api/architectures``; checks the name and types the arguments.
            None skips the name check.
        arch_kwargs: raw argument values by name (text, numbers).
        name: the new model's name; blank for the API's default.
        epochs, batch_size, lr, lr_schedule, optimizer, momentum, weight_decay, seed: the
            training settings (numbers from number inputs, or their text).
        amp: a bool or a Checklist value.

    Returns:
        The JSON-ready spec.

    Raises:
        FormError: a ``ValueError`` naming every bad field by its spec path, e.g.
            ``"epochs: should be a whole number in [0, 10000], got -1"``.
    """
    errors: dict[str, str] = {}
    spec: dict[str, Any] = {}

    def check(field: str, fn: Any, *args: Any) -> None:
        if _blank(args[0]):
            return  # the API's default
        try:
            spec[field] = fn(*args)
        except ValueError as exc:
            errors[field] = str(exc)

    dataset: Mapping[str, Any] | None = None
    if _blank(dataset_id):
        errors["dataset_id"] = "choose a dataset to train on"
    else:
        try:
            spec["dataset_id"] = parse_whole(dataset_id, 1)
        except ValueError as exc:
            errors["dataset_id"] = str(exc)
        else:
            dataset = find_by_id(datasets, spec["dataset_id"])
            if datasets is not None and dataset is None:
                errors["dataset_id"] = f"dataset {spec['dataset_id']} does not exist"

    arch: Mapping[str, Any] | None = None
    if _blank(architecture):
        errors["architecture"] = "choose an architecture"
    else:
        spec["architecture"] = str(architecture).strip()
        arch = find_architecture(architectures, spec["architecture"])
        if architectures is not None and arch is None:
            errors["architecture"] = (
                f"unknown architecture {spec['architecture']!r}; known: "
                f"{known_names(architectures)}"
            )

    kwargs: dict[str, Any] = {}
    raw_kwargs = dict(arch_kwargs or {})
    for kwarg, default, required in architecture_kwargs(arch):
        field = f"arch_kwargs.{kwarg}"
        raw = raw_kwargs.pop(kwarg, None)
        if _blank(raw):
            if required and kwarg not in DATASET_KWARGS:
                errors[field] = "required: this architecture has no default for it"
            continue
        try:
            value = parse_kwarg(raw, None if kwarg in DATASET_KWARGS else default)
            if kwarg in DATASET_KWARGS:
                _check_dataset_kwarg(kwarg, value, dataset)
        except ValueError as exc:
            errors[field] = str(exc)
            continue
        if required or kwarg in DATASET_KWARGS or value != default:
            kwargs[kwarg] = value
    for kwarg, raw in raw_kwargs.items():  # not an argument of the chosen architecture
        if not _blank(raw):
            errors[f"arch_kwargs.{kwarg}"] = f"{spec.get('architecture')} takes no {kwarg!r}"
    spec["arch_kwargs"] = kwargs

    check("epochs", _ranged_whole, epochs, 0, MAX_EPOCHS)
    check("batch_size", _ranged_whole, batch_size, 1, MAX_BATCH_SIZE)
    check("lr", _ranged_float, lr, f"> 0 and at most {MAX_LR:g}", lambda x: 0 < x <= MAX_LR)
    check("momentum", _ranged_float, momentum, "in [0, 1)", lambda x: 0 <= x < 1)
    check("weight_decay", _ranged_float, weight_decay, ">= 0", lambda x: x >= 0)
    check("seed", _ranged_whole, seed, 0, MAX_SEED)
    for field, value, choices in (
        ("lr_schedule", lr_schedule, LR_SCHEDULES),
        ("optimizer", optimizer, OPTIMIZERS),
    ):
        if _blank(value):
            continue
        if value not in choices:
            errors[field] = f"should be one of {', '.join(choices)}, got {value!r}"
        else:
            spec[field] = value
    spec["amp"] = is_on(amp)
    if not _blank(name):
        text = str(name).strip()
        if len(text) > MAX_NAME_LENGTH:
            errors["name"] = f"should be at most {MAX_NAME_LENGTH} characters, got {len(text)}"
        else:
            spec["name"] = text
    if errors:
        raise FormError(errors)
    return spec


def model_classes(
    model: Mapping[str, Any], datasets: Sequence[Mapping[str, Any]] | None
) -> int | None:
    """How many classes ``model`` predicts: its ``num_classes`` argument, else its dataset's."""
    classes = (model.get("arch_kwargs") or {}).get("num_classes")
    if classes is not None:
        return int(classes)
    own = find_by_id(datasets, model.get("dataset_id"))
    return None if own is None else int(own["num_classes"])


def build_analyze_spec(
    *,
    model_id: Any,
    dataset_id: Any = None,
    split: Any = DEFAULT_SPLIT,
    corruptions: Any = None,
    all_corruptions: Any = False,
    severities: Any = SEVERITIES,
    feature_layer: Any = None,
    models: Sequence[Mapping[str, Any]] | None = None,
    datasets: Sequence[Mapping[str, Any]] | None = None,
    corruption_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``spec`` of a ``POST /api/jobs`` of kind "analyze", validated field by field.

    The spec is ``{model_id, split[, dataset_id][, corruptions, severities][, feature_layer]}``
    (the API's ``AnalyzeSpec``): a blank dataset means the model's own, and severities are sent
    only with corruptions.

    Args:
        model_id: the model to evaluate (an id).
        dataset_id: the dataset to evaluate on; blank for the model's own.
        split: "test" or "train".
        corruptions: the chosen corruption names (a list).
        all_corruptions: a bool or a Checklist value: every name of ``corruption_names``.
        severities: the ticked severities, each in 1..5.
        feature_layer: the final Linear layer's name; blank to find it.
        models: ``GET /api/models``; checks that the model exists. None skips the checks that
            need it.
        datasets: ``GET /api/datasets``; checks the dataset and that its classes are the
            model's.
        corruption_names: ``GET /api/corruptions``; checks the names.

    Raises:
        FormError: naming every bad field by its spec path.
    """
    errors: dict[str, str] = {}
    spec: dict[str, Any] = {}
    model: Mapping[str, Any] | None = None
    if _blank(model_id):
        errors["model_id"] = "choose a model to analyse"
    else:
        try:
            spec["model_id"] = parse_whole(model_id, 1)
        except ValueError as exc:
            errors["model_id"] = str(exc)
        else:
            model = find_by_id(models, spec["model_id"])
            if models is not None and model is None:
                errors["model_id"] = f"model {spec['model_id']} does not exist"

    dataset: Mapping[str, Any] | None = None
    if _blank(dataset_id):
        if model is not None and model.get("dataset_id") is None:
            errors["dataset_id"] = (
                f"model {model['id']} has no dataset of its own: choose the dataset to use"
            )
        dataset = None if model is None else find_by_id(datasets, model.get("dataset_id"))
    else:
        try:
            spec["dataset_id"] = parse_whole(dataset_id, 1)
        except ValueError as exc:
            errors["dataset_id"] = str(exc)
        else:
            dataset = find_by_id(datasets, spec["dataset_id"])
            if datasets is not None and dataset is None:
                errors["dataset_id"] = f"dataset {spec['dataset_id']} does not exist"
    if model is not None and dataset is not None and "dataset_id" not in errors:
        classes = model_classes(model, datasets)
        if classes is not None and classes != dataset.get("num_classes"):
            errors["dataset_id"] = (
                f"should have the model's {classes} classes; dataset {dataset['id']} "
                f"({dataset.get('name')}) has {dataset.get('num_classes')}"
            )

    if split not in SPLITS:
        errors["split"] = f"should be one of {', '.join(SPLITS)}, got {split!r}"
    else:
        spec["split"] = split

    if is_on(all_corruptions):
        chosen = list(corruption_names or [])
    elif isinstance(corruptions, str):
        chosen = [corruptions] if corruptions.strip() else []
    else:
        chosen = list(corruptions or [])
    chosen = list(dict.fromkeys(str(c) for c in chosen))
    if corruption_names is not None:
        unknown = [c for c in chosen if c not in corruption_names]
        if unknown:
            errors["corruptions"] = (
                f"unknown corruption {unknown[0]!r}; known: {', '.join(corruption_names)}"
            )
    if chosen:
        spec["corruptions"] = chosen
        levels: list[int] = []
        for item in severities or []:
            try:
                levels.append(_ranged_whole(item, 1, 5))
            except ValueError as exc:
                errors["severities"] = str(exc)
                break
        if not levels and "severities" not in errors:
            errors["severities"] = "tick at least one severity for the corruptions"
        spec["severities"] = sorted(set(levels))

    if not _blank(feature_layer):
        spec["feature_layer"] = str(feature_layer).strip()
    if errors:
        raise FormError(errors)
    return spec


def _kwarg_values(
    kwarg_ids: Sequence[Mapping[str, Any]] | None, kwarg_values: Sequence[Any] | None
) -> dict[str, Any]:
    return {
        str(kid.get("name")): value
        for kid, value in zip(kwarg_ids or [], kwarg_values or [], strict=False)
    }


def train_spec_of(form: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`build_train_spec` of the callbacks' keyword arguments (see :data:`TRAIN_INPUTS`)."""
    return build_train_spec(
        dataset_id=form.get("dataset"),
        architecture=form.get("architecture"),
        datasets=form.get("datasets"),
        architectures=form.get("architectures"),
        arch_kwargs=_kwarg_values(form.get("kwarg_ids"), form.get("kwarg_values")),
        **{key: form.get(key) for key in TRAIN_INPUTS if key not in ("dataset", "architecture")},
    )


def analyze_spec_of(form: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`build_analyze_spec` of the callbacks' keyword arguments (see
    :data:`ANALYZE_INPUTS`)."""
    return build_analyze_spec(
        model_id=form.get("model"),
        dataset_id=form.get("dataset"),
        split=form.get("split"),
        corruptions=form.get("corruptions"),
        all_corruptions=form.get("all_corruptions"),
        severities=form.get("severities"),
        feature_layer=form.get("feature_layer"),
        models=form.get("models"),
        datasets=form.get("datasets"),
        corruption_names=form.get("corruption_names"),
    )


# pure renderers ------------------------------------------------------------------------------


def dataset_label(dataset: Mapping[str, Any]) -> str:
    """``"#1 digits · 10 classes, 1×8×8 · 1,347 train / 450 test"``."""
    shape = "×".join(str(s) for s in dataset.get("input_shape") or []) or MISSING
    sizes = f"{int(dataset.get('n_train') or 0):,} train / {int(dataset.get('n_test') or 0):,} test"
    return (
        f"#{dataset['id']} {dataset.get('name')} · {dataset.get('num_classes')} classes, "
        f"{shape} · {sizes}"
    )


def dataset_options(datasets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One dropdown option per dataset, by id, with its classes, input shape and sizes."""
    return [
        {"label": dataset_label(d), "value": d["id"]}
        for d in sorted(datasets, key=lambda d: d["id"])
    ]


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


def field_error(error_type: str, field: str) -> html.Div:
    """The message slot next to a field; the validation callback fills it."""
    return html.Div(id={"type": error_type, "field": field}, className="field-error")


def _control(
    label: str,
    *children: Any,
    help_text: str | None = None,
    error: tuple[str, str] | None = None,
    extra: Any = None,
) -> html.Div:
    parts: list[Any] = [html.Span(label, className="control-label", title=help_text), *children]
    if error is not None:
        parts.append(field_error(*error))
    if help_text:
        parts.append(html.Div(help_text, className="muted hint"))
    if extra is not None:
        parts.append(extra)
    return html.Div(parts, className="field")


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
    kid = {"type": KWARG_TYPE, "name": name}
    if isinstance(default, bool) and name not in DATASET_KWARGS:
        return dcc.Checklist(
            id=kid,
            options=[{"label": name, "value": ON}],
            value=[ON] if default else [],
            className="checkbox",
        )
    if name in DATASET_KWARGS:
        return dcc.Input(
            id=kid, type="text", value="", placeholder="from the dataset", className="input"
        )
    if required or default is None:
        return dcc.Input(id=kid, type="text", value="", placeholder="JSON", className="input")
    if isinstance(default, int | float):
        return dcc.Input(id=kid, type="number", value=default, step="any", className="input")
    value = default if isinstance(default, str) else json.dumps(default)
    return dcc.Input(id=kid, type="text", value=value, className="input")


def kwargs_editor(arch: Mapping[str, Any] | None) -> list[Any]:
    """One labelled input per keyword argument of ``arch``."""
    if arch is None:
        return []
    entries = architecture_kwargs(arch)
    if not entries:
        return [html.P("This architecture takes no arguments.", className="muted")]
    rows = []
    for name, default, required in entries:
        rows.append(
            html.Div(
                [
                    html.Span(name, className="control-label"),
                    kwarg_input(name, default, required),
                    html.Span(_kwarg_hint(name, default, required), className="muted hint"),
                    field_error(TRAIN_ERROR_TYPE, f"arch_kwargs.{name}"),
                ],
                className="field param-field",
            )
        )
    return rows


def model_option_label(model: Mapping[str, Any], depth: int = 0) -> str:
    """``"#1 cnn on digits · digits_cnn · 27.4k params · 1×8×8 · original · acc 97.2%"``, a
    pruned child indented: ``"  ↳ #3 … · global_magnitude 90% sparse · acc 95.1%"``."""
    acc = f"acc {format_percent(model.get('accuracy'))}"
    indent = "\u2003" * max(depth - 1, 0) + ("↳ " if depth else "")
    head = f"{indent}#{model['id']} {model.get('name')} · {model_architecture_summary(model)}"
    if model.get("parent_id") is None and not model.get("pruning_method"):
        return f"{head} · original · {acc}"
    method = model.get("pruning_method") or "pruned"
    sparse = f"{format_percent(model.get('sparsity'), 0)} sparse"
    return f"{head} · {method} {sparse} · {acc}"


def model_options(models: Sequence[ModelPublic]) -> list[dict[str, Any]]:
    """Dropdown options in lineage order: each original followed by its pruned descendants."""
    return [
        {"label": model_option_label(m, depth), "value": m["id"]}
        for depth, m in lineage_order(models)
    ]


def model_info(
    model: Mapping[str, Any] | None,
    models: Sequence[Mapping[str, Any]] | None,
    datasets: Sequence[Mapping[str, Any]] | None,
) -> list[Any]:
    """The model's lineage, dataset and accuracy, in one line."""
    if model is None:
        return [html.P("Choose a model.", className="muted")]
    parts = [model_architecture_summary(model)]
    if model.get("pruning_method"):
        parts.append(
            f"pruned with {model.get('pruning_method')} to "
            f"{format_percent(model.get('sparsity'))} sparsity"
        )
        parent = find_by_id(models, model.get("parent_id"))
        if parent is not None:
            parts.append(f"from #{parent['id']} {parent.get('name')}")
    else:
        parts.append("original")
    own = find_by_id(datasets, model.get("dataset_id"))
    if own is not None:
        parts.append(f"trained on #{own['id']} {own.get('name')}")
    parts.append(f"test accuracy {format_percent(model.get('accuracy'))}")
    return [
        html.P([html.Strong(f"#{model['id']} {model.get('name')}"), " — ", ", ".join(parts) + "."])
    ]


def own_dataset_placeholder(
    model: Mapping[str, Any] | None, datasets: Sequence[Mapping[str, Any]] | None
) -> str:
    """The dataset dropdown's placeholder: which dataset a blank choice means."""
    own = None if model is None else find_by_id(datasets, model.get("dataset_id"))
    if own is None:
        return "the model's own dataset"
    return f"the model's own: #{own['id']} {own.get('name')}"


def job_title(job: Mapping[str, Any]) -> str:
    """``"digits_cnn on dataset #1, 15 epochs"``; ``"model #3 on the test split, 15 corruptions
    × 5 severities"``."""
    spec = job.get("spec") or {}
    kind = job.get("kind")
    if kind == "train" and spec.get("architecture"):
        epochs = spec.get("epochs", TRAIN_DEFAULTS["epochs"])
        return (
            f"{spec['architecture']} on dataset #{spec.get('dataset_id')}, "
            f"{epochs} epoch{'' if epochs == 1 else 's'}"
        )
    if kind == "analyze" and spec.get("model_id") is not None:
        title = f"model #{spec['model_id']} on the {spec.get('split') or DEFAULT_SPLIT} split"
        corruptions = spec.get("corruptions") or []
        if corruptions:
            n_c, n_s = len(corruptions), len(spec.get("severities") or SEVERITIES)
            title += (
                f", {n_c} corruption{'' if n_c == 1 else 's'} × "
                f"{n_s} severit{'y' if n_s == 1 else 'ies'}"
            )
        return title
    return str(kind)


def _card(title: str, value: str, detail: str | None = None, *, card_id: str) -> html.Div:
    children: list[Any] = [
        html.Div(title, className="card-title"),
        html.Div(value, className="card-number"),
    ]
    if detail:
        children.append(html.Div(detail, className="card-delta"))
    return html.Div(children, id=card_id, className="card result-card")


def train_result(result: Mapping[str, Any], model: Mapping[str, Any] | None) -> html.Div:
    """The trained model's figures and what to do with it next (id ``new-result``)."""
    model_id = parse_int(result.get("model_id"))
    name = (model or {}).get("name") or MISSING
    cards = html.Div(
        [
            _card("Model", f"#{model_id} {name}", card_id=f"{ID_RESULT}-model"),
            _card(
                "Test accuracy",
                format_percent(result.get("accuracy")),
                card_id=f"{ID_RESULT}-accuracy",
            ),
            _card(
                "Parameters",
                format_count((model or {}).get("n_params")),
                None if model is None else model_architecture_summary(model),
                card_id=f"{ID_RESULT}-params",
            ),
        ],
        className="card-row",
    )
    links: list[Any] = []
    if model_id is not None:
        links = [
            dcc.Link(
                "Prune this model →",
                href=f"/prune?model={model_id}",
                id=ID_RESULT_LINK,
                className="btn btn-primary",
            ),
            dcc.Link("Analyse it", href=job_kind_href("analyze", model=model_id), className="btn"),
            dcc.Link("All models", href="/", className="btn"),
        ]
    return html.Div([cards, html.Div(links, className="actions")], id=ID_RESULT)


def analysis_links(
    model_id: int | None, comparisons: Sequence[Mapping[str, Any]]
) -> list[dcc.Link]:
    """Where an analysis of ``model_id`` is seen: its comparisons, else the home page."""
    targets: list[tuple[str, str]] = []
    for comp in comparisons:
        b_ids = list(comp.get("model_b_ids") or [])
        if model_id == comp.get("model_a_id"):
            targets.append((f"Open comparison #{comp['id']} →", f"/compare?id={comp['id']}"))
        elif model_id in b_ids:
            href = f"/compare?id={comp['id']}&b={model_id}"
            targets.append((f"Open comparison #{comp['id']} →", href))
    if not targets:
        targets.append(("See it on the home page →", "/"))
    if model_id is not None:
        targets.append(("Prune this model", f"/prune?model={model_id}"))
    links = [
        dcc.Link(targets[0][0], href=targets[0][1], id=ID_RESULT_LINK, className="btn btn-primary")
    ]
    links += [dcc.Link(label, href=href, className="btn") for label, href in targets[1:]]
    return links


def analyze_result(
    job: Mapping[str, Any],
    analysis: Mapping[str, Any] | None,
    comparisons: Sequence[Mapping[str, Any]],
) -> html.Div:
    """The analysis's accuracy and where to look at it (id ``new-result``)."""
    spec, result = job.get("spec") or {}, job.get("result") or {}
    model_id = parse_int(spec.get("model_id"))
    corruptions = spec.get("corruptions") or []
    cards = html.Div(
        [
            _card(
                "Accuracy",
                format_percent(result.get("accuracy")),
                f"{(analysis or {}).get('split') or spec.get('split') or DEFAULT_SPLIT} split",
                card_id=f"{ID_RESULT}-accuracy",
            ),
            _card(
                "Samples",
                format_count((analysis or {}).get("n_samples")),
                f"analysis #{result.get('analysis_id')}",
                card_id=f"{ID_RESULT}-samples",
            ),
            _card(
                "Corruptions",
                str(len(corruptions)) if corruptions else "none",
                f"× {len(spec.get('severities') or SEVERITIES)} severities"
                if corruptions
                else None,
                card_id=f"{ID_RESULT}-corruptions",
            ),
        ],
        className="card-row",
    )
    return html.Div(
        [cards, html.Div(analysis_links(model_id, comparisons), className="actions")],
        id=ID_RESULT,
    )


def stopping_notice() -> html.Div:
    """What a cancelling job's panel says until its worker has stopped it."""
    return notice(
        "Stopping…",
        "Cancellation was requested. The job stops at its next check; then this panel shows it "
        "as cancelled.",
        kind="info",
        notice_id=ID_STOPPING,
    )


def job_panel(job: JobPublic, extra: Any = None) -> list[Any]:
    """The progress panel of one job: status, progress bar and stage, then result or error.

    Args:
        job: the job as ``GET /api/jobs/{id}`` returns it.
        extra: what a succeeded job produced (see :func:`train_result`, :func:`analyze_result`).
    """
    status = str(job.get("status"))
    stopping = stopping_notice() if status == "cancelling" else None
    children = job_status(job, job_title(job), PREFIX, stopping)
    if status == "succeeded" and extra is not None:
        children.append(extra)
    return children


# layout --------------------------------------------------------------------------------------


# the training settings' controls, in form order: label, component id, TrainSettings field,
# and the choices of a dropdown (empty for a number)
TRAIN_CONTROLS: tuple[tuple[str, str, str, Sequence[str]], ...] = (
    ("Epochs", ID_TRAIN_EPOCHS, "epochs", ()),
    ("Batch size", ID_TRAIN_BATCH_SIZE, "batch_size", ()),
    ("Learning rate", ID_TRAIN_LR, "lr", ()),
    ("Learning-rate schedule", ID_TRAIN_LR_SCHEDULE, "lr_schedule", LR_SCHEDULES),
    ("Optimizer", ID_TRAIN_OPTIMIZER, "optimizer", OPTIMIZERS),
    ("Momentum", ID_TRAIN_MOMENTUM, "momentum", ()),
    ("Weight decay", ID_TRAIN_WEIGHT_DECAY, "weight_decay", ()),
    ("Seed", ID_TRAIN_SEED, "seed", ()),
)


def _number_input(component_id: str, value: Any, help_text: str) -> html.Div:
    # no min/max/step constraints: the browser would blank an out-of-range value, and
    # the validation's messages say more than the browser's
    return html.Div(
        dcc.Input(
            id=component_id,
            type="number",
            step="any",
            value=value,
            placeholder=f"default {value:g}" if isinstance(value, float) else f"default {value}",
            className="input",
        ),
        title=help_text,  # dcc.Input takes no title: its wrapper shows the tooltip
    )


def _choice(component_id: str, options: Sequence[str], value: str, help_text: str) -> Any:
    return html.Div(
        dcc.Dropdown(
            id=component_id,
            options=list(options),
            value=value,
            clearable=False,
            searchable=False,
        ),
        title=help_text,
    )


def _message_page(kind: str, *children: Any) -> html.Div:
    return html.Div(
        [
            job_kind_tabs(kind, tabs_id=ID_KIND_TABS),
            html.H1(_heading(kind)),
            *children,
        ],
        className="page page-prune page-new-job",
    )


def _heading(kind: str) -> str:
    return "Analyse a model" if kind == "analyze" else "Train a model"


def _summary(errors: Mapping[str, str]) -> str:
    if not errors:
        return ""
    n = len(errors)
    return f"{n} field{'' if n == 1 else 's'} to fix before submitting."


def _train_sections(
    datasets: Sequence[DatasetPublic],
    architectures: Sequence[ArchitecturePublic],
    dataset_id: int | None,
    arch: Mapping[str, Any] | None,
) -> list[Any]:
    dataset = find_by_id(datasets, dataset_id)
    target = html.Section(
        [
            html.H2("What to train"),
            html.Div(
                [
                    _control(
                        "Dataset",
                        dcc.Dropdown(
                            id=ID_TRAIN_DATASET,
                            options=dataset_options(datasets),
                            value=dataset_id,
                            clearable=False,
                            placeholder="Choose a dataset",
                        ),
                        help_text=TRAIN_HELP["dataset_id"],
                        error=(TRAIN_ERROR_TYPE, "dataset_id"),
                        extra=html.Div(
                            dataset_info(dataset), id=ID_TRAIN_DATASET_INFO, className="hint"
                        ),
                    ),
                    _control(
                        "Architecture",
                        architecture_picker(
                            ID_TRAIN_ARCH,
                            None if arch is None else str(arch["name"]),
                            architectures,
                            clearable=False,
                        ),
                        help_text=TRAIN_HELP["architecture"],
                        error=(TRAIN_ERROR_TYPE, "architecture"),
                    ),
                    _control(
                        "Name (optional)",
                        dcc.Input(
                            id=ID_TRAIN_NAME,
                            type="text",
                            placeholder="default: <architecture> on <dataset>",
                            maxLength=MAX_NAME_LENGTH + 50,  # the rule's message says more
                            className="input",
                        ),
                        help_text=TRAIN_HELP["name"],
                        error=(TRAIN_ERROR_TYPE, "name"),
                    ),
                ],
                className="form-grid",
            ),
        ],
        className="section",
    )
    kwargs = html.Section(
        [
            html.H2("Architecture arguments"),
            html.Div(kwargs_editor(arch), id=ID_TRAIN_KWARGS, className="params-grid"),
        ],
        className="section",
    )
    d = TRAIN_DEFAULTS
    training = html.Section(
        [
            html.H2("Training"),
            html.Div(
                [
                    _control(
                        label,
                        (
                            _choice(component_id, choices, d[key], TRAIN_HELP[key])
                            if choices
                            else _number_input(component_id, d[key], TRAIN_HELP[key])
                        ),
                        help_text=TRAIN_HELP[key],
                        error=(TRAIN_ERROR_TYPE, key),
                    )
                    for label, component_id, key, choices in TRAIN_CONTROLS
                ],
                className="form-grid",
            ),
            html.Div(
                dcc.Checklist(
                    id=ID_TRAIN_AMP,
                    options=[{"label": "Mixed precision (AMP)", "value": ON}],
                    value=[ON] if d["amp"] else [],
                    className="checkbox",
                ),
                title=TRAIN_HELP["amp"],
            ),
            html.Div(TRAIN_HELP["amp"], className="muted hint"),
        ],
        className="section",
    )
    try:
        build_train_spec(
            dataset_id=dataset_id,
            architecture=None if arch is None else arch["name"],
            datasets=datasets,
            architectures=architectures,
            arch_kwargs={},
        )
        initially_valid = True
    except FormError:
        initially_valid = False
    submit = submit_section(
        "Train", "train", ID_TRAIN_SUBMIT, ID_TRAIN_SUMMARY, ID_TRAIN_SUBMIT_ERROR, initially_valid
    )
    return [
        dcc.Store(id=ID_TRAIN_DATASETS, data=list(datasets)),
        html.Div([target, kwargs, training, submit], id=ID_TRAIN_FORM),
    ]


def _analyze_sections(
    models: Sequence[ModelPublic],
    datasets: Sequence[DatasetPublic],
    corruption_names: Sequence[str],
    model_id: int | None,
    dataset_id: int | None,
) -> list[Any]:
    model = find_by_id(models, model_id)
    target = html.Section(
        [
            html.H2("What to analyse"),
            html.Div(
                [
                    _control(
                        "Model",
                        dcc.Dropdown(
                            id=ID_ANALYZE_MODEL,
                            options=model_options(models),
                            value=model_id,
                            clearable=False,
                            placeholder="Choose a model",
                        ),
                        help_text=ANALYZE_HELP["model_id"],
                        error=(ANALYZE_ERROR_TYPE, "model_id"),
                    ),
                    _control(
                        "Dataset",
                        dcc.Dropdown(
                            id=ID_ANALYZE_DATASET,
                            options=dataset_options(datasets),
                            value=dataset_id,
                            clearable=True,
                            placeholder=own_dataset_placeholder(model, datasets),
                        ),
                        help_text=ANALYZE_HELP["dataset_id"],
                        error=(ANALYZE_ERROR_TYPE, "dataset_id"),
                    ),
                    _control(
                        "Split",
                        dcc.RadioItems(
                            id=ID_ANALYZE_SPLIT,
                            options=[{"label": s, "value": s} for s in SPLITS],
                            value=DEFAULT_SPLIT,
                            inline=True,
                            className="radio-row",
                        ),
                        help_text=ANALYZE_HELP["split"],
                        error=(ANALYZE_ERROR_TYPE, "split"),
                    ),
                ],
                className="form-grid",
            ),
            html.Div(
                model_info(model, models, datasets),
                id=ID_ANALYZE_MODEL_INFO,
                className="method-info",
            ),
        ],
        className="section",
    )
    corruption_controls: list[Any]
    if corruption_names:
        corruption_controls = [
            dcc.Checklist(
                id=ID_ANALYZE_ALL,
                options=[{"label": f"All {len(corruption_names)} corruptions", "value": ON}],
                value=[],
                className="checkbox",
            ),
            _control(
                "Corruptions",
                dcc.Dropdown(
                    id=ID_ANALYZE_CORRUPTIONS,
                    options=[{"label": c.replace("_", " "), "value": c} for c in corruption_names],
                    value=[],
                    multi=True,
                    placeholder="None: clean accuracy only",
                ),
                help_text=ANALYZE_HELP["corruptions"],
                error=(ANALYZE_ERROR_TYPE, "corruptions"),
            ),
        ]
    else:
        corruption_controls = [
            html.P("The API lists no corruptions: clean accuracy only.", className="muted"),
            dcc.Checklist(id=ID_ANALYZE_ALL, options=[], value=[], style={"display": "none"}),
            dcc.Dropdown(
                id=ID_ANALYZE_CORRUPTIONS, options=[], value=[], style={"display": "none"}
            ),
            field_error(ANALYZE_ERROR_TYPE, "corruptions"),
        ]
    robustness = html.Section(
        [
            html.H2("Corruptions"),
            *corruption_controls,
            _control(
                "Severities",
                dcc.Checklist(
                    id=ID_ANALYZE_SEVERITIES,
                    options=[{"label": str(s), "value": s} for s in SEVERITIES],
                    value=list(SEVERITIES),
                    inline=True,
                    className="checkbox radio-row",
                ),
                help_text=ANALYZE_HELP["severities"],
                error=(ANALYZE_ERROR_TYPE, "severities"),
            ),
        ],
        className="section",
    )
    advanced = html.Section(
        [
            html.H2("Advanced"),
            html.Div(
                _control(
                    "Feature layer (optional)",
                    dcc.Input(
                        id=ID_ANALYZE_FEATURE_LAYER,
                        type="text",
                        placeholder="blank: the model's classifier",
                        className="input",
                    ),
                    help_text=ANALYZE_HELP["feature_layer"],
                    error=(ANALYZE_ERROR_TYPE, "feature_layer"),
                ),
                className="form-grid",
            ),
        ],
        className="section",
    )
    try:
        build_analyze_spec(
            model_id=model_id,
            dataset_id=dataset_id,
            models=models,
            datasets=datasets,
            corruption_names=corruption_names,
        )
        initially_valid = True
    except FormError:
        initially_valid = False
    submit = submit_section(
        "Analyse",
        "analyze",
        ID_ANALYZE_SUBMIT,
        ID_ANALYZE_SUMMARY,
        ID_ANALYZE_SUBMIT_ERROR,
        initially_valid,
    )
    return [
        dcc.Store(id=ID_ANALYZE_MODELS, data=list(models)),
        dcc.Store(id=ID_ANALYZE_DATASETS, data=list(datasets)),
        dcc.Store(id=ID_ANALYZE_CORRUPTION_NAMES, data=list(corruption_names)),
        html.Div([target, robustness, advanced, submit], id=ID_ANALYZE_FORM),
    ]


def submit_section(
    label: str, kind: str, button_id: str, summary_id: str, error_id: str, valid: bool
) -> html.Section:
    """A form's submit button (disabled while the form is invalid), the one-line summary of
    what is wrong, and where the API's refusal is shown."""
    return html.Section(
        [
            html.Div(
                [
                    html.Button(
                        label,
                        id=button_id,
                        n_clicks=0,
                        disabled=not valid,
                        className="btn btn-primary",
                        title=f"Submit the {kind} job; this page then follows its progress",
                    ),
                    html.Span(id=summary_id, className="field-error"),
                ],
                className="actions",
            ),
            html.Div(id=error_id),
        ],
        className="section",
    )


def job_section() -> html.Section:
    """The followed job's section: the panel :func:`poll_job` renders, then the cancel row."""
    return html.Section(
        job_follow_section(
            progress_id=ID_PROGRESS,
            cancel_id=ID_CANCEL,
            cancel_notice_id=ID_CANCEL_NOTICE,
            cancel_title="Stop the job",
        ),
        id=ID_PANEL,
        className="section progress-panel new-job-panel",
    )


def _search_of(query: Mapping[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                pairs.append((key, str(v)))
    return f"?{urlencode(pairs)}" if pairs else ""


def _no_datasets() -> html.Div:
    return html.Div(
        [
            empty_state(
                "No datasets yet: ",
                dcc.Link("upload one", href="/upload"),
                " (npz, CIFAR-10, MNIST, an image folder) or use a built-in one.",
            ),
            html.Div(
                html.Button(
                    "Add the built-in digits dataset",
                    id=ID_BUILTIN,
                    n_clicks=0,
                    className="btn btn-primary",
                    title="scikit-learn digits: 1,797 8×8 greyscale images of 10 classes",
                ),
                className="actions",
            ),
            html.Div(id=ID_BUILTIN_RESULT),
        ],
        id=ID_EMPTY,
        className="section",
    )


def _no_models() -> html.Div:
    return html.Div(
        empty_state(
            "No models yet: ",
            dcc.Link("train one", href=job_kind_href("train")),
            ", ",
            dcc.Link("upload a checkpoint", href="/upload"),
            " or run ",
            html.Code("prunescope demo"),
            ".",
        ),
        id=ID_EMPTY,
        className="section",
    )


def layout(
    kind: str | None = None,
    dataset: str | None = None,
    architecture: str | None = None,
    model: str | None = None,
    job: str | None = None,
    **query: Any,
) -> html.Div:
    """The new-job form for ``?kind=&dataset=&architecture=&model=&job=``.

    Args:
        kind: "train" (default) or "analyze"; "prune" and "sweep" point to the prune page.
        dataset: id of the dataset to preselect (train: the first one when absent; analyze: the
            model's own when absent).
        architecture: name of the architecture to preselect (train).
        model: id of the model to preselect (analyze: the first original when absent).
        job: id of a job to follow in the progress panel.
        **query: other query parameters, kept in the URL.
    """
    warnings: list[Any] = []
    if kind in ("prune", "sweep"):
        return _message_page(
            kind,
            notice(
                f"{kind.capitalize()} jobs are set up on the prune page",
                [dcc.Link(f"Open the {kind} form →", href=job_kind_href(kind, model=model))],
            ),
        )
    if kind is not None and kind not in KINDS:
        warnings.append(
            notice(
                f"Unknown job kind '{kind}'",
                "Known kinds: train, prune, sweep, analyze. Showing the train form.",
                kind="warning",
            )
        )
    chosen_kind = kind if kind in KINDS else DEFAULT_KIND
    client = get_client()
    try:
        datasets = client.list_datasets()
        models = client.list_models() if chosen_kind == "analyze" else []
        architectures = registered_architectures(client) if chosen_kind == "train" else []
        if chosen_kind == "train" and architecture is not None:
            # any timm/torchvision name: its entry joins the picker's
            if find_architecture(architectures, architecture) is None:
                entry = find_architecture_entry(client, architecture)
                architectures += [] if entry is None else [entry]
        corruption_names = _corruptions(client) if chosen_kind == "analyze" else []
    except ApiError as exc:
        return _message_page(chosen_kind, *warnings, api_error_notice(exc, "the form's choices"))

    job_id = parse_int(job)
    form: list[Any]
    dataset_id = parse_int(dataset)
    if dataset is not None and find_by_id(datasets, dataset_id) is None:
        warnings.append(
            notice(f"Dataset '{dataset}' not found", "Choose a dataset below.", kind="warning")
        )
        dataset_id = None
    model_id: int | None = None
    if chosen_kind == "train":
        if not datasets:
            form = [_no_datasets()]
        else:
            if dataset is None:
                dataset_id = datasets[0]["id"]
            name = architecture
            if name is not None and find_architecture(architectures, name) is None:
                warnings.append(
                    notice(
                        f"Unknown architecture '{name}'",
                        f"No architecture has that name. Registered: {known_names(architectures)}"
                        "; search the Architecture field for timm/… and torchvision/… models.",
                        kind="warning",
                    )
                )
                name = None
            if architecture is None:
                name = default_architecture(find_by_id(datasets, dataset_id), architectures)
            arch = find_architecture(architectures, name)
            form = _train_sections(datasets, architectures, dataset_id, arch)
    else:
        if not models:
            form = [_no_models()]
        else:
            model_id = parse_int(model)
            if model is not None and find_by_id(models, model_id) is None:
                warnings.append(
                    notice(f"Model '{model}' not found", "Choose a model below.", kind="warning")
                )
                model_id = None
            elif model is None:
                model_id = model_options(models)[0]["value"]
            form = _analyze_sections(models, datasets, corruption_names, model_id, dataset_id)
    lead = (
        "Train a network from scratch on a registered dataset. The job runs in the background; "
        "this page follows it, then offers to prune the new model."
        if chosen_kind == "train"
        else "Evaluate a model on a dataset split, optionally under corruptions: per-class "
        "metrics and per-sample geometry, the material of every comparison."
    )
    view = {
        "search": _search_of(
            {
                "kind": kind,
                "dataset": dataset,
                "architecture": architecture,
                "model": model,
                "job": job,
                **query,
            }
        ),
    }
    return html.Div(
        [
            dcc.Location(id=ID_URL, refresh=False),
            dcc.Store(id=ID_VIEW, data=view),
            dcc.Store(id=ID_JOB, data=None if job_id is None else {"id": job_id}),
            dcc.Interval(id=ID_POLL, interval=POLL_INTERVAL_MS, disabled=job_id is None),
            job_kind_tabs(
                chosen_kind,
                model=model_id,
                dataset=dataset_id if chosen_kind == "train" else None,
                tabs_id=ID_KIND_TABS,
            ),
            html.H1(_heading(chosen_kind)),
            html.P(lead, className="lead"),
            *warnings,
            *form,
            job_section(),
        ],
        className="page page-prune page-new-job",
    )


def _corruptions(client: ApiClient) -> list[str]:
    """``GET /api/corruptions``; an API without the listing offers none."""
    try:
        return client.list_corruptions()
    except ApiUnreachableError:
        raise
    except ApiError:
        return []


# callbacks -----------------------------------------------------------------------------------


def describe_train_dataset(dataset: Any, datasets: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    """Callback: the chosen dataset's source and classes."""
    return dataset_info(find_by_id(datasets, dataset))


def describe_train_architecture(
    architecture: Any, architectures: Sequence[Mapping[str, Any]] | None
) -> list[Any]:
    """Callback: an editor of the chosen architecture's keyword arguments (the picker's own
    callback describes it)."""
    return kwargs_editor(find_architecture(architectures, architecture))


def toggle_momentum(optimizer: Any) -> bool:
    """Callback: momentum is an SGD setting; Adam ignores it."""
    return optimizer != "sgd"


def _messages(
    error_ids: Sequence[Mapping[str, Any]] | None, errors: Mapping[str, str]
) -> list[str]:
    return [errors.get(str(eid.get("field")), "") for eid in error_ids or []]


def _validation(
    build: Any, form: Mapping[str, Any], error_ids: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    try:
        build(form)
    except FormError as exc:
        slots = {str(eid.get("field")) for eid in error_ids or []}
        summary = _summary(exc.errors)
        unplaced = [f"{f}: {m}" for f, m in exc.errors.items() if f not in slots]
        if unplaced:
            summary += " " + "; ".join(unplaced)
        return {"errors": _messages(error_ids, exc.errors), "disabled": True, "summary": summary}
    return {"errors": _messages(error_ids, {}), "disabled": False, "summary": ""}


def validate_train(
    error_ids: Sequence[Mapping[str, Any]] | None = None, **form: Any
) -> dict[str, Any]:
    """Callback: check the train form as it is filled in.

    Args:
        error_ids: ids ``{"type": "new-train-error", "field": <spec path>}`` of the message
            slots, in the order their messages are returned.
        **form: the fields of :data:`TRAIN_INPUTS`, ``kwarg_values`` / ``kwarg_ids`` (the
            architecture arguments), ``datasets`` and ``architectures`` (the API's lists).

    Returns:
        ``{"errors": [message per slot], "disabled": whether submitting is refused,
        "summary": how many fields to fix, plus any message without a slot}``.
    """
    return _validation(train_spec_of, form, error_ids)


def validate_analyze(
    error_ids: Sequence[Mapping[str, Any]] | None = None, **form: Any
) -> dict[str, Any]:
    """Callback: check the analyze form as it is filled in (see :func:`validate_train`)."""
    return _validation(analyze_spec_of, form, error_ids)


def _submit(kind: JobKind, build: Any, form: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"job": dash.no_update, "cancel_notice": dash.no_update}
    if not form.get("n_clicks"):
        return {"submit_error": None, **keep}
    try:
        spec = build(form)
    except FormError as exc:
        box = notice(
            "Check the form",
            "; ".join(f"{f}: {m}" for f, m in exc.errors.items()),
            kind="warning",
        )
        return {"submit_error": box, **keep}
    try:
        job = get_client().create_job(kind, spec)
    except ApiError as exc:
        if isinstance(exc, ApiUnreachableError):
            title = "Cannot reach the PruneScope API"
        elif 400 <= exc.status < 500:
            title = "The API refused the job"
        else:
            title = f"The API answered {exc.status}"
        return {"submit_error": notice(title, exc.detail, kind="error"), **keep}
    return {"submit_error": None, "job": {"id": job["id"], "kind": kind}, "cancel_notice": None}


def submit_train(**form: Any) -> dict[str, Any]:
    """Callback: validate the train form, then ``POST /api/jobs`` with kind "train".

    Args:
        **form: ``n_clicks`` of the submit button and the arguments of :func:`validate_train`.

    Returns:
        ``{"submit_error": <box> or None, "job": {"id", "kind"} or no_update,
        "cancel_notice": None or no_update}``. A refusal of the API is shown verbatim and
        leaves the followed job as it is.
    """
    return _submit("train", train_spec_of, form)


def submit_analyze(**form: Any) -> dict[str, Any]:
    """Callback: validate the analyze form, then ``POST /api/jobs`` with kind "analyze"
    (see :func:`submit_train`)."""
    return _submit("analyze", analyze_spec_of, form)


def update_train_url(dataset: Any, architecture: Any, search: str | None) -> tuple[Any, Any]:
    """Callback: write the kind, dataset and architecture into the URL (other keys kept), and
    let the job-kind strip carry the dataset.

    Returns:
        The new search string and the strip's tabs, or ``no_update`` for both when the URL
        already says so.
    """
    new = search_with(search, {"kind": "train", "dataset": dataset, "architecture": architecture})
    if new is None:
        return dash.no_update, dash.no_update
    return new, job_kind_links("train", dataset=dataset)


def update_analyze_url(model: Any, dataset: Any, search: str | None) -> tuple[Any, Any]:
    """Callback: write the kind, model and dataset (none: the model's own) into the URL, and
    let the job-kind strip carry the model (see :func:`update_train_url`)."""
    new = search_with(search, {"kind": "analyze", "model": model, "dataset": dataset})
    if new is None:
        return dash.no_update, dash.no_update
    return new, job_kind_links("analyze", model=model)


def update_job_url(
    job_state: Mapping[str, Any] | None,
    search: str | None,
    view: Mapping[str, Any] | None = None,
) -> str | dash.NoUpdate:
    """Callback: write the followed job into the URL (``job=<id>``), other keys kept."""
    if search is None:
        search = str((view or {}).get("search") or "")
    new = search_with(search, {"job": (job_state or {}).get("id")})
    return dash.no_update if new is None else new


def register_builtin_dataset(client: ApiClient, name: str) -> DatasetPublic:
    """``POST /api/datasets`` with ``{"builtin": name}``: register a built-in dataset."""
    return cast(DatasetPublic, client._request("POST", "/api/datasets", json={"builtin": name}))


def add_builtin_dataset(n_clicks: int | None) -> tuple[Any, Any]:
    """Callback: register the built-in digits dataset, then reopen the train form with it.

    Returns:
        The shell Location's new search (``?kind=train&dataset=<id>``, which renders the page
        again) and a notice with a link to the same place, or the API's refusal.
    """
    if not n_clicks:
        return dash.no_update, dash.no_update
    try:
        dataset = register_builtin_dataset(get_client(), BUILTIN_DATASET)
    except ApiError as exc:
        return dash.no_update, notice(
            "Could not add the built-in dataset", exc.detail, kind="error"
        )
    href = job_kind_href("train", dataset=dataset["id"])
    return f"?{href.split('?', 1)[1]}", notice(
        f"Added dataset #{dataset['id']} {dataset['name']}",
        [dcc.Link("Train on it →", href=href)],
    )


def describe_analyze_model(
    model: Any,
    models: Sequence[Mapping[str, Any]] | None,
    datasets: Sequence[Mapping[str, Any]] | None,
) -> tuple[list[Any], str]:
    """Callback: the chosen model's lineage, and which dataset a blank choice means."""
    chosen = find_by_id(models, model)
    return model_info(chosen, models, datasets), own_dataset_placeholder(chosen, datasets)


def toggle_all_corruptions(all_corruptions: Any) -> bool:
    """Callback: "All corruptions" ticked makes the list's choice moot."""
    return is_on(all_corruptions)


def _succeeded_extra(client: ApiClient, job: JobPublic) -> Any:
    kind, spec, result = job.get("kind"), job.get("spec") or {}, job.get("result") or {}
    if kind == "train":
        model: ModelPublic | None = None
        model_id = parse_int(result.get("model_id"))
        try:
            model = client.get_model(model_id) if model_id is not None else None
        except ApiError:
            pass  # the figures come from the job's result; the model only adds its name
        return train_result(result, model)
    if kind == "analyze":
        analysis: Mapping[str, Any] | None = None
        comparisons: Sequence[Mapping[str, Any]] = []
        try:
            analysis_id = parse_int(result.get("analysis_id"))
            analysis = client.get_analysis(analysis_id) if analysis_id is not None else None
            comparisons = client.list_comparisons()
        except ApiError:
            pass
        return analyze_result(job, analysis, comparisons)
    if kind in ("prune", "sweep"):
        return html.P(
            dcc.Link(
                "See it on the prune page →",
                href=f"/prune?job={job['id']}&model={spec.get('model_id')}",
                id=ID_RESULT_LINK,
            )
        )
    return None


def poll_job(
    n_intervals: int | None, job_state: Mapping[str, Any] | None
) -> tuple[Any, bool, bool]:
    """Callback: re-fetch the followed job and render the progress panel.

    Runs when a job is submitted (or named in the URL) and then every ``POLL_INTERVAL_MS``
    until the job is final.

    Returns:
        The panel's children, whether polling stops (``new-poll`` disabled) and whether the
        "Cancel job" button is hidden (it is shown only while the job is queued or running).
    """
    job_id = parse_int((job_state or {}).get("id"))
    if job_id is None:
        return [], True, True
    client = get_client()
    try:
        job = client.get_job(job_id)
    except ApiError as exc:
        if exc.status == 404:
            return [notice(f"Job {job_id} not found", exc.detail, kind="warning")], True, True
        # a restarting server is not the job's end: keep polling
        return [api_error_notice(exc, f"job {job_id}")], False, True
    if job.get("status") not in FINAL_STATUSES:
        return job_panel(job), False, not can_cancel(job)
    extra = _succeeded_extra(client, job) if job.get("status") == "succeeded" else None
    return job_panel(job, extra), True, True


def cancel_followed_job(
    n_clicks: int | None, job_state: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Callback: ``POST /api/jobs/{id}/cancel`` for the followed job ("Cancel job" clicked).

    Returns:
        ``{"panel": <panel children> or no_update, "hidden": whether the button is hidden (or
        no_update), "notice": <what the cancel row says> or None}``.
    """
    job_id = parse_int((job_state or {}).get("id"))
    if not n_clicks or job_id is None:
        return {"panel": dash.no_update, "hidden": dash.no_update, "notice": dash.no_update}
    try:
        job = get_client().cancel_job(job_id)
    except ApiError as exc:
        if exc.status == 409:
            box = notice(
                f"Job #{job_id} had already finished",
                "There was nothing left to cancel; the panel above shows how it ended.",
                kind="info",
            )
            return {"panel": dash.no_update, "hidden": True, "notice": box}
        if exc.status == 404:
            box = notice(f"Job #{job_id} not found", exc.detail, kind="warning")
            return {"panel": dash.no_update, "hidden": True, "notice": box}
        title = (
            "Cannot reach the PruneScope API"
            if isinstance(exc, ApiUnreachableError)
            else f"Could not cancel job #{job_id}"
        )
        return {
            "panel": dash.no_update,
            "hidden": False,
            "notice": notice(title, exc.detail, kind="error"),
        }
    return {"panel": job_panel(job), "hidden": not can_cancel(job), "notice": None}

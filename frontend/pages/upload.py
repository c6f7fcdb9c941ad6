"""Upload page ("/upload?architecture=&parent=&dataset="): bring a checkpoint or a dataset.

Two panels, "Model checkpoint" and "Dataset", each with a drop zone, a file picker and the
upload's form fields. The file itself never passes through Dash (``dcc.Upload`` would
base64-encode it in the browser and post it through a callback): ``assets/upload.js`` streams it
to the API with an ``XMLHttpRequest`` and a ``FormData`` holding the ``File``, and shows the
bytes sent. The path of one upload:

1. picking or dropping a file: upload.js writes its name and size into ``upload-<kind>-selected``
   (``window.dash_clientside.set_props``); :func:`show_selected` shows them;
2. clicking "Upload": :func:`prepare_model_upload` / :func:`prepare_dataset_upload` validate the
   form (the pure :func:`model_fields` / :func:`dataset_fields`) and write the text fields into
   ``upload-<kind>-request``;
3. a clientside callback (``prunescope_upload.<kind>`` in upload.js) posts the file with those
   fields to ``POST /api/<kind>s/upload`` (its same-origin path is rendered into the panel's
   ``data-upload-url``), updates the progress bar and puts the API's answer (or its error
   detail) into ``upload-<kind>-response``;
4. :func:`poll_model_upload` / :func:`poll_dataset_upload` follow the import job that validates
   and registers the file, then show what was registered (per-layer sparsity of a checkpoint,
   class balance of a dataset) or the job's error verbatim.

The checkpoint's architecture is chosen with the searchable picker of
:func:`frontend.components.architecture_picker` (built-ins and plug-ins, and any
``timm/<name>`` or ``torchvision/<name>`` the server finds for what is typed). With "Pruned
from" set and the picker blank, the server takes the original's architecture and its arguments;
:func:`show_parent_architecture` says so under the picker. The panel's
architecture, parent and dataset live in the URL (a page-level Location with ``refresh=False``),
so a copied link reopens the form filled in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import ClientsideFunction, Input, Output, State, dcc, html

from frontend import components, forms
from frontend.client import (
    ApiClient,
    ApiError,
    ArchitecturePublic,
    DatasetPublic,
    ModelPublic,
    UploadKind,
    get_client,
)
from frontend.components import notice, result_card
from frontend.figures.formatting import MISSING, format_count, format_percent
from frontend.figures.upload import class_balance_bars, layer_sparsity_bars
from frontend.forms import blank, control, query_int
from frontend.jobs import (
    POLL_INTERVAL_MS,
    compare_with_original,
    is_active,
    original_comparison_link,
    read_job,
)

PATH = "/upload"
TITLE = "Upload · PruneScope"
CLIENTSIDE_NAMESPACE = "prunescope_upload"  # window.dash_clientside.<namespace>.<kind> in upload.js
AUTO_FORMAT = "auto"
DEFAULT_TEST_FRACTION = 0.2
SEVERITIES = (1, 2, 3, 4, 5)
ARCH_HINT = (
    'Blank: the original\'s, when "Pruned from" names one; else the file is a PruneScope '
    "checkpoint, which names its own architecture, or an ONNX graph. Type to search timm/… and "
    "torchvision/… models too."
)
ARCH_PLACEHOLDER = "blank, or search: resnet, vit, mobilenet…"
# what each drop zone takes, `code` in backticks
MODEL_FORMATS = (
    "`.safetensors`, or a `state_dict` saved with `torch.save` (`.pt`/`.pth`), optionally nested "
    "under state_dict / model_state_dict / model / net. Pickled whole models "
    "(`torch.save(model)`) are refused: save `model.state_dict()` instead. Masks (`*_mask` "
    "tensors) or exact zeros become the model's pruning masks. Any other network: an `.onnx` "
    "export (or a `.zip` of model.onnx with its external data), converted without running your "
    "code; leave the architecture blank."
)
DATASET_FORMATS = (
    "`.npz` (arrays X and y, or x_train, y_train [, x_test, y_test], optional class_names), the "
    "CIFAR-10 python `.tar.gz`, a CIFAR-10-C archive, MNIST idx files in a zip or tar, or an "
    "image folder (`<class>/<image>.png`) in a zip or tar. Archives are checked before anything "
    "is extracted."
)
MASK_TEXT: dict[str, str] = {
    "none": "dense: no zeros to keep",
    "explicit": "from the *_mask tensors in the file",
    "zeros": "from the exact zeros of the weights",
}
FORMAT_LABELS: dict[str, str] = {
    AUTO_FORMAT: "auto-detect",
    "npz": "npz (arrays X, y or x_train, y_train, …)",
    "cifar10": "CIFAR-10 python tar.gz",
    "cifar10c": "CIFAR-10-C archive",
    "mnist": "MNIST idx files (zip/tar)",
    "imagefolder": "image folder (zip/tar)",
}
KINDS: tuple[UploadKind, ...] = ("model", "dataset")


def _id(kind: UploadKind, part: str) -> str:
    """``upload-<kind>-<part>``: upload.js derives the same ids from ``data-upload-kind``."""
    return f"upload-{kind}-{part}"


ID_MODEL_PANEL = _id("model", "panel")
ID_MODEL_DROP = _id("model", "drop")
ID_MODEL_FILE = _id("model", "file")  # the <input type=file> upload.js adds to the slot
ID_MODEL_FILE_SLOT = _id("model", "file-slot")
ID_MODEL_FILE_NAME = _id("model", "file-name")
ID_MODEL_SELECTED = _id("model", "selected")
ARCH_PICKER = components.architecture_picker_ids(_id("model", "arch"))
ID_MODEL_ARCH = ARCH_PICKER.dropdown  # the searchable dropdown
ID_MODEL_ARCH_INFO = ARCH_PICKER.about
ID_MODEL_ARCHS = ARCH_PICKER.entries  # the API's entries behind its options
ID_MODEL_ARCH_FROM = _id("model", "arch-from")  # the architecture "Pruned from" gives
ID_MODEL_KWARGS = _id("model", "kwargs")
ID_MODEL_KWARGS_ERROR = _id("model", "kwargs-error")
ID_MODEL_NAME = _id("model", "name")
ID_MODEL_PARENT = _id("model", "parent")
ID_MODEL_DATASET = _id("model", "dataset")
ID_MODEL_SUBMIT = _id("model", "submit")
ID_MODEL_FORM_ERROR = _id("model", "form-error")
ID_MODEL_REQUEST = _id("model", "request")
ID_MODEL_PROGRESS_ROW = _id("model", "progress-row")
ID_MODEL_PROGRESS = _id("model", "progress")
ID_MODEL_PROGRESS_TEXT = _id("model", "progress-text")
ID_MODEL_RESPONSE = _id("model", "response")
ID_MODEL_POLL = _id("model", "poll")
ID_MODEL_RESULT = _id("model", "result")
ID_MODEL_STATUS = _id("model", "status")
ID_MODEL_ERROR = _id("model", "error")
ID_MODEL_DEDUP = _id("model", "dedup")
ID_MODEL_SUCCESS = _id("model", "success")
ID_MODEL_SPARSITY = _id("model", "sparsity")
ID_MODEL_PRUNE_LINK = _id("model", "prune-link")
ID_MODEL_COMPARE = _id("model", "compare")
ID_MODEL_COMPARE_RESULT = _id("model", "compare-result")

ID_DATASET_PANEL = _id("dataset", "panel")
ID_DATASET_DROP = _id("dataset", "drop")
ID_DATASET_FILE = _id("dataset", "file")
ID_DATASET_FILE_SLOT = _id("dataset", "file-slot")
ID_DATASET_FILE_NAME = _id("dataset", "file-name")
ID_DATASET_SELECTED = _id("dataset", "selected")
ID_DATASET_FORMAT = _id("dataset", "format")
ID_DATASET_NAME = _id("dataset", "name")
ID_DATASET_TEST_FRACTION = _id("dataset", "test-fraction")
ID_DATASET_TEST_FRACTION_ERROR = _id("dataset", "test-fraction-error")
ID_DATASET_SEED = _id("dataset", "seed")
ID_DATASET_SEED_ERROR = _id("dataset", "seed-error")
ID_DATASET_CORRUPTION = _id("dataset", "corruption")
ID_DATASET_SEVERITY = _id("dataset", "severity")
ID_DATASET_SUBMIT = _id("dataset", "submit")
ID_DATASET_FORM_ERROR = _id("dataset", "form-error")
ID_DATASET_REQUEST = _id("dataset", "request")
ID_DATASET_PROGRESS_ROW = _id("dataset", "progress-row")
ID_DATASET_PROGRESS = _id("dataset", "progress")
ID_DATASET_PROGRESS_TEXT = _id("dataset", "progress-text")
ID_DATASET_RESPONSE = _id("dataset", "response")
ID_DATASET_POLL = _id("dataset", "poll")
ID_DATASET_RESULT = _id("dataset", "result")
ID_DATASET_STATUS = _id("dataset", "status")
ID_DATASET_ERROR = _id("dataset", "error")
ID_DATASET_DEDUP = _id("dataset", "dedup")
ID_DATASET_SUCCESS = _id("dataset", "success")
ID_DATASET_BALANCE = _id("dataset", "balance")
# form keyword -> component id of each panel's fields
MODEL_INPUTS = {
    "architecture": ID_MODEL_ARCH,
    "arch_kwargs": ID_MODEL_KWARGS,
    "name": ID_MODEL_NAME,
    "parent_id": ID_MODEL_PARENT,
    "dataset_id": ID_MODEL_DATASET,
}
DATASET_INPUTS = {
    "fmt": ID_DATASET_FORMAT,
    "name": ID_DATASET_NAME,
    "test_fraction": ID_DATASET_TEST_FRACTION,
    "seed": ID_DATASET_SEED,
    "corruption": ID_DATASET_CORRUPTION,
    "severity": ID_DATASET_SEVERITY,
}
ID_URL = "upload-url"  # this page's Location (refresh=False): the panel's choices go there


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Upload", layout=layout)
    for kind in KINDS:
        app.callback(
            Output(_id(kind, "file-name"), "children"),
            Input(_id(kind, "selected"), "data"),
        )(show_selected)
        app.clientside_callback(
            ClientsideFunction(namespace=CLIENTSIDE_NAMESPACE, function_name=kind),
            Output(_id(kind, "response"), "data"),
            Input(_id(kind, "request"), "data"),
            prevent_initial_call=True,
        )
    components.register_architecture_picker(app, ID_MODEL_ARCH)
    app.callback(
        Output(ID_MODEL_ARCH_FROM, "children"),
        Output(ID_MODEL_ARCH, "placeholder"),
        Input(ID_MODEL_PARENT, "value"),
        Input(ID_MODEL_ARCH, "value"),
        prevent_initial_call=True,
    )(show_parent_architecture)
    app.callback(
        Output(ID_URL, "search"),
        *(Input(cid, "value") for cid in (ID_MODEL_ARCH, ID_MODEL_PARENT, ID_MODEL_DATASET)),
        State(ID_URL, "search"),
        prevent_initial_call=True,
    )(update_model_url)
    for kind, prepare, check, fields in (
        ("model", prepare_model_upload, check_model_form, MODEL_INPUTS),
        ("dataset", prepare_dataset_upload, check_dataset_form, DATASET_INPUTS),
    ):
        slots = {"form_error": _id(kind, "form-error")}
        slots |= {key: slot for key, (_, slot) in SLOTS[kind].items()}
        said = {key: Output(cid, "children", allow_duplicate=True) for key, cid in slots.items()}
        app.callback(
            output={"request": Output(_id(kind, "request"), "data"), **said},
            inputs={
                "n_clicks": Input(_id(kind, "submit"), "n_clicks"),
                "selected": State(_id(kind, "selected"), "data"),
                **{key: State(cid, "value") for key, cid in fields.items()},
            },
            prevent_initial_call=True,
        )(prepare)
        forms.register_validation(
            app,
            check,
            prefix=_id(kind, "submit"),
            inputs={key: Input(cid, "value") for key, cid in fields.items()},
            outputs={key: Output(cid, "children") for key, cid in slots.items()},
            prevent_initial_call=True,
        )
    # a registered model becomes a possible parent, a registered dataset a model's dataset
    for kind, poll, options in (
        ("model", poll_model_upload, ID_MODEL_PARENT),
        ("dataset", poll_dataset_upload, ID_MODEL_DATASET),
    ):
        app.callback(
            Output(_id(kind, "result"), "children"),
            Output(_id(kind, "poll"), "disabled"),
            Output(options, "options"),
            Input(_id(kind, "poll"), "n_intervals"),
            Input(_id(kind, "response"), "data"),
            prevent_initial_call=True,
        )(poll)
    app.callback(
        Output(ID_MODEL_COMPARE_RESULT, "children"),
        Output(ID_MODEL_COMPARE, "disabled"),
        Input(ID_MODEL_COMPARE, "n_clicks"),
        State(ID_MODEL_RESPONSE, "data"),
        prevent_initial_call=True,
    )(compare_with_parent)


# form values -> upload fields, checked by the server ------------------------------------------


def _text(value: Any) -> str | None:
    """A field as the upload's form text: None when blank; a whole float without its ".0"."""
    if blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _kwargs_text(text: Any) -> str | None:
    # JSON is sent normalised ("{}" is no arguments); what is not JSON goes as typed, for the
    # server to say why
    try:
        value = json.loads(str(text))
    except ValueError:
        return _text(text)
    return None if value == {} else json.dumps(value)


def model_fields(**form: Any) -> dict[str, str]:
    """The text fields of ``POST /api/models/upload`` for the form's values (keywords of
    :data:`MODEL_INPUTS`); blank fields are left out (the API's defaults apply)."""
    fields = {key: _text(form.get(key)) for key in MODEL_INPUTS}
    fields["arch_kwargs"] = (
        None if blank(form.get("arch_kwargs")) else _kwargs_text(form["arch_kwargs"])
    )
    return {k: v for k, v in fields.items() if v is not None}


def dataset_fields(**form: Any) -> dict[str, str]:
    """The text fields of ``POST /api/datasets/upload`` for the form's values (keywords of
    :data:`DATASET_INPUTS`); ``fmt`` "auto" leaves the format to detection, other blank fields
    are left out."""
    fields = {key: _text(form.get(key)) for key in DATASET_INPUTS}
    fmt = fields.pop("fmt")
    fields["format"] = None if fmt == AUTO_FORMAT else fmt
    return {k: v for k, v in fields.items() if v is not None}


# the message slots next to a field: output key -> (the field it is about, its id)
SLOTS: dict[str, dict[str, tuple[str, str]]] = {
    "model": {"kwargs_error": ("arch_kwargs", ID_MODEL_KWARGS_ERROR)},
    "dataset": {
        "test_fraction_error": ("test_fraction", ID_DATASET_TEST_FRACTION_ERROR),
        "seed_error": ("seed", ID_DATASET_SEED_ERROR),
    },
}


def check_fields(kind: UploadKind, fields: Mapping[str, str]) -> tuple[bool, dict[str, Any]]:
    """The server's dry run of an upload's fields (kind ``import_<kind>``): whether it accepts
    them, and the panel's messages: one per slot of :data:`SLOTS`, the rest in ``form_error``."""
    errors = forms.dry_run(f"import_{kind}", fields).errors
    slots = {key: field for key, (field, _) in SLOTS[kind].items()}
    others = [m if not f else f"{f}: {m}" for f, m in errors.items() if f not in slots.values()]
    box = notice("Check the form", "; ".join(others), kind="warning") if others else None
    return not errors, {"form_error": box, **{k: errors.get(f, "") for k, f in slots.items()}}


# pure renderers -------------------------------------------------------------------------------


def format_bytes(n: Any) -> str:
    """A file size in decimal units: ``999 -> "999 B"``, ``4620 -> "4.6 kB"``, ``"2.9 MB"``."""
    try:
        size = float(n)
    except (TypeError, ValueError):
        return MISSING
    for threshold, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if size >= threshold:
            return f"{size / threshold:.1f} {unit}"
    return f"{int(size)} B"


def selected_text(selected: Mapping[str, Any] | None) -> list[Any]:
    """What the panel says about the chosen file: its name and size, or that none is chosen."""
    if not selected or not selected.get("name"):
        return [html.Span("No file chosen yet.", className="muted")]
    return [
        html.Strong(str(selected["name"])),
        html.Span(f" · {format_bytes(selected.get('size'))}", className="muted"),
    ]


def _warnings(warnings: Sequence[Any] | None) -> html.Div | None:
    items = html.Ul([html.Li(str(w)) for w in warnings or []])
    return notice("Imported, with warnings", [items], kind="warning") if warnings else None


def _graph(component_id: str, figure: Any) -> dcc.Graph:
    return dcc.Graph(
        id=component_id,
        figure=figure,
        config={"displayModeBar": False, "responsive": True},
        className="upload-graph",
    )


def _registered(kind: UploadKind, row_id: Any, name: Any, *children: Any) -> html.Div:
    title = html.H3(
        [f"{kind.capitalize()} #{row_id} registered ", html.Span(name, className="muted")]
    )
    return html.Div([title, *children], id=_id(kind, "success"), className="upload-result")


def model_result(result: Mapping[str, Any] | None, model: Mapping[str, Any]) -> html.Div:
    """The registered model (id ``upload-model-success``): cards, per-layer sparsity, actions.
    ``result`` is the ``import_model`` job's (format, masks, layers, warnings); None when it is
    not known (a duplicate whose first import is gone): the row alone is shown."""
    result, model_id = result or {}, model["id"]
    known = {key: result.get(key, model.get(key)) for key in ("sparsity", "accuracy")}
    counts = [format_count(result.get(k, model.get(k))) for k in ("n_nonzero", "n_params")]
    masks, accuracy = result.get("masks"), known["accuracy"]
    summary = f"{model.get('name')} · {forms.model_architecture_summary(model)}"
    cards = [
        result_card("Model", f"#{model_id}", summary),
        result_card("Format", str(result.get("format") or MISSING)),
        result_card("Masks", str(masks or MISSING), MASK_TEXT.get(str(masks))),
        result_card(
            "Sparsity",
            format_percent(known["sparsity"]),
            f"{counts[0]} of {counts[1]} parameters nonzero",
        ),
        result_card(
            "Test accuracy",
            format_percent(accuracy),
            "on its dataset" if accuracy is not None else "no dataset given",
        ),
    ]
    layers = result.get("layers")
    figure = (
        _graph(ID_MODEL_SPARSITY, layer_sparsity_bars(layers))
        if layers is not None
        else html.P("Per-layer sparsity is not known for this model.", className="muted")
    )
    actions: list[Any] = [
        dcc.Link(
            f"Prune model #{model_id} →",
            href=f"/prune?model={model_id}",
            id=ID_MODEL_PRUNE_LINK,
            className="btn btn-primary",
        )
    ]
    parent_id = model.get("parent_id")
    if parent_id is not None:
        actions += [
            html.Button(
                f"Compare with its original, model #{parent_id}",
                id=ID_MODEL_COMPARE,
                n_clicks=0,
                className="btn",
                title=f"A = model #{parent_id}, B = model #{model_id}",
            ),
            html.Div(id=ID_MODEL_COMPARE_RESULT, className="compare-result"),
        ]
    kwargs = model.get("arch_kwargs") or result.get("arch_kwargs") or {}
    return _registered(
        "model",
        model_id,
        f"{model.get('architecture')} {json.dumps(kwargs)}",
        html.Div(cards, className="card-row"),
        _warnings(result.get("warnings")),
        figure,
        html.Div(actions, className="actions"),
    )


def dataset_result(summary: Mapping[str, Any] | None, dataset: Mapping[str, Any]) -> html.Div:
    """The registered dataset (id ``upload-dataset-success``): sizes, classes, class balance.
    ``summary`` is the ``import_dataset`` job's (format, class counts, normalisation,
    warnings); None to use the one stored in the row's params, if any."""
    summary = summary or (dataset.get("params") or {}).get("summary") or {}
    names = list(dataset.get("class_names") or summary.get("class_names") or [])
    sizes = f"{dataset.get('n_train', 0):,} / {dataset.get('n_test', 0):,}"
    cards = [
        result_card("Dataset", f"#{dataset['id']}", str(dataset.get("name"))),
        result_card("Format", str(summary.get("format") or dataset.get("source") or MISSING)),
        result_card("Samples", sizes, "train / test"),
        result_card(
            "Input shape", "×".join(str(s) for s in dataset.get("input_shape") or []) or MISSING
        ),
        result_card("Classes", str(dataset.get("num_classes", len(names)))),
    ]
    counts = summary.get("class_counts")
    balance: Any = html.P(f"Classes: {', '.join(names) or MISSING}.", className="muted")
    if counts:
        balance = _graph(ID_DATASET_BALANCE, class_balance_bars(names, counts))
    norm = summary.get("normalisation") or {}
    mean, std = list(norm.get("mean") or []), list(norm.get("std") or [])
    stats = None
    if 0 < len(mean) <= 4:
        stats = html.P(
            f"Per-channel mean {', '.join(f'{v:.3f}' for v in mean)}; std "
            f"{', '.join(f'{v:.3f}' for v in std)} ({norm.get('split')} split).",
            className="muted hint",
        )
    use: list[Any] = [
        "Use it as the dataset of a checkpoint upload, or analyse models on it from ",
        dcc.Link("the home page", href="/"),
        ".",
    ]
    return _registered(
        "dataset",
        dataset["id"],
        str(dataset.get("name")),
        html.Div(cards, className="card-row"),
        _warnings(summary.get("warnings")),
        balance,
        stats,
        html.P(use, className="muted hint"),
    )


def import_line(kind: UploadKind, job: Mapping[str, Any]) -> html.Div:
    """The import job's status badge (id ``upload-<kind>-status``), progress bar and stage."""
    label = f"{'Validating: job' if is_active(job) else 'Job'} #{job.get('id')}"
    return components.job_line(job, label=label, status_id=_id(kind, "status"))


UPLOAD_ERROR_TITLES: dict[int, str] = {
    0: "The upload did not reach the server",
    409: "The name is taken",
    413: "The file is too large",
    422: "The file was refused",
    503: "The job queue is down",
}


def parent_architecture(parent: Mapping[str, Any] | None, architecture: Any) -> tuple[Any, str]:
    """What the panel says about the architecture of the original named in "Pruned from"
    (``parent``, its row; None when none is named), and the picker's placeholder. With the
    picker blank (or on the same architecture) the server takes the original's architecture
    and its arguments; another one is said not to be the original's."""
    if not parent:
        return None, ARCH_PLACEHOLDER
    arch = str(parent.get("architecture") or MISSING)
    name = str(parent.get("name") or f"model #{parent.get('id')}")
    chosen = _text(architecture)
    placeholder = f"from the original: {arch}"
    if chosen is not None and chosen != arch:
        other = (
            f"{name} is a {arch}, and a pruned model keeps its original's architecture: "
            "clear the architecture to take it, with its arguments."
        )
        return html.Div(other, className="field-error"), placeholder
    kwargs = json.dumps(parent.get("arch_kwargs") or {})
    line: list[Any] = [
        "Architecture from ",
        html.Strong(name),
        ": ",
        html.Code(arch),
        " (its arguments too)",
    ]
    return html.Div(line, className="hint", title=f"{arch} {kwargs}"), placeholder


def upload_error(kind: UploadKind, response: Mapping[str, Any]) -> html.Div:
    """The API's refusal of an upload (or a network failure), its detail verbatim."""
    status = int(response.get("status") or 0)
    title = UPLOAD_ERROR_TITLES.get(status, f"The upload failed ({status})")
    if status == 0 and response.get("reason") == "no-file":
        title = "No file chosen"
    detail = str(response.get("detail") or "no detail")
    return notice(title, detail, kind="error", notice_id=_id(kind, "error"))


def job_error(kind: UploadKind, job: Mapping[str, Any]) -> html.Div:
    """A failed or cancelled import job; the job's error verbatim."""
    if job.get("status") == "cancelled":
        return notice("The import was cancelled", kind="warning", notice_id=_id(kind, "error"))
    title = f"The {'checkpoint' if kind == 'model' else 'dataset'} was not accepted"
    error = str(job.get("error") or "no error message")
    return notice(title, error, kind="error", notice_id=_id(kind, "error"))


def dedup_notice(kind: UploadKind, row_id: Any) -> html.Div:
    """The identical file was uploaded before with the same options."""
    return notice(
        f"Already uploaded as {kind} #{row_id}",
        "The identical file was uploaded before with the same options; nothing new was stored. "
        f"This is {kind} #{row_id}:",
        kind="info",
        notice_id=_id(kind, "dedup"),
    )


# layout ---------------------------------------------------------------------------------------


def _coded(text: str) -> list[Any]:
    return [html.Code(p) if i % 2 else p for i, p in enumerate(text.split("`")) if p]


def _data_attrs(kind: UploadKind, url: str | None = None) -> dict[str, Any]:
    """The ``data-`` attributes upload.js reads: which panel this is and where to post."""
    return {"data-upload-kind": kind, **({} if url is None else {"data-upload-url": url})}


def _panel(kind: UploadKind, title: str, formats: list[Any], fields: list[Any]) -> html.Section:
    """An upload panel: the drop target (upload.js puts the hidden ``<input type=file>`` in
    its slot), the fields, the button with the bytes-sent bar (upload.js shows and fills it),
    what the form or the API said, the result, and the panel's stores."""
    what = "a checkpoint" if kind == "model" else "a dataset file"
    drop = html.Div(
        [
            html.Div(f"Drop {what} here, or click to choose a file", className="upload-drop-title"),
            html.Div(formats, className="upload-drop-formats"),
            html.Div(selected_text(None), id=_id(kind, "file-name"), className="upload-file-name"),
            html.Div(id=_id(kind, "file-slot"), className="upload-file-slot"),
        ],
        id=_id(kind, "drop"),
        className="upload-drop",
        role="button",
        tabIndex="0",
        title="Drop a file here, or click to choose one",
        **_data_attrs(kind),
    )
    bar = html.Progress(id=_id(kind, "progress"), value="0", max="1")
    progress = html.Div(
        [bar, html.Span(id=_id(kind, "progress-text"), className="progress-text")],
        id=_id(kind, "progress-row"),
        className="progress upload-progress",
        hidden=True,
    )
    label = "Upload checkpoint" if kind == "model" else "Upload dataset"
    button = html.Button(label, id=_id(kind, "submit"), n_clicks=0, className="btn btn-primary")
    return html.Section(
        [
            html.H2(title),
            drop,
            html.Div(fields, className="form-grid"),
            html.Div([button, progress], className="actions"),
            html.Div(id=_id(kind, "form-error")),
            html.Div(id=_id(kind, "result"), className="upload-result-slot"),
            *[dcc.Store(id=_id(kind, part)) for part in ("selected", "request", "response")],
            *forms.validation_stores(_id(kind, "submit")),
            dcc.Interval(id=_id(kind, "poll"), interval=POLL_INTERVAL_MS, disabled=True),
        ],
        id=_id(kind, "panel"),
        className="section upload-panel",
        **_data_attrs(kind, ApiClient.upload_path(kind)),
    )


def model_panel(
    architectures: Sequence[ArchitecturePublic],
    models: Sequence[ModelPublic],
    datasets: Sequence[DatasetPublic],
    parent_id: int | None = None,
    dataset_id: int | None = None,
    architecture: str | None = None,
) -> html.Section:
    """The "Model checkpoint" panel: drop zone, fields, upload button, progress and result;
    the picker offers ``architectures`` before anything is typed (``architecture``'s entry
    included), the parent and dataset dropdowns ``models`` and ``datasets``; the ids and the
    name are preselected (None: blank)."""
    arch_from, placeholder = parent_architecture(forms.find_by_id(models, parent_id), architecture)
    picker = components.architecture_picker(
        ID_MODEL_ARCH,
        architecture,
        architectures,
        clearable=True,
        placeholder=placeholder,
    )
    parents = forms.model_options(models, lineage=False, accuracy=False)
    kwargs_hint = (
        'Must match how the checkpoint was built, e.g. {"input_shape": [64], "num_classes": 10} '
        "for an mlp; what you leave out (classes, channels, a ViT's image size) comes from the "
        "dataset or the original."
    )
    fields = [
        control(
            "Architecture",
            picker,
            html.Div(arch_from, id=ID_MODEL_ARCH_FROM, className="upload-arch-from"),
            hint=ARCH_HINT,
        ),
        control(
            "Architecture arguments (JSON)",
            forms.text_input(ID_MODEL_KWARGS, '{"num_classes": 10}'),
            hint=kwargs_hint,
            error=ID_MODEL_KWARGS_ERROR,
        ),
        control("Name", forms.text_input(ID_MODEL_NAME, "default: the file name")),
        control(
            "Pruned from (original model)",
            dcc.Dropdown(
                id=ID_MODEL_PARENT,
                options=parents,
                value=parent_id,
                placeholder="none: this is an original",
            ),
            hint="Naming the original lets you compare the two; its architecture and "
            "arguments are the checkpoint's unless you choose another.",
        ),
        control(
            "Trained on (dataset)",
            dcc.Dropdown(
                id=ID_MODEL_DATASET,
                options=forms.dataset_options(datasets, sizes=False),
                value=dataset_id,
                placeholder="none (default: the original's dataset)",
            ),
            hint="Its test accuracy is measured when the checkpoint is imported.",
        ),
    ]
    return _panel("model", "Model checkpoint", _coded(MODEL_FORMATS), fields)


def dataset_panel(corruptions: Sequence[str]) -> html.Section:
    """The "Dataset" panel: drop zone, fields, upload button, progress and result."""
    format_choices = [{"label": v, "value": k} for k, v in FORMAT_LABELS.items()]
    fields = [
        control("Format", forms.choice(ID_DATASET_FORMAT, format_choices, AUTO_FORMAT)),
        control(
            "Name",
            forms.text_input(ID_DATASET_NAME, "default: the file name"),
            hint="Dataset names are unique.",
        ),
        control(
            "Test fraction",
            forms.number_input(ID_DATASET_TEST_FRACTION, f"{DEFAULT_TEST_FRACTION}"),
            hint="Held out for testing when the file has no test split.",
            error=ID_DATASET_TEST_FRACTION_ERROR,
        ),
        control(
            "Split seed",
            forms.number_input(ID_DATASET_SEED, "0", step=1),
            error=ID_DATASET_SEED_ERROR,
        ),
        *(
            control(
                label,
                dcc.Dropdown(id=cid, options=list(options), placeholder=placeholder),
            )
            for label, cid, options, placeholder in (
                (
                    "Corruption (CIFAR-10-C)",
                    ID_DATASET_CORRUPTION,
                    corruptions,
                    "all in the archive",
                ),
                ("Severity (CIFAR-10-C)", ID_DATASET_SEVERITY, SEVERITIES, "all five"),
            )
        ),
    ]
    return _panel("dataset", "Dataset", _coded(DATASET_FORMATS), fields)


def chosen_architecture(
    client: ApiClient, name: Any, architectures: list[ArchitecturePublic]
) -> tuple[str | None, list[ArchitecturePublic]]:
    """The architecture a URL names, and the picker's entries with it: one not among
    ``architectures`` (any timm or torchvision model) is asked of the server. A name no
    architecture has is not preselected."""
    wanted = _text(name)
    if wanted is None or any(a["name"] == wanted for a in architectures):
        return wanted, architectures
    entry = components.find_architecture_entry(client, wanted)
    if entry is None:
        return None, architectures
    return wanted, [*architectures, entry]


def layout(
    parent: str | None = None,
    dataset: str | None = None,
    architecture: str | None = None,
    **query: Any,
) -> html.Div:
    """The upload page for ``?architecture=<name>&parent=<model id>&dataset=<dataset id>``
    (all optional): the checkpoint's architecture (e.g. timm/resnet18), the original it was
    pruned from and its dataset to preselect; other query parameters are ignored."""
    client = get_client()
    try:
        models = client.list_models()
        datasets = client.list_datasets()
        architectures = components.registered_architectures(client)
        arch_name, architectures = chosen_architecture(client, architecture, architectures)
    except ApiError as exc:
        failed = components.api_error_notice(exc, "the models and datasets")
        return html.Div([html.H1("Upload"), failed], className="page page-upload")
    try:
        corruptions = client.list_corruptions()
    except ApiError:
        corruptions = []  # the field then takes no choice; the archive's are all imported
    # an id no row has is not preselected
    parent_id = query_int(parent) if forms.find_by_id(models, parent) is not None else None
    dataset_id = query_int(dataset) if forms.find_by_id(datasets, dataset) is not None else None
    return html.Div(
        [
            dcc.Location(id=ID_URL, refresh=False),
            html.H1("Upload"),
            html.P(
                "Bring your own trained or pruned checkpoint, or a dataset. Files are streamed "
                "to the server (nothing is decoded in the browser), then a job validates them "
                "and registers what they hold; its verdict appears under the form.",
                className="lead",
            ),
            html.Div(
                [
                    model_panel(architectures, models, datasets, parent_id, dataset_id, arch_name),
                    dataset_panel(corruptions),
                ],
                className="grid-2 upload-grid",
            ),
        ],
        className="page page-upload",
    )


# callbacks ------------------------------------------------------------------------------------


def show_selected(selected: Mapping[str, Any] | None) -> list[Any]:
    """Callback: the chosen file's name and size (upload.js writes ``upload-<kind>-selected``)."""
    return selected_text(selected)


def update_model_url(
    architecture: Any, parent_id: Any, dataset_id: Any, search: str | None
) -> str | dash.NoUpdate:
    """Callback: write the checkpoint's architecture, parent and dataset into the URL (other
    keys kept); ``no_update`` when it already says so."""
    wanted = {"architecture": architecture, "parent": parent_id, "dataset": dataset_id}
    new = components.search_with(search, wanted)
    return dash.no_update if new is None else new


def show_parent_architecture(parent_id: Any, architecture: Any) -> tuple[Any, str]:
    """Callback ("Pruned from" or the architecture changed): the line saying the original's
    architecture is taken (:func:`parent_architecture`) and the picker's placeholder."""
    model_id = query_int(parent_id)
    if model_id is None:
        return parent_architecture(None, architecture)
    try:
        parent = get_client().get_model(model_id)
    except ApiError as exc:
        failed = f"The architecture of model #{model_id} could not be read: {exc.detail}"
        return html.Div(failed, className="field-error"), ARCH_PLACEHOLDER
    return parent_architecture(parent, architecture)


def _prepare(kind: UploadKind, n_clicks: Any, selected: Any, fields: dict[str, str]) -> dict:
    if not n_clicks:
        return {"request": dash.no_update, "form_error": None, **dict.fromkeys(SLOTS[kind], "")}
    ok, messages = check_fields(kind, fields)
    if not ok:
        return {"request": dash.no_update, **messages}
    if not selected or not selected.get("name"):
        what = "Drop a file on the box above, or click the box to choose one."
        messages["form_error"] = notice("No file chosen", what, kind="warning")
        return {"request": dash.no_update, **messages}
    # n_clicks makes every click a new value, so the same form uploads again when asked to
    request = {"fields": dict(fields), "filename": selected.get("name"), "nonce": n_clicks}
    return {"request": request, **messages}


def prepare_model_upload(
    n_clicks: int | None, selected: Mapping[str, Any] | None = None, *values: Any, **form: Any
) -> dict[str, Any]:
    """Callback ("Upload checkpoint", ``n_clicks``): the server checks the form (the fields of
    :data:`MODEL_INPUTS`, in that order or by keyword); then the request upload.js sends the
    ``selected`` file with.

    Returns:
        ``{"request": {"fields", "filename", "nonce"} or no_update, "form_error": <box> or None,
        "kwargs_error": message or ""}``.
    """
    form |= dict(zip(MODEL_INPUTS, values, strict=False))
    return _prepare("model", n_clicks, selected, model_fields(**form))


def prepare_dataset_upload(
    n_clicks: int | None, selected: Mapping[str, Any] | None = None, *values: Any, **form: Any
) -> dict[str, Any]:
    """Callback ("Upload dataset"), see :func:`prepare_model_upload` (fields of
    :data:`DATASET_INPUTS`; messages ``test_fraction_error`` and ``seed_error``)."""
    form |= dict(zip(DATASET_INPUTS, values, strict=False))
    return _prepare("dataset", n_clicks, selected, dataset_fields(**form))


def check_model_form(**form: Any) -> dict[str, Any]:
    """Callback: the server's check of the checkpoint's fields as they are filled in."""
    return check_fields("model", model_fields(**form))[1]


def check_dataset_form(**form: Any) -> dict[str, Any]:
    """Callback: the server's check of the dataset's fields as they are filled in."""
    return check_fields("dataset", dataset_fields(**form))[1]


def _earlier_import(client: ApiClient, job_id: Any, kind: str) -> dict[str, Any] | None:
    """The result of the import job that registered a row first, if it is still there."""
    if job_id is None:
        return None
    try:
        job = client.get_job(int(job_id))
    except ApiError:
        return None
    if job.get("kind") != f"import_{kind}" or job.get("status") != "succeeded":
        return None
    return dict(job.get("result") or {})


def _follow(
    kind: UploadKind, response: Mapping[str, Any] | None
) -> tuple[list[Any], bool, dict[str, Any] | None]:
    """The common part of following an upload: ``(panel so far, stop polling, outcome)``; the
    outcome is the succeeded job's result, or ``{"row_id": N}`` for a duplicate; None while the
    job runs or when there is nothing (more) to show."""
    if not response:
        return [], True, None
    if not response.get("ok"):
        return [upload_error(kind, response)], True, None
    body = response.get("body") or {}
    if body.get("deduplicated"):
        row_id = body.get(f"{kind}_id")
        return [dedup_notice(kind, row_id)], True, {"row_id": row_id}
    job_id = query_int(body.get("job_id"))
    if job_id is None:
        return [notice("The API started no import job", json.dumps(body), kind="error")], True, None
    job, panel, stop = read_job(job_id)
    if job is None:
        return panel, stop, None
    if is_active(job):
        return [import_line(kind, job)], False, None
    if job.get("status") != "succeeded":
        return [import_line(kind, job), job_error(kind, job)], True, None
    return [import_line(kind, job)], True, dict(job.get("result") or {})


def _show_registered(
    kind: UploadKind, response: Mapping[str, Any] | None, shown: Any
) -> tuple[list[Any], bool, Any]:
    """Follow an upload (:func:`_follow`); once a row is registered, ``shown(client, row_id,
    result or None)`` gives its panel and the dropdown options it joins."""
    panel, stop, outcome = _follow(kind, response)
    if outcome is None:
        return panel, stop, dash.no_update
    row_id: Any = outcome["row_id"] if "row_id" in outcome else outcome.get(f"{kind}_id")
    result = None if "row_id" in outcome else outcome
    try:
        registered, options = shown(get_client(), int(row_id), result)
    except (ApiError, TypeError, ValueError) as exc:
        detail = exc.detail if isinstance(exc, ApiError) else str(exc)
        panel.append(notice(f"Could not load {kind} {row_id}", detail, kind="error"))
        return panel, True, dash.no_update
    return [*panel, registered], True, options


def poll_model_upload(
    n_intervals: int | None, response: Mapping[str, Any] | None
) -> tuple[list[Any], bool, Any]:
    """Callback: follow a checkpoint upload's import job and show its verdict. Runs when
    upload.js puts the API's answer into ``upload-model-response``, then every
    ``POLL_INTERVAL_MS`` until the import job is final.

    Returns:
        The result panel's children, whether polling stops, and the parent dropdown's options
        (refreshed once a model is registered, else no_update).
    """

    def shown(client: ApiClient, model_id: int, result: Any) -> tuple[Any, Any]:
        model = client.get_model(model_id)
        if result is None:  # a duplicate: the import that registered it first
            result = _earlier_import(client, model.get("job_id"), "model")
        options = forms.model_options(client.list_models(), lineage=False, accuracy=False)
        return model_result(result, model), options

    return _show_registered("model", response, shown)


def poll_dataset_upload(
    n_intervals: int | None, response: Mapping[str, Any] | None
) -> tuple[list[Any], bool, Any]:
    """Callback: follow a dataset upload's import job and show its verdict, as
    :func:`poll_model_upload`; the model panel's dataset options are refreshed."""

    def shown(client: ApiClient, dataset_id: int, result: Any) -> tuple[Any, Any]:
        dataset = client.get_dataset(dataset_id)
        options = forms.dataset_options(client.list_datasets(), sizes=False)
        return dataset_result((result or {}).get("summary"), dataset), options

    return _show_registered("dataset", response, shown)


def uploaded_model_id(response: Mapping[str, Any] | None) -> int | None:
    """The id of the model an upload registered (or found already registered), if known yet."""
    body = (response or {}).get("body") or {}
    if not (response or {}).get("ok"):
        return None
    if body.get("model_id") is not None:
        return int(body["model_id"])
    if body.get("job_id") is None:
        return None
    try:
        job = get_client().get_job(int(body["job_id"]))
    except ApiError:
        return None
    model_id = (job.get("result") or {}).get("model_id")
    return None if model_id is None else int(model_id)


def compare_with_parent(
    n_clicks: int | None, response: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Callback: add the upload to its original's latest comparison, or create one
    (:func:`frontend.jobs.compare_with_original`): a link to ``/compare?id=N&b=<upload>`` (or
    the API's refusal), and whether the button is disabled."""
    if not n_clicks:
        return dash.no_update, dash.no_update
    model_id = uploaded_model_id(response)
    if model_id is None:
        return notice("Nothing to compare", "The upload registered no model.", kind="warning"), True
    client = get_client()
    try:
        parent_id = client.get_model(model_id).get("parent_id")
        if parent_id is None:
            nothing = "The model names no original."
            return notice("Nothing to compare", nothing, kind="warning"), True
        made = compare_with_original(client, int(parent_id), [model_id])
    except ApiError as exc:
        return notice("Could not compare", exc.detail, kind="error"), False
    return original_comparison_link(made, model_id, f"{ID_MODEL_COMPARE}-link"), True

"""``prunescope.Client``: upload, train, prune, compare, list and download from a notebook.

Every method is one or two REST calls (the routes are named in each docstring) followed, when the
call starts a job, by :meth:`Client.wait`, which shows the job's progress and raises
:class:`~frontend.client.rest.JobFailedError` with the job's error when it fails. Rows come back
as the plain dictionaries the API sends (:mod:`frontend.client.types` types them);
:meth:`Client.table` turns a listing into a pandas DataFrame.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import httpx

from frontend.client import (
    ComparisonPublic,
    DatasetPublic,
    JobKind,
    JobPublic,
    ModelPublic,
    RestClient,
)

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

__all__ = ["TABLE_KINDS", "Client", "Ref"]

# a row id, or the row itself as a method returned it
Ref = int | Mapping[str, Any]
TableKind = Literal["models", "comparisons", "jobs", "datasets"]

# the leading columns of each table, in this order (the API's other fields follow them), so a
# table has the same columns whether or not it has rows
TABLE_KINDS: dict[str, tuple[str, ...]] = {
    kind: tuple(columns.split())
    for kind, columns in {
        "models": "id name architecture arch_kwargs dataset_id parent_id pruning_method "
        "pruning_params sparsity n_params n_nonzero compression_ratio accuracy job_id created_at",
        "comparisons": "id name dataset_id model_a_id model_b_ids job_id created_at",
        "jobs": "id kind status progress stage error spec result parent_job_id created_at "
        "started_at finished_at",
        "datasets": "id name source num_classes class_names input_shape n_train n_test created_at",
    }.items()
}


def _id(ref: Ref | None, what: str) -> int | None:
    """The id of ``ref``: an int, or a row dictionary with an ``id``."""
    if ref is None:
        return None
    if isinstance(ref, Mapping):
        if "id" not in ref:
            raise ValueError(f"{what}: a row without an 'id' ({sorted(ref)})")
        ref = ref["id"]
    if isinstance(ref, bool) or not isinstance(ref, int):
        raise TypeError(f"{what}={ref!r} should be an id (int) or a row returned by the client")
    return ref


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "model"


class Client(RestClient):
    """A PruneScope server, from Python.

    Args:
        url: the server (``http://127.0.0.1:8050``) or its API root (``.../api``); default: the
            ``PRUNESCOPE_API_URL`` setting, else ``http://127.0.0.1:8050/api``.
        token: API token, for a server with authentication on (``prunescope token create``);
            default: the ``PRUNESCOPE_TOKEN`` setting.
        timeout: seconds per request (uploads and downloads wait longer for the server).
        progress: show progress bars (widgets in Jupyter when ipywidgets is installed).
        transport: an ``httpx`` transport instead of the network (tests).

    Failures raise :class:`~frontend.client.ApiError` (the server refused: ``status``,
    ``detail``), :class:`~frontend.client.ApiUnreachableError`, or a
    :class:`~frontend.client.ClientError` (a failed job, a corrupt download, a missing file).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = None,
        progress: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if url is None or token is None:
            from backend.config import Settings

            settings = Settings()
            url = url or settings.api_url
            token = settings.token if token is None else token
        super().__init__(url, token=token, timeout=timeout, transport=transport)
        self.progress = progress

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def progress_bar(self, **kwargs: Any) -> Any:
        from tqdm.auto import tqdm

        kwargs["disable"] = kwargs.get("disable", False) or not self.progress
        return tqdm(**kwargs)

    # jobs -----------------------------------------------------------------------------------
    def wait(
        self, job: Ref, *, label: str | None = None, timeout: float | None = None
    ) -> JobPublic:
        """Follow a job (``GET /api/jobs/{id}``) with a progress bar until it ends.

        Returns:
            The job, succeeded; its ``result`` names what it made (``model_id``, ...).

        Raises:
            JobFailedError: it failed or was cancelled (the message holds its error).
            TimeoutError: ``timeout`` seconds passed first.
        """
        job_id = cast(int, _id(job, "job"))
        label = label or f"{self.get_job(job_id)['kind']} (job {job_id})"
        return self.follow([job_id], [label], timeout_s=timeout)[0]

    def _submit(self, kind: JobKind, spec: dict[str, Any], label: str) -> JobPublic:
        return self.wait(self.create_job(kind, spec)["id"], label=label)

    # uploads --------------------------------------------------------------------------------
    def upload_model(
        self,
        module_or_path: nn.Module | str | os.PathLike[str],
        architecture: str | None = None,
        arch_kwargs: Mapping[str, Any] | None = None,
        parent: Ref | None = None,
        dataset: Ref | None = None,
        name: str | None = None,
    ) -> ModelPublic:
        """Register a trained (or pruned) network: ``POST /api/models/upload``, then its import
        job.

        A module is saved as a safetensors file of its ``state_dict`` first (a module pruned
        with ``torch.nn.utils.prune`` as its effective weights plus the ``*_mask`` tensors,
        which the server takes as the masks); a path is sent as it is (safetensors, a
        ``torch.save`` state_dict, or a PruneScope checkpoint).

        Args:
            module_or_path: an ``nn.Module`` or a checkpoint file.
            architecture: the registry name the weights belong to, e.g. ``"timm/resnet18"``,
                ``"digits_cnn"``, a plug-in's name; needed unless the file is PruneScope's own.
            arch_kwargs: the architecture's keyword arguments (``{"num_classes": 10}``).
            parent: the original this network was pruned from (its comparisons and reports
                are computed against it).
            dataset: the dataset it was trained on; its test accuracy is measured on upload.
            name: the model's name (default: the file's name).

        Returns:
            The registered model (the existing one for a file uploaded before with the same
            options).
        """
        send = partial(
            self.upload_model_file,
            architecture=architecture,
            arch_kwargs=arch_kwargs,
            parent_id=_id(parent, "parent"),
            dataset_id=_id(dataset, "dataset"),
            name=name,
        )
        if isinstance(module_or_path, str | os.PathLike):
            return self._imported(send(module_or_path), "model")
        from safetensors.torch import save_file
        from torch import nn

        from models.checkpoint import state_dict_for_save

        if not isinstance(module_or_path, nn.Module):
            raise TypeError(
                f"module_or_path should be an nn.Module or a file path, not "
                f"{type(module_or_path).__name__}"
            )
        if architecture is None:
            raise ValueError(
                "architecture= is needed to upload a module: the registry name its weights "
                "belong to, e.g. 'timm/resnet18' or a plug-in's name"
            )
        with tempfile.TemporaryDirectory(prefix="prunescope-upload-") as tmp:
            path = Path(tmp) / f"{_slug(name or architecture)}.safetensors"
            save_file(state_dict_for_save(module_or_path), str(path))
            answer = send(path)
        return self._imported(answer, "model")

    def upload_dataset(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        name: str | None = None,
        test_fraction: float | None = None,
        seed: int | None = None,
    ) -> DatasetPublic:
        """Register a dataset file (npz, CIFAR-10(-C), MNIST idx, image folder): ``POST
        /api/datasets/upload``, then its import job. See ``prunescope upload dataset --help``
        for the formats."""
        answer = self.upload_dataset_file(
            path, format=format, name=name, test_fraction=test_fraction, seed=seed
        )
        return self._imported(answer, "dataset")

    def _imported(self, answer: Mapping[str, Any], what: str) -> Any:
        """The row an upload registered: its import job's, or the identical earlier one's."""
        row_id = (self.follow_import(answer) or answer)[f"{what}_id"]
        return self._request("GET", f"/api/{what}s/{int(row_id)}")

    # train, prune, compare ------------------------------------------------------------------
    def train(
        self,
        dataset: Ref,
        architecture: str,
        *,
        arch_kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        **settings: Any,
    ) -> ModelPublic:
        """Train a network from scratch on a registered dataset and wait: ``POST /api/jobs``
        (kind ``train``).

        Args:
            dataset: the dataset.
            architecture: a registry name (built-in, ``timm/<name>``, ``torchvision/<name>``
                or a plug-in's); ``num_classes`` and the input shape come from the dataset.
            arch_kwargs: further keyword arguments of the architecture.
            name: the model's name.
            **settings: training settings: ``epochs``, ``lr``, ``batch_size``, ``optimizer``,
                ``seed``, ... (README, Job specs).

        Returns:
            The trained model.
        """
        spec: dict[str, Any] = {
            "dataset_id": _id(dataset, "dataset"),
            "architecture": architecture,
            "arch_kwargs": dict(arch_kwargs or {}),
            **settings,
        }
        if name is not None:
            spec["name"] = name
        job = self._submit("train", spec, f"train {architecture}"[:40])
        return self.get_model(int((job["result"] or {})["model_id"]))

    def prune(
        self,
        model: Ref,
        method: str,
        sparsity: float,
        *,
        finetune: int | Mapping[str, Any] | None = None,
        analyze: bool = False,
        seed: int | None = None,
        name: str | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        **params: Any,
    ) -> ModelPublic:
        """Prune a model on the server and wait: ``POST /api/jobs`` (kind ``prune``).

        Args:
            model: the model to prune.
            method: a pruning method (``GET /api/methods``, ``prunescope methods``).
            sparsity: the fraction of prunable weights to zero, in [0, 1).
            finetune: training after (or while) pruning: epochs, or a settings dict
                (``{"epochs": 3, "lr": 1e-3}``); default: the method's (3 epochs for
                one-shot methods).
            analyze: analyse the pruned model on its dataset afterwards.
            seed: overrides the training seed (and the method's own).
            name: the pruned model's name.
            include: prune only layers whose qualified names match one of these shell-style
                patterns (``["layer4.*"]``); default: every Conv1d/2d/3d and Linear.
            exclude: never prune layers matching one of these (``["*.attn.qkv"]``).
            **params: the method's parameters (``prunescope methods`` lists them).

        Returns:
            The pruned model (``parent_id`` is ``model``).
        """
        spec: dict[str, Any] = {
            "model_id": _id(model, "model"),
            "method": method,
            "sparsity": sparsity,
            "params": params,
            "analyze": analyze,
            "include": list(include),
            "exclude": list(exclude),
        }
        if finetune is not None:
            spec["finetune"] = (
                {"epochs": int(finetune)} if isinstance(finetune, int) else dict(finetune)
            )
        if seed is not None:
            spec["seed"] = seed
        if name is not None:
            spec["name"] = name
        job = self._submit("prune", spec, f"prune {method} {sparsity:.0%}"[:40])
        return self.get_model(int((job["result"] or {})["model_id"]))

    def compare(
        self,
        model_a: Ref,
        model_b: Ref | Sequence[Ref],
        dataset: Ref | None = None,
        name: str | None = None,
        **options: Any,
    ) -> ComparisonPublic:
        """Compare an original with one or more pruned models and wait for the analyses:
        ``POST /api/comparisons``, then its compare job.

        Args:
            model_a: the original.
            model_b: the pruned model, or several.
            dataset: the dataset to compare on (default: model A's).
            name: the comparison's name.
            **options: ``corruptions`` (names, ``GET /api/corruptions``), ``severities``,
                ``embedding`` ("auto", "aligned_umap", "umap_init", "pca").

        Returns:
            The comparison; open ``<server>/compare?id=<id>`` to see it.
        """
        bs = [model_b] if isinstance(model_b, int | Mapping) else list(cast(Sequence[Ref], model_b))
        comparison = self.create_comparison(
            cast(int, _id(model_a, "model_a")),
            [cast(int, _id(b, "model_b")) for b in bs],
            _id(dataset, "dataset"),
            name=name,
            **options,
        )
        job_id = comparison.get("job_id")
        if job_id is not None:
            self.wait(job_id, label=f"compare (comparison {comparison['id']})")
        return self.get_comparison(comparison["id"])

    # downloads ------------------------------------------------------------------------------
    def download_file(
        self,
        model: Ref,
        path: str | os.PathLike[str] | None = None,
        format: str = "prunescope",
    ) -> Path:
        """Download a model's file: ``GET /api/models/{id}/download?format=``, with a progress
        bar, checked against the server's sha256 before it is moved into place.

        Args:
            model: the model.
            path: the file to write, or a folder for the server's file name (default: the
                current folder).
            format: ``"prunescope"`` (PruneScope's checkpoint: weights, masks, architecture),
                ``"safetensors"`` or ``"pt"`` (the state_dict), ``"onnx"`` (the graph).

        Returns:
            The written file.

        Raises:
            ChecksumError: the bytes did not match (nothing is written).
        """
        return self.download_model(cast(int, _id(model, "model")), path, format=format).path

    def download(self, model: Ref, format: str = "prunescope") -> nn.Module:
        """The model as an ``nn.Module``, pruned exactly as the server holds it (masks
        re-applied with ``torch.nn.utils.prune``), in eval mode, on the CPU.

        It is rebuilt from PruneScope's checkpoint (``format="prunescope"``, the only format
        that names its architecture) with :func:`models.checkpoint.load_checkpoint`; for the
        other formats use :meth:`download_file`.
        """
        if format != "prunescope":
            raise ValueError(
                f"download() rebuilds the module from format='prunescope'; for {format!r} use "
                "download_file(model, path, format=...)"
            )
        from models.checkpoint import load_checkpoint

        with tempfile.TemporaryDirectory(prefix="prunescope-download-") as tmp:
            path = self.download_file(model, tmp, format="prunescope")
            module, _meta = load_checkpoint(path, map_location="cpu")
        return module.eval()

    # tables ---------------------------------------------------------------------------------
    def table(self, kind: TableKind = "models") -> pd.DataFrame:
        """A listing as a DataFrame indexed by id, oldest first: ``GET /api/models``,
        ``/api/comparisons``, ``/api/jobs`` (the newest 1000) or ``/api/datasets``.

        The leading columns are :data:`TABLE_KINDS` ``[kind]`` (present even without rows), the
        API's other fields follow; ``*_at`` columns are UTC timestamps.
        """
        import pandas as pd

        if kind not in TABLE_KINDS:
            raise ValueError(f"kind={kind!r} should be one of {', '.join(TABLE_KINDS)}")
        limit = 1000 if kind == "jobs" else None  # the API's largest page of jobs
        rows = self._list(f"/api/{kind}", {"limit": limit})
        leading = list(TABLE_KINDS[kind])
        extra = [k for row in rows for k in row if k not in leading]
        columns = leading + list(dict.fromkeys(extra))
        frame = pd.DataFrame.from_records(rows, columns=columns)
        for column in columns:
            if column.endswith("_at"):
                frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame.sort_values("id").set_index("id")

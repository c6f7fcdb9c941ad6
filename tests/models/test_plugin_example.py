"""The plug-in example (examples/prunescope-plugin-example): pip installs it offline, its entry
point makes ``acme/tinynet`` an architecture of the registry, and a server with the package on
its path (workers included) trains, prunes and takes uploads of it through the REST API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from models.registry import reload_plugins

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "prunescope-plugin-example"
ENTRY = "acme/tinynet = acme_models:tinynet"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example pip-installed into a folder of its own (offline, no build isolation), from a
    copy so that the build leaves nothing in the source tree."""
    tmp = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, tmp / "src")
    target = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
        + ["--no-build-isolation", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return target


def with_path(site: Path) -> dict[str, str]:
    """The environment of a process that sees the installed plug-in."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_the_installed_package_declares_the_entry_point(site):
    (dist,) = site.glob("acme_prunescope_models-*.dist-info")
    text = (dist / "entry_points.txt").read_text()
    assert "[prunescope.architectures]" in text and ENTRY in text
    assert (site / "acme_models.py").is_file()


REGISTRY_CHECK = """
import json, torch
from models.registry import create, list_models, model_info, source_of
net = create("acme/tinynet", num_classes=10)
with torch.no_grad():
    out = net(torch.zeros(2, 3, 16, 16))
print(json.dumps({
    "listed": "acme/tinynet" in list_models(),
    "source": source_of("acme/tinynet"),
    "info": model_info("acme/tinynet"),
    "shape": list(out.shape),
    "type": type(net).__module__ + "." + type(net).__name__,
    "classifier": [net.classifier.in_features, net.classifier.out_features],
}))
"""


def test_the_registry_creates_the_plugin(site):
    """In a fresh process, as a server's: entry points are read once, at the first lookup."""
    proc = subprocess.run(
        [sys.executable, "-c", REGISTRY_CHECK],
        env=with_path(site),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["listed"] and got["source"] == "plugin"
    assert got["shape"] == [2, 10] and got["classifier"] == [32, 10]
    assert got["type"] == "acme_models.TinyNet"
    info = got["info"]
    assert info["defaults"] == {"num_classes": 10, "in_channels": 3} and info["required"] == []
    assert info["doc"].startswith("A tiny two-convolution CNN")


def test_the_factory_checks_its_arguments(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    import acme_models

    # this process's registry read the entry points before the package was on its path
    reload_plugins()

    with pytest.raises(ValueError, match="num_classes=0 should be a positive integer"):
        acme_models.tinynet(num_classes=0)
    with pytest.raises(ValueError, match="in_channels=True should be a positive integer"):
        acme_models.tinynet(in_channels=True)
    net = acme_models.tinynet(num_classes=4, in_channels=1)
    assert net(torch.zeros(3, 1, 7, 9)).shape == (3, 4)  # any image size


@pytest.fixture(scope="module")
def server(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prunescope serve` (and its worker processes) with the plug-in on their path."""
    from tests.conftest import served

    data_dir = tmp_path_factory.mktemp("plugin-server") / "data"
    data_dir.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", with_path(site)["PYTHONPATH"])
        with served(data_dir) as url:
            yield url


@pytest.mark.slow
def test_a_server_trains_prunes_and_takes_uploads_of_the_plugin(
    server, site, tmp_path, monkeypatch
):
    from prunescope import Client

    ps = Client(server, token="", progress=False)
    (listed,) = ps.list_architectures(q="acme")["data"]
    assert (listed["name"], listed.get("source")) == ("acme/tinynet", "plugin")

    rng = np.random.default_rng(0)
    y = np.arange(64) % 4
    x = (rng.integers(0, 60, size=(64, 8, 8, 3)) + (y * 60)[:, None, None, None]).astype(np.uint8)
    np.savez(tmp_path / "tiny.npz", X=x, y=y)
    ds = ps.upload_dataset(tmp_path / "tiny.npz", test_fraction=0.25)

    # trained on the server: its arguments come from the dataset
    trained = ps.train(ds, "acme/tinynet", epochs=2, batch_size=16)
    assert trained["architecture"] == "acme/tinynet"
    assert trained["arch_kwargs"] == {"num_classes": 4, "in_channels": 3}
    pruned = ps.prune(trained, "global_magnitude", 0.5, finetune=1)
    assert pruned["parent_id"] == trained["id"]
    assert pruned["sparsity"] == pytest.approx(0.5, abs=0.02)

    # built here from the same package, uploaded, and downloaded back as the same network
    monkeypatch.syspath_prepend(str(site))
    import acme_models

    # this process's registry read the entry points before the package was on its path
    reload_plugins()

    torch.manual_seed(0)
    net = acme_models.tinynet(num_classes=4).eval()
    kwargs = {"num_classes": 4, "in_channels": 3}
    uploaded = ps.upload_model(net, "acme/tinynet", kwargs, dataset=ds, name="acme upload")
    assert uploaded["architecture"] == "acme/tinynet" and uploaded["accuracy"] is not None
    back = ps.download(uploaded)
    assert type(back).__name__ == "TinyNet"
    images = torch.rand(5, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(back(images), net(images))
    comparison = ps.compare(trained, pruned, embedding="pca")
    assert comparison["model_b_ids"] == [pruned["id"]]

"""The upload page in a real headless Chromium: files sent by assets/upload.js (XMLHttpRequest
with a FormData holding the File, never through a Dash callback), followed to the import job's
verdict, and checked through the REST API."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from frontend import forms
from frontend.pages import upload

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DROP_SCRIPT = """
const zone = document.getElementById(arguments[0]);
const data = new DataTransfer();
data.items.add(new File(["abc"], arguments[1], {type: "application/octet-stream"}));
const over = new DragEvent("dragover", {dataTransfer: data, bubbles: true, cancelable: true});
zone.dispatchEvent(over);
const during = zone.className;
const drop = new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true});
zone.dispatchEvent(drop);
return [during, zone.className, over.defaultPrevented, drop.defaultPrevented];
"""


def open_upload_page(dash_br, base_url: str) -> None:
    dash_br.server_url = base_url
    dash_br.driver.get(f"{base_url}/upload")
    # the file inputs are created by upload.js once Dash has rendered the drop zones
    dash_br.wait_for_element(f"#{upload.ID_MODEL_FILE}", timeout=30)
    dash_br.wait_for_element(f"#{upload.ID_DATASET_FILE}", timeout=10)


def choose_file(dash_br, kind: str, path: Path) -> None:
    """What a user's pick in the file dialog does: the hidden input gets the file."""
    dash_br.find_element(f"#upload-{kind}-file").send_keys(str(path))
    WebDriverWait(dash_br.driver, 10).until(
        lambda d: path.name in d.find_element("id", f"upload-{kind}-file-name").text
    )


def text_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def check_as_typed(dash_br) -> None:
    """The server checks the checkpoint's fields as they are typed: a message in the slot of
    its field, or in a box under the form for a field without one; both go once fixed."""
    driver = dash_br.driver
    kwargs = dash_br.find_element(f"#{upload.ID_MODEL_KWARGS}")
    kwargs.send_keys("[1]", Keys.TAB)
    WebDriverWait(driver, 20).until(
        lambda d: "dictionary" in text_of(d, upload.ID_MODEL_KWARGS_ERROR)
    )
    name = dash_br.find_element(f"#{upload.ID_MODEL_NAME}")
    name.send_keys("n" * 201, Keys.TAB)  # longer than a model's name may be
    WebDriverWait(driver, 20).until(
        lambda d: "Check the form" in text_of(d, upload.ID_MODEL_FORM_ERROR)
    )
    assert "name" in text_of(driver, upload.ID_MODEL_FORM_ERROR)
    for field in (kwargs, name):
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.BACKSPACE, Keys.TAB)
    WebDriverWait(driver, 20).until(
        lambda d: (
            not text_of(d, upload.ID_MODEL_FORM_ERROR)
            and not text_of(d, upload.ID_MODEL_KWARGS_ERROR)
        )
    )


def pick_architecture(dash_br, typed: str, name: str) -> None:
    """Type ``typed`` into the architecture picker's search box, then pick ``name`` among the
    server's matches."""
    dash_br.find_element(f"#{upload.ID_MODEL_ARCH}").click()
    search = dash_br.wait_for_element(".dash-dropdown-content .dash-dropdown-search", timeout=10)
    search.send_keys(typed)

    def option(d):  # type: ignore[no-untyped-def]
        for element in d.find_elements(
            "css selector", ".dash-dropdown-content .dash-dropdown-option"
        ):
            if element.text.split(" · ")[0] == name:
                return element
        return False

    WebDriverWait(dash_br.driver, 30).until(option).click()
    WebDriverWait(dash_br.driver, 10).until(
        lambda d: f"architecture={name}" in d.current_url.replace("%2F", "/")
    )


def wait_for_verdict(dash_br, kind: str, timeout: float = 120) -> None:
    """Until the panel shows the registered row or an error."""
    WebDriverWait(dash_br.driver, timeout, poll_frequency=0.5).until(
        lambda d: (
            d.find_elements("id", f"upload-{kind}-success")
            or d.find_elements("id", f"upload-{kind}-error")
        )
    )


def pruned_digits_cnn(path: Path, arch_kwargs: dict, sparsity: float = 0.8) -> Path:
    """A digits_cnn state_dict whose conv and hidden weights are 80% exact zeros."""
    import torch
    from safetensors.torch import save_file

    from models.registry import create

    torch.manual_seed(0)
    state = {
        k: v.detach().clone() for k, v in create("digits_cnn", **arch_kwargs).state_dict().items()
    }
    for key in ("features.2.weight", "features.5.weight", "features.9.weight"):
        w = state[key]
        w[w.abs() < w.abs().flatten().quantile(sparsity)] = 0
    save_file(state, str(path))
    return path


def test_upload_a_pruned_checkpoint_and_compare_it(dash_br, live_server, tmp_path):
    api = httpx.Client(base_url=live_server.url, timeout=10)
    try:
        parent = api.get(f"/api/models/{live_server.pipeline.original_id}").json()
        checkpoint = pruned_digits_cnn(
            tmp_path / "digits-cnn-80.safetensors", parent["arch_kwargs"]
        )
        open_upload_page(dash_br, live_server.url)
        check_as_typed(dash_br)

        choose_file(dash_br, "model", checkpoint)
        pick_architecture(dash_br, "digits", "digits_cnn")
        WebDriverWait(dash_br.driver, 10).until(
            lambda d: "3-conv CNN" in d.find_element("id", upload.ID_MODEL_ARCH_INFO).text
        )
        dash_br.find_element(f"#{upload.ID_MODEL_KWARGS}").send_keys(
            json.dumps(parent["arch_kwargs"])
        )
        dash_br.select_dcc_dropdown(
            f"#{upload.ID_MODEL_PARENT}",
            value=forms.model_option_label(parent, lineage=False, accuracy=False),
        )
        dash_br.find_element(f"#{upload.ID_MODEL_SUBMIT}").click()

        wait_for_verdict(dash_br, "model")
        panel = dash_br.find_element(f"#{upload.ID_MODEL_RESULT}").text
        assert dash_br.find_elements(f"#{upload.ID_MODEL_SUCCESS}"), panel
        # upload.js showed the bytes sent
        progress = dash_br.find_element(f"#{upload.ID_MODEL_PROGRESS_TEXT}").text
        assert progress.startswith("100% ·") and "sent" in progress, progress
        card = dash_br.find_element(f"#{upload.ID_MODEL_SUCCESS}").text
        assert "safetensors" in card and "zeros" in card
        href = dash_br.find_element(f"#{upload.ID_MODEL_PRUNE_LINK}").get_attribute("href")
        model_id = int(href.rsplit("model=", 1)[1])
        assert f"Model #{model_id} registered" in card

        # the model exists, as the pruned child of the original
        model = api.get(f"/api/models/{model_id}").json()
        assert model["architecture"] == "digits_cnn"
        assert model["parent_id"] == parent["id"]
        assert model["name"] == checkpoint.name
        assert 0.5 < model["sparsity"] < 0.9
        assert f"{100 * model['sparsity']:.1f}%" in card
        # one bar per prunable layer in the per-layer figure, once plotly has drawn it
        WebDriverWait(dash_br.driver, 20).until(
            lambda d: (
                len(d.find_elements("css selector", f"#{upload.ID_MODEL_SPARSITY} .bars .point"))
                == 5
            )
        )

        success = dash_br.find_element(f"#{upload.ID_MODEL_SUCCESS}")
        dash_br.driver.set_window_size(1400, 1500)
        dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'end'})", success)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert dash_br.driver.save_screenshot(str(SCREENSHOTS / "upload.png"))

        dash_br.find_element(f"#{upload.ID_MODEL_COMPARE}").click()
        link = dash_br.wait_for_element(f"#{upload.ID_MODEL_COMPARE}-link", timeout=30)
        query = parse_qs(urlparse(link.get_attribute("href")).query)
        assert query["b"] == [str(model_id)]
        comparison = api.get(f"/api/comparisons/{query['id'][0]}").json()
        # issue 18: added to the original's latest comparison, not one of its own
        assert comparison["model_a_id"] == parent["id"]
        assert comparison["model_b_ids"][-1] == model_id
        assert len(comparison["model_b_ids"]) > 1
        assert dash_br.get_logs() == [], dash_br.get_logs()
    finally:
        dash_br.driver.set_window_size(1400, 1000)
        api.close()


def test_upload_a_dataset_then_a_checkpoint_that_does_not_fit(dash_br, live_server, tmp_path):
    api = httpx.Client(base_url=live_server.url, timeout=10)
    try:
        rng = np.random.default_rng(1)
        path = tmp_path / "browser-blobs.npz"
        np.savez(
            path,
            X=rng.normal(size=(90, 8)).astype("float32"),
            y=np.arange(90) % 3,
            class_names=np.array(["red", "green", "blue"]),
        )
        open_upload_page(dash_br, live_server.url)

        # dropping a file on the zone chooses it (a drop event carrying a File, as a drag would)
        during, after, *prevented = dash_br.driver.execute_script(
            DROP_SCRIPT, upload.ID_DATASET_DROP, "dropped.npz"
        )
        # highlighted while dragged over, and the browser did not open the file itself
        assert "upload-drop-active" in during and "upload-drop-active" not in after
        assert prevented == [True, True]
        WebDriverWait(dash_br.driver, 10).until(
            lambda d: "dropped.npz · 3 B" in d.find_element("id", upload.ID_DATASET_FILE_NAME).text
        )
        # the picker's choice replaces it
        choose_file(dash_br, "dataset", path)
        dash_br.find_element(f"#{upload.ID_DATASET_TEST_FRACTION}").send_keys("0.2")
        dash_br.find_element(f"#{upload.ID_DATASET_SUBMIT}").click()
        wait_for_verdict(dash_br, "dataset")
        card = dash_br.find_element(f"#{upload.ID_DATASET_RESULT}").text
        assert dash_br.find_elements(f"#{upload.ID_DATASET_SUCCESS}"), card
        datasets = {d["name"]: d for d in api.get("/api/datasets").json()["data"]}
        dataset = datasets[path.name]
        assert (dataset["n_train"], dataset["n_test"], dataset["num_classes"]) == (72, 18, 3)
        assert dataset["class_names"] == ["red", "green", "blue"]
        assert f"Dataset #{dataset['id']} registered" in card and "72 / 18" in card
        dash_br.wait_for_element(f"#{upload.ID_DATASET_BALANCE} .bars")

        # a digits_cnn checkpoint named as an mlp: the import job's error, verbatim
        checkpoint = pruned_digits_cnn(tmp_path / "not-an-mlp.safetensors", {})
        choose_file(dash_br, "model", checkpoint)
        dash_br.select_dcc_dropdown(f"#{upload.ID_MODEL_ARCH}", value="mlp · builtin")
        WebDriverWait(dash_br.driver, 10).until(
            lambda d: "Fully connected" in d.find_element("id", upload.ID_MODEL_ARCH_INFO).text
        )
        dash_br.find_element(f"#{upload.ID_MODEL_KWARGS}").send_keys(
            '{"input_shape": [8], "num_classes": 3}'
        )
        dash_br.find_element(f"#{upload.ID_MODEL_SUBMIT}").click()
        wait_for_verdict(dash_br, "model")
        error = dash_br.find_element(f"#{upload.ID_MODEL_ERROR}").text
        assert "The checkpoint was not accepted" in error
        jobs = [j for j in api.get("/api/jobs").json()["data"] if j["kind"] == "import_model"]
        failed = max(jobs, key=lambda j: j["id"])
        assert failed["status"] == "failed"
        assert failed["error"] in error
        assert "CheckpointError" in error and "missing keys" in error
        assert dash_br.get_logs() == [], dash_br.get_logs()
    finally:
        api.close()


def test_pruned_from_gives_the_architecture(dash_br, live_server, tmp_path):
    """Issue 18, bug 6: naming the original in "Pruned from" and no architecture: the page says
    the original's architecture (and its arguments) is taken, clearing "Pruned from" takes
    that back, and the upload registers a model of the original's architecture."""
    api = httpx.Client(base_url=live_server.url, timeout=10)
    try:
        parent = api.get(f"/api/models/{live_server.pipeline.original_id}").json()
        # 70%, not the 80% of the other test: another file, not a duplicate of its upload
        checkpoint = pruned_digits_cnn(
            tmp_path / "digits-cnn-70.safetensors", parent["arch_kwargs"], sparsity=0.7
        )
        open_upload_page(dash_br, live_server.url)
        driver = dash_br.driver
        sentence = f"Architecture from {parent['name']}: digits_cnn (its arguments too)"
        label = forms.model_option_label(parent, lineage=False, accuracy=False)
        placeholder = f"#{upload.ID_MODEL_ARCH} .dash-dropdown-placeholder"
        assert not text_of(driver, upload.ID_MODEL_ARCH_FROM)

        dash_br.select_dcc_dropdown(f"#{upload.ID_MODEL_PARENT}", value=label)
        WebDriverWait(driver, 20).until(lambda d: text_of(d, upload.ID_MODEL_ARCH_FROM) == sentence)
        assert "digits_cnn" in dash_br.find_element(placeholder).text
        # "Pruned from" cleared: the picker is the user's again
        dash_br.find_element(f"#{upload.ID_MODEL_PARENT} .dash-dropdown-clear").click()
        WebDriverWait(driver, 20).until(lambda d: not text_of(d, upload.ID_MODEL_ARCH_FROM))
        assert "digits_cnn" not in dash_br.find_element(placeholder).text

        dash_br.select_dcc_dropdown(f"#{upload.ID_MODEL_PARENT}", value=label)
        WebDriverWait(driver, 20).until(lambda d: text_of(d, upload.ID_MODEL_ARCH_FROM) == sentence)
        choose_file(dash_br, "model", checkpoint)
        dash_br.find_element(f"#{upload.ID_MODEL_SUBMIT}").click()
        wait_for_verdict(dash_br, "model")
        panel = dash_br.find_element(f"#{upload.ID_MODEL_RESULT}").text
        assert dash_br.find_elements(f"#{upload.ID_MODEL_SUCCESS}"), panel
        assert not text_of(driver, upload.ID_MODEL_FORM_ERROR)
        href = dash_br.find_element(f"#{upload.ID_MODEL_PRUNE_LINK}").get_attribute("href")
        model = api.get(f"/api/models/{int(href.rsplit('model=', 1)[1])}").json()
        assert model["architecture"] == parent["architecture"] == "digits_cnn"
        assert model["arch_kwargs"] == parent["arch_kwargs"]
        assert model["parent_id"] == parent["id"] and model["name"] == checkpoint.name
        assert 0.5 < model["sparsity"] < 0.8
        # the page still says where the architecture came from
        assert text_of(driver, upload.ID_MODEL_ARCH_FROM) == sentence
        assert dash_br.get_logs() == [], dash_br.get_logs()
    finally:
        api.close()

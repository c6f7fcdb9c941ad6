"""Names users type are shown as text, never run, in a real headless Chromium.

A dataset (with class names), an original model, a pruned model and a comparison, all named with
markup that would run script if it were ever rendered as HTML, are added through the REST API of
the demo's `prunescope serve`; a dataset file with such a name is uploaded through the upload
page. Every page that shows them must show the names literally, in its HTML and in its plotly
figures (which read a subset of HTML in every string), and nothing may run: the payloads set
``window.__xss`` and call ``alert``, so a flag, an alert or an ``<img src=x>`` element would
tell, as would a console error (the failed load of ``src=x``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from frontend.pages import similarity, upload
from tests.browser.pageload import settle, wait_job

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

SCRIPT = '<script>window.__xss=2;alert("x")</script>'
IMG = '<img src=x onerror="window.__xss=1;alert(1)">'
MODEL_NAME = f"net {SCRIPT}"
PRUNED_NAME = f"pruned {IMG}"
DATASET_NAME = f"data {IMG} & <b>bold</b> %{{y}}"
COMPARISON_NAME = f"cmp {SCRIPT} {IMG}"
CLASS_NAMES = [
    "c0 <script>window.__xss=3</script>",
    'c1 <img src=x onerror="window.__xss=4">',
    "c2 <b>bold</b> & %{x} <a href=javascript:window.__xss=5>link</a>",
]
# a file name cannot hold "/": no closing tags in it
UPLOAD_NAME = 'up <img src=x onerror="window.__xss=6"> & <b>b.npz'
UPLOAD_CLASSES = [
    'u0 <img src=x onerror="window.__xss=7">',
    "u1 <script>window.__xss=8",
    "u2 <b>bold</b> & <i>it</i>",
]

# what a page shows: its HTML text and the text of its SVG (plotly's titles, ticks, legends,
# hover labels), and any trace of a payload that ran
PAGE_STATE_JS = """
return {
    flag: typeof window.__xss === "undefined" ? null : String(window.__xss),
    imgs: document.querySelectorAll('img[src="x"]').length,
    scripts: Array.from(document.scripts).filter((s) => s.text.includes("__xss")).length,
    links: document.querySelectorAll('a[href^="javascript"]').length,
    html: document.body.innerText,
    svg: Array.from(document.querySelectorAll("svg text")).map((t) => t.textContent).join("\\n"),
};
"""


@dataclass
class Named:
    dataset_id: int
    model_id: int
    pruned_id: int
    comparison_id: int


def npz_bytes(class_names: list[str], seed: int) -> bytes:
    """150 8x8 grey images of three classes, with the given class names."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(
        buf,
        X=rng.integers(0, 256, size=(150, 8, 8), dtype=np.uint8),
        y=np.arange(150) % 3,
        class_names=np.array(class_names),
    )
    return buf.getvalue()


def succeeded(api: httpx.Client, resp: httpx.Response, key: str = "id") -> dict[str, Any]:
    """The finished job a submission (``key``: where its answer holds the job id) started."""
    assert resp.status_code in (200, 201), resp.text
    job = wait_job(api, resp.json()[key], 300)
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def named(live_server) -> Iterator[Named]:
    """A dataset, a model, its pruned version and their comparison, every one named with markup."""
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        resp = api.post(
            "/api/datasets/upload",
            files={"file": ("xss.npz", npz_bytes(CLASS_NAMES, 0), "application/octet-stream")},
            data={"name": DATASET_NAME},
        )
        dataset_id = succeeded(api, resp, "job_id")["result"]["dataset_id"]
        spec = {"dataset_id": dataset_id, "architecture": "digits_cnn", "epochs": 1}
        resp = api.post("/api/jobs", json={"kind": "train", "spec": {**spec, "name": MODEL_NAME}})
        model_id = succeeded(api, resp)["result"]["model_id"]
        spec = {"model_id": model_id, "sparsity": 0.5, "finetune": {"epochs": 1}}
        resp = api.post("/api/jobs", json={"kind": "prune", "spec": {**spec, "name": PRUNED_NAME}})
        pruned_id = succeeded(api, resp)["result"]["model_id"]
        resp = api.post(
            "/api/comparisons",
            json={
                "model_a_id": model_id,
                "model_b_ids": [pruned_id],
                "name": COMPARISON_NAME,
                "corruptions": ["gaussian_noise"],
                "severities": [1],
                "embedding": "pca",
            },
        )
        assert resp.status_code == 201, resp.text
        comparison = resp.json()
        job = wait_job(api, comparison["job_id"], 480)
        assert job["status"] == "succeeded", job
        # the API keeps the names exactly as typed
        assert api.get(f"/api/datasets/{dataset_id}").json()["class_names"] == CLASS_NAMES
        assert api.get(f"/api/models/{model_id}").json()["name"] == MODEL_NAME
        yield Named(dataset_id, model_id, pruned_id, comparison["id"])


def page_state(dash_br, where: str) -> dict[str, Any]:
    """The page's text, after checking that nothing a name holds ran or became an element."""
    driver = dash_br.driver
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 (the property raises when no alert is open)
    state: dict[str, Any] = driver.execute_script(PAGE_STATE_JS)
    assert state["flag"] is None, f"a payload ran on {where}: window.__xss = {state['flag']}"
    assert (state["imgs"], state["scripts"], state["links"]) == (0, 0, 0), (where, state)
    severe = [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"]
    assert severe == [], f"console errors on {where}: {severe}"
    return state


def assert_shown(state: dict[str, Any], where: str, html: list[str], svg: list[str]) -> None:
    """Each name is in the page's HTML text or its figures' SVG text, character for character."""
    for name in html:
        assert name in state["html"], f"{where}: {name!r} not in the page's text"
    for name in svg:
        assert name in state["svg"], f"{where}: {name!r} not in the figures' text"


def hover_text(driver) -> str:  # type: ignore[no-untyped-def]
    """The similarity map's hover label, as drawn."""
    return str(
        driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            f"#{similarity.ID_MAP} .hoverlayer .hovertext",
        )
    )


def open_page(dash_br, base: str, path: str) -> dict[str, Any]:
    dash_br.server_url = base
    dash_br.driver.get(base + path)
    dash_br.wait_for_element("main", timeout=30)
    settle(dash_br.driver)
    return page_state(dash_br, path)


def test_names_with_markup_are_shown_as_text_on_every_page(dash_br, live_server, named):
    base = live_server.url
    cid = named.comparison_id

    state = open_page(dash_br, base, "/")
    assert_shown(state, "/", [MODEL_NAME, PRUNED_NAME, DATASET_NAME, COMPARISON_NAME], [])

    state = open_page(dash_br, base, f"/compare?id={cid}")
    assert_shown(
        state,
        "/compare",
        [COMPARISON_NAME, DATASET_NAME, PRUNED_NAME],
        # legends and titles ("A: <name>"), class names as tick labels and axis labels
        [f"A: {MODEL_NAME}", *CLASS_NAMES],
    )
    dash_br.driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert dash_br.driver.save_screenshot(str(SCREENSHOTS / "user-text-escaped.png"))

    state = open_page(dash_br, base, f"/overview?id={cid}")
    assert_shown(state, "/overview", [COMPARISON_NAME, MODEL_NAME, PRUNED_NAME], [])

    state = open_page(dash_br, base, f"/similarity?id={cid}")
    assert_shown(state, "/similarity", [COMPARISON_NAME], [])
    # the map names a point's model on hover
    points = dash_br.driver.find_elements(
        "css selector", f"#{similarity.ID_MAP} .scatterlayer path.point"
    )
    assert len(points) == 4  # two models, clean and under one corruption
    hovers = [""]
    for point in points:
        ActionChains(dash_br.driver).move_to_element(point).perform()
        # the next point's hover, not the last one's
        WebDriverWait(dash_br.driver, 10).until(lambda d: hover_text(d) not in ("", hovers[-1]))
        hovers.append(hover_text(dash_br.driver))
    assert any(MODEL_NAME in h for h in hovers) and any(PRUNED_NAME in h for h in hovers), hovers
    page_state(dash_br, "/similarity, hovered")

    state = open_page(dash_br, base, f"/prune?model={named.model_id}")
    assert_shown(state, "/prune", [MODEL_NAME], [])

    state = open_page(dash_br, base, f"/upload?parent={named.model_id}&dataset={named.dataset_id}")
    assert_shown(state, "/upload", [MODEL_NAME, DATASET_NAME], [])


def test_an_uploaded_file_name_and_its_class_names_are_shown_as_text(
    dash_br, live_server, tmp_path
):
    path = tmp_path / UPLOAD_NAME
    path.write_bytes(npz_bytes(UPLOAD_CLASSES, 1))
    dash_br.server_url = live_server.url
    dash_br.driver.get(f"{live_server.url}/upload")
    dash_br.wait_for_element(f"#{upload.ID_DATASET_FILE}", timeout=30)
    dash_br.find_element(f"#{upload.ID_DATASET_FILE}").send_keys(str(path))
    WebDriverWait(dash_br.driver, 10).until(
        lambda d: UPLOAD_NAME in d.find_element("id", upload.ID_DATASET_FILE_NAME).text
    )
    dash_br.find_element(f"#{upload.ID_DATASET_SUBMIT}").click()
    WebDriverWait(dash_br.driver, 120, poll_frequency=0.5).until(
        lambda d: (
            d.find_elements("id", upload.ID_DATASET_SUCCESS)
            or d.find_elements("id", upload.ID_DATASET_ERROR)
        )
    )
    assert dash_br.find_elements(f"#{upload.ID_DATASET_SUCCESS}"), dash_br.find_element(
        f"#{upload.ID_DATASET_RESULT}"
    ).text
    dash_br.wait_for_element(f"#{upload.ID_DATASET_BALANCE} .bars")
    settle(dash_br.driver)
    state = page_state(dash_br, "/upload, after the upload")
    # the dataset is named after the file; its class names are the balance figure's ticks
    assert_shown(state, "/upload", [UPLOAD_NAME], UPLOAD_CLASSES)

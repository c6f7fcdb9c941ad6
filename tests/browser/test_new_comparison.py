"""The new-comparison page in a real headless Chromium, on a real `prunescope serve` over a data
folder of its own (the shared `live_server` keeps its pipeline for the other tests): fill the
form (model A, a B from the lineage-grouped list, no corruptions, PCA), submit, follow the
compare job and open the comparison; then "Add models" from its Overview page adds another B,
whose compare job computes it alone, and it appears in the Overview table."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from backend.api.app import create_app
from backend.config import Settings
from backend.jobs.executor import InlineExecutor
from frontend.pages import new_comparison as page
from frontend.pages import overview
from tests.browser.pageload import settle
from tests.conftest import free_port, served

TIMEOUT_S = 60
JOB_TIMEOUT_S = 240
FINAL = ("succeeded", "failed", "cancelled")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# the third is of another method: no sibling of the others, whose results adding it keeps
METHODS = (("global_magnitude", 0.5), ("global_magnitude", 0.7), ("layer_magnitude", 0.9))


@dataclass
class Server:
    url: str
    original: int
    pruned: list[int]  # as METHODS say


def _ok(resp: Any) -> Any:
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`prunescope serve` over a digits_cnn and three pruned versions, in no comparison yet."""
    data_dir = tmp_path_factory.mktemp("new-comparison") / "data"
    settings = Settings(data_dir=data_dir, port=free_port(), warm_embeddings=False)
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(app) as c:
        ds = _ok(c.post("/api/datasets", json={"builtin": "digits"}))
        spec = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
        job = _ok(c.post("/api/jobs", json={"kind": "train", "spec": spec}))
        original = job["result"]["model_id"]
        pruned = []
        for method, sparsity in METHODS:
            spec = {"model_id": original, "method": method, "sparsity": sparsity}
            spec["finetune"] = None
            job = _ok(c.post("/api/jobs", json={"kind": "prune", "spec": spec}))
            pruned.append(job["result"]["model_id"])
    with served(data_dir, "server-new-comparison.log") as url:
        yield Server(url, original, pruned)


def js_text(driver: Any, element_id: str) -> str:
    return str(
        driver.execute_script(
            "const e = document.getElementById(arguments[0]); return e ? e.innerText : '';",
            element_id,
        )
    )


def pick_b(dash_br: Any, model_id: int) -> None:
    """Open the B list, click model ``model_id``'s option (a descendant of A: "↳ #id ..."),
    and close the list."""
    driver = dash_br.driver
    dash_br.find_element(f"#{page.ID_B}").click()

    def option(d: Any) -> Any:
        for element in d.find_elements(
            "css selector", ".dash-dropdown-content .dash-dropdown-option"
        ):
            if element.text.startswith(f"↳ #{model_id} "):
                return element
        return False

    WebDriverWait(driver, TIMEOUT_S).until(option).click()
    driver.find_element("css selector", "body").send_keys(Keys.ESCAPE)
    WebDriverWait(driver, TIMEOUT_S).until(lambda d: f"#{model_id} " in js_text(d, page.ID_B))


def follow_to_the_end(dash_br: Any) -> str:
    driver = dash_br.driver
    dash_br.wait_for_element(f"#{page.FOLLOW.ids.status}", timeout=TIMEOUT_S)
    WebDriverWait(driver, JOB_TIMEOUT_S, poll_frequency=0.5).until(
        lambda d: js_text(d, page.FOLLOW.ids.status) in FINAL
    )
    return js_text(driver, page.FOLLOW.ids.status)


def test_create_a_comparison_then_add_a_model_from_its_overview(dash_br, server):
    api = httpx.Client(base_url=server.url, timeout=30)
    driver = dash_br.driver
    b1, b2, b3 = server.pruned
    try:
        dash_br.server_url = server.url
        driver.get(f"{server.url}{page.PATH}?a={server.original}")
        dash_br.wait_for_element(f"#{page.ID_B}", timeout=TIMEOUT_S)
        settle(driver)
        assert f"#{server.original} " in js_text(driver, page.ID_A)
        # digits are 1x8x8 images: every corruption is offered, ticked; clean only here
        boxes = driver.find_elements("css selector", f"#{page.ID_CORRUPTIONS} input")
        assert len(boxes) == 15 and all(b.is_selected() for b in boxes)
        for box in boxes:
            box.click()
        pick_b(dash_br, b2)
        dash_br.select_dcc_dropdown(f"#{page.ID_EMBEDDING}", value="PCA (instant)")
        # the server's dry run: no message, and the name it would give as the placeholder
        WebDriverWait(driver, TIMEOUT_S).until(
            lambda d: (
                "vs 1 pruned"
                in (d.find_element("id", page.ID_NAME).get_attribute("placeholder") or "")
            )
        )
        dash_br.find_element(f"#{page.ID_NAME}").send_keys("browser comparison", Keys.TAB)
        settle(driver)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOTS / "new-comparison.png"))
        dash_br.find_element(f"#{page.ID_SUBMIT}").click()
        status = follow_to_the_end(dash_br)
        assert status == "succeeded", js_text(driver, page.FOLLOW.ids.progress)
        link = dash_br.wait_for_element(f"#{page.ID_OPEN}", timeout=TIMEOUT_S)
        cid = int(parse_qs(urlparse(link.get_attribute("href")).query)["id"][0])
        made = _ok(api.get(f"/api/comparisons/{cid}"))
        assert (made["name"], made["model_a_id"], made["model_b_ids"]) == (
            "browser comparison",
            server.original,
            [b2],
        )
        assert dash_br.get_logs() == [], dash_br.get_logs()

        # open it
        link.click()
        WebDriverWait(driver, TIMEOUT_S).until(lambda d: "/compare?" in d.current_url)
        WebDriverWait(driver, TIMEOUT_S).until(
            lambda d: "browser comparison" in d.find_element("css selector", "main").text
        )

        # its overview: "Add models" leads to the form that adds b3
        driver.get(f"{server.url}{overview.PATH}?id={cid}")
        dash_br.wait_for_element(f"#{overview.ID_TABLE}", timeout=TIMEOUT_S)
        b3_name = _ok(api.get(f"/api/models/{b3}"))["name"]
        assert b3_name not in js_text(driver, overview.ID_TABLE)
        dash_br.find_element(f"#{overview.ID_ADD_MODELS}").click()
        WebDriverWait(driver, TIMEOUT_S).until(lambda d: f"add={cid}" in d.current_url)
        dash_br.wait_for_element(f"#{page.ID_B}", timeout=TIMEOUT_S)
        settle(driver)
        assert dash_br.find_element(f"#{page.ID_SUBMIT}").text == "Add models"
        assert not dash_br.find_element(f"#{page.ID_SETTINGS}").is_displayed()
        pick_b(dash_br, b3)
        settle(driver)
        assert js_text(driver, page.ID_SUBMIT_ERROR) == ""
        dash_br.find_element(f"#{page.ID_SUBMIT}").click()
        status = follow_to_the_end(dash_br)
        assert status == "succeeded", js_text(driver, page.FOLLOW.ids.progress)
        assert driver.save_screenshot(str(SCREENSHOTS / "add-models.png"))
        job = _ok(api.get(f"/api/jobs/{_ok(api.get(f'/api/comparisons/{cid}'))['job_id']}"))
        assert job["spec"]["added_model_b_ids"] == [b3]
        assert job["result"]["reused_b_ids"] == [b2]  # b2's result was kept
        dash_br.wait_for_element(f"#{page.ID_OVERVIEW}", timeout=TIMEOUT_S).click()
        WebDriverWait(driver, TIMEOUT_S).until(lambda d: b3_name in js_text(d, overview.ID_TABLE))
        assert b1 not in _ok(api.get(f"/api/comparisons/{cid}"))["model_b_ids"]
        assert dash_br.get_logs() == [], dash_br.get_logs()
    finally:
        api.close()

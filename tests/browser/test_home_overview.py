"""Home, evaluation overview and similarity map in a real headless Chromium, on the demo data of
a real `prunescope serve`, enriched through the REST API with two more pruning methods and a
comparison under four corruptions (so the overview has corruption columns and the map has
clean and corrupted points of three methods)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from frontend.pages import home, overview, similarity
from tests.browser.pageload import wait_job

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CORRUPTIONS = ["gaussian_noise", "defocus_blur", "contrast", "pixelate"]


@dataclass
class Rich:
    comparison_id: int
    model_a_id: int
    model_b_ids: list[int]


@pytest.fixture(scope="module")
def rich(live_server) -> Iterator[Rich]:
    """Two more pruned models (random, layer_magnitude) and a comparison with corruptions."""
    p = live_server.pipeline
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        jobs = []
        for method, sparsity in (("random", 0.7), ("layer_magnitude", 0.9)):
            spec = {
                "model_id": p.original_id,
                "method": method,
                "sparsity": sparsity,
                "finetune": {"epochs": 1},
            }
            r = api.post("/api/jobs", json={"kind": "prune", "spec": spec})
            assert r.status_code == 201, r.text
            jobs.append(r.json()["id"])
        new = []
        for job_id in jobs:
            job = wait_job(api, job_id, 300)
            assert job["status"] == "succeeded", job
            new.append(job["result"]["model_id"])
        r = api.post(
            "/api/comparisons",
            json={
                "model_a_id": p.original_id,
                "model_b_ids": [*p.pruned_ids, *new],
                "corruptions": CORRUPTIONS,
                "severities": [1, 3, 5],
                "embedding": "pca",
                "name": "digits_cnn: three methods under four corruptions",
            },
        )
        assert r.status_code == 201, r.text
        comparison = r.json()
        job = wait_job(api, comparison["job_id"], 480)
        assert job["status"] == "succeeded", job
    yield Rich(comparison["id"], p.original_id, [*p.pruned_ids, *new])


def open_page(dash_br, base: str, path: str) -> None:
    dash_br.server_url = base
    dash_br.driver.get(base + path)


def severe(dash_br) -> list[dict[str, Any]]:
    return [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"]


def screenshot(dash_br, name: str, max_height: int = 2200) -> None:
    """The whole page (up to ``max_height`` px) into docs/screenshots/<name>."""
    driver = dash_br.driver
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(int(height) + 140, 900), max_height))
    time.sleep(0.8)  # plotly's responsive figures resize themselves
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / name))
    driver.set_window_size(size["width"], size["height"])


def js_text(driver, element_id: str) -> str:
    """An element's text read in one step (the jobs panel re-renders every second)."""
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : '';",
        element_id,
    )


def callback_requests(driver) -> int:
    """How many Dash callback requests the page has made so far."""
    return int(
        driver.execute_script(
            "return performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('_dash-update-component')).length"
        )
    )


def bad_checkpoint() -> bytes:
    """A real torch.save file whose keys fit no digits_cnn: its import job fails."""
    import torch

    buf = io.BytesIO()
    torch.save({"conv.weight": torch.zeros(3, 3)}, buf)
    return buf.getvalue()


def test_home_shows_lineage_live_jobs_and_cancels_one(dash_br, live_server, rich):
    api = httpx.Client(base_url=live_server.url, timeout=30)
    upload = api.post(
        "/api/models/upload",
        files={"file": ("wrong-keys.pt", bad_checkpoint(), "application/octet-stream")},
        data={"architecture": "digits_cnn", "name": "wrong keys"},
    )
    assert upload.status_code in (200, 201, 202), upload.text
    failed = wait_job(api, upload.json()["job_id"], 120)
    assert failed["status"] == "failed", failed
    ping = api.post("/api/jobs", json={"kind": "ping", "spec": {"seconds": 300}})
    assert ping.status_code == 201, ping.text
    ping_id = ping.json()["id"]
    try:
        open_page(dash_br, live_server.url, "/")
        # room to count every callback request below (the default keeps 250 entries)
        dash_br.driver.execute_script("performance.setResourceTimingBufferSize(100000)")
        dash_br.wait_for_element(f"#{home.ID_MODELS}", timeout=30)
        models = dash_br.find_element(f"#{home.ID_MODELS}").text
        assert "random" in models and "layer_magnitude" in models
        assert dash_br.find_element(f"#{home.ID_MODELS} a[href='/prune?model=1']")
        comparisons = dash_br.find_element(f"#{home.ID_COMPARISONS}")
        assert comparisons.find_element(
            "css selector", f"a[href='/similarity?id={rich.comparison_id}']"
        )

        # the ping runs: its bar moves by itself, and it has a Cancel button
        bar = f"home-job-progress-{ping_id}"
        WebDriverWait(dash_br.driver, 120, poll_frequency=0.5).until(
            lambda d: (
                float(
                    d.execute_script(
                        "const e = document.getElementById(arguments[0]); return e ? e.value : 0;",
                        bar,
                    )
                    or 0
                )
                > 0.005
            )
        )
        first = float(
            dash_br.driver.execute_script(f"return document.getElementById('{bar}').value")
        )
        WebDriverWait(dash_br.driver, 20, poll_frequency=0.5).until(
            lambda d: (
                float(d.execute_script(f"return document.getElementById('{bar}').value")) > first
            )
        )
        # a pattern-matching id is rendered as its JSON text
        cancel = (
            f"//button[contains(@id, '\"index\":{ping_id},') "
            f"and contains(@id, '{home.CANCEL_TYPE}')]"
        )
        button = dash_br.driver.find_element("xpath", cancel)
        assert button.text == "Cancel"

        # the failed import shows its error's first line, and all of it when expanded
        summary = dash_br.driver.find_element("css selector", "details.job-error summary")
        assert "CheckpointError" in summary.text
        summary.click()
        WebDriverWait(dash_br.driver, 5).until(
            lambda d: "missing keys" in d.find_element("css selector", ".job-error-full").text
        )
        time.sleep(2.5)  # two refreshes of the panel later it is still expanded
        assert dash_br.driver.execute_script(
            "return document.querySelector('details.job-error').open"
        )
        screenshot(dash_br, "home.png")

        click_fresh(dash_br.driver, cancel)
        WebDriverWait(dash_br.driver, 30, poll_frequency=0.25).until(
            lambda d: api.get(f"/api/jobs/{ping_id}").json()["status"] == "cancelled"
        )
        WebDriverWait(dash_br.driver, 15, poll_frequency=0.25).until(
            lambda d: (
                not d.find_elements("xpath", cancel) and "cancelled" in js_text(d, home.ID_JOBS)
            )
        )
        # no job is active any more: the panel stops polling the API
        time.sleep(2)
        before = callback_requests(dash_br.driver)
        time.sleep(3)
        assert callback_requests(dash_br.driver) == before
        assert severe(dash_br) == []
    finally:
        api.post(f"/api/jobs/{ping_id}/cancel")  # 409 once it ended
        api.close()


def test_overview_lists_then_shows_the_table_and_opens_a_cell(dash_br, live_server, rich):
    open_page(dash_br, live_server.url, "/overview")
    picker = dash_br.wait_for_element(f"#{overview.ID_PICKER}", timeout=30)
    link = picker.find_element("css selector", f"a[href='/overview?id={rich.comparison_id}']")
    link.click()
    table = dash_br.wait_for_element(f"#{overview.ID_TABLE}", timeout=30)
    header = table.find_element("css selector", "thead").text.lower()
    for name in ("clean", "gaussian noise", "defocus blur", "contrast", "pixelate"):
        assert name in header
    body_rows = table.find_elements("css selector", "tbody tr")
    assert len(body_rows) == 1 + len(rich.model_b_ids)
    dash_br.wait_for_element(f"#{overview.ID_FIGURE} .main-svg")
    assert severe(dash_br) == []
    screenshot(dash_br, "overview.png")

    # a column header sorts, and the order lives in the URL
    table.find_element("css selector", "thead a[href*='sort=-clean']").click()
    WebDriverWait(dash_br.driver, 20).until(lambda d: "sort=-clean" in d.current_url)
    WebDriverWait(dash_br.driver, 20).until(
        lambda d: "▼" in js_text(d, overview.ID_TABLE).split("\n")[0]
    )

    # a B row's corruption cell opens that pair's comparison with the corruption selected
    cell = dash_br.wait_for_element(
        f"#{overview.ID_TABLE} a.{overview.CELL_CLASS}[href*='rob_c=contrast']"
    )
    href = urlparse(cell.get_attribute("href"))
    cell.click()
    WebDriverWait(dash_br.driver, 30).until(lambda d: urlparse(d.current_url).path == "/compare")
    query = parse_qs(urlparse(dash_br.driver.current_url).query)
    assert query == parse_qs(href.query)
    assert query["id"] == [str(rich.comparison_id)] and query["rob_c"] == ["contrast"]
    assert int(query["b"][0]) in rich.model_b_ids
    dash_br.wait_for_element("#compare-confusion-a .main-svg", timeout=30)
    assert severe(dash_br) == []


def test_similarity_map_hovers_and_opens_a_comparison(dash_br, live_server, rich):
    # the demo's clean-only comparison: three points, two tree edges
    open_page(dash_br, live_server.url, f"/similarity?id={live_server.pipeline.comparison_id}")
    dash_br.wait_for_element(f"#{similarity.ID_MAP} .main-svg", timeout=30)
    assert "3 fingerprints" in dash_br.find_element(f"#{similarity.ID_SUMMARY}").text
    assert "2 tree edges" in dash_br.find_element(f"#{similarity.ID_SUMMARY}").text

    open_page(dash_br, live_server.url, "/similarity")
    dash_br.wait_for_element(f"#{similarity.ID_PICKER}", timeout=30)
    dash_br.find_element(
        f"#{similarity.ID_PICKER} a[href='/similarity?id={rich.comparison_id}']"
    ).click()
    dash_br.wait_for_element(f"#{similarity.ID_MAP} .main-svg", timeout=30)
    n = (1 + len(CORRUPTIONS)) * (1 + len(rich.model_b_ids))
    summary = dash_br.find_element(f"#{similarity.ID_SUMMARY}").text
    assert f"{n} fingerprints" in summary and f"{n - 1} tree edges" in summary
    points = dash_br.driver.find_elements(
        "css selector", f"#{similarity.ID_MAP} .scatterlayer path.point"
    )
    assert len(points) == n
    legend = dash_br.find_element(f"#{similarity.ID_MAP} .legend").text
    for name in ("original", "global_magnitude", "random", "layer_magnitude", "corrupted"):
        assert name in legend
    assert severe(dash_br) == []
    screenshot(dash_br, "similarity.png")

    # hover says what the point is, on one line; a click opens that model's comparison
    target = points[-1]
    ActionChains(dash_br.driver).move_to_element(target).perform()
    hover = WebDriverWait(dash_br.driver, 10).until(
        lambda d: d.find_elements("css selector", f"#{similarity.ID_MAP} .hoverlayer .hovertext")
    )
    words = hover[0].text
    assert "sparse" in words and "accuracy" in words and "\n" not in words
    ActionChains(dash_br.driver).move_to_element(target).click().perform()
    WebDriverWait(dash_br.driver, 30).until(lambda d: urlparse(d.current_url).path == "/compare")
    query = parse_qs(urlparse(dash_br.driver.current_url).query)
    assert query["id"] == [str(rich.comparison_id)]
    assert "b" not in query or int(query["b"][0]) in rich.model_b_ids
    dash_br.wait_for_element("#compare-confusion-a .main-svg", timeout=30)
    assert severe(dash_br) == []


def click_fresh(driver, xpath: str, attempts: int = 10) -> None:
    """Click the element at ``xpath``, finding it again when the live panel (re-rendered
    every second) replaced it between finding and clicking."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(attempts - 1):
        try:
            driver.find_element("xpath", xpath).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    driver.find_element("xpath", xpath).click()

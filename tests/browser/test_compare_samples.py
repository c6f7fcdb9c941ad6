"""The flagged-samples view of the compare page in a real headless Chromium, served by a real
`prunescope serve`: gallery, filters, the sample detail, the URL, geometric attribution.

The demo comparison has no corruption results, so a small original and pruned digits model
are trained through the REST API and compared under gaussian noise and fog (new rows only),
which gives the fragile filter and the corruption grid something to show.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.pageload import choose, submit, wait_job

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CORRUPTIONS = ["gaussian_noise", "fog"]
SECTION = "#compare-samples"
GALLERY = "#compare-samples-gallery"
DETAIL = "#compare-samples-detail"
TOP5 = "#compare-samples-top5"
ATTRIBUTION = "#compare-samples-attribution"
FIGURE_JS = """
const el = document.querySelector(arguments[0] + ' .js-plotly-plot');
if (!el || !el.data) { return null; }
return {
    names: el.data.map(t => t.name || ''),
    types: el.data.map(t => t.type || 'scatter'),
    orientations: el.data.map(t => t.orientation || ''),
    zmids: el.data.map(t => (t.zmid === undefined ? null : t.zmid)),
    title: (el.layout.title && el.layout.title.text) || '',
};
"""
TILES_JS = """
return Array.from(document.querySelectorAll(arguments[0] + ' .sample-tile'))
    .map(el => JSON.parse(el.id).index);
"""


@pytest.fixture(scope="module")
def comparison_id(live_server) -> Iterator[int]:
    """A digits comparison whose analyses ran with corruptions (made for this module)."""
    p = live_server.pipeline
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        spec = {"dataset_id": p.dataset_id, "architecture": "digits_cnn", "epochs": 2}
        original = submit(api, "train", spec)["result"]["model_id"]
        prune = {"model_id": original, "sparsity": 0.85, "finetune": {"epochs": 1}}
        pruned = submit(api, "prune", prune)["result"]["model_id"]
        r = api.post(
            "/api/comparisons",
            json={
                "model_a_id": original,
                "model_b_ids": [pruned],
                "corruptions": CORRUPTIONS,
                "embedding": "pca",
                "name": "digits_cnn flagged samples",
            },
        )
        assert r.status_code == 201, r.text
        job = wait_job(api, r.json()["job_id"], 480)
        assert job["status"] == "succeeded", job
        yield r.json()["id"]


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def severe(dash_br) -> list[dict[str, Any]]:
    return [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"]


def figure(dash_br, selector: str) -> dict[str, Any] | None:
    return dash_br.driver.execute_script(FIGURE_JS, selector)


def wait_for_figure(dash_br, selector: str, check, timeout: float = 40) -> dict[str, Any]:
    def ready(_driver):  # type: ignore[no-untyped-def]
        fig = figure(dash_br, selector)
        return fig if fig and check(fig) else False

    return WebDriverWait(dash_br.driver, timeout, poll_frequency=0.5).until(ready)


def tiles(dash_br) -> list[int]:
    return [int(i) for i in dash_br.driver.execute_script(TILES_JS, GALLERY)]


def wait_for_tiles(dash_br, check=bool, timeout: float = 40) -> list[int]:
    def ready(_driver):  # type: ignore[no-untyped-def]
        found = tiles(dash_br)
        return found if found and check(found) else False

    return WebDriverWait(dash_br.driver, timeout, poll_frequency=0.3).until(ready)


def open_compare(dash_br, live_server, comparison_id: int, extra: str = "") -> None:
    dash_br.server_url = live_server.url
    dash_br.driver.set_window_size(1400, 1000)
    dash_br.driver.get(f"{live_server.url}/compare?id={comparison_id}{extra}")
    section = dash_br.wait_for_element(SECTION, timeout=30)
    # the view wakes when it nears the viewport
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", section)


def top5_ok(fig: dict[str, Any]) -> bool:
    return (
        fig["types"] == ["bar", "bar"]
        and fig["orientations"] == ["h", "h"]
        and fig["names"][0].startswith("A: ")
        and fig["names"][1].startswith("B: ")
    )


def screenshot(dash_br, selector: str, name: str, height: int) -> Path:
    dash_br.driver.set_window_size(1400, height)
    element = dash_br.find_element(selector)
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
    dash_br.driver.execute_script("window.scrollBy(0, -12);")
    time.sleep(1.0)  # plotly's responsive figures settle after the resize
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert element.screenshot(str(path))
    return path


def test_gallery_filters_detail_and_the_url(dash_br, live_server, comparison_id):
    open_compare(dash_br, live_server, comparison_id)
    flagged = wait_for_tiles(dash_br)
    assert len(flagged) <= 24
    text = dash_br.find_element(SECTION).text
    assert "correct → wrong" in text and "flagged samples" in text
    img = dash_br.find_element(f"{GALLERY} .sample-tile img")
    assert img.get_attribute("src").endswith(f"/images/test/{flagged[0]}.png")
    assert dash_br.driver.execute_script(
        "return getComputedStyle(arguments[0]).imageRendering", img
    ) in ("pixelated", "crisp-edges")
    fragile = dash_br.find_element("#compare-samples-fragile input")
    assert fragile.is_enabled()  # the comparison has corruption results
    assert severe(dash_br) == []

    # a filter changes the tiles and goes into the URL without a page load
    dash_br.driver.execute_script("window.__samplesNoReload = 1;")
    dash_br.find_element("#compare-samples-category input[value='all']").click()
    everything = wait_for_tiles(dash_br, lambda found: found != flagged)
    assert everything == sorted(everything) and everything[0] == 0
    WebDriverWait(dash_br.driver, 20).until(lambda d: "smp_cat=all" in d.current_url)
    choose(dash_br, "#compare-samples-sort", index=1)  # largest margin decrease
    by_margin = wait_for_tiles(dash_br, lambda found: found != everything)
    WebDriverWait(dash_br.driver, 20).until(lambda d: "smp_sort=d_margin" in d.current_url)
    assert dash_br.driver.execute_script("return window.__samplesNoReload") == 1

    # clicking a tile opens its detail: top-5 bars of A and B, metrics, corruptions
    chosen = by_margin[0]
    dash_br.find_element(f"{GALLERY} .sample-tile").click()
    dash_br.wait_for_contains_text("#compare-samples-head", f"Test sample #{chosen}", timeout=30)
    wait_for_figure(dash_br, TOP5, top5_ok)
    metrics = dash_br.find_element("#compare-samples-metrics").text
    for name in ("angle", "length", "margin"):
        assert name in metrics
    grid = dash_br.find_element("#compare-samples-corruptions").text
    assert "gaussian noise" in grid and "fog" in grid
    WebDriverWait(dash_br.driver, 20).until(lambda d: f"smp={chosen}" in d.current_url)
    q = query(dash_br.driver.current_url)
    assert q["id"] == [str(comparison_id)] and q["smp_cat"] == ["all"]
    assert severe(dash_br) == []

    # reloading the URL restores the filters and the open sample
    dash_br.driver.refresh()
    dash_br.wait_for_element(SECTION, timeout=30)
    dash_br.wait_for_contains_text("#compare-samples-head", f"Test sample #{chosen}", timeout=40)
    wait_for_figure(dash_br, TOP5, top5_ok)
    assert wait_for_tiles(dash_br) == by_margin
    assert dash_br.find_element("#compare-samples-category input[value='all']").is_selected()
    assert severe(dash_br) == []


def test_without_corruptions_the_fragile_filter_says_why(dash_br, live_server):
    open_compare(dash_br, live_server, live_server.pipeline.comparison_id)
    wait_for_tiles(dash_br)
    dash_br.wait_for_contains_text("#compare-samples-fragile-note", "No corruption results")
    assert not dash_br.find_element("#compare-samples-fragile input").is_enabled()
    assert severe(dash_br) == []


def test_attribution_on_demand_and_screenshots(dash_br, live_server, comparison_id):
    open_compare(dash_br, live_server, comparison_id)
    flagged = wait_for_tiles(dash_br)
    time.sleep(1.0)  # thumbnails load
    screenshot(dash_br, SECTION, "compare-samples.png", 1300)
    dash_br.driver.set_window_size(1400, 1000)

    chosen = flagged[0]
    tile = dash_br.find_element(f"{GALLERY} .sample-tile")
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", tile)
    tile.click()
    dash_br.wait_for_contains_text("#compare-samples-head", f"Test sample #{chosen}", timeout=30)
    wait_for_figure(dash_br, TOP5, top5_ok)
    button = dash_br.wait_for_element("#compare-samples-compute", timeout=20)
    WebDriverWait(dash_br.driver, 20).until(lambda _d: button.is_displayed())
    button.click()
    fig = wait_for_figure(
        dash_br, ATTRIBUTION, lambda f: f["types"] == ["heatmap"] * 9, timeout=240
    )
    assert fig["zmids"] == [0] * 9
    assert "occluded" in fig["title"]
    assert not button.is_displayed()
    corrupted = dash_br.find_element("#compare-samples-corrupted").text
    assert "fog" in corrupted
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        detail = api.get(f"/api/comparisons/{comparison_id}/samples/{chosen}").json()
    assert detail["attribution"]["status"] == "succeeded"
    screenshot(dash_br, DETAIL, "compare-sample-detail.png", 2200)
    assert severe(dash_br) == []

"""The corruption-robustness and linear-regions views of the compare page in a real headless
Chromium, served by a real `prunescope serve`.

The demo comparison is used when its analyses ran with corruptions; otherwise a small original
and pruned model are trained through the REST API and compared under gaussian noise and fog
(new rows only: the shared demo rows are left as they are for the other browser tests).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from frontend.views import decode_ids
from tests.browser.pageload import choose, submit, wait_job

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CORRUPTIONS = ["gaussian_noise", "fog"]
HEAT_A = "#compare-robustness-a"
HEAT_B = "#compare-robustness-b"
HEAT_DIFF = "#compare-robustness-diff"
LINES = "#compare-robustness-lines"
MAP_A = "#compare-regions-map-a"
MAP_B = "#compare-regions-map-b"
FIGURE_JS = """
const el = document.querySelector(arguments[0] + ' .js-plotly-plot');
if (!el || !el.data) { return null; }
return {
    names: el.data.map(t => t.name || ''),
    types: el.data.map(t => t.type || 'scatter'),
    fills: el.data.map(t => t.fill || ''),
    rows: el.data.length && el.data[0].y ? el.data[0].y.length : 0,
    zmin: el.data.length ? el.data[0].zmin : null,
    zmax: el.data.length ? el.data[0].zmax : null,
    zmid: el.data.length ? el.data[0].zmid : null,
    title: (el.layout.title && el.layout.title.text) || '',
    ytitle: (el.layout.yaxis && el.layout.yaxis.title && el.layout.yaxis.title.text) || '',
};
"""


def has_corruptions(api: httpx.Client, comparison_id: int) -> bool:
    view = api.get(f"/api/comparisons/{comparison_id}/view").json()
    return all(
        api.get(f"/api/analyses/{view[k]['id']}/robustness").status_code == 200
        for k in ("analysis_a", "analysis_b")
    )


@pytest.fixture(scope="module")
def comparison_id(live_server) -> Iterator[int]:
    """A comparison whose analyses ran with corruptions: the demo's, else a new small one."""
    p = live_server.pipeline
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        if has_corruptions(api, p.comparison_id):
            yield p.comparison_id
            return
        spec = {"dataset_id": p.dataset_id, "architecture": "digits_cnn", "epochs": 2}
        original = submit(api, "train", spec)["result"]["model_id"]
        prune = {"model_id": original, "sparsity": 0.8, "finetune": {"epochs": 1}}
        pruned = submit(api, "prune", prune)["result"]["model_id"]
        r = api.post(
            "/api/comparisons",
            json={
                "model_a_id": original,
                "model_b_ids": [pruned],
                "corruptions": CORRUPTIONS,
                "embedding": "pca",
                "name": "digits_cnn under gaussian noise and fog",
            },
        )
        assert r.status_code == 201, r.text
        job = wait_job(api, r.json()["job_id"], 480)
        assert job["status"] == "succeeded", job
        assert has_corruptions(api, r.json()["id"])
        yield r.json()["id"]


def severe(dash_br) -> list[dict[str, Any]]:
    return [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"]


def figure(dash_br, selector: str) -> dict[str, Any] | None:
    return dash_br.driver.execute_script(FIGURE_JS, selector)


def wait_for_figure(dash_br, selector: str, check, timeout: float = 40) -> dict[str, Any]:
    def ready(_driver):  # type: ignore[no-untyped-def]
        fig = figure(dash_br, selector)
        return fig if fig and fig["names"] is not None and check(fig) else False

    return WebDriverWait(dash_br.driver, timeout, poll_frequency=0.5).until(ready)


def open_compare(dash_br, live_server, comparison_id: int, height: int = 1000) -> None:
    dash_br.server_url = live_server.url
    dash_br.driver.set_window_size(1400, height)
    dash_br.driver.get(f"{live_server.url}/compare?id={comparison_id}")


def section_screenshot(dash_br, selector: str, name: str) -> Path:
    section = dash_br.find_element(selector)
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", section)
    dash_br.driver.execute_script("window.scrollBy(0, -12);")
    time.sleep(0.8)  # plotly's responsive figures settle after the scroll
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert section.screenshot(str(path))
    return path


def click_cell(dash_br, selector: str, row: int, col: int, rows: int, cols: int) -> None:
    """A real mouse click in the middle of one heatmap cell."""
    drag = dash_br.find_element(f"{selector} .nsewdrag")
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", drag)
    w, h = drag.size["width"], drag.size["height"]
    x = int((col + 0.5) * w / cols - w / 2)
    y = int((row + 0.5) * h / rows - h / 2)
    # from the centre, whatever origin this selenium gives move_to_element_with_offset
    ActionChains(dash_br.driver).move_to_element(drag).move_by_offset(x, y).click().perform()


def test_robustness_heatmaps_and_a_clicked_setting(dash_br, live_server, comparison_id):
    open_compare(dash_br, live_server, comparison_id, height=1700)
    heat_a = wait_for_figure(dash_br, HEAT_A, lambda f: f["types"] == ["heatmap"])
    heat_b = wait_for_figure(dash_br, HEAT_B, lambda f: f["types"] == ["heatmap"])
    diff = wait_for_figure(dash_br, HEAT_DIFF, lambda f: f["types"] == ["heatmap"])
    lines = wait_for_figure(dash_br, LINES, lambda f: len(f["names"]) == 2)
    assert (heat_a["zmin"], heat_a["zmax"]) == (heat_b["zmin"], heat_b["zmax"]) == (0, 100)
    assert diff["zmid"] == 0 and diff["zmin"] == -diff["zmax"]
    if comparison_id != live_server.pipeline.comparison_id:
        assert heat_a["rows"] == len(CORRUPTIONS)
    assert lines["names"][0].startswith("A: ") and lines["names"][1].startswith("B: ")
    text = dash_br.find_element("#compare-robustness").text
    assert "Corruption robustness" in text and "mCE of B" in text
    assert "Relative mCE" in text and "Traceback" not in text
    assert severe(dash_br) == []

    # click the last severity of the last corruption: the URL records it, the detail shows it
    dash_br.driver.execute_script("window.__robustnessNoReload = 1;")
    rows = heat_a["rows"]
    click_cell(dash_br, HEAT_A, rows - 1, 4, rows, 5)
    WebDriverWait(dash_br.driver, 20).until(lambda d: "rob_s=5" in d.current_url)
    q = parse_qs(urlparse(dash_br.driver.current_url).query)
    assert q["id"] == [str(comparison_id)] and q["rob_c"]
    corruption = q["rob_c"][0]
    dash_br.wait_for_contains_text("#compare-robustness-detail", f"{corruption}, severity 5")
    wait_for_figure(dash_br, LINES, lambda f: len(f["names"]) == 4)
    assert dash_br.driver.execute_script("return window.__robustnessNoReload") == 1
    # ... and selects, in every view, the samples it broke in B and not in A (issue 18): the
    # setting that broke most, as many as the API counts
    b = {k: v[0] for k, v in q.items() if k == "b"}
    names = figure(dash_br, HEAT_A)
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        corruptions = api.get(
            f"/api/analyses/{api.get(f'/api/comparisons/{comparison_id}/view').json()['analysis_a']['id']}/robustness"
        ).json()["corruptions"]
        counts = {
            (r, s): api.get(
                f"/api/comparisons/{comparison_id}/broken",
                params={"corruption": c, "severity": s + 1, **b},
            ).json()["count"]
            for r, c in enumerate(corruptions)
            for s in range(5)
        }
    (row, sev), most = max(counts.items(), key=lambda kv: kv[1])
    assert names is not None and most > 0, counts
    if (row, sev) != (rows - 1, 4):  # not the cell clicked above (a second click clears)
        click_cell(dash_br, HEAT_A, row, sev, rows, 5)
    status = f"{most:,} sample{'s' if most != 1 else ''} selected by a robustness cell"
    dash_br.wait_for_contains_text("#compare-embedding-status", status, timeout=30)
    dash_br.wait_for_contains_text("#compare-export-selection", f"Export {most}")
    assert severe(dash_br) == []
    path = section_screenshot(dash_br, "#compare-robustness", "compare-robustness.png")
    assert path.stat().st_size > 20_000

    # a reload restores the selected setting from the URL
    dash_br.driver.refresh()
    dash_br.wait_for_contains_text(
        "#compare-robustness-detail", f"{corruption}, severity 5", timeout=40
    )
    assert severe(dash_br) == []


def test_a_confusion_cell_selects_its_samples_everywhere_and_exports_them(
    dash_br, live_server, comparison_id, tmp_path
):
    """Issue 18, click to filter: a cell (true i, predicted j) of A's confusion matrix selects
    exactly as many samples as the matrix counts there (the analysis computed the matrix, the
    selection comes from the per-sample table); the same cell again clears it."""
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        view = api.get(f"/api/comparisons/{comparison_id}/view").json()
    confusion = view["analysis_a"]["confusion"]
    n = len(confusion)
    true, pred = max(
        ((i, j) for i in range(n) for j in range(n) if i != j), key=lambda c: confusion[c[0]][c[1]]
    )
    count = confusion[true][pred]
    assert count > 0
    open_compare(dash_br, live_server, comparison_id)
    dash_br.wait_for_element("#compare-confusion-a .main-svg", timeout=30)
    dash_br.wait_for_element("#compare-embedding-a .main-svg", timeout=30)
    click_cell(dash_br, "#compare-confusion-a", true, pred, n, n)
    status = f"{count:,} sample{'s' if count != 1 else ''} selected in A's confusion matrix"
    dash_br.wait_for_contains_text("#compare-embedding-status", status, timeout=30)
    dash_br.wait_for_contains_text("#compare-export-selection", f"Export {count}")
    q = parse_qs(urlparse(dash_br.driver.current_url).query)
    assert len(decode_ids(q["sel"][0])) == count  # in the URL like any selection
    assert severe(dash_br) == []
    dash_br.driver.set_window_size(1400, 1500)
    dash_br.driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.8)  # plotly's responsive figures settle after the resize
    assert dash_br.driver.save_screenshot(str(SCREENSHOTS / "compare-click-filter.png"))
    dash_br.driver.set_window_size(1400, 1000)
    click_cell(dash_br, "#compare-confusion-a", true, pred, n, n)  # again: cleared
    dash_br.wait_for_contains_text("#compare-embedding-status", "No samples selected", timeout=30)
    assert dash_br.find_element("#compare-export-selection").get_attribute("disabled")


def test_compute_linear_regions_runs_the_job_and_draws_the_maps(
    dash_br, live_server, comparison_id
):
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        before = api.get(f"/api/comparisons/{comparison_id}/regions").status_code
    open_compare(dash_br, live_server, comparison_id, height=2000)
    if before == 409:
        dash_br.wait_for_contains_text("#compare-regions-intro", "No linear-region results", 40)
        button = dash_br.find_element("#compare-regions-compute")
        dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
        assert button.text == "Compute linear regions"
        button.click()
        dash_br.wait_for_contains_text("#compare-regions-progress", "Job #", timeout=30)
        assert not dash_br.find_element("#compare-regions-compute").is_enabled()
    # the job's progress is followed until the maps replace the empty state
    map_a = wait_for_figure(dash_br, MAP_A, lambda f: "toself" in f["fills"], timeout=900)
    map_b = wait_for_figure(dash_br, MAP_B, lambda f: "toself" in f["fills"], timeout=60)
    for fig in (map_a, map_b):
        assert set(fig["types"]) == {"scatter"}  # SVG polygons, no WebGL
        assert any(n.startswith("predicted ") for n in fig["names"])
    assert "decision boundary" in map_a["names"] + map_b["names"]
    counts = wait_for_figure(
        dash_br, "#compare-regions-counts", lambda f: f["types"] == ["box"] * 2
    )
    distances = figure(dash_br, "#compare-regions-distances")
    assert counts["names"][0].startswith("A: ") and counts["names"][1].startswith("B: ")
    assert distances is not None and distances["types"] == ["box", "box"]
    assert not dash_br.find_element("#compare-regions-intro").is_displayed()
    text = dash_br.find_element("#compare-regions").text
    assert "Linear regions per segment" in text and "Traceback" not in text
    assert severe(dash_br) == []
    path = section_screenshot(dash_br, "#compare-regions", "compare-regions.png")
    assert path.stat().st_size > 20_000

    # the count shown is a view setting in the URL
    dash_br.find_element("#compare-regions-metric input[value='activation_pieces']").click()
    WebDriverWait(dash_br.driver, 20).until(
        lambda d: "reg_count=activation_pieces" in d.current_url
    )
    wait_for_figure(dash_br, "#compare-regions-counts", lambda f: "activation" in f["ytitle"])
    assert severe(dash_br) == []


def test_without_results_both_views_say_what_to_do(dash_br, live_server, tmp_path):
    p = live_server.pipeline
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        corrupted = has_corruptions(api, p.comparison_id)
        regions = api.get(f"/api/comparisons/{p.comparison_id}/regions").status_code == 200
    open_compare(dash_br, live_server, p.comparison_id, height=1400)
    if corrupted:
        wait_for_figure(dash_br, HEAT_A, lambda f: f["types"] == ["heatmap"])
    else:
        dash_br.wait_for_contains_text("#compare-robustness", "No corruption results", 40)
        text = dash_br.find_element("#compare-robustness").text
        assert "create the comparison with corruptions (e.g. all 15)" in text
        assert "POST /api/comparisons" in text and '"corruptions"' in text
        assert not dash_br.find_element("#compare-robustness-body").is_displayed()
    if not regions:
        dash_br.wait_for_contains_text("#compare-regions-intro", "No linear-region results", 40)
        button = dash_br.find_element("#compare-regions-compute")
        assert button.is_displayed() and button.is_enabled()
        assert "Runs a regions job on A and B" in dash_br.find_element("#compare-regions").text
    assert severe(dash_br) == []
    section = dash_br.find_element("#compare-robustness")
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", section)
    assert dash_br.driver.save_screenshot(str(tmp_path / "empty-states.png"))


def test_switching_b_after_choosing_a_robustness_cell(dash_br, live_server, comparison_id):
    """Issue 18, bug 1, the third way users met it: after a robustness cell (``rob_c``,
    ``rob_s``) was written into the address bar, choosing another B changed the dropdown and
    nothing else. A second B is added to the comparison through the API first."""
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        comparison = api.get(f"/api/comparisons/{comparison_id}").json()
        if len(comparison["model_b_ids"]) < 2:
            prune = {"model_id": comparison["model_a_id"], "sparsity": 0.5, "finetune": None}
            added = submit(api, "prune", prune)["result"]["model_id"]
            r = api.post(f"/api/comparisons/{comparison_id}/models", json={"model_b_ids": [added]})
            assert r.status_code == 201, r.text
            assert wait_job(api, r.json()["job_id"], 480)["status"] == "succeeded"
            comparison = api.get(f"/api/comparisons/{comparison_id}").json()
        first, second = comparison["model_b_ids"][:2]
        second_name = api.get(f"/api/models/{second}").json()["name"]
    dash_br.server_url = live_server.url
    dash_br.driver.get(f"{live_server.url}/compare?id={comparison_id}&b={first}")
    heat_a = wait_for_figure(dash_br, HEAT_A, lambda f: f["types"] == ["heatmap"], timeout=60)
    click_cell(dash_br, HEAT_A, 0, 2, heat_a["rows"], 5)
    WebDriverWait(dash_br.driver, 20).until(lambda d: "rob_s=3" in d.current_url)
    dash_br.driver.execute_script("window.scrollTo(0, 0)")
    choose(dash_br, "#compare-b-select", index=1)
    WebDriverWait(dash_br.driver, 30).until(
        lambda d: (
            parse_qs(urlparse(d.current_url).query).get("b") == [str(second)]
            and second_name in d.find_element("id", "compare-header").text
        )
    )
    q = parse_qs(urlparse(dash_br.driver.current_url).query)
    assert q["rob_s"] == ["3"] and q["rob_c"], q  # the setting survives the switch
    dash_br.wait_for_contains_text("#compare-robustness-detail", "severity 3", timeout=60)
    assert severe(dash_br) == []

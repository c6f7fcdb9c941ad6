"""The Experiments page in a real headless Chromium, served by a real `prunescope serve` over a
workspace of 2,000 generated models (inserted with SQLAlchemy before the server starts): sort by
accuracy, filter by method, select two rows, Compare, and a reload keeps the view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from backend.config import Settings
from tests.conftest import served
from tests.experiment_rows import insert_experiments

N_MODELS = 2000
METHOD = "lottery_ticket"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("experiments") / "data"
    insert_experiments(Settings(data_dir=data_dir).database_url, N_MODELS, seed=11)
    with served(data_dir) as url:
        yield url


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def first_names(driver: Any, n: int = 25) -> list[str]:
    cells = driver.find_elements(By.CSS_SELECTOR, '#experiments-table td[data-dash-column="name"]')
    return [c.text for c in cells[:n]]


def api_page(url: str, **params: Any) -> dict[str, Any]:
    answer = httpx.get(f"{url}/api/experiments", params={"limit": 25, **params}, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def points(driver: Any) -> int:
    return int(
        driver.execute_script(
            "const g = document.querySelector('#experiments-scatter .js-plotly-plot');"
            "return g && g._fullData ? g._fullData.filter((t) => t.meta === 'points')"
            ".reduce((n, t) => n + t.x.length, 0) : 0"
        )
    )


def selected_in_url(url: str) -> list[int]:
    sel = query(url).get("sel")
    return sorted(int(i) for i in sel[0].split(",")) if sel else []


def severe(dash_br: Any) -> list[dict[str, Any]]:
    return [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"]


def test_sort_filter_select_compare_and_reload(dash_br: Any, workspace: str) -> None:
    url, driver = workspace, dash_br.driver
    dash_br.server_url = url
    wait = WebDriverWait(driver, 60)
    driver.get(f"{url}/experiments")
    wait.until(lambda d: len(first_names(d)) == 25)
    assert "2,000 models match · page 1 of 80" in dash_br.find_element("#experiments-status").text
    wait.until(lambda d: points(d) > 1900)  # every model with an accuracy

    # sort by accuracy: the header's sort button, as a user clicks it (ascending first)
    header = '#experiments-table th[data-dash-column="accuracy"] .column-header--sort'
    dash_br.find_element(header).click()
    wait.until(lambda d: query(d.current_url).get("sort") == ["accuracy"])
    order = query(driver.current_url)["order"][0]
    want = api_page(url, sort="accuracy", order=order)["data"]
    wait.until(lambda d: first_names(d) == [r["name"] for r in want])
    dash_br.find_element(header).click()  # and the other way round
    other = "desc" if order == "asc" else "asc"
    wait.until(lambda d: query(d.current_url).get("order") == [other])
    want = api_page(url, sort="accuracy", order=other)["data"]
    wait.until(lambda d: first_names(d) == [r["name"] for r in want])

    # filter by method, through the dropdown
    facets = httpx.get(f"{url}/api/experiments/facets", timeout=30).json()
    label = next(f"{f['label']} ({f['count']})" for f in facets["methods"] if f["value"] == METHOD)
    dash_br.select_dcc_dropdown("#experiments-method", value=label)
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    wait.until(lambda d: query(d.current_url).get("method") == [METHOD])
    filtered = api_page(url, sort="accuracy", order=other, method=[METHOD])
    wait.until(lambda d: first_names(d) == [r["name"] for r in filtered["data"]])
    status = dash_br.find_element("#experiments-status").text
    assert status.startswith(f"{filtered['count']:,} models match")
    assert f"method={METHOD}" in dash_br.find_element("#experiments-csv").get_attribute("href")

    # select two rows of one lineage: Compare creates their comparison, the original as A
    rows = filtered["data"]
    pairs = [
        (i, j)
        for i in range(len(rows))
        for j in range(i + 1, len(rows))
        if rows[i]["original_id"] == rows[j]["original_id"]
    ]
    assert pairs, "the generated workspace should have two rounds of one lineage on this page"
    pair = pairs[0]
    boxes = driver.find_elements(By.CSS_SELECTOR, "#experiments-table td.dash-select-cell input")
    for k in pair:
        boxes[k].click()
    chosen = [rows[k]["id"] for k in pair]
    wait.until(lambda d: selected_in_url(d.current_url) == sorted(chosen))
    panel = "experiments-selection-panel"
    wait.until(lambda d: "2 selected" in d.find_element(By.ID, panel).text)
    original = rows[pair[0]]["original_id"]
    assert f"Compare A = #{original}" in dash_br.find_element(f"#{panel}").text
    compare = dash_br.find_element("#experiments-compare")
    wait.until(lambda d: compare.is_enabled())
    compare.click()
    link = wait.until(lambda d: d.find_element(By.ID, "experiments-compare-result-link"))
    comparison_id = int(link.get_attribute("href").split("id=")[1])
    made = httpx.get(f"{url}/api/comparisons/{comparison_id}", timeout=30).json()
    assert made["model_a_id"] == original
    assert sorted(made["model_b_ids"]) == sorted(chosen)

    # the scatter marks the selection
    marked = driver.execute_script(
        "const g = document.querySelector('#experiments-scatter .js-plotly-plot');"
        "return g.data.filter((t) => t.meta === 'points' && t.selectedpoints)"
        ".reduce((n, t) => n + t.selectedpoints.length, 0)"
    )
    assert marked == 2

    # reload: the same view, from the URL alone
    copied = driver.current_url
    driver.get(copied)
    wait.until(lambda d: first_names(d) == [r["name"] for r in filtered["data"]])
    assert query(driver.current_url) == query(copied)
    assert METHOD in dash_br.find_element("#experiments-method").text
    checked = driver.find_elements(
        By.CSS_SELECTOR, "#experiments-table td.dash-select-cell input:checked"
    )
    assert len(checked) == 2
    wait.until(lambda d: "2 selected" in d.find_element(By.ID, panel).text)
    assert severe(dash_br) == [], severe(dash_br)


def test_an_empty_workspace_says_what_to_do(dash_br: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    insert_experiments(Settings(data_dir=data_dir).database_url, 0)
    with served(data_dir) as url:
        dash_br.server_url = url
        dash_br.driver.get(f"{url}/experiments")
        notice = dash_br.wait_for_element("#experiments-empty", timeout=60)
        assert "No models yet" in notice.text and "prunescope demo" in notice.text
        assert severe(dash_br) == []

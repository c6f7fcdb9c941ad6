"""The layers view of the compare page in a real headless Chromium, served by a real
`prunescope serve`: the empty state, the layers job run from its button, a layer clicked for
its histograms, and the chosen layer surviving a reload (``lay_layer``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SECTION = "#compare-layers"
FIGURE = "#compare-layers-figure"
HIST = "#compare-layers-hist"
FIGURE_JS = """
const el = document.querySelector(arguments[0] + ' .js-plotly-plot');
if (!el || !el.data) { return null; }
return {
    types: el.data.map(t => t.type || 'scatter'),
    y: el.data.length && el.data[0].y ? Array.from(el.data[0].y) : [],
    title: (el.layout.title && el.layout.title.text) || '',
};
"""
# the offset from the first subplot's drag area's top left corner (selenium 4.2's origin of
# move_to_element_with_offset) to row ``arguments[1]``'s middle
ROW_OFFSET_JS = """
const el = document.querySelector(arguments[0] + ' .js-plotly-plot');
const drag = el.querySelector('.nsewdrag');
drag.scrollIntoView({block: 'center'});
const ya = el._fullLayout.yaxis;
const r = drag.getBoundingClientRect();
const y = el.getBoundingClientRect().top + ya._offset + ya.c2p(arguments[1]);
return [Math.round(r.width / 2), Math.round(y - r.top)];
"""


def severe(dash_br) -> list:
    return [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"]


def figure(dash_br, selector: str) -> dict | None:
    return dash_br.driver.execute_script(FIGURE_JS, selector)


def wait_for_figure(dash_br, selector: str, check, timeout: int = 30) -> dict:
    def ready(_driver):  # type: ignore[no-untyped-def]
        fig = figure(dash_br, selector)
        return fig if fig and fig["types"] and check(fig) else False

    return WebDriverWait(dash_br.driver, timeout, poll_frequency=0.5).until(ready)


def open_layers(dash_br, url: str) -> None:
    """Open the page and scroll the layers view into sight (it is lazy: it wakes near the
    viewport)."""
    dash_br.driver.get(url)
    dash_br.wait_for_element("#compare-layers-lazy", timeout=60)

    def woken(driver) -> bool:  # type: ignore[no-untyped-def]
        el = driver.find_element("css selector", "#compare-layers-lazy")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", el)
        return bool(driver.find_elements("css selector", SECTION))

    WebDriverWait(dash_br.driver, 60, poll_frequency=0.5).until(woken)


def click_row(dash_br, row: int) -> None:
    """A real mouse click on the metrics figure's row ``row`` (first subplot)."""
    driver = dash_br.driver
    dx, dy = driver.execute_script(ROW_OFFSET_JS, FIGURE, row)
    drag = dash_br.find_element(f"{FIGURE} .nsewdrag")
    actions = ActionChains(driver).move_to_element_with_offset(drag, dx, dy).pause(0.5)
    actions.click().perform()


def test_compute_click_a_layer_and_reload(dash_br, live_server):
    p = live_server.pipeline
    with httpx.Client(base_url=live_server.url, timeout=30) as api:
        before = api.get(f"/api/comparisons/{p.comparison_id}/layers").status_code
    url = f"{live_server.url}/compare?id={p.comparison_id}&b={p.pruned_ids[1]}"
    dash_br.server_url = live_server.url
    dash_br.driver.set_window_size(1400, 1200)
    open_layers(dash_br, url)
    if before == 404:  # the session's server may have them from an earlier run of this test
        dash_br.wait_for_contains_text("#compare-layers-intro", "No layer comparison yet", 40)
        assert "linear CKA" in dash_br.find_element("#compare-layers-intro").text
        button = dash_br.find_element("#compare-layers-compute")
        dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
        assert button.text == "Compute layer comparison" and button.is_enabled()
        button.click()
        dash_br.wait_for_contains_text("#compare-layers-progress", "Job #", timeout=30)
    # the job is followed until the chart replaces the empty state
    chart = wait_for_figure(dash_br, FIGURE, lambda f: "bar" in f["types"], timeout=600)
    names = chart["y"]
    assert len(names) >= 2, chart
    assert not dash_br.find_element("#compare-layers-intro").is_displayed()
    text = dash_br.find_element(SECTION).text
    assert "Sparsity" in text and "CKA, A vs B" in text and "Traceback" not in text
    assert severe(dash_br) == []

    # clicking the second layer's row shows its histograms and writes it into the URL
    WebDriverWait(dash_br.driver, 30, poll_frequency=1).until(
        lambda d: click_row(dash_br, 1) or "lay_layer=" in d.current_url
    )
    layer = names[1]
    assert parse_qs(urlparse(dash_br.driver.current_url).query)["lay_layer"] == [layer]
    hist = wait_for_figure(dash_br, HIST, lambda f: layer in f["title"])
    assert hist["types"] == ["bar", "bar"] and "exact zeros" in hist["title"]
    assert severe(dash_br) == []

    # a reload (or the link sent to a colleague) shows the same layer
    dash_br.driver.refresh()
    open_layers(dash_br, dash_br.driver.current_url)
    hist = wait_for_figure(dash_br, HIST, lambda f: layer in f["title"], timeout=60)
    assert hist["types"] == ["bar", "bar"]
    assert layer in dash_br.find_element("#compare-layers-hist-note").text
    assert severe(dash_br) == []
    section = dash_br.find_element(SECTION)
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", section)
    dash_br.driver.execute_script("window.scrollBy(0, -12);")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert section.screenshot(str(SCREENSHOTS / "layers.png"))

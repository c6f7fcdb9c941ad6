"""The geometry and recall-distortion view of the compare page in a real headless Chromium."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
BALANCE = "#compare-geometry-balance"
LOCAL = "#compare-geometry-local"
PARALLEL = "#compare-geometry-parallel"
# the figure a dcc.Graph shows, read from plotly's own div
FIGURE_JS = """
const el = document.querySelector(arguments[0] + ' .js-plotly-plot');
if (!el || !el.data) { return null; }
return {
    names: el.data.map(t => t.name || ''),
    types: el.data.map(t => t.type || 'scatter'),
    modes: el.data.map(t => t.mode || ''),
    title: (el.layout.title && el.layout.title.text) || '',
};
"""


# a mouse drag across the plot area, as plotly's drag handler receives it
DRAW_BOX_JS = """
const drag = document.querySelector(arguments[0] + ' .nsewdrag');
drag.scrollIntoView({block: 'center'});
const r = drag.getBoundingClientRect();
const at = (x, y, buttons) => ({
    clientX: x, clientY: y, buttons: buttons, button: 0, bubbles: true, cancelable: true,
    view: window,
});
drag.dispatchEvent(new MouseEvent('mousedown', at(r.left + 5, r.top + 5, 1)));
for (let i = 1; i <= 8; i++) {
    const x = r.left + 5 + i * (r.width - 10) / 8, y = r.top + 5 + i * (r.height - 10) / 8;
    document.dispatchEvent(new MouseEvent('mousemove', at(x, y, 1)));
}
document.dispatchEvent(new MouseEvent('mouseup', at(r.right - 5, r.bottom - 5, 0)));
"""


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def severe(dash_br) -> list:
    return [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"]


def figure(dash_br, selector: str) -> dict | None:
    return dash_br.driver.execute_script(FIGURE_JS, selector)


def wait_for_figure(dash_br, selector: str, check, timeout: int = 30) -> dict:
    def ready(_driver):  # type: ignore[no-untyped-def]
        fig = figure(dash_br, selector)
        return fig if fig and fig["names"] and check(fig) else False

    return WebDriverWait(dash_br.driver, timeout).until(ready)


def wait_for_panels(dash_br) -> None:
    wait_for_figure(dash_br, BALANCE, lambda f: "classes" in f["names"])
    wait_for_figure(dash_br, LOCAL, lambda f: "Local geometry" in f["title"])
    wait_for_figure(dash_br, PARALLEL, lambda f: f["types"] == ["parcoords"])


def test_geometry_panels_mode_in_the_url_and_linked_selection(dash_br, live_server):
    p = live_server.pipeline
    url = f"{live_server.url}/compare?id={p.comparison_id}&b={p.pruned_ids[1]}"
    dash_br.server_url = live_server.url
    dash_br.driver.set_window_size(1400, 1000)
    dash_br.driver.get(url)
    wait_for_panels(dash_br)
    balance = figure(dash_br, BALANCE)
    assert balance is not None
    assert balance["names"][:2] == ["classes", "y = x: unchanged"]
    assert any(n.startswith("α_t line") for n in balance["names"])
    local = figure(dash_br, LOCAL)
    assert local is not None and len(local["names"]) == 2
    assert local["names"][0].startswith("A: ") and local["names"][1].startswith("B: ")
    assert "scattergl" not in local["types"] + balance["types"]
    text = dash_br.find_element("#compare-geometry").text
    for panel in ("Recall distortion", "Local geometry", "Global geometry"):
        assert panel in text
    assert "Traceback" not in text
    assert severe(dash_br) == []

    # difference mode: the URL records it without a page load
    dash_br.driver.execute_script("window.__geometryNoReload = 1;")
    dash_br.find_element("#compare-geometry-mode input[value='diff']").click()
    WebDriverWait(dash_br.driver, 20).until(lambda d: "geo_mode=diff" in d.current_url)
    wait_for_figure(dash_br, LOCAL, lambda f: "lines+markers" in f["modes"])
    assert dash_br.driver.execute_script("return window.__geometryNoReload") == 1
    q = query(dash_br.driver.current_url)
    assert q["id"] == [str(p.comparison_id)] and q["b"] == [str(p.pruned_ids[1])]
    assert severe(dash_br) == []

    # reloading restores difference mode
    dash_br.driver.refresh()
    wait_for_figure(dash_br, LOCAL, lambda f: "lines+markers" in f["modes"])
    checked = dash_br.find_element("#compare-geometry-mode input[value='diff']")
    assert checked.is_selected()
    assert query(dash_br.driver.current_url)["geo_mode"] == ["diff"]
    wait_for_panels(dash_br)
    assert severe(dash_br) == []

    # a box drawn over the local scatter becomes the linked selection (in the URL), and stays
    dash_br.driver.execute_script(DRAW_BOX_JS, LOCAL)
    WebDriverWait(dash_br.driver, 20).until(lambda d: "sel=" in d.current_url)
    dash_br.wait_for_contains_text("#compare-geometry-local-note", "selected here")
    dash_br.wait_for_contains_text("#compare-geometry-parallel-note", "selected samples")
    time.sleep(2)  # the selection is not undone by the redraw it causes
    assert "sel=" in dash_br.driver.current_url
    assert severe(dash_br) == []


def test_geometry_screenshot(dash_br, live_server):
    p = live_server.pipeline
    url = f"{live_server.url}/compare?id={p.comparison_id}&b={p.pruned_ids[1]}"
    dash_br.server_url = live_server.url
    dash_br.driver.set_window_size(1400, 1700)
    dash_br.driver.get(url)
    wait_for_panels(dash_br)
    section = dash_br.find_element("#compare-geometry")
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", section)
    dash_br.driver.execute_script("window.scrollBy(0, -12);")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert section.screenshot(str(SCREENSHOTS / "compare-geometry.png"))
    assert severe(dash_br) == []

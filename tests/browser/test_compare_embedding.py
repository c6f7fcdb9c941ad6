"""The aligned embeddings of the compare page in a real headless Chromium: a box drawn in A
selects the same samples in B, lands in the URL, and a reload restores it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from frontend.views import decode_ids
from tests.browser.pageload import choose

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "compare-embedding.png"

# the dataset indices a graph shows as selected (customdata at selectedpoints); null: none
JS_SELECTED = """
const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
if (!gd || !gd.data || !gd.data[0] || !gd.data[0].x) { return 'not drawn'; }
const t = gd.data[0];
if (t.selectedpoints == null) { return null; }
return Array.from(t.selectedpoints).map((p) => Number(t.customdata[p])).sort((a, b) => a - b);
"""
JS_N_POINTS = """
const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
// the trace as plotly.js took it in: x arrives as a float32 typed-array spec, which
// plotly decodes into _fullData (data[0].x stays the spec)
const t = gd && gd._fullData && gd._fullData[0];
return t && t.x ? t.x.length : 0;
"""


def open_page(dash_br, url: str) -> None:
    dash_br.server_url = url.split("/compare")[0].rstrip("/")
    dash_br.driver.get(url)


def wait_drawn(dash_br) -> int:
    """Both embeddings hold their points; returns how many."""
    driver = dash_br.driver
    WebDriverWait(driver, 60).until(
        lambda d: (
            d.execute_script(JS_N_POINTS, "compare-embedding-a") > 0
            and d.execute_script(JS_N_POINTS, "compare-embedding-a")
            == d.execute_script(JS_N_POINTS, "compare-embedding-b")
        )
    )
    return int(driver.execute_script(JS_N_POINTS, "compare-embedding-a"))


def wait_idle(driver, quiet_s: float = 1.0, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Until every lazy view of the page has woken and no callback has been pending for
    ``quiet_s``: a view drawing its figures (the parallel coordinates take seconds in software
    WebGL) can hold the page's thread past plotly's 300 ms double-click window."""
    import time

    since, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = driver.execute_script(
            "return !!document.querySelector('._dash-loading-callback')"
            " || Array.from(document.querySelectorAll('.lazy-view'))"
            ".some((el) => el.dataset.awake !== '1')"
        )
        if busy:
            since = None
        elif since is None:
            since = time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the page was still loading after {timeout:.0f} s")


def selected(dash_br, graph: str):  # type: ignore[no-untyped-def]
    return dash_br.driver.execute_script(JS_SELECTED, graph)


def test_box_in_a_selects_the_same_samples_in_b_and_survives_a_reload(dash_br, live_server):
    p = live_server.pipeline
    open_page(dash_br, f"{live_server.url}/compare?id={p.comparison_id}")
    n = wait_drawn(dash_br)
    assert n >= 100  # the digits test split
    driver = dash_br.driver
    assert "Aligned embeddings" in dash_br.find_element("#compare-embedding").text
    assert selected(dash_br, "compare-embedding-a") is None
    assert dash_br.get_logs() == [], dash_br.get_logs()

    # drag a box over the middle of embedding A (its dragmode is "select"), once the views
    # above it have arrived and the page no longer moves
    wait_idle(driver)
    area = dash_br.find_element("#compare-embedding-a .nsewdrag")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", area)
    w, h = area.size["width"], area.size["height"]
    ActionChains(driver).move_to_element_with_offset(
        area, int(w * 0.25), int(h * 0.25)
    ).click_and_hold().move_by_offset(int(w * 0.25), int(h * 0.25)).move_by_offset(
        int(w * 0.25), int(h * 0.25)
    ).release().perform()

    WebDriverWait(driver, 30).until(lambda d: "sel=" in d.current_url)
    WebDriverWait(driver, 30).until(
        lambda d: (
            isinstance(selected(dash_br, "compare-embedding-b"), list)
            and selected(dash_br, "compare-embedding-b") == selected(dash_br, "compare-embedding-a")
        )
    )
    ids = selected(dash_br, "compare-embedding-a")
    assert 0 < len(ids) < n
    sel = parse_qs(urlparse(driver.current_url).query)["sel"][0]
    assert decode_ids(sel) == ids
    WebDriverWait(driver, 10).until(
        lambda d: (
            f"{len(ids)} samples selected in embedding A"
            in d.find_element("id", "compare-embedding-status").text
        )
    )
    assert dash_br.get_logs() == [], dash_br.get_logs()

    # a product screenshot: the section, the selection showing in both plots
    section = dash_br.find_element("#compare-embedding")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", section)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    section.screenshot(str(SCREENSHOT))

    # the copied link restores the selection in both plots
    copied = driver.current_url
    driver.get(copied)
    wait_drawn(dash_br)
    WebDriverWait(driver, 30).until(
        lambda d: (
            selected(dash_br, "compare-embedding-a") == ids
            and selected(dash_br, "compare-embedding-b") == ids
        )
    )
    assert parse_qs(urlparse(driver.current_url).query)["sel"] == [sel]
    WebDriverWait(driver, 10).until(
        lambda d: (
            f"{len(ids)} samples selected from the link"
            in d.find_element("id", "compare-embedding-status").text
        )
    )
    assert dash_br.get_logs() == [], dash_br.get_logs()

    # a double-click clears it everywhere, the URL included
    area = dash_br.find_element("#compare-embedding-a .nsewdrag")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", area)
    wait_idle(driver)
    ActionChains(driver).double_click(area).perform()
    WebDriverWait(driver, 30).until(lambda d: "sel=" not in d.current_url)
    WebDriverWait(driver, 30).until(
        lambda d: (
            selected(dash_br, "compare-embedding-a") is None
            and selected(dash_br, "compare-embedding-b") is None
        )
    )
    assert dash_br.get_logs() == [], dash_br.get_logs()


def test_colour_by_goes_to_the_url_without_reloading(dash_br, live_server):
    p = live_server.pipeline
    open_page(dash_br, f"{live_server.url}/compare?id={p.comparison_id}&emb_color=flip")
    wait_drawn(dash_br)
    driver = dash_br.driver
    WebDriverWait(driver, 30).until(
        lambda d: "flip category" in d.find_element("id", "compare-embedding-color").text
    )
    legend = driver.execute_script(
        "return document.querySelector('#compare-embedding-b .js-plotly-plot').data"
        ".slice(1).map((t) => t.name);"
    )
    assert legend[0] == "unchanged" and "correct → wrong" in legend
    driver.execute_script("window.__same_page = true;")
    choose(dash_br, "#compare-embedding-color", value="Δmargin (B − A)")
    WebDriverWait(driver, 30).until(lambda d: "emb_color=d_margin" in d.current_url)
    WebDriverWait(driver, 30).until(
        lambda d: (
            d.execute_script(
                "return document.querySelector('#compare-embedding-a .js-plotly-plot')"
                ".data[0].marker.cmid;"
            )
            == 0
        )
    )
    assert driver.execute_script("return window.__same_page === true;")  # no navigation
    assert dash_br.get_logs() == [], dash_br.get_logs()

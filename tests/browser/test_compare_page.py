"""The comparison page in a real headless Chromium, served by a real `prunescope serve`."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.pageload import choose


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def open_page(dash_br, url: str) -> None:
    dash_br.server_url = url.split("/compare")[0].split("/?")[0].rstrip("/")
    dash_br.driver.get(url)


def test_home_lists_everything(dash_br, live_server):
    open_page(dash_br, live_server.url + "/")
    dash_br.wait_for_element("#home-models", timeout=30)
    for section in ("#home-models", "#home-datasets", "#home-jobs", "#home-comparisons"):
        dash_br.wait_for_element(section)
    WebDriverWait(dash_br.driver, 20).until(
        lambda d: "digits_cnn" in d.find_element("css selector", "#home-models").text
    )
    jobs = dash_br.find_element("#home-jobs").text
    assert "succeeded" in jobs
    assert dash_br.get_logs() == []


def test_compare_page_renders_and_keeps_view_state_in_the_url(dash_br, live_server):
    p = live_server.pipeline
    url = f"{live_server.url}/compare?id={p.comparison_id}&b={p.pruned_ids[1]}"
    open_page(dash_br, url)
    dash_br.wait_for_element("#compare-confusion-a .main-svg", timeout=30)
    dash_br.wait_for_element("#compare-confusion-b .main-svg")
    dash_br.wait_for_element("#compare-confusion-shift .main-svg")
    dash_br.wait_for_element("#compare-recall-bars .main-svg")
    dash_br.wait_for_element("#compare-samples-gallery .sample-tile", timeout=30)
    assert dash_br.get_logs() == [], dash_br.get_logs()
    # plotly.js came once: the index's preload is the script dcc.Graph asked for
    fetched = dash_br.driver.execute_script(
        "return performance.getEntriesByType('resource').map((r) => r.name)"
        ".filter((n) => n.endsWith('/plotly.min.js'))"
    )
    assert len(fetched) == 1, fetched

    # choose a class: the URL records it (b is kept)
    choose(dash_br, "#compare-class-select", index=4)
    WebDriverWait(dash_br.driver, 20).until(lambda d: "cls=" in d.current_url)
    q = query(dash_br.driver.current_url)
    assert q["id"] == [str(p.comparison_id)] and q["b"] == [str(p.pruned_ids[1])]
    cls = q["cls"][0]
    dash_br.wait_for_element("#compare-recall-bars .main-svg")
    selected = dash_br.find_element("#compare-class-select").text
    assert dash_br.get_logs() == [], dash_br.get_logs()

    # the copied URL reopens the same view in a new tab
    copied = dash_br.driver.current_url
    dash_br.driver.switch_to.new_window("tab")
    dash_br.driver.get(copied)
    dash_br.wait_for_element("#compare-recall-bars .main-svg", timeout=30)
    assert query(dash_br.driver.current_url)["cls"] == [cls]
    assert dash_br.find_element("#compare-class-select").text == selected
    assert dash_br.get_logs() == [], dash_br.get_logs()


def test_unknown_comparison_says_so(dash_br, live_server):
    open_page(dash_br, f"{live_server.url}/compare?id=999")
    WebDriverWait(dash_br.driver, 20).until(
        lambda d: "not found" in d.find_element("css selector", "body").text.lower()
    )

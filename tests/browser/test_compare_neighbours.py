"""Neighbourhood change on the compare page (SCIENCE.md sect. 7) in a real headless Chromium:
the embedding coloured by it, the gallery sorted by "Neighbourhood torn most", and a sample's
neighbours in A and in B as thumbnails in its detail."""

from __future__ import annotations

from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.pageload import choose

COLORBAR_JS = """
const el = document.querySelector('#compare-embedding-a .js-plotly-plot');
if (!el || !el.data || !el.data.length) { return null; }
const m = el.data[0].marker || {};
return (m.colorbar && m.colorbar.title && m.colorbar.title.text) || '';
"""
COUNT_JS = "return document.querySelectorAll(arguments[0]).length;"


def test_colour_sort_and_the_neighbours_of_a_sample(dash_br, live_server):
    dash_br.server_url = live_server.url
    dash_br.driver.set_window_size(1400, 1000)
    comparison = live_server.pipeline.comparison_id
    dash_br.driver.get(f"{live_server.url}/compare?id={comparison}")
    dash_br.wait_for_element("#compare-embedding-a .js-plotly-plot", timeout=40)

    choose(
        dash_br,
        "#compare-embedding-color",
        value="Neighbourhood change (kept, Jaccard; low = torn)",
    )
    WebDriverWait(dash_br.driver, 30, poll_frequency=0.3).until(
        lambda d: "low = torn" in (d.execute_script(COLORBAR_JS) or "")
    )
    WebDriverWait(dash_br.driver, 20).until(lambda d: "emb_color=nbr_jaccard" in d.current_url)

    section = dash_br.wait_for_element("#compare-samples", timeout=40)
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", section)
    dash_br.wait_for_element("#compare-samples-gallery .sample-tile", timeout=40)
    choose(dash_br, "#compare-samples-sort", value="Neighbourhood torn most")
    WebDriverWait(dash_br.driver, 20).until(lambda d: "smp_sort=nbr_jaccard" in d.current_url)
    dash_br.wait_for_contains_text("#compare-samples-summary", "neighbourhood torn most", 30)

    dash_br.find_element("#compare-samples-gallery .sample-tile").click()
    dash_br.wait_for_contains_text("#compare-samples-neighbours", "Jaccard", timeout=30)
    for side in ("a", "b"):
        selector = f"#compare-samples-neighbours-{side} .nbr-tile img"
        WebDriverWait(dash_br.driver, 20).until(
            lambda d, s=selector: d.execute_script(COUNT_JS, s) == 20
        )
    assert [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"] == []

"""Switching the pruned model B or the class on /compare after a view setting was written into
the address bar (issue 18, bug 1): every click on the page writes such a setting, so this is
what most users meet. The dropdown changed but the header, cards and plots kept the old B."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.pageload import choose


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def open_page(dash_br, url: str) -> None:
    dash_br.server_url = url.split("/compare")[0].rstrip("/")
    dash_br.driver.get(url)


def header(dash_br) -> str:
    return dash_br.driver.find_element("id", "compare-header").text


def model_name(live_server, model_id: int) -> str:
    import httpx

    return httpx.get(f"{live_server.url}/api/models/{model_id}").json()["name"]


def b_index(live_server, comparison_id: int, model_id: int) -> int:
    import httpx

    comparison = httpx.get(f"{live_server.url}/api/comparisons/{comparison_id}").json()
    return list(comparison["model_b_ids"]).index(model_id)


def _click(element) -> bool:
    from selenium.common.exceptions import ElementClickInterceptedException

    try:
        element.click()
    except ElementClickInterceptedException:
        return False
    return True


def wait_for_b(dash_br, live_server, b_id: int) -> None:
    """The page shows B = ``b_id`` everywhere: URL, header, dropdown and the confusion of B."""
    shown = "B" + model_name(live_server, b_id).replace(" ", "")
    WebDriverWait(dash_br.driver, 30).until(
        lambda d: (
            query(d.current_url).get("b") == [str(b_id)]
            and shown in header(dash_br).replace(" ", "").replace("\n", "")
        )
    )
    dash_br.wait_for_element("#compare-confusion-b .main-svg", timeout=30)


def test_switching_b_after_a_view_setting_renders_the_new_b(dash_br, live_server):
    p = live_server.pipeline
    first, second = p.pruned_ids[0], p.pruned_ids[1]
    open_page(dash_br, f"{live_server.url}/compare?id={p.comparison_id}&b={first}")
    dash_br.wait_for_element("#compare-embedding-a .main-svg", timeout=30)
    driver = dash_br.driver
    # a click on the page writes a view setting into the address bar (replaceState)
    choose(dash_br, "#compare-embedding-color", value="Δmargin (B − A)")
    WebDriverWait(driver, 30).until(lambda d: "emb_color=d_margin" in d.current_url)

    choose(dash_br, "#compare-b-select", index=b_index(live_server, p.comparison_id, second))
    wait_for_b(dash_br, live_server, second)
    assert query(driver.current_url)["emb_color"] == ["d_margin"]  # the setting survives
    WebDriverWait(driver, 30).until(
        lambda d: "Δmargin" in d.find_element("id", "compare-embedding-color").text
    )

    # and the class: the cards follow
    choose(dash_br, "#compare-class-select", index=3)
    WebDriverWait(driver, 30).until(lambda d: query(d.current_url).get("cls") == ["2"])
    WebDriverWait(driver, 30).until(
        lambda d: "Recall of" in d.find_element("id", "compare-headline").text
    )
    assert query(driver.current_url)["b"] == [str(second)]

    # open a sample (writes smp), then back to the first B: still renders
    tile = dash_br.wait_for_element("#compare-samples-gallery .sample-tile", timeout=30)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", tile)
    WebDriverWait(driver, 30).until(lambda d: _click(tile))
    WebDriverWait(driver, 30).until(lambda d: "smp" in query(d.current_url))
    choose(dash_br, "#compare-b-select", index=b_index(live_server, p.comparison_id, first))
    wait_for_b(dash_br, live_server, first)
    assert query(driver.current_url)["cls"] == ["2"]
    assert "smp" in query(driver.current_url)
    assert dash_br.get_logs() == [], dash_br.get_logs()

"""Every page of the dashboard loads without browser console errors, on the demo data of a real
`prunescope serve`: each page registered in frontend/app.py (so a new page cannot be forgotten),
the comparison page scrolled to the bottom so every lazy view wakes and renders, and the pages a
mistyped link lands on (an unknown comparison, an unknown path), which must say so in words."""

from __future__ import annotations

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from frontend.app import PAGES
from tests.browser.pageload import settle


def page_urls(base: str, comparison_id: int, model_id: int) -> dict[str, str]:
    """One URL per registered page, with the query a page needs to show real content."""
    query = {"/compare": f"?id={comparison_id}", "/prune": f"?model={model_id}"}
    return {page.PATH: base + page.PATH + query.get(page.PATH, "") for page in PAGES}


def severe(dash_br) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"]


def test_every_registered_page_loads_without_console_errors(dash_br, live_server):
    p = live_server.pipeline
    urls = page_urls(live_server.url, p.comparison_id, p.original_id)
    assert set(urls) >= {"/", "/compare", "/prune", "/upload", "/overview", "/similarity"}
    for path, url in urls.items():
        dash_br.driver.get(url)
        settle(dash_br.driver)
        assert severe(dash_br) == [], f"console errors on {path} ({url})"
        text = dash_br.driver.find_element("css selector", "main").text
        assert "Traceback" not in text and "Error loading" not in text, (path, text[:500])


def test_compare_page_wakes_every_lazy_view_when_scrolled(dash_br, live_server):
    from frontend.pages.compare import lazy_views

    dash_br.driver.get(f"{live_server.url}/compare?id={live_server.pipeline.comparison_id}")
    settle(dash_br.driver)
    awake = dash_br.driver.execute_script(
        "return Array.from(document.querySelectorAll('.lazy-view'))"
        ".map((el) => [el.dataset.view, el.dataset.awake || ''])"
    )
    assert sorted(v for v, _ in awake) == sorted(lazy_views())
    assert all(flag == "1" for _, flag in awake), awake
    assert severe(dash_br) == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/compare?id=999999", "Comparison 999999 not found"),
        ("/compare?id=abc", "comparison"),
        ("/no-such-page", "not found"),
    ],
)
def test_mistyped_links_say_what_is_wrong_without_errors(dash_br, live_server, path, expected):
    dash_br.driver.get(live_server.url + path)
    WebDriverWait(dash_br.driver, 20).until(
        lambda d: expected.lower() in d.find_element("css selector", "main").text.lower()
    )
    settle(dash_br.driver)
    assert severe(dash_br) == []
    assert "Traceback" not in dash_br.driver.find_element("css selector", "main").text

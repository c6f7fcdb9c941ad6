"""The prune page in a real headless Chromium: submit a prune job and follow it to the end,
and cancel a running job."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from frontend.pages import prune

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def open_page(dash_br, url: str) -> None:
    dash_br.server_url = url.split("/prune")[0].rstrip("/")
    dash_br.driver.get(url)


def type_into(dash_br, selector: str, text: str) -> None:
    """Replace an input's text the way a user does, then leave the field."""
    field = dash_br.find_element(selector)
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(text)
    field.send_keys(Keys.TAB)


def test_prune_a_model_and_follow_the_job(dash_br, live_server):
    original = live_server.pipeline.original_id
    open_page(dash_br, f"{live_server.url}/prune?model={original}")
    dash_br.wait_for_element(f"#{prune.ID_METHOD}", timeout=30)
    assert f"#{original} " in dash_br.find_element(f"#{prune.ID_MODEL}").text

    dash_br.select_dcc_dropdown(
        f"#{prune.ID_METHOD}",
        value=prune.method_label({"name": "layer_magnitude", "schedule": "one_shot"}),
    )
    WebDriverWait(dash_br.driver, 20).until(
        lambda d: (
            "every prunable layer"
            in d.find_element("css selector", f"#{prune.ID_METHOD_INFO}").text
        )
    )
    # the parameters editor follows the method: layer magnitude has one bool parameter
    dash_br.wait_for_element('input[type="checkbox"]')

    type_into(dash_br, f"#{prune.ID_SPARSITY} input", "0.5")
    WebDriverWait(dash_br.driver, 20).until(
        lambda d: "t = 2×" in d.find_element("css selector", f"#{prune.ID_SPARSITY_INFO}").text
    )
    type_into(dash_br, f"#{prune.ID_EPOCHS}", "1")
    # the choices are in the URL, so the link reopens this form
    WebDriverWait(dash_br.driver, 20).until(lambda d: "method=layer_magnitude" in d.current_url)
    query = parse_qs(urlparse(dash_br.driver.current_url).query)
    assert query["model"] == [str(original)]
    assert query["sparsity"] == ["0.5"]

    # no job followed yet: neither its section nor the cancel button shows
    assert not dash_br.find_element(f"#{prune.FOLLOW.ids.panel}").is_displayed()
    dash_br.find_element(f"#{prune.ID_SUBMIT}").click()
    dash_br.wait_for_element(f"#{prune.FOLLOW.ids.status}", timeout=30)
    WebDriverWait(dash_br.driver, 90, poll_frequency=0.5).until(
        lambda d: (
            d.find_element("css selector", f"#{prune.FOLLOW.ids.status}").text
            in ("succeeded", "failed", "cancelled")
        )
    )
    panel = dash_br.find_element(f"#{prune.FOLLOW.ids.progress}").text
    assert dash_br.find_element(f"#{prune.FOLLOW.ids.status}").text == "succeeded", panel
    assert "50.0%" in dash_br.find_element(f"#{prune.ID_RESULT}-sparsity").text
    assert "job=" in dash_br.driver.current_url
    assert dash_br.get_logs() == [], dash_br.get_logs()

    # compare with the original (issue 18): the model joins the original's latest comparison
    # (the live server has some), and the link opens it with the new model selected
    dash_br.find_element(f"#{prune.ID_COMPARE}").click()
    link = dash_br.wait_for_element(f"#{prune.ID_COMPARE}-link", timeout=30)
    query = parse_qs(urlparse(link.get_attribute("href")).query)
    comparisons = httpx.get(f"{live_server.url}/api/comparisons").json()["data"]
    latest = max(c["id"] for c in comparisons if c["model_a_id"] == original)
    assert query["id"] == [str(latest)]
    comparison = httpx.get(f"{live_server.url}/api/comparisons/{latest}").json()
    assert comparison["model_b_ids"][-1] == int(query["b"][0])
    assert dash_br.get_logs() == [], dash_br.get_logs()


def status_of(driver) -> str:
    """The followed job's status badge, read in one step: the poll re-renders it every second."""
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
        prune.FOLLOW.ids.status,
    )


def test_cancel_a_running_job(dash_br, live_server):
    api = httpx.Client(base_url=live_server.url, timeout=10)
    # a ping stays running (and cancellable) for as long as it is told
    created = api.post("/api/jobs", json={"kind": "ping", "spec": {"seconds": 300}})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    try:
        open_page(dash_br, f"{live_server.url}/prune?job={job_id}")
        # queued until a worker takes it (the previous test's comparison may still occupy them)
        WebDriverWait(dash_br.driver, 120, poll_frequency=0.5).until(
            lambda d: status_of(d) == "running"
        )
        button = dash_br.find_element(f"#{prune.FOLLOW.ids.cancel}")
        WebDriverWait(dash_br.driver, 10).until(lambda d: button.is_displayed())
        assert button.text == "Cancel job"
        panel = dash_br.find_element(f"#{prune.FOLLOW.ids.panel}")
        dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'end'})", panel)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert dash_br.driver.save_screenshot(str(SCREENSHOTS / "prune-cancel.png"))

        button.click()
        WebDriverWait(dash_br.driver, 15, poll_frequency=0.25).until(
            lambda d: status_of(d) == "cancelled"
        )
        words = dash_br.find_element(f"#{prune.FOLLOW.ids.job_error}").text
        assert "The job was cancelled" in words
        assert not dash_br.find_element(f"#{prune.FOLLOW.ids.cancel}").is_displayed()
        assert api.get(f"/api/jobs/{job_id}").json()["status"] == "cancelled"
        assert dash_br.get_logs() == [], dash_br.get_logs()
    finally:
        api.post(f"/api/jobs/{job_id}/cancel")  # 409 once it ended; frees the worker otherwise
        api.close()

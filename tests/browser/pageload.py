"""Waiting for a dashboard page to finish loading, and for jobs, shared by the browser tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

SETTLE_S = 1.0  # no callback in flight for this long: the page has finished loading
TIMEOUT_S = 90


def settle(driver) -> None:  # type: ignore[no-untyped-def]
    """Scroll to the bottom repeatedly (lazy views wake near the viewport) until no Dash callback
    has been pending for SETTLE_S."""
    quiet_since = None
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        # dash-renderer shows this div while any callback is pending
        loading = driver.execute_script(
            "return !document.querySelector('#react-entry-point')"
            " || !!document.querySelector('._dash-loading-callback')"
        )
        if loading:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > SETTLE_S:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{driver.current_url} still loading after {TIMEOUT_S} s")


FINAL = ("succeeded", "failed", "cancelled")


def wait_job(api: httpx.Client, job_id: int, timeout: float) -> dict[str, Any]:
    """Poll ``GET /api/jobs/{job_id}`` until the job has ended; its last state."""
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/api/jobs/{job_id}").json()
        if job["status"] in FINAL:
            return dict(job)
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}: {job}"
        time.sleep(0.5)


def submit(api: httpx.Client, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Submit a job and wait for it to succeed; the finished job."""
    r = api.post("/api/jobs", json={"kind": kind, "spec": spec})
    assert r.status_code == 201, r.text
    job = wait_job(api, r.json()["id"], 480)
    assert job["status"] == "succeeded", job
    return job


def choose(br, selector: str, **option: Any) -> None:  # type: ignore[no-untyped-def]
    """``br.select_dcc_dropdown(selector, **option)`` once the dropdown is in view and nothing
    covers it: on the compare page the lazy views arriving below move the page while it loads,
    and a click then lands on whatever slid under the pointer."""
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.support.ui import WebDriverWait

    def pick(driver) -> bool:  # type: ignore[no-untyped-def]
        element = driver.find_element("css selector", selector)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        try:
            br.select_dcc_dropdown(selector, **option)
        except ElementClickInterceptedException:
            return False
        return True

    WebDriverWait(br.driver, 30, poll_frequency=0.5).until(pick)

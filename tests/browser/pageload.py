"""Waiting for a dashboard page to finish loading, shared by the browser tests."""

from __future__ import annotations

import time

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

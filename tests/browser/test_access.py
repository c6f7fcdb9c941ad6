"""Sign-in and share links in a real headless Chromium, on a real `prunescope serve` with
authentication on (PRUNESCOPE_AUTH=on) over the demo data of the `live_server` fixture.

The sign-in page gates the dashboard and sends the user on to the page they asked for; a
signed-in user creates a share link from the compare page's Share panel; a fresh browser that
opens the link sees that one comparison read-only (no nav links, no Share panel, every other
page sends it back, the API refuses what is outside the comparison, the secret stays in an
http-only cookie); revoking the link stops it at its next request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.pageload import choose, settle
from tests.conftest import served

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TOKEN_NAME = "ada"


@dataclass
class AuthServer:
    url: str
    comparison_id: int
    token: str  # a write token's secret (psk_...)
    data_dir: Path


@contextmanager
def serve(data_dir: Path, log_name: str, **env: str) -> Iterator[str]:
    """`prunescope serve` with authentication on over ``data_dir`` (its SQLite database is in
    WAL mode, so several servers may share it); yields its URL."""
    import httpx

    with served(data_dir, log_name, auth="on", **env) as url:
        # authentication is really on: the API refuses a request without a token
        assert httpx.get(f"{url}/api/models", timeout=10).status_code == 401
        yield url


def new_token(data_dir: Path) -> str:
    """A write token named TOKEN_NAME in the database of ``data_dir``."""
    from backend.api.security import create_token
    from backend.config import Settings
    from backend.db.session import session_scope

    with session_scope(Settings(data_dir=data_dir).database_url) as session:
        _, token = create_token(session, TOKEN_NAME)
    return token


@pytest.fixture(scope="module")
def auth_server(live_server) -> Iterator[AuthServer]:  # type: ignore[no-untyped-def]
    """A second `prunescope serve`, with authentication on, over the live server's demo data,
    and a write token for it."""
    token = new_token(live_server.data_dir)
    with serve(live_server.data_dir, "server-auth.log") as url:
        yield AuthServer(url, live_server.pipeline.comparison_id, token, live_server.data_dir)


@pytest.fixture
def viewer_br(request, tmp_path):  # type: ignore[no-untyped-def]
    """A second, independent browser (its own cookies): the person a link was sent to."""
    from dash.testing.browser import Browser

    with Browser(
        browser=request.config.getoption("webdriver"),
        headless=True,
        options=request.config.hook.pytest_setup_options(),
        download_path=str(tmp_path),
    ) as browser:
        yield browser


# helpers ------------------------------------------------------------------------------------


def path_and_query(url: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlparse(url)
    return parts.path, parse_qs(parts.query)


def wait_for_url(driver, path: str, query: dict[str, str] | None = None, timeout: float = 30):  # type: ignore[no-untyped-def]
    """Wait until the browser is at ``path`` (with these query values, others ignored)."""

    def there(d) -> bool:  # type: ignore[no-untyped-def]
        got_path, got_query = path_and_query(d.current_url)
        return got_path == path and all(got_query.get(k) == [v] for k, v in (query or {}).items())

    try:
        WebDriverWait(driver, timeout).until(there)
    except Exception as exc:
        raise AssertionError(f"expected {path} {query}, at {driver.current_url}") from exc


def wait_for_text(driver, selector: str, text: str, timeout: float = 30) -> str:  # type: ignore[no-untyped-def]
    found = ""

    def has(d) -> bool:  # type: ignore[no-untyped-def]
        nonlocal found
        try:
            found = d.find_element(By.CSS_SELECTOR, selector).text
        except Exception:  # noqa: BLE001 - not there yet, or re-rendered under us
            return False
        return text.lower() in found.lower()

    try:
        WebDriverWait(driver, timeout).until(has)
    except Exception as exc:
        raise AssertionError(f"{text!r} not in {selector}: {found!r}") from exc
    return found


def fetch_status(driver, path: str, method: str = "GET") -> int:  # type: ignore[no-untyped-def]
    """The status the page's own fetch() gets for ``path`` (with the browser's cookies)."""
    return int(
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0], {method: arguments[1], credentials: 'same-origin'})"
            ".then((r) => done(r.status), (e) => done(-1));",
            path,
            method,
        )
    )


def fetch_json(driver, path: str):  # type: ignore[no-untyped-def]
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then((r) => r.json()).then(done, (e) => done(String(e)));",
        path,
    )


def severe(br) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in br.get_logs() if e.get("level") == "SEVERE"]


def sign_in_with_cookie(br, server: AuthServer) -> None:  # type: ignore[no-untyped-def]
    """What the sign-in page does (tested in test_sign_in_*), without typing the token."""
    br.driver.get(server.url + "/login")
    br.driver.add_cookie(
        {"name": "prunescope_token", "value": server.token, "path": "/", "httpOnly": True}
    )


def main_text(driver) -> str:  # type: ignore[no-untyped-def]
    return str(driver.find_element(By.CSS_SELECTOR, "main").text)


# tests --------------------------------------------------------------------------------------
def test_sign_in_gates_the_dashboard_and_goes_on_to_the_page_asked_for(dash_br, auth_server):
    driver, base = dash_br.driver, auth_server.url
    compare = f"/compare?id={auth_server.comparison_id}"

    # no cookie: the home page sends the browser to the sign-in page, remembering where it was
    driver.get(base + "/")
    wait_for_url(driver, "/login", {"next": "/"})
    driver.get(base + compare)
    wait_for_url(driver, "/login", {"next": compare})
    assert driver.find_element(By.CSS_SELECTOR, "h1").text == "Sign in"
    field = driver.find_element(By.CSS_SELECTOR, "input#signin-token")
    assert field.get_attribute("type") == "password"
    hidden = driver.find_element(By.CSS_SELECTOR, "input[name=next]")
    assert hidden.get_attribute("value") == compare
    assert driver.find_elements(By.CSS_SELECTOR, ".notice-error") == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / "signin.png"))

    # a wrong token: the sign-in page again, saying why, still bound for the same page
    field.send_keys("psk_not-a-real-token")
    driver.find_element(By.CSS_SELECTOR, "button#signin-submit").click()
    error = wait_for_text(driver, ".notice-error", "This token is not valid")
    assert "psk_not-a-real-token" not in driver.page_source
    assert path_and_query(driver.current_url)[0] == "/login"
    assert driver.find_element(By.CSS_SELECTOR, "input[name=next]").get_attribute("value") == (
        compare
    ), error
    assert driver.get_cookie("prunescope_token") is None

    # a share link's secret typed as a token is explained, not just refused
    field = driver.find_element(By.CSS_SELECTOR, "input#signin-token")
    field.send_keys("pss_whatever")
    driver.find_element(By.CSS_SELECTOR, "button#signin-submit").click()
    wait_for_text(driver, ".notice-error", "A share link is opened by visiting it")
    # the browser logs each refused sign-in (the page comes with status 401), nothing else
    refusals = severe(dash_br)
    assert len(refusals) == 2, refusals
    assert all(
        e["message"].startswith(f"{base}/login - Failed to load resource")
        and "status of 401" in e["message"]
        for e in refusals
    ), refusals

    # the right token: on to the page asked for, signed in
    field = driver.find_element(By.CSS_SELECTOR, "input#signin-token")
    field.send_keys(auth_server.token)
    driver.find_element(By.CSS_SELECTOR, "button#signin-submit").click()
    wait_for_url(driver, "/compare", {"id": str(auth_server.comparison_id)})
    user = wait_for_text(driver, "#nav-user", "Signed in as")
    assert user == f"Signed in as {TOKEN_NAME} · Sign out"
    links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, ".navbar .nav-link")]
    assert links == ["Home", "Experiments", "Overview", "Similarity", "New job", "Prune", "Upload"]
    cookie = driver.get_cookie("prunescope_token")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert auth_server.token not in driver.execute_script("return document.cookie")
    assert auth_server.token not in driver.current_url
    settle(driver)
    assert severe(dash_br) == []
    assert fetch_json(driver, "/api/session")["kind"] == "token"

    # every page opens now, e.g. the one first asked for
    driver.get(base + "/")
    wait_for_url(driver, "/")
    wait_for_text(driver, "#nav-user", f"Signed in as {TOKEN_NAME}")
    settle(driver)
    assert severe(dash_br) == []

    # sign out: the cookie goes, and the dashboard asks to sign in again
    driver.find_element(By.LINK_TEXT, "Sign out").click()
    wait_for_url(driver, "/login")
    assert driver.get_cookie("prunescope_token") is None
    driver.get(base + "/overview")
    wait_for_url(driver, "/login", {"next": "/overview"})


def job_count(server: AuthServer) -> int:
    import httpx

    headers = {"Authorization": f"Bearer {server.token}"}
    answer = httpx.get(f"{server.url}/api/jobs", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["count"])


def open_share_panel(br, url: str):  # type: ignore[no-untyped-def]
    """Open the compare page at ``url``, let it load, and open its (closed) Share panel."""
    driver = br.driver
    driver.get(url)
    panel = br.wait_for_element("details#compare-share", timeout=60)
    settle(driver)
    assert panel.get_attribute("open") is None  # closed until asked for
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", panel)
    panel.find_element(By.TAG_NAME, "summary").click()
    WebDriverWait(driver, 10).until(lambda d: panel.get_attribute("open") is not None)
    return panel


def create_link(br, label: str) -> str:  # type: ignore[no-untyped-def]
    """Fill in the open Share panel, create the link, and return it as shown."""
    driver = br.driver
    driver.find_element(By.CSS_SELECTOR, "input#compare-share-label").send_keys(label)
    driver.find_element(By.CSS_SELECTOR, "button#compare-share-create").click()
    field = br.wait_for_element("input#compare-share-url", timeout=30)
    return str(field.get_attribute("value"))


def no_write_control(driver, button: str) -> None:  # type: ignore[no-untyped-def]
    """A control that would submit a job is not shown to the viewer; a note says why."""
    assert not [b for b in driver.find_elements(By.CSS_SELECTOR, button) if b.is_displayed()]
    notes = [
        n.text
        for n in driver.find_elements(By.CSS_SELECTOR, ".needs-write-note")
        if n.is_displayed()
    ]
    assert any("needs a write token" in n for n in notes), notes


def test_share_link_opens_one_comparison_read_only_until_revoked(dash_br, viewer_br, auth_server):
    owner, viewer, base = dash_br.driver, viewer_br.driver, auth_server.url
    cid = auth_server.comparison_id
    compare = f"/compare?id={cid}"

    # the owner, signed in, makes a link from the compare page's Share panel
    sign_in_with_cookie(dash_br, auth_server)
    panel = open_share_panel(dash_br, base + compare)
    wait_for_text(owner, "#compare-share-list", "No live links")
    assert "Expires in 7 days" in owner.find_element(By.CSS_SELECTOR, "#compare-share-expiry").text
    link = create_link(dash_br, "colleague")
    assert link.startswith(f"{base}/s/pss_"), link
    secret = link.rsplit("/", 1)[1]
    wait_for_text(owner, "#compare-share-created", "shown only this once")
    listed = wait_for_text(owner, "#compare-share-list", "colleague")
    row = owner.find_element(By.CSS_SELECTOR, "#compare-share-list tbody tr").text
    opens = "the default view"  # what the link opens: the page was opened bare
    assert row.startswith(f"colleague /s/{secret[:10]}… {opens} token "), row
    assert f"({TOKEN_NAME})" in row, row
    assert "not yet" in row  # never opened
    assert secret not in listed  # only the prefix is listed
    settle(owner)
    assert severe(dash_br) == []
    owner.execute_script("arguments[0].scrollIntoView({block: 'start'})", panel)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert panel.screenshot(str(SCREENSHOTS / "compare-share-panel.png"))

    # the colleague, in a browser of their own, opens the link: that comparison, read-only
    jobs_before = job_count(auth_server)
    viewer.get(link)
    wait_for_url(viewer, "/compare", {"id": str(cid)})
    assert secret not in viewer.current_url
    viewer_br.wait_for_element("#compare-header", timeout=60)
    assert wait_for_text(viewer, "#nav-share-badge", "Shared") == "Shared comparison · read-only"
    brand = viewer.find_element(By.CSS_SELECTOR, ".navbar .brand")
    assert brand.get_attribute("href") == base + compare
    # the only links: the shared comparison's own pages (issue 18)
    links = [
        (a.text, a.get_attribute("href"))
        for a in viewer.find_elements(By.CSS_SELECTOR, ".navbar .nav-link")
    ]
    assert links == [
        ("Compare", base + compare),
        ("Overview", f"{base}/overview?id={cid}"),
        ("Similarity map", f"{base}/similarity?id={cid}"),
    ], links
    assert viewer.find_elements(By.CSS_SELECTOR, "#nav-user") == []
    assert viewer.find_elements(By.CSS_SELECTOR, "#compare-share") == []
    settle(viewer)
    # every view rendered (the lazy ones woke), and not one request of the page was refused
    awake = viewer.execute_script(
        "return Array.from(document.querySelectorAll('.lazy-view'))"
        ".map((el) => el.dataset.awake || '')"
    )
    assert awake and all(flag == "1" for flag in awake), awake
    assert severe(viewer_br) == []
    text = main_text(viewer)
    assert "Could not load" not in text and "Traceback" not in text, text
    assert viewer.find_elements(By.CSS_SELECTOR, "#compare-samples-gallery .sample-tile")
    viewer.execute_script("window.scrollTo(0, 0)")
    assert viewer.save_screenshot(str(SCREENSHOTS / "shared-view.png"))

    # controls that would submit a job are not offered; a note says why
    viewer.execute_script(
        "document.querySelector('#compare-regions-compute').scrollIntoView({block: 'center'})"
    )
    no_write_control(viewer, "#compare-regions-compute")
    tile = viewer.find_element(By.CSS_SELECTOR, "#compare-samples-gallery .sample-tile")
    viewer.execute_script("arguments[0].scrollIntoView({block: 'center'})", tile)
    tile.click()
    viewer_br.wait_for_element("#compare-samples-detail", timeout=30)
    settle(viewer)
    no_write_control(viewer, "#compare-samples-compute")
    assert job_count(auth_server) == jobs_before
    assert severe(viewer_br) == []

    # the secret stays in an http-only cookie that scripts cannot read
    cookie = viewer.get_cookie("prunescope_share")
    assert cookie is not None and cookie["value"] == secret
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert viewer.get_cookie("prunescope_token") is None
    assert secret not in viewer.execute_script("return document.cookie")

    # the API answers what belongs to the comparison and refuses the rest
    assert fetch_status(viewer, f"/api/comparisons/{cid}") == 200
    refused = {
        "/api/models": "GET",
        f"/api/comparisons/{cid}/shares": "GET",
        f"/api/comparisons/{cid + 1}": "GET",
        "/api/jobs": "GET",
        f"/api/comparisons/{cid}": "DELETE",
    }
    for path, method in refused.items():
        assert fetch_status(viewer, path, method) == 403, (method, path)
    session = fetch_json(viewer, "/api/session")
    assert session["kind"] == "share" and session["comparison_id"] == cid, session
    # the browser logs exactly the refusals of those fetches
    logged = sorted(e["message"].split(" - ")[0] for e in severe(viewer_br))
    assert logged == sorted(base + path for path in refused), logged

    # every other page sends the viewer back to the shared comparison
    for path in ("/", "/overview", "/similarity", "/new", f"/compare?id={cid + 1}", "/nowhere"):
        viewer.get(base + path)
        wait_for_url(viewer, "/compare", {"id": str(cid)})
    viewer_br.wait_for_element("#compare-header", timeout=60)
    settle(viewer)
    assert severe(viewer_br) == []

    # the owner sees that the link was opened, and revokes it: the list empties
    open_share_panel(dash_br, base + compare)
    row = wait_for_text(owner, "#compare-share-list tbody tr", "colleague")
    assert "not yet" not in row, row
    revoke = owner.find_element(By.CSS_SELECTOR, "#compare-share-list button.btn-danger")
    assert revoke.text == "Revoke" and '"index":' in str(revoke.get_attribute("id"))
    revoke.click()
    wait_for_text(owner, "#compare-share-list", "No live links")
    settle(owner)
    assert severe(dash_br) == []

    # the viewer's page, still open, is refused at its next callback and reloads itself
    # (frontend/assets/session.js): it now says the link is dead, and forgets it
    viewer.execute_script("window.scrollTo(0, 0)")
    viewer_br.select_dcc_dropdown("#compare-class-select", index=3)
    WebDriverWait(viewer, 30).until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, "h1")
            and d.find_element(By.CSS_SELECTOR, "h1").text == "This link does not open anything"
        )
    )
    assert path_and_query(viewer.current_url)[0] == "/compare"
    wait_for_text(viewer, ".notice-error", "This share link was revoked.")
    assert viewer.get_cookie("prunescope_share") is None
    assert fetch_status(viewer, f"/api/comparisons/{cid}") == 401

    # and the link itself no longer opens anything
    viewer.get(link)
    assert path_and_query(viewer.current_url)[0] == f"/s/{secret}"
    assert viewer.find_element(By.CSS_SELECTOR, "h1").text == "This link does not open anything"
    notice = viewer.find_element(By.CSS_SELECTOR, ".notice-error").text
    assert "This share link was revoked." in notice and "Ask whoever sent it" in notice
    logged = [e["message"] for e in severe(viewer_br)]
    assert any(m.startswith(f"{base}/s/{secret}") and "status of 404" in m for m in logged)


def test_share_link_opens_the_view_it_was_made_from_in_a_fresh_profile(
    dash_br, viewer_br, auth_server
):
    """Issue 18, bug 2: the link opened /compare?id=N bare. Made from a view with another B,
    a class, a selection, a colouring and an open sample, it must open exactly that view for
    someone else, who may then change it, and open the comparison's Overview and Similarity
    map read-only."""
    owner, viewer, base = dash_br.driver, viewer_br.driver, auth_server.url
    cid = auth_server.comparison_id
    import httpx

    headers = {"Authorization": f"Bearer {auth_server.token}"}
    comparison = httpx.get(f"{base}/api/comparisons/{cid}", headers=headers, timeout=30).json()
    b = comparison["model_b_ids"][-1]  # not the default B
    sign_in_with_cookie(dash_br, auth_server)
    start = f"/compare?id={cid}&b={b}&cls=2&sel=4-9&emb_color=d_margin"
    owner.get(base + start)
    tile = dash_br.wait_for_element("#compare-samples-gallery .sample-tile", timeout=60)
    owner.execute_script("arguments[0].scrollIntoView({block: 'center'})", tile)
    WebDriverWait(owner, 30).until(lambda d: _clicked(tile))
    WebDriverWait(owner, 30).until(lambda d: "smp=" in d.current_url)
    wanted = path_and_query(owner.current_url)[1]
    assert wanted["sel"] == ["4-9"] and wanted["b"] == [str(b)], wanted
    open_share_panel(dash_br, owner.current_url)
    link = create_link(dash_br, "the view")
    opens = wait_for_text(owner, "#compare-share-list", "the view")
    assert f"B = model {b}, class 2, 6 selected samples, sample #" in opens, opens

    # a fresh browser profile opens exactly that view
    viewer.get(link)
    expected = {k: v[0] for k, v in wanted.items()}
    wait_for_url(viewer, "/compare", expected)
    viewer_br.wait_for_element("#compare-samples-detail", timeout=60)
    b_name = httpx.get(f"{base}/api/models/{b}", headers=headers, timeout=30).json()["name"]
    wait_for_text(viewer, "#compare-header", b_name)
    wait_for_text(viewer, "#compare-class-select", "2")
    wait_for_text(viewer, "#compare-embedding-color", "Δmargin")
    wait_for_text(viewer, "#compare-embedding-status", "6 samples")
    settle(viewer)
    assert severe(viewer_br) == []
    viewer.execute_script("window.scrollTo(0, 0)")
    assert viewer.save_screenshot(str(SCREENSHOTS / "shared-view-with-state.png"))

    # the recipient may change it locally: the class follows
    choose(viewer_br, "#compare-class-select", index=4)
    wait_for_url(viewer, "/compare", {"id": str(cid), "cls": "3", "b": str(b)})

    # and open the Overview and the Similarity map of this comparison, read-only
    for text, path, ready in (
        ("Overview", "/overview", "#overview-table"),
        ("Similarity map", "/similarity", "#similarity-map .main-svg"),
    ):
        nav = viewer.find_elements(By.CSS_SELECTOR, ".navbar .nav-link")
        [a for a in nav if a.text == text][0].click()
        wait_for_url(viewer, path, {"id": str(cid)})
        viewer_br.wait_for_element(ready, timeout=60)
        settle(viewer)
        body = main_text(viewer)
        assert "Could not load" not in body and "not allowed" not in body.lower(), body
    assert severe(viewer_br) == []


def _clicked(element) -> bool:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import ElementClickInterceptedException

    try:
        element.click()
    except ElementClickInterceptedException:
        return False
    return True


def test_share_link_points_at_the_address_the_browser_uses(dash_br, live_server):
    """On a team server the dashboard reaches the API at an internal address (docker-compose:
    PRUNESCOPE_API_URL=http://127.0.0.1:8050/api), while people use another. Here the dashboard
    reaches the API at localhost and the browser uses 127.0.0.1: the link it shows must be one
    the browser (and so the colleague) can open, not the internal address."""
    token = new_token(live_server.data_dir)
    with serve(
        live_server.data_dir, "server-api-url.log", api_url="http://localhost:{port}/api"
    ) as url:
        server = AuthServer(url, live_server.pipeline.comparison_id, token, live_server.data_dir)
        sign_in_with_cookie(dash_br, server)
        open_share_panel(dash_br, f"{url}/compare?id={server.comparison_id}")
        link = create_link(dash_br, "remote colleague")
        assert link.startswith(f"{url}/s/pss_"), link

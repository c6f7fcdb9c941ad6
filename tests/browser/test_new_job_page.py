"""The new-job page in a real headless Chromium against a real `prunescope serve`: search the
architecture picker for a timm model and pick it, fill in the train form (a bad field first),
submit it and follow the job to the trained model, then submit an analysis under a corruption
and follow it to its comparison."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from frontend.pages import new_job
from frontend.pages.new_job import analyze, common, train

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
FINAL = ("succeeded", "failed", "cancelled")


def open_page(dash_br, base: str, path: str) -> None:
    dash_br.server_url = base
    dash_br.driver.get(base + path)


def type_into(dash_br, selector: str, text: str) -> None:
    """Replace an input's text the way a user does, then leave the field."""
    field = dash_br.find_element(selector)
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(text)
    field.send_keys(Keys.TAB)


def js_text(driver, element_id: str) -> str:
    """An element's text read in one step (the poll re-renders the panel every second)."""
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : '';",
        element_id,
    )


def field_message(driver, kind: str, field: str) -> str:
    """The text of the message slot of ``field`` (its id is a pattern-matching dict)."""
    return driver.execute_script(
        "for (const e of document.querySelectorAll('.field-error')) {"
        "  if (e.id.includes(arguments[0]) && e.id.includes('\"' + arguments[1] + '\"'))"
        "    return e.innerText; }"
        "return null;",
        kind,
        field,
    )


def submit_disabled(driver, button_id: str) -> bool:
    return bool(
        driver.execute_script("return document.getElementById(arguments[0]).disabled", button_id)
    )


def wait_final(dash_br, timeout: float) -> str:
    WebDriverWait(dash_br.driver, timeout, poll_frequency=0.5).until(
        lambda d: js_text(d, new_job.FOLLOW.ids.status) in FINAL
    )
    return js_text(dash_br.driver, new_job.FOLLOW.ids.status)


def shown_options(driver) -> list[str]:
    """The names the open picker shows (the text of a note as a whole)."""
    return [
        o.text.split(" · ")[0]
        for o in driver.find_elements(
            "css selector", ".dash-dropdown-content .dash-dropdown-option"
        )
    ]


def search_architecture(
    dash_br, picker_id: str, typed: str, name: str, open_menu: bool = True
) -> Any:
    """Open the picker, type ``typed`` into its search box as a user does, and return the
    option of ``name`` once the server's matches show it (the menu is left open)."""
    driver = dash_br.driver
    if open_menu:
        dash_br.find_element(f"#{picker_id}").click()
    if typed:
        search = dash_br.wait_for_element(".dash-dropdown-content .dash-dropdown-search", 10)
        search.send_keys(typed)

    def option(d: Any) -> Any:
        for element in d.find_elements(
            "css selector", ".dash-dropdown-content .dash-dropdown-option"
        ):
            if element.text.split(" · ")[0] == name:
                return element
        return False

    return WebDriverWait(driver, 30).until(option)


def screenshot(dash_br, name: str, max_height: int = 2400) -> None:
    """The whole page (up to ``max_height`` px) into docs/screenshots/<name>."""
    driver = dash_br.driver
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(int(height) + 140, 900), max_height))
    time.sleep(0.5)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / name))
    driver.set_window_size(size["width"], size["height"])


def test_train_then_analyze_from_the_new_job_page(dash_br, live_server):
    p = live_server.pipeline
    driver = dash_br.driver
    # the registry's first use imports timm and torchvision (seconds on a busy machine): let
    # the server do it before the page asks, as a user who types finds it done
    httpx.get(f"{live_server.url}/api/architectures", params={"q": "resnet"}, timeout=180)
    open_page(dash_br, live_server.url, f"/new?kind=train&dataset={p.dataset_id}")
    dash_br.wait_for_element(f"#{train.ID_TRAIN_ARCH}", timeout=30)
    # digits are 8×8 images: the digits CNN is preselected, the dataset's sizes are shown
    assert "digits_cnn" in dash_br.find_element(f"#{train.ID_TRAIN_ARCH}").text
    assert "train /" in dash_br.find_element(f"#{train.ID_TRAIN_DATASET}").text
    tabs = dash_br.find_element(f"#{common.ID_KIND_TABS}")
    assert [a.text for a in tabs.find_elements("css selector", "a")] == [
        "Train",
        "Prune",
        "Sweep",
        "Analyze",
    ]

    # the picker offers the built-ins; typing asks the server, which finds timm's and
    # torchvision's models among ~1,450 names
    picker = dash_br.find_element(f"#{train.ID_TRAIN_ARCH}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", picker)
    driver.execute_script("window.scrollBy(0, -80)")
    option = search_architecture(dash_br, train.ID_TRAIN_ARCH, "resnet", "timm/resnet18")
    assert option.text == "timm/resnet18 · timm"
    shown = shown_options(driver)
    assert "resnet20" in shown and "torchvision/resnet18" in shown
    # the first 50 of the matches, then how many more there are
    assert len(shown) == 51 and all("resnet" in n for n in shown[:-1])
    assert "more match 'resnet'" in shown[-1]
    # every word typed must occur in the name
    search = dash_br.find_element(".dash-dropdown-content .dash-dropdown-search")
    search.send_keys(" 18")
    WebDriverWait(driver, 30).until(
        lambda d: (
            shown_options(d)[:3]
            == ["torchvision/resnet18", "timm/legacy_seresnet18", "timm/resnet18"]
        )
    )
    assert all("resnet" in n and "18" in n for n in shown_options(driver))
    time.sleep(0.3)  # the menu's last layout pass
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / "architecture-picker.png"))
    search_architecture(dash_br, train.ID_TRAIN_ARCH, "", "timm/resnet18", open_menu=False).click()
    WebDriverWait(driver, 20).until(lambda d: "architecture=timm%2Fresnet18" in d.current_url)
    WebDriverWait(driver, 20).until(
        lambda d: "Constructs a ResNet-18 model." in js_text(d, train.ARCH_PICKER.about)
    )
    assert "timm/resnet18" in dash_br.find_element(f"#{train.ID_TRAIN_ARCH}").text
    # its arguments: those the dataset sets are blank, and the form is valid as it is
    WebDriverWait(driver, 20).until(lambda d: "in_chans" in js_text(d, train.ID_TRAIN_KWARGS))
    WebDriverWait(driver, 20).until(lambda d: not submit_disabled(d, train.FORM.submit))

    # switch to the MLP: its arguments editor follows, and the choice goes into the URL
    dash_br.select_dcc_dropdown(f"#{train.ID_TRAIN_ARCH}", value="mlp · builtin")
    WebDriverWait(driver, 20).until(lambda d: "architecture=mlp" in d.current_url)
    WebDriverWait(driver, 20).until(
        lambda d: "Fully connected" in js_text(d, train.ARCH_PICKER.about)
    )
    WebDriverWait(driver, 20).until(lambda d: "hidden" in js_text(d, train.ID_TRAIN_KWARGS))
    query = parse_qs(urlparse(driver.current_url).query)
    assert query["kind"] == ["train"] and query["dataset"] == [str(p.dataset_id)]

    # a bad field is named with the server's rule (its dry run, asked as the user types) and
    # the submit button is disabled until it is fixed
    type_into(dash_br, f"#{train.TRAIN_INPUTS['epochs']}", "-1")
    WebDriverWait(driver, 20).until(
        lambda d: (
            "greater than or equal to 0"
            in (field_message(d, train.FORM.error_type, "epochs") or "")
        )
    )
    assert submit_disabled(driver, train.FORM.submit)
    type_into(dash_br, f"#{train.TRAIN_INPUTS['epochs']}", "1")
    type_into(dash_br, f"#{train.TRAIN_INPUTS['name']}", "browser <b>mlp</b>")
    WebDriverWait(driver, 20).until(lambda d: not submit_disabled(d, train.FORM.submit))
    assert field_message(driver, train.FORM.error_type, "epochs") == ""
    # what will run: the server's normalised spec, its defaults filled in, the name as typed
    plan = train.FORM.plan
    WebDriverWait(driver, 20).until(lambda d: "name browser <b>mlp</b>" in js_text(d, plan))
    assert "epochs 1 · " in js_text(driver, plan) and "batch_size 64" in js_text(driver, plan)

    # no job followed yet: its section does not show
    assert not dash_br.find_element(f"#{new_job.FOLLOW.ids.panel}").is_displayed()
    dash_br.find_element(f"#{train.FORM.submit}").click()
    dash_br.wait_for_element(f"#{new_job.FOLLOW.ids.status}", timeout=30)
    status = wait_final(dash_br, 180)
    assert status == "succeeded", js_text(driver, new_job.FOLLOW.ids.progress)
    assert "job=" in driver.current_url
    link = dash_br.wait_for_element(f"#{common.ID_RESULT_LINK}", timeout=10)
    href = link.get_attribute("href")
    assert "/prune?model=" in href
    model_id = int(parse_qs(urlparse(href).query)["model"][0])
    # the name was sent as typed and is shown as text
    with httpx.Client(base_url=live_server.url, timeout=10) as api:
        model = api.get(f"/api/models/{model_id}").json()
    assert model["name"] == "browser <b>mlp</b>" and model["architecture"] == "mlp"
    assert "browser <b>mlp</b>" in js_text(driver, f"{common.ID_RESULT}-model")
    assert dash_br.get_logs() == [], dash_br.get_logs()
    screenshot(dash_br, "new-job.png")

    # analyse the pipeline's original under one corruption; it is model A of a comparison
    open_page(dash_br, live_server.url, f"/new?kind=analyze&model={p.original_id}")
    dash_br.wait_for_element(f"#{analyze.ID_ANALYZE_CORRUPTIONS}", timeout=30)
    assert f"#{p.original_id} " in dash_br.find_element(f"#{analyze.ID_ANALYZE_MODEL}").text
    dash_br.select_dcc_dropdown(f"#{analyze.ID_ANALYZE_CORRUPTIONS}", value="gaussian noise")
    WebDriverWait(driver, 20).until(
        lambda d: "gaussian noise" in js_text(d, analyze.ID_ANALYZE_CORRUPTIONS)
    )
    driver.find_element("css selector", "body").send_keys(Keys.ESCAPE)  # close the menu
    # severities 1, 2 only: untick 3, 4 and 5
    boxes = driver.find_elements(
        "css selector", f"#{analyze.ANALYZE_INPUTS['severities']} input[type=checkbox]"
    )
    for box in boxes[2:]:
        box.click()
    WebDriverWait(driver, 20).until(lambda d: not submit_disabled(d, analyze.FORM.submit))
    dash_br.find_element(f"#{analyze.FORM.submit}").click()
    dash_br.wait_for_element(f"#{new_job.FOLLOW.ids.status}", timeout=30)
    status = wait_final(dash_br, 240)
    assert status == "succeeded", js_text(driver, new_job.FOLLOW.ids.progress)
    panel = js_text(driver, new_job.FOLLOW.ids.progress)
    assert "1 corruption × 2 severities" in panel
    link = dash_br.wait_for_element(f"#{common.ID_RESULT_LINK}", timeout=10)
    assert f"/compare?id={p.comparison_id}" in link.get_attribute("href")
    with httpx.Client(base_url=live_server.url, timeout=10) as api:
        job_id = int(parse_qs(urlparse(driver.current_url).query)["job"][0])
        spec = api.get(f"/api/jobs/{job_id}").json()["spec"]
    assert spec["model_id"] == p.original_id
    assert spec["corruptions"] == ["gaussian_noise"] and spec["severities"] == [1, 2]
    screenshot(dash_br, "new-job-analyze.png")
    assert dash_br.get_logs() == [], dash_br.get_logs()


def test_the_kind_strip_joins_the_prune_page(dash_br, live_server, tmp_path):
    from frontend.pages import prune

    p = live_server.pipeline
    driver = dash_br.driver
    open_page(dash_br, live_server.url, f"/new?kind=analyze&model={p.original_id}")
    dash_br.wait_for_element(f"#{analyze.ID_ANALYZE_MODEL}", timeout=30)
    # the Sweep tab opens the prune page with the Sweep box ticked, for the same model
    dash_br.find_element("#job-tab-sweep").click()
    dash_br.wait_for_element(f"#{prune.FORM_INPUTS['sweep_sparsities']}", timeout=30)
    WebDriverWait(driver, 20).until(
        lambda d: d.find_element("css selector", f"#{prune.ID_SWEEP_FIELDS}").is_displayed()
    )
    assert "kind=sweep" in driver.current_url and f"model={p.original_id}" in driver.current_url
    box = driver.find_element("css selector", f"#{prune.ID_SWEEP} input[type=checkbox]")
    assert box.is_selected()
    active = "#job-tab-sweep.job-tab-active"
    assert dash_br.find_element(active).text == "Sweep"
    assert dash_br.find_element(f"#{prune.ID_SUBMIT}").text == "Run sweep"
    driver.set_window_size(1400, 1000)
    assert driver.save_screenshot(str(tmp_path / "prune-sweep.png"))

    # unticking it is plain pruning: the strip and the URL follow
    box.click()
    WebDriverWait(driver, 20).until(lambda d: "kind=sweep" not in d.current_url)
    dash_br.wait_for_element("#job-tab-prune.job-tab-active", timeout=10)
    assert f"model={p.original_id}" in driver.current_url
    box.click()
    WebDriverWait(driver, 20).until(lambda d: "kind=sweep" in d.current_url)
    dash_br.wait_for_element(active, timeout=10)

    # and the Train tab leads back here
    dash_br.find_element("#job-tab-train").click()
    dash_br.wait_for_element(f"#{train.FORM.submit}", timeout=30)
    assert urlparse(driver.current_url).path == "/new"
    assert dash_br.get_logs() == [], dash_br.get_logs()

"""Deleting from the home page in a real headless Chromium, on a real `prunescope serve` over a
data folder of its own (the shared `live_server` keeps its pipeline for the other tests).

A comparison is deleted after its confirmation dialog (dcc.ConfirmDialog, the browser's own
confirm) says what goes, its share link with it; dismissing the dialog deletes nothing. Then the
original model, which a pruned model still comes from, is refused: the page shows the server's
sentence and "Delete with everything that uses it", which asks again, saying what the cascade
deletes, and then deletes it; the pruned model stays, as an original."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from backend.api.app import create_app
from backend.config import Settings
from backend.jobs.executor import InlineExecutor
from frontend.pages import home
from tests.browser.pageload import settle
from tests.conftest import Pipeline, build_pipeline, free_port, served

TIMEOUT_S = 30


@dataclass
class Server:
    url: str
    pipeline: Pipeline
    share_token: str
    data_dir: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`prunescope serve` over a pipeline of its own (digits_cnn, one pruned child, their
    comparison with a share link): these tests delete it."""
    data_dir = tmp_path_factory.mktemp("delete") / "data"
    settings = Settings(data_dir=data_dir, port=free_port(), warm_embeddings=False)
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(app) as c:
        pipeline = build_pipeline(c, epochs=1, sparsities=(0.5,))
        share = c.post(f"/api/comparisons/{pipeline.comparison_id}/shares", json={})
        assert share.status_code == 201, share.text
    with served(data_dir, "server-delete.log") as url:
        yield Server(url, pipeline, share.json()["token"], data_dir)


def delete_button(driver, kind: str, ident: int):  # type: ignore[no-untyped-def]
    """The row's "Delete" button (Dash writes a dict id as JSON with sorted keys)."""
    wanted = json.dumps(
        {"index": ident, "kind": kind, "type": home.DELETE_TYPE}, separators=(",", ":")
    )
    return WebDriverWait(driver, TIMEOUT_S).until(
        expected_conditions.element_to_be_clickable((By.XPATH, f"//button[@id='{wanted}']"))
    )


def confirm_dialog(driver) -> str:  # type: ignore[no-untyped-def]
    """Wait for the confirmation dialog; its text."""
    WebDriverWait(driver, TIMEOUT_S).until(expected_conditions.alert_is_present())
    return str(driver.switch_to.alert.text)


def text_of(driver, element_id: str) -> str:  # type: ignore[no-untyped-def]
    return str(
        driver.execute_script(
            "const e = document.getElementById(arguments[0]); return e ? e.innerText : '';",
            element_id,
        )
    )


def wait_text(driver, element_id: str, words: str) -> str:  # type: ignore[no-untyped-def]
    found = ""

    def has(d) -> bool:  # type: ignore[no-untyped-def]
        nonlocal found
        found = text_of(d, element_id)
        return words in found

    try:
        WebDriverWait(driver, TIMEOUT_S).until(has)
    except Exception as exc:
        raise AssertionError(f"{words!r} not in #{element_id}: {found!r}") from exc
    return found


def test_delete_a_comparison_then_a_model_with_the_cascade_offer(dash_br, server):  # type: ignore[no-untyped-def]
    p = server.pipeline
    driver = dash_br.driver
    dash_br.server_url = server.url
    driver.get(server.url + "/")
    settle(driver)

    # the comparison: its dialog says what goes; dismissing it deletes nothing
    delete_button(driver, "comparison", p.comparison_id).click()
    question = confirm_dialog(driver)
    assert question.startswith(f"Delete comparison #{p.comparison_id}?")
    assert "This deletes comparison" in question and "1 share link" in question
    driver.switch_to.alert.dismiss()
    with httpx.Client(base_url=server.url, timeout=10) as api:
        assert api.get(f"/api/comparisons/{p.comparison_id}").status_code == 200
    delete_button(driver, "comparison", p.comparison_id).click()
    confirm_dialog(driver)
    driver.switch_to.alert.accept()
    wait_text(driver, home.ID_DELETE_NOTICE, f"Deleted comparison #{p.comparison_id}")
    wait_text(driver, home.ID_COMPARISONS, "No comparisons yet")

    # the original: a pruned model comes from it, so the server refuses, and the page offers
    # the cascade; no dialog before that
    delete_button(driver, "model", p.original_id).click()
    refusal = wait_text(
        driver, home.ID_DELETE_REFUSAL, f"is the original of model {p.pruned_ids[0]}"
    )
    assert "With everything that uses it: Would delete model" in refusal
    assert not expected_conditions.alert_is_present()(driver)
    driver.find_element(By.ID, home.ID_DELETE_CASCADE).click()
    question = confirm_dialog(driver)
    assert question.startswith(f"Delete model #{p.original_id} with everything that uses it?")
    assert "stays, as an original" in question
    driver.switch_to.alert.accept()
    wait_text(driver, home.ID_DELETE_NOTICE, f"Deleted model #{p.original_id}")
    assert not driver.find_element(By.ID, home.ID_DELETE_REFUSAL).is_displayed()

    models = wait_text(driver, home.ID_MODELS, "global_magnitude 50%")
    assert "↳" not in models  # the pruned model heads its own lineage now
    assert "digits_cnn on digits\t" not in models  # the original's row is gone
    with httpx.Client(base_url=server.url, timeout=10) as api:
        left = api.get("/api/models").json()["data"]
        assert [(m["id"], m["parent_id"]) for m in left] == [(p.pruned_ids[0], None)]
        assert api.get("/api/comparisons").json()["count"] == 0

    assert not [e for e in dash_br.get_logs() if e.get("level") == "SEVERE"]

    # the share link died with its comparison: the dead-link page (a 404), not the comparison
    driver.get(f"{server.url}/s/{server.share_token}")
    body = WebDriverWait(driver, TIMEOUT_S).until(
        lambda d: d.find_element(By.TAG_NAME, "body").text
    )
    assert "share link" in body.lower() and "not valid" in body.lower()

"""An upload past the import memory limit, tried in a real headless Chromium (issue 19): the
upload page shows the import job's refusal with both numbers and no server path, the bytes are
gone from the artifact store, and a uint8 upload under the limit is registered."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from selenium.webdriver.support.ui import WebDriverWait

from frontend.pages import upload
from tests.browser.test_upload_page import choose_file, open_upload_page, wait_for_verdict
from tests.conftest import served

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LIMIT = 32 * 2**20


def test_an_upload_past_the_memory_limit_is_refused_with_both_numbers(dash_br, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    big = tmp_path / "too-big.npz"
    n = 40 * 1024  # 40 MiB of uint8 32x32 images, over the 32 MiB limit
    np.savez(big, X=np.zeros((n, 1, 32, 32), np.uint8), y=np.arange(n) % 10)
    small = tmp_path / "small-uint8.npz"
    rng = np.random.default_rng(0)
    np.savez(small, X=rng.integers(0, 256, (600, 1, 8, 8), dtype=np.uint8), y=np.arange(600) % 3)
    with served(data, max_import_memory=str(LIMIT)) as url, httpx.Client(base_url=url) as api:
        open_upload_page(dash_br, url)
        choose_file(dash_br, "dataset", big)
        dash_br.find_element(f"#{upload.ID_DATASET_SUBMIT}").click()
        wait_for_verdict(dash_br, "dataset")
        error = dash_br.find_element(f"#{upload.ID_DATASET_ERROR}").text
        assert "needs about" in error and "limit of 32.0 MiB" in error, error
        assert "PRUNESCOPE_MAX_IMPORT_MEMORY" in error and "too-big.npz" in error
        assert str(data) not in error and str(tmp_path) not in error
        box = dash_br.find_element(f"#{upload.ID_DATASET_ERROR}")
        dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
        dash_br.driver.save_screenshot(str(SCREENSHOTS / "upload-memory-limit.png"))
        # the refused bytes were deleted: the store holds no file of that size
        artifacts = [p for p in (data / "artifacts").rglob("*") if p.is_file()]
        assert all(p.stat().st_size < big.stat().st_size for p in artifacts)

        choose_file(dash_br, "dataset", small)
        dash_br.find_element(f"#{upload.ID_DATASET_SUBMIT}").click()
        # the earlier refusal is replaced by this upload's verdict (a small upload under a
        # small limit: the import's fixed working memory once counted 32 MiB and refused it)
        WebDriverWait(dash_br.driver, 120, poll_frequency=0.5).until(
            lambda d: d.find_elements("id", upload.ID_DATASET_SUCCESS)
        )
        assert not dash_br.find_elements(f"#{upload.ID_DATASET_ERROR}")
        registered = {d["name"]: d for d in api.get("/api/datasets").json()["data"]}
        dataset = registered[small.name]
        assert dataset["params"]["summary"]["dtype_in"] == "uint8"
        assert dataset["n_train"] + dataset["n_test"] == 600
        assert dash_br.get_logs() == [], dash_br.get_logs()

"""Issue 18 figures: the Experiments page with 2,000 models in a real headless Chromium.

Data: the compare page's benchmark data (bench_compare_page.build_data: a trained and a
pruned ``mlp`` on 10,000 blobs test samples, compared) plus 1,998 generated model rows
(tests/experiment_rows.py: originals and pruned lineages with jobs, test-split analyses with
per-class recall and corruption accuracies, compression reports of a ResNet-20's size), 2,000
models in all, written straight into the database; then ``python -m backend.cli serve`` on
that data folder, driven by Debian's chromium through selenium (helpers of
bench_compare_page.py).

- ``experiments_page_interactive``: seconds from ``driver.get(/experiments)`` until the table
  shows its first page and the scatter holds every drawable model (``_fullData`` of its
  marker traces), median of a cold first load and two reloads. Baseline: the compare page's
  interactive time (bench_compare_page.time_load, median of three loads) measured on the same
  server in the same run; the target is 1.5 s.
- ``experiments_filter_p95``: milliseconds, p95 over 20 filter changes (method, dataset,
  architecture, sparsity range, text; each set as a user's change would set it, through
  ``dash_clientside.set_props``), from the change until the table shows the new first page
  (its count line and first model's name, requestAnimationFrame-polled), each from a settled
  page. Baseline: the same 20-change procedure on a workspace of 20 models (served the same
  way, same browser); the target is 200 ms.

Run: ``.venv/bin/python bench/bench_experiments.py`` (a few minutes: most of it builds the
compare page's data).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from _common import bench_line  # noqa: E402
from bench_compare_page import (  # noqa: E402
    build_data,
    chromium,
    serve,
    time_load,
    wait_quiet,
)

from frontend.pages import experiments as page  # noqa: E402
from tests.experiment_rows import insert_experiments  # noqa: E402

N_MODELS = 2000
N_BASELINE_MODELS = 20
N_LOADS = 3
N_CHANGES = 20
PAGE_SIZE = page.PAGE_SIZES[0]

JS_DRAWN = """
const g = document.querySelector('#experiments-scatter .js-plotly-plot');
const rows = document.querySelectorAll('#experiments-table td[data-dash-column="name"]').length;
if (!g || !g._fullData) { return [rows, 0]; }
return [rows, g._fullData.filter((t) => t.meta === 'points')
    .reduce((n, t) => n + (t.x ? t.x.length : 0), 0)];
"""
# set one control's value as a user's change does; resolves with the ms until the table shows
# the expected count line and first model (-1 after 20 s)
JS_CHANGE = """
const [id, props, status, first, done] = arguments;
const shown = () => {
    const s = document.getElementById('experiments-status');
    const cell = document.querySelector('#experiments-table td[data-dash-column="name"]');
    const name = cell ? cell.textContent : null;
    return s && s.textContent === status && name === first;
};
const t0 = performance.now();
window.dash_clientside.set_props(id, props);
const poll = () => {
    if (shown()) { done(performance.now() - t0); return; }
    if (performance.now() - t0 > 20000) { done(-1); return; }
    requestAnimationFrame(poll);
};
requestAnimationFrame(poll);
"""


def database_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir}/prunescope.db"


def expected(api: str, filters: dict[str, Any]) -> tuple[str, str | None]:
    """The count line and the first model's name the table shows for ``filters``."""
    params = {k: v for k, v in filters.items() if v not in (None, [], "")}
    params |= {"limit": PAGE_SIZE, "offset": 0}
    page_ = httpx.get(f"{api}/api/experiments", params=params, timeout=60).json()
    count = int(page_["count"])
    first = page_["data"][0]["name"] if page_["data"] else None
    return page.status_text(count, 0, max(1, -(-count // PAGE_SIZE))), first


def changes(api: str, n: int) -> list[tuple[str, dict[str, Any], tuple[str, str | None]]]:
    """``n`` filter changes, one control each, each showing a table that differs from the one
    before (so that the wait for it cannot be met by the previous table)."""
    facets = httpx.get(f"{api}/api/experiments/facets", timeout=60).json()
    methods = [f["value"] for f in facets["methods"]]
    datasets = [f["value"] for f in facets["datasets"]]
    architectures = [f["value"] for f in facets["architectures"]]
    candidates: list[tuple[str, str, Any]] = []
    for k in range(4 * n):
        candidates += [
            (page.ID_METHOD, "method", [methods[k % len(methods)]]),
            (page.ID_SPARSITY, "sparsity", [0.1 * (k % 5), 0.5 + 0.1 * (k % 5)]),
            (page.ID_DATASET, "dataset", [datasets[k % len(datasets)]]),
            (page.ID_ARCH, "architecture", [architectures[k % len(architectures)]]),
            (page.ID_TEXT, "q", ["", "on", "magnitude", "random", "resnet", "#1"][k % 6]),
            (page.ID_METHOD, "method", []),
            (page.ID_DATASET, "dataset", []),
            (page.ID_ARCH, "architecture", []),
        ]
    state: dict[str, Any] = {
        "method": [],
        "dataset": [],
        "architecture": [],
        "sparsity": [0.0, 1.0],
        "q": "",
    }
    previous = expected(api, {})
    out = []
    for component, key, value in candidates:
        if len(out) == n:
            break
        trial = {**state, key: value}
        low, high = trial["sparsity"]
        filters = {
            "method": trial["method"],
            "dataset": trial["dataset"],
            "architecture": trial["architecture"],
            "sparsity_min": low if low > 0 else None,
            "sparsity_max": high if high < 1 else None,
            "q": trial["q"] or None,
        }
        shows = expected(api, filters)
        if shows == previous or shows[1] is None:
            continue  # the same table, or an empty one: not a change the wait can see
        state, previous = trial, shows
        out.append((component, {"value": value}, shows))
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} distinguishable filter changes on {api}")
    return out


def time_loads(driver, url: str, n_points: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds from navigation until the table's first page and every scatter point are in."""
    loads = []
    for _ in range(N_LOADS):
        t0 = time.perf_counter()
        driver.get(url)
        while True:
            rows, points = driver.execute_script(JS_DRAWN)
            if rows > 0 and points == n_points:
                loads.append(time.perf_counter() - t0)
                break
            if time.perf_counter() - t0 > 60:
                raise TimeoutError(f"the page did not draw within 60 s: {rows}, {points}")
            time.sleep(0.01)
        wait_quiet(driver)
    return loads


def time_changes(driver, api: str) -> list[float]:  # type: ignore[no-untyped-def]
    """Milliseconds from each filter change until the table shows its answer."""
    driver.get(f"{api}/experiments")
    driver.execute_script("return 1")
    deadline = time.perf_counter() + 60
    while driver.execute_script(JS_DRAWN)[0] == 0:
        if time.perf_counter() > deadline:
            raise TimeoutError("the experiments table did not appear")
        time.sleep(0.05)
    wait_quiet(driver, quiet_s=1.0)
    driver.set_script_timeout(30)
    times = []
    for component, props, (status, first) in changes(api, N_CHANGES):
        ms = driver.execute_async_script(JS_CHANGE, component, props, status, first)
        if ms < 0:
            raise TimeoutError(f"{component} = {props}: the table did not show {status!r}")
        times.append(float(ms))
        wait_quiet(driver, quiet_s=0.5)  # the scatter follows; the next change starts settled
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    if severe:
        raise RuntimeError(f"browser console errors: {severe}")
    return times


def drawable(api: str) -> int:
    """How many models the default scatter (accuracy against sparsity) draws."""
    rows, offset = [], 0
    while True:
        got = httpx.get(
            f"{api}/api/experiments", params={"limit": 10_000, "offset": offset}, timeout=60
        ).json()
        rows += got["data"]
        offset += len(got["data"])
        if not got["data"] or offset >= got["count"]:
            break
    return sum(1 for r in rows if r["accuracy"] is not None)


def main() -> None:
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="prunescope-bench-experiments-") as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        comparison_id = build_data(big)
        insert_experiments(database_url(big), N_MODELS - 2)
        insert_experiments(database_url(small), N_BASELINE_MODELS)
        t_built = time.perf_counter()
        driver = chromium()
        try:
            with serve(big) as url:
                total = httpx.get(f"{url}/api/experiments?limit=1", timeout=60).json()["count"]
                assert total == N_MODELS, total
                compare = [
                    time_load(driver, f"{url}/compare?id={comparison_id}", 10_000)
                    for _ in range(N_LOADS)
                ]
                wait_quiet(driver)
                loads = time_loads(driver, f"{url}/experiments", drawable(url))
                filtered = time_changes(driver, url)
            with serve(small) as url:
                baseline = time_changes(driver, url)
        finally:
            driver.quit()
    print(
        f"experiments page loads (s, first cold): {', '.join(f'{t:.2f}' for t in loads)}; "
        f"compare page loads: {', '.join(f'{t:.2f}' for t in compare)}; filter changes "
        f"(ms) with {N_MODELS} models: median {statistics.median(filtered):.0f}, max "
        f"{max(filtered):.0f}; with {N_BASELINE_MODELS}: median "
        f"{statistics.median(baseline):.0f}, p95 {np.percentile(baseline, 95):.0f}; data built "
        f"in {t_built - t_start:.0f} s, total {time.perf_counter() - t_start:.0f} s",
        file=sys.stderr,
    )
    compare_s = statistics.median(compare)
    bench_line(
        "experiments_page_interactive",
        statistics.median(loads),
        "s",
        compare_s,
        f"compare_page_interactive_same_run({compare_s:.2f}s),target_1.5s",
    )
    p95, base = float(np.percentile(filtered, 95)), float(np.percentile(baseline, 95))
    bench_line(
        "experiments_filter_p95",
        p95,
        "ms",
        base,
        f"same_20_changes_with_{N_BASELINE_MODELS}_models({base:.0f}ms),target_200ms",
    )


if __name__ == "__main__":
    main()

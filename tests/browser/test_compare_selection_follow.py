"""Issue 18, bug 3, in a real headless Chromium: after a box selection in embedding A, Local
geometry follows the selection to the class most selected samples belong to (instead of
greying out its own class), a later explicit class choice wins until the selection changes,
and no status line names an internal component id ("selected in embedding-a")."""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import parse_qs, urlparse

from selenium.webdriver.support.ui import WebDriverWait

from frontend.client import ApiClient
from frontend.views import decode_ids
from frontend.views.geometry import default_class
from tests.browser.test_compare_embedding import open_page, wait_drawn, wait_idle
from tests.browser.test_compare_geometry import figure, severe, wait_for_figure
from tests.browser.test_compare_switching import choose

LOCAL = "#compare-geometry-local"
NOTE = "compare-geometry-local-note"
GREYED = "none of the selected samples is in this class"
# an internal component or store id, as a status line must never show it
INTERNAL_ID = re.compile(r"\b(?:compare-[a-z][a-z-]*|embedding-[ab])\b")

# every point of a graph's first trace: its dataset index and its position in pixels from the
# top left of the plot area (what a drag over ``.nsewdrag`` is measured from)
JS_POINTS = """
const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
const t = gd._fullData[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
return {
    ids: Array.from(gd.data[0].customdata).map(Number),
    px: Array.from(t.x).map((v) => xa.l2p(v)),
    py: Array.from(t.y).map((v) => ya.l2p(v)),
    width: r.width,
    height: r.height,
};
"""
# a mouse drag from (x0, y0) to (x1, y1), in pixels of the plot area, as plotly receives it
JS_DRAG = """
const [selector, x0, y0, x1, y1] = arguments;
const drag = document.querySelector(selector + ' .nsewdrag');
drag.scrollIntoView({block: 'center'});
const r = drag.getBoundingClientRect();
const at = (x, y, buttons) => ({
    clientX: r.left + x, clientY: r.top + y, buttons: buttons, button: 0, bubbles: true,
    cancelable: true, view: window,
});
drag.dispatchEvent(new MouseEvent('mousedown', at(x0, y0, 1)));
for (let i = 1; i <= 8; i++) {
    document.dispatchEvent(
        new MouseEvent('mousemove', at(x0 + i * (x1 - x0) / 8, y0 + i * (y1 - y0) / 8, 1))
    );
}
document.dispatchEvent(new MouseEvent('mouseup', at(x1, y1, 0)));
"""
JS_STATUS_LINES = """
return Array.from(document.querySelectorAll('p, span, div'))
    .filter((el) => el.children.length === 0 && el.offsetParent !== null)
    .map((el) => el.innerText.trim())
    .filter((text) => /selected/i.test(text));
"""


def pick_box(points: dict, label_of: dict[int, int], avoid: int) -> tuple[float, ...]:
    """A box (x0, y0, x1, y1 in plot pixels) around a dense group of one class's points that
    holds none of class ``avoid`` (the class Local geometry shows first), at least 8 points."""
    pts = [
        (x, y, label_of[i])
        for i, x, y in zip(points["ids"], points["px"], points["py"], strict=True)
        if i in label_of
    ]
    best: tuple[float, tuple[float, ...]] | None = None
    for cls in sorted({c for _x, _y, c in pts} - {avoid}):
        own = sorted(p for p in pts if p[2] == cls)
        cx = sorted(x for x, _y, _c in own)[len(own) // 2]
        cy = sorted(y for _x, y, _c in own)[len(own) // 2]
        for half in range(10, 60, 2):
            box = (cx - half, cy - half, cx + half, cy + half)
            inside = [c for x, y, c in pts if box[0] < x < box[2] and box[1] < y < box[3]]
            if avoid in inside:
                break
            if len(inside) >= 8:
                purity = inside.count(cls) / len(inside)
                if best is None or purity > best[0]:
                    best = (purity, box)
                break
    assert best is not None, "no group of points without the class shown first"
    x0, y0, x1, y1 = best[1]
    w, h = points["width"], points["height"]
    return max(x0, 2), max(y0, 2), min(x1, w - 2), min(y1, h - 2)


def local_title(dash_br) -> str:
    fig = figure(dash_br, LOCAL)
    return fig["title"] if fig else ""


def note(dash_br) -> str:
    return dash_br.find_element(f"#{NOTE}").text


def test_local_geometry_follows_a_box_selection_in_embedding_a(dash_br, live_server):
    p = live_server.pipeline
    api = ApiClient(live_server.url)
    view = api.get_comparison_view(p.comparison_id)
    names = [str(c) for c in view["dataset"]["class_names"]]
    an_a, an_b = view["analysis_a"], view["analysis_b"]
    first = default_class(None, an_a["recall"], an_b["recall"], len(names))
    table = api.get_analysis_table_columns(an_a["id"], columns=["index", "label"])
    label_of = dict(zip(table["index"], table["label"], strict=True))

    open_page(dash_br, f"{live_server.url}/compare?id={p.comparison_id}")
    wait_drawn(dash_br)
    driver = dash_br.driver
    wait_idle(driver)  # every lazy view awake: Local geometry shows the class it picked itself
    wait_for_figure(dash_br, LOCAL, lambda f: f"class {names[first]}:" in f["title"])

    # a box over a group of one class's points, none of them in the class shown first
    box = pick_box(driver.execute_script(JS_POINTS, "compare-embedding-a"), label_of, first)
    driver.execute_script(JS_DRAG, "#compare-embedding-a", *box)
    WebDriverWait(driver, 30).until(lambda d: "sel=" in d.current_url)
    sel = parse_qs(urlparse(driver.current_url).query)["sel"][0]
    ids = decode_ids(sel)
    counts = Counter(label_of[i] for i in ids)
    most = max(counts.values())
    follow = min(c for c, k in counts.items() if k == most)
    assert first not in counts and len(ids) >= 8

    # Local geometry follows: the class most selected samples are in, highlighted there
    section = dash_br.find_element(LOCAL)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", section)
    wait_for_figure(dash_br, LOCAL, lambda f: f"class {names[follow]}:" in f["title"])
    assert GREYED not in local_title(dash_br)
    assert f"{most} selected sample" in local_title(dash_br)
    wanted = f"{len(ids)} samples selected in embedding A"
    WebDriverWait(driver, 20).until(lambda d: wanted in note(dash_br))
    if most < len(ids):
        assert f"where {most} of the {len(ids)} selected samples are" in note(dash_br)
    # and no status line names an internal id
    lines = driver.execute_script(JS_STATUS_LINES)
    assert any(wanted in line for line in lines), lines
    leaked = [line for line in lines if INTERNAL_ID.search(line)]
    assert leaked == [], leaked
    assert severe(dash_br) == []

    # the user's own class choice afterwards wins while the selection stays the same
    choose(dash_br, "#compare-geometry-class", index=first)
    WebDriverWait(driver, 20).until(lambda d: f"geo_cls={first}" in d.current_url)
    wait_for_figure(dash_br, LOCAL, lambda f: f"class {names[first]}:" in f["title"])
    WebDriverWait(driver, 20).until(lambda d: f"class {names[follow]}" in note(dash_br))
    wait_idle(driver)
    assert f"class {names[first]}:" in local_title(dash_br)
    q = parse_qs(urlparse(driver.current_url).query)
    assert q["geo_cls"] == [str(first)] and q["sel"] == [sel]

    # the copied link reopens that choice; a link with the selection alone follows it
    driver.refresh()
    wait_for_figure(dash_br, LOCAL, lambda f: f"class {names[first]}:" in f["title"])
    driver.get(f"{live_server.url}/compare?id={p.comparison_id}&sel={sel}")
    wait_for_figure(dash_br, LOCAL, lambda f: f"class {names[follow]}:" in f["title"])
    WebDriverWait(driver, 20).until(
        lambda d: f"{len(ids)} samples selected from the link" in note(dash_br)
    )
    assert severe(dash_br) == []

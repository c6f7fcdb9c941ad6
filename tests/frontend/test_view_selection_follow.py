"""Issue 18, bug 3: Local geometry follows a selection made elsewhere to the class most of its
samples are in, keeps a class the user picks afterwards until the selection changes, keeps its
URL (``geo_cls``) in step with what a reload shows, and status lines say where a selection came
from in words, never by its internal source id."""

from __future__ import annotations

from typing import Any

import dash
import numpy as np
import pytest

from frontend.views import (
    MAX_URL_SELECTION,
    SELECTION_ORIGINS,
    selection,
    selection_origin,
)
from frontend.views import (
    QUERY as QUERY_STORE,
)
from frontend.views import (
    SELECTION as SELECTION_STORE,
)
from frontend.views import embedding as embedding_view
from frontend.views import geometry as view
from frontend.views.parts import signature
from tests.frontend.test_view_geometry import (  # noqa: F401 (fixtures)
    NAMES,
    _context,
    _fresh_cache,
    geo_api,
)

# the fake tables: sample 100 + i has true class i % 5; class 3 (cat) is shown first (its
# recall fell most)
FIRST = 3
BIRD = [102, 107, 112, 117]  # class 2
CAT = [103, 108]  # class 3
DEER = [104, 109, 114]  # class 4
GREYED = "none of the selected samples is in this class"
USES_API = pytest.mark.usefixtures("geo_api")  # the fake API serving the analysis tables
SOURCES = [embedding_view.SOURCE_A, embedding_view.SOURCE_B, view.SOURCE, "url"]


# pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "current", "wanted"),
    [
        ([0, 2, 5, 1, 0], 3, 2),  # the class most selected samples are in
        ([0, 2, 5, 1, 0], 2, 2),  # already there
        ([0, 4, 0, 4, 0], 0, 1),  # a tie goes to the lowest index...
        ([0, 4, 0, 4, 0], 3, 3),  # ...unless the class shown is one of them
        ([3, 0, 0, 0, 0], 4, 0),  # none in the class shown
        ([0, 0, 0], 2, 2),  # no class holds any: stay
        ([], 1, 1),
    ],
)
def test_class_for_selection(counts: list[int], current: int, wanted: int) -> None:
    assert view.class_for_selection(counts, current) == wanted
    assert view.class_for_selection(np.asarray(counts, dtype=np.int64), current) == wanted


def test_selected_per_class_counts_true_classes_of_known_samples() -> None:
    table = {"index": np.array([10, 11, 12, 13, 14]), "label": np.array([0, 2, 2, 1, 2])}
    counts = view.selected_per_class(table, [11, 12, 13, 99], 3)
    assert counts.tolist() == [0, 1, 2]  # 99 is not a test sample
    assert view.selected_per_class(table, [], 3).tolist() == [0, 0, 0]


def test_own_class_is_what_a_reload_of_the_url_shows() -> None:
    counts = [0, 1, 6, 0]
    assert view.own_class(3, counts, 7) == 2  # the URL carries the selection: followed
    assert view.own_class(3, counts, 0) == 3
    # past MAX_URL_SELECTION the URL holds no ``sel``: a reload shows the default class
    assert view.own_class(3, counts, MAX_URL_SELECTION + 1) == 3
    assert view.own_class(3, [0, 4, 0, 4], 8) == 3  # the default is one of the most


def test_selection_origin_words_every_source_without_its_id() -> None:
    assert selection_origin(embedding_view.SOURCE_A) == "in embedding A"
    assert selection_origin(embedding_view.SOURCE_B) == "in embedding B"
    assert selection_origin("url") == "from the link"
    assert selection_origin(view.SOURCE) == "in the geometry view"
    assert selection_origin(view.SOURCE, here=view.SOURCE) == "here"
    assert selection_origin(embedding_view.SOURCE_A, here=view.SOURCE) == "in embedding A"
    for unknown in ("compare-embedding-a", "samples", "", None):
        assert selection_origin(unknown) == "in another view"
    for source in SOURCES:  # every source a view or the page writes has its words
        assert source in SELECTION_ORIGINS
        assert selection_origin(source) != source and "-" not in selection_origin(source)


@pytest.mark.parametrize("source", SOURCES)
def test_status_lines_never_show_a_source_id(source: str) -> None:
    current = selection([102, 107, 103], source)
    lines = [
        embedding_view.status_text(current),
        view.selection_note(current),
        view.selection_note(current, [0, 0, 2, 1, 0], FIRST, NAMES),
        view.selection_note(current, [0, 0, 2, 1, 0], 2, NAMES),
    ]
    for line in lines:
        assert "3 samples selected" in line
        assert source not in line.replace(selection_origin(source), "")
        assert "embedding-" not in line and "compare-" not in line


def test_selection_note_says_where_the_selected_samples_are() -> None:
    current = selection([*BIRD, *CAT, 104], embedding_view.SOURCE_A)
    counts = [0, 0, 4, 2, 1]
    head = "7 samples selected in embedding A"
    assert view.selection_note(current, counts, 2, NAMES) == (
        f"{head}: showing class bird, where 4 of the 7 selected samples are; pick another "
        "class above."
    )
    assert view.selection_note(current, counts, 3, NAMES) == (
        f"{head}, 2 of them in class cat; most (4) are in class bird: pick it above."
    )
    assert view.selection_note(current, counts, 0, NAMES).startswith(
        f"{head}, none of them in class airplane; most (4) are in class bird"
    )
    everything = selection(BIRD, view.SOURCE)
    assert view.selection_note(everything, [0, 0, 4, 0, 0], 2, NAMES) == (
        "4 samples selected here; double-click the plot that made the selection to clear it."
    )
    assert view.selection_note(None, counts, 2, NAMES) == view.SELECT_HINT


# callbacks ----------------------------------------------------------------------------------


def _follow(current: Any, cls: Any, defaults: Any) -> tuple[Any, ...]:
    return view.follow_selection(current, cls, "overlay", _context(), defaults)


def _url(cls: int, defaults: Any, query: Any = None) -> Any:
    """QUERY once the class shown or the class the view picks itself has changed."""
    query = query if query is not None else _context()["query"]
    return view.write_geometry_query(cls, "overlay", "a", query, defaults)


@USES_API
def test_a_selection_elsewhere_moves_the_view_to_its_class() -> None:
    current = selection([*BIRD, CAT[0]], embedding_view.SOURCE_A)
    fig, note, cls, defaults = _follow(current, FIRST, {"cls": FIRST})
    # the new class is drawn by the class's own callbacks (render_local), not here
    assert fig is dash.no_update and note is dash.no_update
    assert cls == 2
    assert defaults == {"cls": 2, "sel": signature(current["ids"])}
    fig, note = view.render_local(cls, "overlay", current, _context())
    assert "class bird" in fig.layout.title.text and GREYED not in fig.layout.title.text
    assert "4 selected samples in this class" in fig.layout.title.text
    assert list(fig.data[0].selectedpoints) == [0, 1, 2, 3]  # highlighted
    assert note == (
        "5 samples selected in embedding A: showing class bird, where 4 of the 5 selected "
        "samples are; pick another class above."
    )
    # the class the view picks itself is not in the URL; a reload (sel) picks it again
    assert _url(cls, defaults) is dash.no_update
    reloaded = view.init_geometry(_context(), selection(current["ids"], "url"))
    assert reloaded[1] == 2 and reloaded[4] == defaults


@USES_API
def test_the_class_shown_stays_while_it_holds_the_most() -> None:
    current = selection([*CAT, 102], embedding_view.SOURCE_B)
    fig, note, cls, defaults = _follow(current, FIRST, {"cls": FIRST})
    assert cls is dash.no_update and _url(FIRST, defaults) is dash.no_update
    assert defaults == {"cls": FIRST, "sel": signature(current["ids"])}
    assert "class cat" in fig.layout.title.text and list(fig.data[0].selectedpoints) == [0, 1]
    assert note.startswith("3 samples selected in embedding B: showing class cat, where 2")


@USES_API
def test_an_explicit_class_choice_wins_until_the_selection_changes() -> None:
    current = selection([*BIRD, CAT[0]], embedding_view.SOURCE_A)
    _f, _n, cls, defaults = _follow(current, FIRST, {"cls": FIRST})
    assert cls == 2
    # the user picks cat again: it goes to the URL (it is not the class the view picks)
    query = _url(FIRST, defaults)
    assert query["geo_cls"] == str(FIRST)
    fig, note = view.render_local(FIRST, "overlay", current, _context())
    assert "class cat" in fig.layout.title.text
    assert "1 of them in class cat; most (4) are in class bird: pick it above" in note
    # the same selection written again (another view echoing it) is not followed again
    again = selection(current["ids"], embedding_view.SOURCE_B)
    fig, note, cls, new_defaults = _follow(again, FIRST, defaults)
    assert cls is dash.no_update and new_defaults is dash.no_update
    assert "class cat" in fig.layout.title.text
    # a reload of that URL keeps the choice (geo_cls), still knowing what it followed
    reloaded = view.init_geometry(
        _context(**{"geo_cls": str(FIRST)}), selection(current["ids"], "url")
    )
    assert reloaded[1] == FIRST and reloaded[4] == defaults
    # a new selection is followed again
    new = selection(DEER, embedding_view.SOURCE_A)
    _f, _n, cls, newer = _follow(new, FIRST, defaults)
    assert cls == 4 and newer == {"cls": 4, "sel": signature(DEER)}
    assert "geo_cls" not in _url(cls, newer, query)


@USES_API
def test_a_selection_made_here_is_not_redrawn_or_moved() -> None:
    mine = selection(CAT, view.SOURCE)
    fig, note, cls, defaults = _follow(mine, FIRST, {"cls": FIRST})
    assert fig is dash.no_update and cls is dash.no_update
    assert defaults == {"cls": FIRST, "sel": signature(CAT)}
    assert note.startswith("2 samples selected here")


@USES_API
def test_clearing_keeps_the_class_and_records_it_in_the_url() -> None:
    followed = {"cls": 2, "sel": signature(BIRD)}  # a selection of birds, followed
    fig, note, cls, defaults = _follow(None, 2, followed)
    assert cls is dash.no_update and note == view.SELECT_HINT
    assert fig.data[0].selectedpoints is None and "class bird" in fig.layout.title.text
    # without the selection a reload would show cat: the URL now says bird
    assert defaults == {"cls": FIRST} and _url(2, defaults)["geo_cls"] == "2"
    # nothing selected before, nothing now: only a redraw
    out = _follow(None, FIRST, {"cls": FIRST})
    assert out[2:] == (dash.no_update,) * 2


@USES_API
def test_init_follows_a_selection_made_before_the_view_woke() -> None:
    current = selection([*DEER, 102], embedding_view.SOURCE_A)
    options, cls, _mode, _par, defaults, message = view.init_geometry(_context(), current)
    assert len(options) == 5 and message is None
    assert cls == 4 and defaults == {"cls": 4, "sel": signature(current["ids"])}
    # without a selection: the class whose recall fell most, as before
    assert view.init_geometry(_context(), None)[1] == FIRST
    assert view.init_geometry(_context(), None)[4] == {"cls": FIRST}


def test_the_callbacks_are_wired_for_a_lazy_view() -> None:
    app = dash.Dash(__name__)
    view.register(app)
    by_input: dict[str, list[str]] = {}
    for outputs, spec in app.callback_map.items():
        for dep in spec["inputs"]:
            by_input.setdefault(f"{dep['id']}.{dep['property']}", []).append(outputs)
    # what follows the selection writes only inside the section: a callback with an output
    # outside it would run (and fail) while the view sleeps, its section not yet in the page
    (follow,) = [o for o in by_input[f"{SELECTION_STORE}.data"] if view.ID_CLASS in o]
    parts = follow.strip(".").split("...")
    assert len(parts) == 4 and all(p.startswith("compare-geometry-") for p in parts)
    # the class the view picks itself changing is enough to rewrite geo_cls
    assert any(QUERY_STORE in o for o in by_input[f"{view.ID_DEFAULTS}.data"])

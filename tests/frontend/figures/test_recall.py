"""recall_bars: data in, the same data out in the traces, selected class highlighted."""

from __future__ import annotations

import pytest

from frontend.figures import recall_bars
from frontend.figures.recall import FADED_OPACITY, SELECTED_OPACITY

NAMES = ["airplane", "automobile", "bird", "cat"]
RA = [0.9, 0.95, 0.8, 0.75]
RB = [0.85, 0.95, 0.6, None]


def test_two_grouped_traces_carry_the_recalls() -> None:
    fig = recall_bars(NAMES, RA, RB, "original", "pruned", None)
    assert fig.layout.barmode == "group"
    assert [t.type for t in fig.data] == ["bar", "bar"]
    a, b = fig.data
    assert (a.name, b.name) == ("original", "pruned")
    assert list(a.x) == NAMES and list(b.x) == NAMES
    assert list(a.y) == RA
    assert list(b.y) == RB
    assert b.customdata[0] == pytest.approx(-0.05)
    assert b.customdata[2] == pytest.approx(-0.2)
    assert b.customdata[3] is None  # no recall for B: no change either
    assert a.marker.color != b.marker.color


def test_no_selection_means_nothing_faded() -> None:
    fig = recall_bars(NAMES, RA, RB, "A", "B", None)
    for trace in fig.data:
        assert list(trace.marker.opacity) == [SELECTED_OPACITY] * len(NAMES)


@pytest.mark.parametrize("selected", [0, 2, 3])
def test_selected_class_stands_out(selected: int) -> None:
    fig = recall_bars(NAMES, RA, RB, "A", "B", selected)
    for trace in fig.data:
        opacity = list(trace.marker.opacity)
        assert opacity[selected] == SELECTED_OPACITY
        others = [o for i, o in enumerate(opacity) if i != selected]
        assert others == [FADED_OPACITY] * (len(NAMES) - 1)
        widths = list(trace.marker.line.width)
        assert widths[selected] > max(w for i, w in enumerate(widths) if i != selected)


def test_length_mismatch_names_the_lengths() -> None:
    with pytest.raises(ValueError, match=r"4 class names.*recall_a has 3.*recall_b has 4"):
        recall_bars(NAMES, RA[:3], RB, "A", "B", None)


def test_selected_class_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"selected_class=4"):
        recall_bars(NAMES, RA, RB, "A", "B", 4)


def test_empty_input_explains_itself() -> None:
    fig = recall_bars([], [], [], "A", "B", None)
    assert len(fig.data) == 0
    assert len(fig.layout.annotations) == 1
    assert "No classes" in fig.layout.annotations[0].text


def test_numeric_class_names_stay_categorical() -> None:
    fig = recall_bars(["0", "1"], [0.5, 0.5], [0.4, 0.6], "A", "B", None)
    assert fig.layout.xaxis.type == "category"
    assert fig.layout.yaxis.tickformat == ".0%"

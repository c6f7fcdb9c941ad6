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


# issue 18.4a: a few-point drop must be visible, not lost on a 0-100% axis --------------------

HIGH_A = [0.97, 0.95, 0.92, 0.98]
HIGH_B = [0.96, 0.903, 0.873, 0.98]  # bird loses 4.7 points


def test_axis_zooms_to_the_data_and_ends_at_100_percent() -> None:
    fig = recall_bars(NAMES, HIGH_A, HIGH_B, "A", "B", None)
    lo, hi = fig.layout.yaxis.range
    lowest = min(HIGH_A + HIGH_B)
    assert 0.5 < lo < lowest  # a little below the lowest recall, far above zero
    assert hi >= 1.0
    ticks = list(fig.layout.yaxis.tickvals)
    assert ticks[0] == pytest.approx(lo) and ticks[-1] == pytest.approx(1.0)
    step = ticks[1] - ticks[0]
    assert round(lo / step, 6) == round(lo / step)  # a clean step
    assert all(t <= 1.0 + 1e-9 for t in ticks)  # no "105%" tick
    # the 4.7-point drop now spans a good part of the axis (it was 4.5% of [0, 1.05])
    assert 0.047 / (hi - lo) > 0.2


def test_axis_says_it_does_not_start_at_zero() -> None:
    fig = recall_bars(NAMES, HIGH_A, HIGH_B, "A", "B", None)
    lo = fig.layout.yaxis.range[0]
    assert f"starts at {100 * lo:.0f}%" in fig.layout.yaxis.title.text
    assert "not 0" in fig.layout.yaxis.title.text


def test_low_recalls_keep_the_axis_at_zero_without_a_note() -> None:
    fig = recall_bars(NAMES, RA, [0.85, 0.95, 0.05, None], "A", "B", None)
    assert fig.layout.yaxis.range[0] == 0
    assert fig.layout.yaxis.title.text == "recall"


def test_each_class_is_labelled_with_its_change_in_points() -> None:
    fig = recall_bars(NAMES, HIGH_A, [0.96, 0.903, 0.873, None], "A", "B", None)
    notes = {note.x: note for note in fig.layout.annotations}
    assert sorted(notes) == [0, 1, 2]  # no change to write without B's recall
    assert [notes[i].text for i in range(3)] == ["-1.0 pp", "-4.7 pp", "-4.7 pp"]
    for i, note in notes.items():
        assert note.y == pytest.approx(max(HIGH_A[i], fig.data[1].y[i]))  # above the pair
        assert note.yanchor == "bottom" and not note.showarrow
    # and inside the plotted range, losses and gains in different colours
    assert fig.layout.yaxis.range[1] > 1.0
    gain = recall_bars(["a"], [0.9], [0.95], "A", "B", None).layout.annotations[0]
    assert gain.text == "+5.0 pp" and gain.font.color != notes[1].font.color


def test_change_labels_follow_the_selection() -> None:
    fig = recall_bars(NAMES, HIGH_A, HIGH_B, "A", "B", 2)
    opacity = [note.opacity for note in fig.layout.annotations]
    assert opacity[2] == SELECTED_OPACITY
    assert opacity[:2] + opacity[3:] == [FADED_OPACITY] * 3


def test_many_classes_leave_the_change_to_the_hover() -> None:
    n = 40
    fig = recall_bars([f"c{i}" for i in range(n)], [0.9] * n, [0.8] * n, "A", "B", None)
    assert len(fig.layout.annotations) == 0
    assert fig.data[1].customdata[0] == pytest.approx(-0.1)


def test_all_missing_recalls_still_give_a_figure() -> None:
    fig = recall_bars(["a", "b"], [None, None], [None, None], "A", "B", None)
    assert list(fig.layout.yaxis.range) == [0, pytest.approx(fig.layout.yaxis.range[1])]
    assert [t.type for t in fig.data] == ["bar", "bar"]

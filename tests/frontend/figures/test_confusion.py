"""Confusion heatmaps: z equals the input, axes labelled, the shift centred on zero."""

from __future__ import annotations

import pytest

from frontend.figures import confusion_heatmap, confusion_shift_heatmap
from frontend.figures.confusion import MAX_ANNOTATED_CLASSES, SHIFT_LABEL

NAMES = ["cat", "dog", "frog"]
CONF = [[8, 1, 1], [2, 7, 1], [0, 0, 10]]
SHIFT = [[-2, 2, 0], [1, -3, 2], [0, 0, 0]]


def test_heatmap_z_is_the_matrix_rows_true_columns_predicted() -> None:
    fig = confusion_heatmap(CONF, NAMES, "model A")
    (trace,) = fig.data
    assert trace.type == "heatmap"
    assert [list(row) for row in trace.z] == CONF
    assert list(trace.x) == NAMES and list(trace.y) == NAMES
    assert fig.layout.title.text == "model A"
    assert fig.layout.xaxis.title.text == "predicted class"
    assert fig.layout.yaxis.title.text == "true class"
    assert fig.layout.yaxis.autorange == "reversed"  # row 0 on top


def test_heatmap_counts_are_written_in_cells() -> None:
    (trace,) = confusion_heatmap(CONF, NAMES, "A").data
    assert trace.texttemplate == "%{text}"
    assert [list(row) for row in trace.text] == [[str(v) for v in row] for row in CONF]


def test_large_heatmaps_are_not_annotated_unless_asked() -> None:
    n = MAX_ANNOTATED_CLASSES + 1
    conf = [[1] * n for _ in range(n)]
    names = [f"c{i}" for i in range(n)]
    assert confusion_heatmap(conf, names, "A").data[0].texttemplate is None
    assert confusion_heatmap(conf, names, "A", annotate=True).data[0].texttemplate == "%{text}"


def test_selected_class_row_is_outlined() -> None:
    fig = confusion_heatmap(CONF, NAMES, "A", selected_class=1)
    (shape,) = fig.layout.shapes
    assert (shape.y0, shape.y1) == (0.5, 1.5)
    assert (shape.x0, shape.x1) == (-0.5, 2.5)
    assert len(confusion_heatmap(CONF, NAMES, "A").layout.shapes) == 0


@pytest.mark.parametrize("fn", [confusion_heatmap, confusion_shift_heatmap])
def test_wrong_shape_names_the_sizes(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"2 rows but there are 3 class names"):
        fn(CONF[:2], NAMES, "t")
    with pytest.raises(ValueError, match=r"row 1 has 2 columns but there are 3 class names"):
        fn([[1, 2, 3], [1, 2], [1, 2, 3]], NAMES, "t")


@pytest.mark.parametrize("fn", [confusion_heatmap, confusion_shift_heatmap])
def test_empty_matrix_explains_itself(fn) -> None:  # type: ignore[no-untyped-def]
    fig = fn([], [], "empty")
    assert len(fig.data) == 0
    (annotation,) = fig.layout.annotations
    assert "no classes" in annotation.text.lower()


def test_shift_is_diverging_and_symmetric_around_zero() -> None:
    fig = confusion_shift_heatmap(SHIFT, NAMES, "shift")
    (trace,) = fig.data
    assert [list(row) for row in trace.z] == SHIFT
    assert trace.zmid == 0
    assert trace.zmin == -3 and trace.zmax == 3
    assert trace.zmin == -trace.zmax
    colors = [c[1] for c in trace.colorscale]
    assert len(set(colors)) > 2  # a real diverging scale, not a single hue
    assert trace.colorbar.title.text == SHIFT_LABEL == "pruned − original"


def test_shift_range_uses_the_largest_magnitude_of_either_sign() -> None:
    (trace,) = confusion_shift_heatmap([[1, -7], [4, 0]], ["a", "b"], "s").data
    assert (trace.zmin, trace.zmax) == (-7, 7)


def test_all_zero_shift_still_has_a_usable_range() -> None:
    (trace,) = confusion_shift_heatmap([[0, 0], [0, 0]], ["a", "b"], "s").data
    assert trace.zmin == -trace.zmax and trace.zmax > 0


def test_shift_annotations_are_signed_and_skip_zeros() -> None:
    (trace,) = confusion_shift_heatmap(SHIFT, NAMES, "s").data
    assert [list(row) for row in trace.text] == [
        ["-2", "+2", ""],
        ["+1", "-3", "+2"],
        ["", "", ""],
    ]


# issue 18.4c: counts are whole numbers, so are the colour bar's ticks --------------------------


@pytest.mark.parametrize(
    "shift", [SHIFT, [[1, -7], [4, 0]], [[0, 0], [0, 0]], [[0, 1], [-1, 0]], [[0, 40], [-3, 2]]]
)
def test_shift_colour_bar_has_whole_ticks_symmetric_around_zero(shift) -> None:  # type: ignore[no-untyped-def]
    (trace,) = confusion_shift_heatmap(shift, ["a", "b", "c"][: len(shift)], "s").data
    bar = trace.colorbar
    assert bar.tickformat == "d"
    ticks = list(bar.tickvals)
    assert all(float(t).is_integer() for t in ticks)
    assert 0 in ticks
    assert sorted(ticks) == ticks and ticks == [-t for t in reversed(ticks)]  # symmetric
    assert ticks[-1] <= trace.zmax and ticks[0] >= trace.zmin
    assert float(trace.zmax).is_integer() and trace.zmax >= max(abs(v) for r in shift for v in r)
    assert len(ticks) <= 11  # readable, even for a range of ±40


@pytest.mark.parametrize("conf", [CONF, [[1, 0], [0, 1]], [[0, 0], [0, 0]], [[500, 3], [7, 480]]])
def test_count_colour_bar_has_whole_ticks(conf) -> None:  # type: ignore[no-untyped-def]
    (trace,) = confusion_heatmap(conf, ["a", "b", "c"][: len(conf)], "A").data
    bar = trace.colorbar
    assert bar.tickformat == "d"
    assert bar.dtick >= 1 and float(bar.dtick).is_integer()
    assert trace.zmin == 0 and trace.zmax >= max(max(r) for r in conf) and trace.zmax >= 1

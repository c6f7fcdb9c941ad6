"""Fourier sensitivity figure: A, B and B − A heat maps, zero frequency at the centre."""

from __future__ import annotations

import numpy as np

from frontend.figures.fourier import (
    error_grid,
    fourier_figure,
    fourier_summary,
    frequency_axis,
    model_entry,
)


def entry(model_id: int, grid: np.ndarray, clean: float) -> dict:  # type: ignore[type-arg]
    return {"model_id": model_id, "role": "b", "clean_error": clean, "error": grid.tolist()}


def test_three_heat_maps_centred_with_a_diverging_difference() -> None:
    a = np.full((8, 8), 0.1)
    b = a.copy()
    b[0, 0] = 0.6  # B errs more at the highest frequency (a corner)
    b[4, 4] = 0.05
    fig = fourier_figure(entry(1, a, 0.1), entry(2, b, 0.08), "A: dense", "B: <50%>")
    assert [t.type for t in fig.data] == ["heatmap"] * 3
    za, zb, zd = (np.asarray(t.z, dtype=float) for t in fig.data)
    np.testing.assert_allclose(za, a)
    np.testing.assert_allclose(zd, b - a)
    assert list(fig.data[0].x) == list(range(-4, 4)) and list(fig.data[0].y) == list(range(-4, 4))
    # the centre of the map is frequency (0, 0)
    assert fig.data[0].x[4] == 0 and fig.data[0].y[4] == 0
    diff = fig.data[2]
    assert diff.zmid == 0 and diff.zmin == -diff.zmax == -0.5
    assert fig.data[0].zmax == fig.data[1].zmax == 0.6  # A and B share one scale
    assert "error" in fig.data[0].hovertemplate and "clean error 10.0%" in fig.data[0].hovertemplate
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["A: dense: error", "B: &lt;50%&gt;: error", "B − A"]  # names escaped
    assert fourier_summary(a, b)["max_increase"] == 0.5


def test_missing_or_mismatched_maps_give_an_empty_figure() -> None:
    a = entry(1, np.zeros((4, 4)), 0.0)
    assert len(fourier_figure(a, None).data) == 0
    assert len(fourier_figure(a, entry(2, np.zeros((4, 5)), 0.0)).data) == 0
    assert error_grid({"error": [[None, 0.5]]}) is not None
    assert np.isnan(error_grid({"error": [[None, 0.5]]})[0, 0])  # type: ignore[index]
    assert frequency_axis(5) == [-2, -1, 0, 1, 2]
    assert model_entry([{"model_id": 3}], 3) == {"model_id": 3} and model_entry([], 3) == {}

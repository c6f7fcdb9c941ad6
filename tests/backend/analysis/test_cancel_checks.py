"""The long analysis functions stop when their ``cancel_check`` raises (issue 19, item 2), and
calling it changes nothing they compute; pruning's prediction honours ``should_stop``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import models  # noqa: F401  (registers the architectures)
from backend.analysis.embeddings import aligned_embedding, epoch_checks
from backend.analysis.features import extract_features
from backend.analysis.linear_regions import DecisionWalker, count_regions, count_regions_batch
from backend.analysis.region_local import decision_intervals, local_complexity, region_distances
from backend.analysis.region_slice import slice_regions
from backend.analysis.similarity import similarity_map
from backend.pruning.finetune import TrainingCancelled, predict
from models.registry import create as create_model

torch.set_num_threads(1)


class Stop(Exception):
    """What the checks below raise (a job's would raise JobCancelled)."""


class StopAfter:
    """A cancel check that counts its calls and raises from call ``n + 1`` on."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls > self.n:
            raise Stop(f"stopped at call {self.calls}")


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return create_model("digits_cnn").eval()


@pytest.fixture(scope="module")
def xs() -> torch.Tensor:
    return torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_count_regions_stops_inside_a_segment_and_is_unchanged_by_its_checks(net, xs):
    plain = count_regions(net, xs[0], xs[1], chunks=4)
    counted = StopAfter(10**9)
    checked = count_regions(net, xs[0], xs[1], chunks=4, cancel_check=counted)
    assert checked.to_json() == plain.to_json()
    # called per node of every batch of pieces: many times within one segment
    assert counted.calls > 4 * 8
    with pytest.raises(Stop):
        count_regions(net, xs[0], xs[1], chunks=4, cancel_check=StopAfter(5))
    with pytest.raises(Stop):
        # the second segment of three stops
        pairs = [(xs[0], xs[1])] * 3
        count_regions_batch(net, pairs, chunks=4, cancel_check=StopAfter(counted.calls + 1))


def test_decision_walks_and_local_measures_stop(net, xs):
    with pytest.raises(Stop):
        DecisionWalker(net, cancel_check=StopAfter(3)).first_crossing(xs[0], xs[1])
    plain = region_distances(net, xs, chunk=2)
    counted = StopAfter(10**9)
    checked = region_distances(net, xs, chunk=2, cancel_check=counted)
    assert counted.calls >= 3  # per chunk and per tangent block
    for key, values in plain.items():
        np.testing.assert_array_equal(checked[key], values)
    with pytest.raises(Stop):
        region_distances(net, xs, chunk=2, cancel_check=StopAfter(1))
    with pytest.raises(Stop):
        decision_intervals(net, xs, xs, distances=plain, cancel_check=StopAfter(20))
    with pytest.raises(Stop):
        local_complexity(net, xs, radius=0.05, cancel_check=StopAfter(0))


def test_slice_stops_between_polygons(net, xs):
    plain = slice_regions(net, xs[0], xs[1], xs[2], domain=(0.0, 0.02, 0.0, 0.02))
    counted = StopAfter(10**9)
    checked = slice_regions(
        net, xs[0], xs[1], xs[2], domain=(0.0, 0.02, 0.0, 0.02), cancel_check=counted
    )
    assert checked.n_regions == plain.n_regions and checked.patterns == plain.patterns
    assert counted.calls > checked.n_regions  # every polygon refined is checked
    with pytest.raises(Stop):
        slice_regions(
            net, xs[0], xs[1], xs[2], domain=(0.0, 0.02, 0.0, 0.02), cancel_check=StopAfter(50)
        )


def test_features_and_predictions_stop_between_batches(net):
    x = torch.rand(40, 1, 8, 8)
    counted = StopAfter(10**9)
    out = extract_features(net, x, batch_size=8, cancel_check=counted)
    assert counted.calls == 5
    np.testing.assert_array_equal(out.logits, extract_features(net, x, batch_size=8).logits)
    with pytest.raises(Stop):
        extract_features(net, x, batch_size=8, cancel_check=StopAfter(2))
    asked = []

    def stop_at_third() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(TrainingCancelled):
        predict(net, x, batch_size=8, should_stop=stop_at_third)
    assert len(asked) == 3


@pytest.mark.slow
def test_umap_stops_between_epochs_and_a_stop_is_no_failure():
    """The epoch hook reaches inside umap-learn's layout loops (AlignedUMAP's joint one too):
    a stop raised there ends the fit, and "auto" does not take it for a UMAP failure."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(80, 6)), rng.normal(size=(80, 5))
    for method in ("aligned_umap", "umap_init", "auto"):
        check = StopAfter(6)  # past the steps before the fits, into the first fit's epochs
        with pytest.raises(Stop):
            aligned_embedding(a, b, method=method, cancel_check=check)  # type: ignore[arg-type]
        assert check.calls == 7
    fingerprints = rng.normal(size=(12, 9))
    with pytest.raises(Stop):
        similarity_map(fingerprints, [str(i) for i in range(12)], cancel_check=StopAfter(3))
    # outside the block the hook calls nothing; inside, only the thread's own check
    with epoch_checks(None):
        assert aligned_embedding(a, b, method="pca").method == "pca"

"""Learning distance (He et al., ICML 2022; SCIENCE.md sect. 7): || m * (theta_final -
theta_start) ||_2 over the kept weights, theta_start where the pruned model's training began."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from torch import nn

from backend.db.session import session_scope
from backend.db.tables import ModelRow
from backend.pruning import create
from backend.pruning.finetune import TrainConfig
from backend.pruning.learning import (
    effective_weights,
    learning_distance,
    load_weights,
    model_learning_distance,
    save_weights,
)
from backend.pruning.session import PruneSession
from backend.storage import ArtifactStore
from models.registry import create as create_model


def make_mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("mlp", input_shape=[6], num_classes=3, hidden=[16])


def make_session(epochs: int) -> PruneSession:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return PruneSession(x, y, TrainConfig(epochs=epochs, batch_size=16, lr=0.05), make_mlp)


def numpy_distance(start: dict[str, np.ndarray], final: dict[str, np.ndarray]) -> float:
    """The definition, directly: final holds "<layer>.weight" (effective) and its mask."""
    total = 0.0
    for key, s in start.items():
        m = final.get(key + "_mask", np.ones_like(final[key]))
        total += np.sum((m.astype(np.float64) * (final[key] - s.astype(np.float64))) ** 2)
    return float(np.sqrt(total))


# the pure function ----------------------------------------------------------------------------
def test_distance_is_the_masked_norm_over_all_layers_and_refuses_mismatched_layers():
    start = {"a": np.array([1.0, 2.0]), "b": np.array([[0.0, 1.0]])}
    final = {"a": np.array([4.0, 0.0]), "b": np.array([[0.0, 5.0]])}
    masks = {"a": np.array([1.0, 0.0]), "b": np.array([[1.0, 1.0]])}
    assert learning_distance(start, final, masks) == pytest.approx(5.0)  # sqrt(3^2 + 4^2)
    assert learning_distance(final, final, masks) == 0.0
    with pytest.raises(ValueError, match="different layers"):
        learning_distance({"a": start["a"]}, final, masks)
    with pytest.raises(ValueError, match="'b'"):
        learning_distance({**start, "b": np.zeros(3)}, final, masks)


def test_stored_weights_round_trip_exactly():
    weights = effective_weights(make_mlp(1))
    back = load_weights(save_weights(weights))
    assert back.keys() == weights.keys()
    for key, value in weights.items():
        np.testing.assert_array_equal(back[key], value.numpy())


# the session records theta_start --------------------------------------------------------------
def test_a_model_whose_training_did_not_move_has_distance_zero():
    session = make_session(epochs=0)
    model = make_mlp(0)
    pruned = create("global_magnitude", sparsity=0.5).run(model, session)
    assert session.start_weights is not None
    assert model_learning_distance(session.start_weights, pruned) == 0.0


def test_one_shot_start_is_the_masked_parent_and_the_distance_is_the_definition():
    session = make_session(epochs=2)
    parent = make_mlp(0)
    dense = {k: v.numpy() for k, v in effective_weights(parent).items()}
    pruned = create("global_magnitude", sparsity=0.5).run(make_mlp(0), session)
    assert session.start_weights is not None
    final = effective_weights(pruned)
    for key, start in session.start_weights.items():
        kept = final[key] != 0
        np.testing.assert_array_equal(start.numpy()[~kept.numpy()] == 0, True)
        np.testing.assert_array_equal(start.numpy(), np.where(start.numpy() != 0, dense[key], 0))
    distance = model_learning_distance(session.start_weights, pruned)
    assert distance > 0
    masks = {f"{n}.weight_mask": m.weight_mask.numpy() for n, m in pruned.named_modules()
             if hasattr(m, "weight_mask")}  # fmt: skip
    finals = {k: v.numpy() for k, v in final.items()} | masks
    starts = {k: v.numpy() for k, v in session.start_weights.items()}
    assert distance == pytest.approx(numpy_distance(starts, finals), rel=1e-12)


def test_lottery_ticket_starts_its_last_round_from_the_rewind_point():
    session = make_session(epochs=1)
    method = create("lottery_ticket", sparsity=0.5, prune_fraction=0.3, rewind_step=0)
    net = method.run(make_mlp(5), session)
    init = effective_weights(session.fresh_model())  # rewind step 0: the seeded initialisation
    assert session.start_weights is not None
    final = effective_weights(net)
    for name, module in net.named_modules():
        if hasattr(module, "weight_mask"):
            key = f"{name}.weight"
            mask = module.weight_mask
            torch.testing.assert_close(session.start_weights[key], init[key] * mask)
            assert torch.equal(final[key] * (1 - mask), torch.zeros_like(mask))
    assert model_learning_distance(session.start_weights, net) > 0


# the prune job stores theta_start and the distance -------------------------------------------
@pytest.fixture
def parent(client):
    """A briefly trained digits_cnn (one epoch)."""
    torch.set_num_threads(1)
    ds = client.post("/api/datasets", json={"builtin": "digits"}).json()
    spec = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
    job = client.post("/api/jobs", json={"kind": "train", "spec": spec}).json()
    assert job["status"] == "succeeded", job
    return job["result"]["model_id"]


def prune(client, model_id: int, epochs: int) -> dict:
    spec = {
        "model_id": model_id,
        "method": "global_magnitude",
        "sparsity": 0.6,
        "finetune": {"epochs": epochs, "batch_size": 256},
    }
    job = client.post("/api/jobs", json={"kind": "prune", "spec": spec}).json()
    assert job["status"] == "succeeded", job["error"]
    return client.get(f"/api/models/{job['result']['model_id']}").json()


def test_the_prune_job_stores_the_start_and_the_distance_it_implies(client, settings, parent):
    store = ArtifactStore(settings.artifacts)
    still = prune(client, parent, epochs=0)
    assert still["learning_distance"] == 0.0
    trained = prune(client, parent, epochs=1)
    assert trained["learning_distance"] > 0
    learning = trained["pruning_params"]["learning"]
    assert learning["distance"] == trained["learning_distance"]
    with session_scope(settings.database_url) as s:
        checkpoint_sha = s.get(ModelRow, trained["id"]).checkpoint_sha
    start = load_weights(store.get_bytes(learning["start_sha"]))
    with store.local_path(checkpoint_sha) as path:
        final = load_file(str(path))
    assert trained["learning_distance"] == pytest.approx(numpy_distance(start, final), rel=1e-9)
    # the experiments table shows it and sorts by it
    rows = client.get("/api/experiments", params={"sort": "learning_distance"}).json()["data"]
    assert [r["learning_distance"] for r in rows[:2]] == [trained["learning_distance"], 0.0]
    assert "learning" not in (rows[0]["method_params"] or {})
    # the start file is reference-counted: both models began from the same masked parent
    sha = learning["start_sha"]
    assert still["pruning_params"]["learning"]["start_sha"] == sha
    assert client.delete(f"/api/models/{trained['id']}").status_code == 200
    assert store.exists(sha)  # the other model still names it
    assert client.delete(f"/api/models/{still['id']}").status_code == 200
    assert not store.exists(sha)

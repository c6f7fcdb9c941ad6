"""GP, UP and SNIP scores against a hand computation of the cross-entropy gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backend.pruning import create
from backend.pruning.finetune import TrainConfig
from backend.pruning.masks import apply_masks, current_mask
from backend.pruning.session import PruneSession


class TwoLayer(nn.Module):
    """z = W2 relu(W1 x): small enough to differentiate by hand."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(4, 5, bias=False)
        self.classifier = nn.Linear(5, 3, bias=False)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.classifier(torch.relu(self.hidden(x)))


def hand_gradients(model: TwoLayer, x, y):  # type: ignore[no-untyped-def]
    """dL/dW for mean cross-entropy, written out: delta = (softmax(z) - onehot(y)) / N."""
    w1, w2 = model.hidden.weight.detach(), model.classifier.weight.detach()
    pre = x @ w1.T
    h = pre.clamp(min=0)
    z = h @ w2.T
    delta = (torch.softmax(z, 1) - torch.eye(3)[y]) / len(y)
    g2 = delta.T @ h
    g1 = ((delta @ w2) * (pre > 0)).T @ x
    return {"hidden": (w1, g1), "classifier": (w2, g2)}


@pytest.fixture
def data():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(8, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen)


HAND_SCORES = {
    "gradient": lambda w, g: (w * g).abs(),
    "undecayed": lambda w, g: (-w * g + 1e-2 * w * w).abs(),
    "snip": lambda w, g: (g * w).abs(),
}


@pytest.mark.parametrize("name", list(HAND_SCORES))
def test_scores_equal_hand_computation(name, data):
    model = TwoLayer()
    params = {"eps": 1e-2} if name == "undecayed" else {}
    method = create(name, sparsity=0.5, **params)
    scores = method.scores(model, data)
    for layer, (w, g) in hand_gradients(model, *data).items():
        torch.testing.assert_close(scores[layer], HAND_SCORES[name](w, g), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", list(HAND_SCORES))
def test_masks_keep_the_highest_scores_globally(name, data):
    model = TwoLayer()
    params = {"eps": 1e-2} if name == "undecayed" else {}
    hand = hand_gradients(model, *data)
    flat = torch.cat([HAND_SCORES[name](w, g).reshape(-1) for w, g in hand.values()])
    k = round(0.6 * flat.numel())
    threshold = flat.sort().values[k - 1]
    masks = create(name, sparsity=0.6, **params).compute_masks(model, data)
    kept = torch.cat([masks[n].reshape(-1) for n in hand])
    assert int((kept == 0).sum()) == k
    assert torch.all(flat[kept == 1] >= threshold)


def test_gradient_is_taken_at_the_effective_weight_of_a_pruned_layer(data):
    model = TwoLayer()
    first = create("gradient", sparsity=0.4)
    first.apply(model, data)
    hand = hand_gradients(model, *data)  # uses module.weight = orig * mask
    scores = create("gradient", sparsity=0.7).scores(model, data)
    for layer, (w, g) in hand.items():
        torch.testing.assert_close(scores[layer], (w * g).abs())
        assert torch.all(scores[layer][current_mask(getattr(model, layer)) == 0] == 0)


def test_undecayed_reduces_to_gradient_without_decay(data):
    model = TwoLayer()
    up = create("undecayed", sparsity=0.5, eps=0.0).scores(model, data)
    gp = create("gradient", sparsity=0.5).scores(model, data)
    for layer in up:
        torch.testing.assert_close(up[layer], gp[layer])


def test_scoring_leaves_the_model_as_it_was(data):
    model = TwoLayer()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    create("snip", sparsity=0.5).compute_masks(model, data)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_needs_a_batch():
    with pytest.raises(ValueError, match="needs a batch"):
        create("gradient", sparsity=0.5).compute_masks(TwoLayer())


def test_bad_parameters_name_the_value():
    with pytest.raises(ValueError, match="eps=-0.1 should be in"):
        create("undecayed", sparsity=0.5, eps=-0.1)
    with pytest.raises(ValueError, match="unexpected keyword argument 'eps'"):
        create("gradient", sparsity=0.5, eps=0.1)


def test_snip_prunes_a_fresh_initialisation_then_trains(data):
    torch.set_num_threads(1)
    trained = TwoLayer()
    with torch.no_grad():
        trained.hidden.weight.fill_(7.0)  # a "trained" model SNIP must not use

    def make(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return TwoLayer()

    session = PruneSession(*data, config=TrainConfig(epochs=2, batch_size=4), make_model=make)
    expected_masks = create("snip", sparsity=0.5).compute_masks(make(0), session.batch())
    pruned = create("snip", sparsity=0.5).run(trained, session)
    assert pruned is not trained
    assert not torch.any(pruned.hidden.weight == 7.0)
    for layer, mask in expected_masks.items():
        assert torch.equal(current_mask(getattr(pruned, layer)), mask)
    # trained after pruning: live weights moved away from their initial values
    init = make(0)
    apply_masks(init, expected_masks)
    assert not torch.equal(pruned.hidden.weight, init.hidden.weight)

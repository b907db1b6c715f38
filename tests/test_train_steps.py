"""fmlib.training.train_steps: the fixed-step loop shared by couplings.fit and
guidance.train_conditional, checked against the loop written out by hand."""

import copy

import pytest
import torch

from fmlib.training import learning_rate, train_steps


def _regression(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    g = torch.Generator().manual_seed(seed)
    w_true = torch.tensor([[1.0, -2.0, 0.5]])

    def batch_loss():
        x = torch.randn(32, 3, generator=g)
        return ((model(x) - x @ w_true.T) ** 2).mean()

    return model, batch_loss


def test_equals_the_loop_written_out():
    model, batch_loss = _regression(0)
    ema, losses = train_steps(
        model, batch_loss, torch.optim.Adam(model.parameters()), 200, 0.1, 0.1, 0.9, progress=False
    )
    # the same steps by hand, from the same initial weights and batches
    ref, ref_loss = _regression(0)
    opt = torch.optim.Adam(ref.parameters())
    ref_ema, ref_losses = copy.deepcopy(ref), []
    for k in range(200):
        for group in opt.param_groups:
            group["lr"] = learning_rate(0.1, k / 200, 0.1)
        loss = ref_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        d = min(0.9, (1 + k) / (10 + k))
        with torch.no_grad():
            for pe, p in zip(ref_ema.parameters(), ref.parameters(), strict=True):
                pe.copy_(d * pe + (1 - d) * p)
        ref_losses.append(loss.item())
    assert losses == pytest.approx(ref_losses, rel=1e-6)
    for pe, p in zip(ema.parameters(), ref_ema.parameters(), strict=True):
        assert torch.allclose(pe, p, atol=1e-6)
    assert not ema.training and all(not p.requires_grad for p in ema.parameters())
    assert losses[-1] < 1e-3 * losses[0]  # it learns the linear map


def test_ema_decay_zero_is_the_last_iterate():
    model, batch_loss = _regression(1)
    ema, _ = train_steps(
        model,
        batch_loss,
        torch.optim.SGD(model.parameters()),
        5,
        0.1,
        ema_decay=0.0,
        progress=False,
    )
    for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
        assert torch.equal(pe, p)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"steps": 0}, "steps"), ({"ema_decay": 1.0}, "ema_decay")]
)
def test_bad_input(kwargs, match):
    model, batch_loss = _regression(2)
    args = {"steps": 3, "lr": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        train_steps(model, batch_loss, torch.optim.SGD(model.parameters()), progress=False, **args)

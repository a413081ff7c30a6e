"""SCAFFOLD (Karimireddy et al. 2020) on a hand-computed two-client quadratic, through the real client loop."""

from types import SimpleNamespace

import pytest
import torch

import speechfl.federated.client as client_mod
from speechfl.federated.client import ClientConfig, local_train
from speechfl.federated.server_opt import SERVER_OPTIMIZERS
from speechfl.federated.update import ParamLayout, flatten_params
from speechfl.models.objective import LossOutput

# f_i(w) = a_i / 2 (w - b_i)^2: client "1" (a=1, b=1) and client "2" (a=2, b=-1); optimum of the sum -1/3.
QUAD = {"1": (1.0, 1.0), "2": (2.0, -1.0)}


class Scalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.adversary = None


@pytest.fixture
def quadratic(monkeypatch):
    """The client loop with a one-batch loader and the quadratic loss of the client named in the batch."""
    monkeypatch.setattr(client_mod, "make_loader", lambda dataset, *a, **k: [dataset])

    def loss(model, batch, **kw):
        a, b = QUAD[batch.cid]
        value = 0.5 * a * (model.w - b).pow(2).sum()
        return LossOutput(loss=value, ctc=float(value.detach()), adv_loss=None, adv_accuracy=None)

    monkeypatch.setattr(client_mod, "training_loss", loss)


def run_round(model, layout, x, server, states, round_, cfg):
    deltas = []
    for cid in ("1", "2"):
        batch = SimpleNamespace(cid=cid, id=[cid])
        upd = local_train(model, layout, x, _One(batch), cfg, client_id=cid, seed=0, round_=round_,
                          state=states[cid], control=server.client_control(layout.dim))
        deltas.append(upd.delta)
    return server.step(x, torch.stack(deltas).mean(0))


class _One(list):
    def __init__(self, batch):
        super().__init__([batch])
        self.cid, self.id = batch.cid, batch.id

    def __iter__(self):  # the patched loader yields the dataset itself: one batch per "epoch"
        return iter([self])


def setup(lr=0.1, steps=2):
    model = Scalar()
    layout = ParamLayout.from_module(model)
    cfg = ClientConfig(local_epochs=None, local_steps=steps, batch_size=1, optimizer={"name": "sgd", "lr": lr},
                       max_grad_norm=None)
    server = SERVER_OPTIMIZERS.build("scaffold", lr=1.0)
    server.configure(n_clients=2, per_round=2, local_steps=steps, local_lr=lr)
    return model, layout, cfg, server, {"1": {}, "2": {}}


def test_scaffold_two_rounds_by_hand(quadratic):
    model, layout, cfg, server, states = setup()
    x0 = flatten_params(model, layout)
    # round 1 (no correction yet): client 1: 0 -> 0.1 -> 0.19; client 2: 0 -> -0.2 -> -0.36
    x1 = run_round(model, layout, x0, server, states, 1, cfg)
    assert x1.item() == pytest.approx(-0.085, abs=1e-6)
    # c_i = -(y_i - x) / (K lr): c_1 = -0.95, c_2 = 1.8; c = their mean 0.425
    assert states["1"]["scaffold_c"].item() == pytest.approx(-0.95, abs=1e-5)
    assert states["2"]["scaffold_c"].item() == pytest.approx(1.8, abs=1e-5)
    assert server.control.item() == pytest.approx(0.425, abs=1e-5)
    # round 2: client 1 corrects by c - c_1 = 1.375: -0.085 -> -0.114 -> -0.1401;
    #          client 2 by c - c_2 = -1.375:        -0.085 -> -0.1305 -> -0.1669
    x2 = run_round(model, layout, x1, server, states, 2, cfg)
    assert x2.item() == pytest.approx(-0.085 + (-0.0551 - 0.0819) / 2, abs=1e-5)


def test_scaffold_reaches_the_global_optimum_fedavg_drifts(quadratic):
    model, layout, cfg, server, states = setup(lr=0.1, steps=5)
    x = flatten_params(model, layout)
    for r in range(1, 121):
        x = run_round(model, layout, x, server, states, r, cfg)
    assert x.item() == pytest.approx(-1 / 3, abs=1e-4)
    # FedAvg with the same local steps settles elsewhere (client drift)
    fedavg = SERVER_OPTIMIZERS.build("fedavg")
    x = torch.zeros(1)
    for r in range(1, 121):
        deltas = []
        for a, b in QUAD.values():
            w = x.clone()
            for _ in range(5):
                w = w - 0.1 * a * (w - b)
            deltas.append(w - x)
        x = fedavg.step(x, torch.stack(deltas).mean(0))
    assert abs(x.item() + 1 / 3) > 0.03


def test_scaffold_state_round_trips_and_requires_configure():
    opt = SERVER_OPTIMIZERS.build("scaffold")
    with pytest.raises(RuntimeError, match="configure"):
        opt.step(torch.zeros(2), torch.ones(2))
    opt.configure(n_clients=4, per_round=2, local_steps=2, local_lr=0.5)
    x = opt.step(torch.zeros(2), torch.ones(2))
    assert torch.equal(x, torch.ones(2))
    # c = 0 + (2/4) * (-0 - 1 / (2 * 0.5)) = -0.5
    assert torch.allclose(opt.control, torch.full((2,), -0.5))
    other = SERVER_OPTIMIZERS.build("scaffold")
    other.load_state_dict(opt.state_dict())
    assert torch.equal(other.control, opt.control) and other.rounds == 1
    with pytest.raises(ValueError, match="per_round"):
        other.configure(n_clients=2, per_round=3, local_steps=1, local_lr=0.1)


def test_local_lr_decay_scales_the_step(quadratic):
    model, layout, _, _, _ = setup()
    cfg = ClientConfig(local_epochs=None, local_steps=1, batch_size=1, optimizer={"name": "sgd", "lr": 0.1},
                       max_grad_norm=None, lr_decay=0.5)
    batch = SimpleNamespace(cid="1", id=["1"])
    # round 3: lr = 0.1 * 0.5^2 = 0.025; gradient at 0 is -1 -> delta 0.025
    upd = local_train(model, layout, torch.zeros(1), _One(batch), cfg, client_id="1", seed=0, round_=3)
    assert upd.delta.item() == pytest.approx(0.025)
    with pytest.raises(ValueError, match="lr_decay"):
        ClientConfig(lr_decay=1.5)

"""The federated N-way speaker head: FedAvg of two one-speaker clients vs the centralized two-class head,
FedAwS own-class updates and the server's spread-out step, on hand-built cases."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from speechfl.config.protocols import ServerStep
from speechfl.federated.server_opt import FedAvg
from speechfl.federated.update import ParamLayout, flatten_params
from speechfl.models.adversary import AdversarialObjective
from speechfl.privacy.fedaws import (ClassEmbeddingHead, SpreadOutServer, class_weight_slices, spread_out_penalty,
                                     spread_out_step)

D = torch.float64
LR = 0.5


def _head(negatives: str) -> ClassEmbeddingHead:
    head = ClassEmbeddingHead(2, 2, embed_dim=2, pooling="mean", negatives=negatives).double()
    with torch.no_grad():  # hand-built: the embedding layer is the identity, class rows w_0, w_1
        head.classifier[0].weight.copy_(torch.eye(2, dtype=D))
        head.classifier[0].bias.zero_()
        head.classes.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=D))
    return head


# utterances of one frame each: mean pooling returns the frame, so the embedding e is the frame itself
CLIENT_A = (torch.tensor([[[2.0, 0.0]], [[1.0, 1.0]]], dtype=D), torch.tensor([0, 0]))  # speaker 0
CLIENT_B = (torch.tensor([[[0.0, 1.0]]], dtype=D), torch.tensor([1]))  # speaker 1


def _sgd_step(head, reps, labels):
    """One SGD step of the mean cross-entropy on the class rows; returns the new rows."""
    loss = F.cross_entropy(head(reps, torch.ones(len(labels), dtype=D)) if head.negatives == "softmax"
                           else head.logits(head.pool(reps, torch.ones(reps.shape[:2], dtype=torch.bool)), labels),
                           labels)
    (grad,) = torch.autograd.grad(loss, [head.classes])
    return head.classes.detach() - LR * grad


def test_fedavg_of_two_one_speaker_clients_equals_centralized_two_class_step():
    """negatives=softmax: one local SGD step each, FedAvg weighted by samples = the pooled centralized step."""
    rows_a = _sgd_step(_head("softmax"), *CLIENT_A)
    rows_b = _sgd_step(_head("softmax"), *CLIENT_B)
    init = _head("softmax").classes.detach()
    fedavg = init + (2 * (rows_a - init) + 1 * (rows_b - init)) / 3
    pooled = (torch.cat([CLIENT_A[0], CLIENT_B[0]]), torch.cat([CLIENT_A[1], CLIENT_B[1]]))
    central = _sgd_step(_head("softmax"), *pooled)
    assert torch.allclose(fedavg, central, atol=1e-12)
    # and the centralized step is the hand formula W <- W - lr * (P - Y)^T E / B
    e = pooled[0][:, 0]
    p = (e @ init.t()).softmax(-1)
    y = F.one_hot(pooled[1], 2).to(D)
    assert torch.allclose(central, init - LR * (p - y).t() @ e / 3, atol=1e-12)
    # client A alone moves row 1 too (its negative): away from its embeddings
    assert not torch.allclose(rows_a[1], init[1])


def test_own_class_client_updates_only_its_row_with_the_positive_gradient():
    """negatives=own_class (FedAwS): client A's step changes row 0 only, by -lr * sum_t (p_0(e_t) - 1) e_t / B."""
    init = _head("own_class").classes.detach()
    rows_a = _sgd_step(_head("own_class"), *CLIENT_A)
    assert torch.equal(rows_a[1], init[1])
    e = CLIENT_A[0][:, 0]
    p0 = (e @ init.t()).softmax(-1)[:, 0]
    assert torch.allclose(rows_a[0], init[0] - LR * ((p0 - 1).unsqueeze(1) * e).sum(0) / 2, atol=1e-12)


def test_spread_out_server_steps_the_class_rows_after_fedavg():
    torch.manual_seed(0)
    obj = AdversarialObjective(3, 3, heads=[{"name": "class_embedding", "embed_dim": 2}], total_steps=5)
    model = torch.nn.Module()
    model.enc = torch.nn.Linear(2, 2)
    model.adversary = obj
    layout = ParamLayout.from_module(model)
    slices = class_weight_slices(layout.names, layout.shapes)
    assert len(slices) == 1 and slices[0][1] == (3, 2)
    x = flatten_params(model, layout)
    delta = torch.randn_like(x) * 0.1
    server = SpreadOutServer(FedAvg(), slices, margin=5.0, lr=0.05, steps=2)
    assert isinstance(server, ServerStep) and not server.client_aware and not server.control_variates
    new = server.step(x, delta)
    off, (c, e) = slices[0]
    plain = x + delta
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[off:off + c * e] = True
    assert torch.equal(new[~mask], plain[~mask])  # everything else: FedAvg exactly
    expect = spread_out_step(plain[mask].view(c, e), margin=5.0, lr=0.05, steps=2)
    assert torch.allclose(new[mask].view(c, e), expect)
    assert spread_out_penalty(expect, 5.0) < spread_out_penalty(plain[mask].view(c, e), 5.0)

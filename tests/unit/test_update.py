import pytest
import torch

from speechfl.federated.update import (ParamLayout, UpdateRejected, flatten_params, load_flat_params, unflatten,
                                       validate_update)


class Net(torch.nn.Module):
    def __init__(self, order):
        super().__init__()
        # same parameters registered in a different order: the layout must not care
        for name in order:
            setattr(self, name, torch.nn.Linear(2, 3 if name == "b" else 2))


def test_layout_is_by_name_not_position():
    torch.manual_seed(0)
    n1, n2 = Net(["a", "b"]), Net(["b", "a"])
    l1, l2 = ParamLayout.from_module(n1), ParamLayout.from_module(n2)
    assert l1 == l2
    load_flat_params(n2, l2, flatten_params(n1, l1))
    assert torch.equal(n1.a.weight, n2.a.weight) and torch.equal(n1.b.bias, n2.b.bias)


def test_round_trip_and_unflatten_views():
    n = Net(["a", "b"])
    lay = ParamLayout.from_module(n)
    flat = flatten_params(n, lay)
    assert flat.numel() == lay.dim == 2 * 2 + 2 + 2 * 3 + 3
    parts = unflatten(flat, lay)
    assert torch.equal(parts["b.weight"], n.b.weight.detach())
    with pytest.raises(ValueError):
        load_flat_params(n, lay, flat[:-1])


@pytest.mark.parametrize("bad,msg", [
    (torch.tensor([1.0, float("nan"), 0.0]), "1 NaN"),
    (torch.tensor([1.0, float("inf"), 0.0]), "1 Inf"),
    (torch.zeros(4), "4 values"),
    (torch.zeros(3, 1), "1-D"),
    (torch.zeros(3, dtype=torch.long), "floating"),
])
def test_validate_update_rejects(bad, msg):
    with pytest.raises(UpdateRejected, match=msg):
        validate_update(bad, 3)
    validate_update(torch.zeros(3), 3)

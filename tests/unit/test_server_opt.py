import pytest
import torch

from speechfl.federated.server_opt import SERVER_OPTIMIZERS
from speechfl.registry import RegistryError


def test_fedavg_lr1_adds_delta():
    opt = SERVER_OPTIMIZERS.build("fedavg", lr=1.0)
    x = torch.tensor([1.0, 2.0])
    assert torch.equal(opt.step(x, torch.tensor([0.5, -1.0])), torch.tensor([1.5, 1.0]))


def test_fedadam_two_steps_by_hand():
    opt = SERVER_OPTIMIZERS.build("fedadam", lr=0.1, beta1=0.5, beta2=0.5, tau=0.1)
    x = torch.tensor([0.0])
    # step 1: m = 0.5*0 + 0.5*2 = 1 ; v = 0.5*tau^2 + 0.5*4 = 2.005 ; x = 0.1 * 1/(sqrt(2.005)+0.1)
    x1 = opt.step(x, torch.tensor([2.0]))
    assert x1.item() == pytest.approx(0.1 / (2.005**0.5 + 0.1), rel=1e-6)
    # step 2 with delta = -2: m = 0.5 - 1 = -0.5 ; v = 1.0025 + 2 = 3.0025
    x2 = opt.step(x1, torch.tensor([-2.0]))
    assert x2.item() == pytest.approx(x1.item() + 0.1 * -0.5 / (3.0025**0.5 + 0.1), rel=1e-6)


def test_fedyogi_second_moment_by_hand():
    opt = SERVER_OPTIMIZERS.build("fedyogi", lr=1.0, beta1=0.0, beta2=0.5, tau=0.5)
    # v0 = tau^2 = 0.25; delta^2 = 4 > v0 -> v = 0.25 - 0.5*4*sign(0.25-4) = 2.25
    x = opt.step(torch.tensor([0.0]), torch.tensor([2.0]))
    assert x.item() == pytest.approx(2.0 / (1.5 + 0.5))


def test_state_round_trip_and_registry_errors():
    opt = SERVER_OPTIMIZERS.build("fedadam")
    opt.step(torch.zeros(3), torch.ones(3))
    other = SERVER_OPTIMIZERS.build("fedadam")
    other.load_state_dict(opt.state_dict())
    assert torch.equal(other.step(torch.zeros(3), torch.ones(3)), opt.step(torch.zeros(3), torch.ones(3)))
    with pytest.raises(RegistryError, match="fedadam"):
        SERVER_OPTIMIZERS.build("fedadamw")
    with pytest.raises(RegistryError, match="valid parameters: lr"):
        SERVER_OPTIMIZERS.build("fedavg", momentum=0.9)

import math

import pytest
import torch

from speechfl.models.grl import GradReverse, LambdaSchedule, dann_lambda, grad_reverse


def test_forward_is_identity_and_backward_flips_and_scales():
    torch.manual_seed(0)
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.3 * w)


def test_reversal_inside_a_chain_negates_the_plain_gradient():
    torch.manual_seed(1)
    lin1, lin2 = torch.nn.Linear(5, 6), torch.nn.Linear(6, 2)
    x = torch.randn(4, 5)

    def grads(lambd):
        lin1.zero_grad(), lin2.zero_grad()
        h = lin1(x)
        h = h if lambd is None else grad_reverse(h, lambd)
        lin2(torch.tanh(h)).pow(2).sum().backward()
        return lin1.weight.grad.clone(), lin2.weight.grad.clone()

    plain_first, plain_second = grads(None)
    rev_first, rev_second = grads(2.5)
    assert torch.allclose(rev_first, -2.5 * plain_first, atol=1e-6)
    assert torch.allclose(rev_second, plain_second)  # layers after the GRL are unaffected
    assert plain_first.abs().sum() > 0


def test_zero_lambda_blocks_gradient_and_autograd_function_has_no_lambda_grad():
    x = torch.randn(2, requires_grad=True)
    GradReverse.apply(x, 0.0).sum().backward()
    assert torch.equal(x.grad, torch.zeros(2))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_lambda_raises(bad):
    with pytest.raises(ValueError, match="lambda"):
        grad_reverse(torch.zeros(2), bad)


def test_integer_tensor_raises():
    with pytest.raises(TypeError, match="floating point"):
        grad_reverse(torch.zeros(2, dtype=torch.long), 1.0)


def test_dann_schedule_values():
    # 2 / (1 + exp(-x)) - 1 == tanh(x / 2)
    sched = LambdaSchedule("dann", total_steps=100, lambda_max=2.0, gamma=10.0)
    assert sched(0) == 0.0
    assert sched(50) == pytest.approx(2.0 * math.tanh(2.5), rel=1e-12)
    assert sched(100) == pytest.approx(2.0 * math.tanh(5.0), rel=1e-12)
    assert sched(1000) == sched(100)  # progress is clamped at 1
    assert dann_lambda(0.25, 1.0, 4.0) == pytest.approx(2 / (1 + math.exp(-1.0)) - 1)


def test_constant_and_linear_schedules():
    assert LambdaSchedule("constant", total_steps=10, lambda_max=0.4)(7) == 0.4
    lin = LambdaSchedule("linear", total_steps=100, lambda_max=1.0, warmup_steps=10)
    assert [lin(s) for s in (0, 5, 10, 50)] == [0.0, 0.5, 1.0, 1.0]
    assert LambdaSchedule("linear", total_steps=4)(1) == 0.25  # warm-up defaults to total_steps


def test_schedule_validation():
    with pytest.raises(ValueError, match="valid kinds: constant, dann, linear"):
        LambdaSchedule("cosine", total_steps=10)
    with pytest.raises(ValueError, match="gamma"):
        LambdaSchedule("constant", total_steps=10, gamma=3.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        LambdaSchedule("dann", total_steps=10, warmup_steps=3)
    with pytest.raises(ValueError, match="total_steps"):
        LambdaSchedule("dann", total_steps=0)
    with pytest.raises(ValueError, match="unknown key"):
        LambdaSchedule.from_spec({"kind": "dann", "lamda_max": 1.0}, total_steps=10)
    with pytest.raises(ValueError, match="step"):
        LambdaSchedule("dann", total_steps=10)(-1)
    assert LambdaSchedule.from_spec({"kind": "dann", "gamma": 5.0}, total_steps=10).gamma == 5.0

"""Gradient matching (Geiping et al., NeurIPS 2020, "Inverting Gradients"), model-agnostic core.

Given the parameters ``theta`` the client started from and the update ``delta`` the
server observed, find the input ``x`` whose simulated update matches it::

    x* = argmin_x  1 - cos(U(x), delta) + alpha * TV(x)

with ``U(x)`` the client's update on ``x``: ``-grad_theta L(theta; x)`` for one step
(FedSGD; cosine makes the learning rate irrelevant), or ``theta_K - theta_0`` after
``K`` unrolled SGD steps of learning rate ``eta`` on the same ``x`` (Geiping et al.'s
multi-step attack; differentiated through the unrolling). The cosine is taken
over the whole flat update, or (``layerwise``) per parameter tensor and averaged, so that the
small front-end gradients, which depend most directly on the input, weigh as much as the output
head's (the layer-wise cosine of Huang et al. 2021, "Evaluating gradient inversion attacks and
defenses"). ``x`` is optimised with Adam on the signed gradient, the learning rate cut
by 10x at 3/8, 5/8 and 7/8 of the iterations (their schedule).
TV is the mean absolute difference between neighbours along every axis but the
first (the batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import torch


@dataclass(frozen=True)
class MatchConfig:
    """Parameters of the gradient-matching optimisation.

    Attributes
    ----------
    iterations : int
        Adam steps on the input.
    lr : float
        Adam learning rate on the input.
    tv_weight : float
        ``alpha``, weight of the total-variation prior.
    local_steps : int
        ``K`` SGD steps the attacker unrolls (1 = FedSGD).
    local_lr : float
        ``eta`` of the unrolled steps (unused when ``local_steps == 1``).
    signed : bool
        Feed Adam the sign of the input gradient (Geiping et al.'s choice), not the gradient.
    layerwise : bool
        Mismatch = mean over parameter tensors of ``1 - cos`` (each tensor weighs the same),
        instead of ``1 - cos`` of the whole flat update.
    """

    iterations: int = 300
    lr: float = 0.1
    tv_weight: float = 1e-2
    local_steps: int = 1
    local_lr: float = 1e-3
    signed: bool = True
    layerwise: bool = False

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.local_steps < 1:
            raise ValueError(f"iterations and local_steps must be >= 1, got {self.iterations}, {self.local_steps}")
        if self.lr <= 0 or self.local_lr <= 0 or self.tv_weight < 0:
            raise ValueError(f"lr, local_lr must be > 0 and tv_weight >= 0, got {self.lr}, {self.local_lr}, "
                             f"{self.tv_weight}")


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute neighbour difference along every axis except the first."""
    if x.dim() < 2:
        raise ValueError(f"total_variation needs a batch axis and at least one more, got {tuple(x.shape)}")
    terms = [torch.diff(x, dim=d).abs().mean() for d in range(1, x.dim()) if x.shape[d] > 1]
    return torch.stack(terms).sum() if terms else x.new_zeros(())


def simulated_update(loss_fn: Callable[[Dict[str, torch.Tensor], torch.Tensor], torch.Tensor],
                     params: Dict[str, torch.Tensor], x: torch.Tensor, local_steps: int,
                     local_lr: float) -> torch.Tensor:
    """The flat update ``U(x)`` (names in ``params`` order), differentiable in ``x``."""
    names = list(params)
    cur = dict(params)
    if local_steps == 1:
        grads = torch.autograd.grad(loss_fn(cur, x), [cur[n] for n in names], create_graph=True)
        return -torch.cat([g.reshape(-1) for g in grads])
    for _ in range(local_steps):
        grads = torch.autograd.grad(loss_fn(cur, x), [cur[n] for n in names], create_graph=True)
        cur = {n: cur[n] - local_lr * g for n, g in zip(names, grads)}
    return torch.cat([(cur[n] - params[n]).reshape(-1) for n in names])


def layerwise_mismatch(sim: torch.Tensor, target: torch.Tensor, sizes: List[int]) -> torch.Tensor:
    """Mean over the chunks of ``sizes`` (one per parameter tensor) of ``1 - cos(sim_chunk, target_chunk)``;
    chunks where the target is all zeros (a compressor dropped them) are left out."""
    terms = [1.0 - torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-12)
             for a, b in zip(sim.split(sizes), target.split(sizes)) if bool(b.any())]
    if not terms:
        raise ValueError("observed update is all zeros: nothing to match")
    return torch.stack(terms).mean()


def mismatch(sim: torch.Tensor, target: torch.Tensor, sizes: List[int], layerwise: bool) -> torch.Tensor:
    """The matching objective: ``1 - cos`` of the whole flat update, or :func:`layerwise_mismatch`."""
    if layerwise:
        return layerwise_mismatch(sim, target, sizes)
    return 1.0 - torch.nn.functional.cosine_similarity(sim, target, dim=0, eps=1e-12)


def match_input(loss_fn: Callable[[Dict[str, torch.Tensor], torch.Tensor], torch.Tensor],
                params: Dict[str, torch.Tensor], observed: torch.Tensor, x0: torch.Tensor,
                config: MatchConfig) -> Tuple[torch.Tensor, List[float]]:
    """Optimise ``x`` from ``x0`` so its simulated update matches ``observed`` in cosine.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params, x) -> scalar`` training loss (must be twice differentiable).
    params : dict of str to torch.Tensor
        Starting parameters (leaves with ``requires_grad=True`` are made here).
    observed : torch.Tensor
        The observed flat update, names in ``params`` order.
    x0 : torch.Tensor
        Starting input (e.g. Gaussian noise).

    Returns
    -------
    (x, history): the reconstruction and ``1 - cos`` at every iteration.
    """
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    d = sum(p.numel() for p in leaves.values())
    if observed.dim() != 1 or observed.numel() != d:
        raise ValueError(f"observed update has shape {tuple(observed.shape)}, the matched parameters hold {d}")
    if float(observed.norm()) == 0.0:
        raise ValueError("observed update is all zeros: nothing to match")
    target = observed.detach().to(torch.float32)
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=config.lr)
    n = config.iterations
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3 * n // 8, 5 * n // 8, 7 * n // 8], gamma=0.1)
    sizes = [p.numel() for p in leaves.values()]
    history: List[float] = []
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        sim = simulated_update(loss_fn, leaves, x, config.local_steps, config.local_lr)
        gap = mismatch(sim, target, sizes, config.layerwise)
        loss = gap + config.tv_weight * total_variation(x) if config.tv_weight else gap
        (gx,) = torch.autograd.grad(loss, [x])
        x.grad = gx.sign() if config.signed else gx
        opt.step()
        sched.step()
        history.append(float(gap.detach()))
    return x.detach(), history

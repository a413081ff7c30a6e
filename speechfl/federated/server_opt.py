"""Server optimizers on the aggregated pseudo-gradient (Reddi et al. 2021, "Adaptive Federated Optimization").

With ``delta`` the aggregated client update (new minus old model):

* FedAvg:  x <- x + lr * delta                          (SGD on -delta; lr = 1 is plain FedAvg)
* FedAvgM: m <- beta * m + delta;  x <- x + lr * m
* FedAdam: m <- b1 m + (1-b1) delta;  v <- b2 v + (1-b2) delta^2;  x <- x + lr * m / (sqrt(v) + tau)
* FedYogi: as FedAdam but v <- v - (1-b2) delta^2 sign(v - delta^2)

Reddi et al. use no bias correction and tau ~ 1e-3; so do we.
"""

from __future__ import annotations

from typing import Dict

import torch

from speechfl.registry import Registry

SERVER_OPTIMIZERS = Registry("server optimizer")


def _clone(t):
    return None if t is None else t.clone()


class ServerOptimizer:
    name = "base"

    def step(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> Dict:
        return {}

    def load_state_dict(self, state: Dict) -> None:
        if state:
            raise ValueError(f"{self.name} has no state but got {sorted(state)}")


@SERVER_OPTIMIZERS.register("fedavg")
class FedAvg(ServerOptimizer):
    name = "fedavg"

    def __init__(self, lr: float = 1.0):
        self.lr = float(lr)

    def step(self, x, delta):
        return x + self.lr * delta


@SERVER_OPTIMIZERS.register("fedavgm")
class FedAvgM(ServerOptimizer):
    name = "fedavgm"

    def __init__(self, lr: float = 1.0, momentum: float = 0.9):
        self.lr, self.beta = float(lr), float(momentum)
        self.m = None

    def step(self, x, delta):
        self.m = delta.clone() if self.m is None else self.beta * self.m + delta
        return x + self.lr * self.m

    def state_dict(self):
        return {"m": self.m}

    def load_state_dict(self, state):
        self.m = _clone(state.get("m"))


class _Adaptive(ServerOptimizer):
    def __init__(self, lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3):
        self.lr, self.b1, self.b2, self.tau = float(lr), float(beta1), float(beta2), float(tau)
        self.m = None
        self.v = None

    def _second_moment(self, delta2: torch.Tensor) -> None:
        raise NotImplementedError

    def step(self, x, delta):
        if self.m is None:
            self.m = torch.zeros_like(delta)
            self.v = torch.full_like(delta, self.tau**2)
        self.m.mul_(self.b1).add_(delta, alpha=1 - self.b1)
        self._second_moment(delta * delta)
        return x + self.lr * self.m / (self.v.sqrt() + self.tau)

    def state_dict(self):
        return {"m": self.m, "v": self.v}

    def load_state_dict(self, state):
        # clone: the moments are updated in place and must not alias the caller's tensors
        self.m, self.v = _clone(state.get("m")), _clone(state.get("v"))


@SERVER_OPTIMIZERS.register("fedadam")
class FedAdam(_Adaptive):
    name = "fedadam"

    def _second_moment(self, d2):
        self.v.mul_(self.b2).add_(d2, alpha=1 - self.b2)


@SERVER_OPTIMIZERS.register("fedyogi")
class FedYogi(_Adaptive):
    name = "fedyogi"

    def _second_moment(self, d2):
        self.v.sub_((1 - self.b2) * d2 * torch.sign(self.v - d2))

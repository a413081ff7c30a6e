"""Server optimizers on the aggregated pseudo-gradient (Reddi et al. 2021, "Adaptive Federated Optimization").

With ``delta`` the aggregated client update (new minus old model):

* FedAvg:  x <- x + lr * delta                          (SGD on -delta; lr = 1 is plain FedAvg)
* FedAvgM: m <- beta * m + delta;  x <- x + lr * m
* FedAdam: m <- b1 m + (1-b1) delta;  v <- b2 v + (1-b2) delta^2;  x <- x + lr * m / (sqrt(v) + tau)
* FedYogi: as FedAdam but v <- v - (1-b2) delta^2 sign(v - delta^2)
* SCAFFOLD: x <- x + lr * delta and the server control variate (see :class:`Scaffold`)

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
    client_aware = False  # True: the server calls combine() with the clients' reported losses (speechfl.fairness)
    control_variates = False  # True: SCAFFOLD; setup calls configure() with the federation's sizes

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


@SERVER_OPTIMIZERS.register("scaffold")
class Scaffold(ServerOptimizer):
    """SCAFFOLD's server side (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging
    for Federated Learning", Algorithm 1 with option II control variates).

    Clients correct every local gradient by ``c - c_i`` (``y <- y - lr_l (g - c_i + c)``) and, after
    ``K`` local steps, update their own variate ``c_i <- c_i - c + (x - y_i) / (K lr_l)`` (client
    side: :func:`speechfl.federated.client.local_train` with ``control=``). Server, with ``delta``
    the aggregated update (mean of ``y_i - x`` over the ``|S|`` sampled clients of ``N``)::

        x <- x + lr * delta
        c <- c + (|S| / N) * (-c - delta / (K lr_l))        # = c + (1/N) sum_i (c_i+ - c_i)

    The second line is the paper's ``c`` update written in terms of ``delta`` (so clients need
    not upload ``c_i+ - c_i``): exact when ``delta`` is the unweighted mean of the clients'
    exact updates (``weighted_mean`` with equal sample counts, ``mean``, fp32 uplink). Under lossy
    compression, robust aggregation or DP it uses what the server received: ``c`` then tracks the
    mean of the clients' variates only approximately. Local SGD only (the setup refuses others):
    under Adam, ``(x - y_i) / (K lr_l)`` is a normalised step, not a mean gradient, and the
    correction swamps the gradient (measured: the benchmark collapsed to 100 % CER).
    ``local_lr_decay`` multiplies ``lr_l`` by ``decay ** (round - 1)``, matching the clients' decayed
    learning rate.

    :meth:`configure` must be called by the setup with the federation's sizes before the first step.
    """

    name = "scaffold"
    control_variates = True

    def __init__(self, lr: float = 1.0):
        self.lr = float(lr)
        self.control = None
        self.rounds = 0
        self.participation = None
        self.local_steps = None
        self.local_lr = None
        self.local_lr_decay = 1.0

    def configure(self, *, n_clients: int, per_round: int, local_steps: int, local_lr: float,
                  local_lr_decay: float = 1.0) -> None:
        if not 1 <= per_round <= n_clients:
            raise ValueError(f"scaffold: per_round={per_round} must be in [1, n_clients={n_clients}]")
        if local_steps < 1 or local_lr <= 0:
            raise ValueError(f"scaffold: needs local_steps >= 1 and a positive local lr, got {local_steps}, {local_lr}")
        self.participation = per_round / n_clients
        self.local_steps, self.local_lr, self.local_lr_decay = int(local_steps), float(local_lr), float(local_lr_decay)

    def client_control(self, dim: int) -> torch.Tensor:
        """The server variate ``c`` sent to clients with the model (zeros before the first round)."""
        return torch.zeros(dim) if self.control is None else self.control.clone()

    def step(self, x, delta):
        if self.participation is None:
            raise RuntimeError("scaffold: configure() was not called by the setup")
        if self.control is None:
            self.control = torch.zeros_like(delta)
        lr_l = self.local_lr * self.local_lr_decay ** self.rounds
        self.control = self.control + self.participation * (-self.control - delta / (self.local_steps * lr_l))
        self.rounds += 1
        return x + self.lr * delta

    def state_dict(self):
        return {"control": self.control, "rounds": self.rounds}

    def load_state_dict(self, state):
        self.control = _clone(state.get("control"))
        self.rounds = int(state.get("rounds", 0))


# fairness-aware server steps (q-FedAvg, AFL, CTC-DRO, group reweighting) register themselves here
import speechfl.fairness  # noqa: E402,F401

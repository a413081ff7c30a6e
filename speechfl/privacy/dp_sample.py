"""Sample-level differential privacy for one client's local training (Opacus DP-SGD).

Abadi et al., "Deep Learning with Differential Privacy", CCS 2016. At every local
step each per-sample gradient is clipped to L2 norm ``C`` and Gaussian noise is
added to their sum before averaging over the expected batch size ``B``::

    g = ( sum_i g_i * min(1, C / ||g_i||)  +  N(0, (z C)^2 I) ) / B

Opacus does the work: :class:`~opacus.GradSampleModule` computes per-sample
gradients with hooks, :class:`~opacus.optimizers.DPOptimizer` clips, noises and
steps, and an Opacus accountant composes the steps at sampling rate ``q = B / n``
for the client's ``n`` utterances. The guarantee is per client, over all its local
steps in all rounds; the engine keeps one :class:`SampleDP` per client and saves
its :meth:`SampleDP.state_dict` between rounds.

The accountant assumes Poisson sampling, and that is what the clients run: every
batch holds each of the client's ``n`` utterances independently with probability
``q = B / n`` (:meth:`SampleDP.poisson_loader`, Opacus' ``UniformWithReplacementSampler``
as ``make_private(poisson_sampling=True)`` uses), drawn from the client's seed. An empty
batch is still a step: only noise is released (:meth:`SampleDP.empty_step`), so the
number of releases does not depend on the data.
The model must be DP-compatible *when built* (LayerNorm not BatchNorm,
``opacus.layers.DPGRU``/``DPLSTM`` not ``nn.GRU``/``nn.LSTM``): we validate, we never
swap modules, because the federated layout is by parameter name.
"""

from __future__ import annotations

import math

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.utils.module_utils import trainable_modules
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from opacus.validators import ModuleValidator

from speechfl.privacy.accounting import (accountant_names, check_delta, check_history,
                                         epsilon_from_history, make_accountant)


def dp_compatibility_problems(model: torch.nn.Module) -> list[str]:
    """Every reason Opacus cannot train ``model`` with per-sample gradients, by module name."""
    problems = []
    if not model.training:
        problems.append("model is in eval mode; Opacus needs model.train()")
    for name, module in trainable_modules(model):
        label = f"{name or '<root>'} ({type(module).__name__})"
        validator = ModuleValidator.VALIDATORS.get(type(module))
        if validator is not None:
            problems.extend(f"{label}: {err}" for err in validator(module))
        buffers = [n for n, _ in module.named_buffers()]
        if buffers:
            problems.append(f"{label}: trainable module with buffers {buffers[:3]} (their values are not private)")
    return problems


def check_dp_compatible(model: torch.nn.Module) -> None:
    """Raise ValueError listing every problem (e.g. BatchNorm, ``nn.GRU`` instead of DPGRU)."""
    problems = dp_compatibility_problems(model)
    if problems:
        raise ValueError("model is not compatible with Opacus per-sample DP:\n  - " + "\n  - ".join(problems))


def _contiguous_inputs(module: torch.nn.Module, args: tuple) -> tuple:
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


def add_contiguity_hooks(model: torch.nn.Module) -> list:
    """Make every ``nn.Conv2d`` input contiguous; returns the hook handles.

    Opacus 1.6's Conv2d grad sampler (``opacus.utils.tensor_utils.unfold2d``) builds
    patches with ``as_strided`` assuming a contiguous activation. SpeechBrain's
    ``Conv2d`` feeds a transposed (non-contiguous) tensor, and the per-sample
    gradients come out silently wrong (so clipping, hence the DP guarantee, would
    be wrong). A forward pre-hook runs before Opacus' activation-capturing forward
    hook, so Opacus sees the contiguous copy.
    """
    return [m.register_forward_pre_hook(_contiguous_inputs) for m in model.modules()
            if isinstance(m, torch.nn.Conv2d)]


def _seed_for(seed: int, n: int) -> int:
    return (int(seed) * 1_000_003 + 7919 * n) % (2 ** 63)


class SampleDP:
    """Opacus DP-SGD for one client (see module docstring).

    Parameters
    ----------
    noise_multiplier : float
        ``z``; per-step noise std is ``z * max_grad_norm`` on the summed gradient.
    max_grad_norm : float
        Per-sample clipping bound ``C``.
    delta : float
        Target delta for :meth:`epsilon`.
    accountant : {"rdp", "gdp", "prv"}
        Opacus accounting mechanism.
    seed : int
        Noise seed; every :meth:`wrap` draws from a fresh stream ``(seed, wrap count)``.
    """

    def __init__(self, *, noise_multiplier: float, max_grad_norm: float, delta: float,
                 accountant: str = "rdp", seed: int = 0):
        if not math.isfinite(float(noise_multiplier)) or noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier}")
        if not math.isfinite(float(max_grad_norm)) or max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be finite and > 0, got {max_grad_norm}")
        self.noise_multiplier, self.max_grad_norm = float(noise_multiplier), float(max_grad_norm)
        self.delta = check_delta(delta)
        if accountant not in accountant_names():
            raise ValueError(f"unknown accountant {accountant!r}; valid accountants: {', '.join(accountant_names())}")
        self.mechanism = accountant
        self.seed = int(seed)
        self._accountant = make_accountant(accountant)
        self._wraps = 0
        self.sample_rate: float | None = None

    def wrap(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, batch_size: int,
             n_samples: int) -> tuple[GradSampleModule, DPOptimizer]:
        """Wrap ``model`` and ``optimizer`` for DP-SGD at ``q = batch_size / n_samples``.

        The loss must be the *mean* over the batch of per-utterance losses.
        Every ``optimizer.step()`` is one accounted step.
        """
        if isinstance(model, GradSampleModule):
            raise ValueError("model is already a GradSampleModule; pass the plain module (see unwrap())")
        if isinstance(optimizer, DPOptimizer):
            raise ValueError("optimizer is already a DPOptimizer; pass the plain optimizer")
        for name, value in (("batch_size", batch_size), ("n_samples", n_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if batch_size > n_samples:
            raise ValueError(f"batch_size {batch_size} exceeds the client's {n_samples} samples")
        check_dp_compatible(model)
        model_params = {id(p) for p in model.parameters()}
        if any(id(p) not in model_params for g in optimizer.param_groups for p in g["params"]):
            raise ValueError("the optimizer holds parameters that are not the model's")
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(_seed_for(self.seed, self._wraps))
        self._wraps += 1
        self.sample_rate = batch_size / n_samples
        hooks = add_contiguity_hooks(model)
        gs_model = GradSampleModule(model, batch_first=True, loss_reduction="mean", strict=True)
        gs_model.speechfl_hooks = hooks
        dp_optimizer = DPOptimizer(optimizer, noise_multiplier=self.noise_multiplier,
                                   max_grad_norm=self.max_grad_norm, expected_batch_size=batch_size,
                                   loss_reduction="mean", generator=generator)
        dp_optimizer.attach_step_hook(self._accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate))
        return gs_model, dp_optimizer

    def batch_sampler(self, *, n_samples: int, batch_size: int, steps: int | None = None,
                      generator: torch.Generator | None = None) -> UniformWithReplacementSampler:
        """Poisson batch sampler (each sample in each batch with prob. ``batch_size / n_samples``),
        the sampling the accountant assumes; batches may be empty. Use as ``DataLoader(batch_sampler=...)``."""
        if batch_size < 1 or batch_size > n_samples:
            raise ValueError(f"need 1 <= batch_size <= n_samples, got {batch_size}, {n_samples}")
        return UniformWithReplacementSampler(num_samples=n_samples, sample_rate=batch_size / n_samples,
                                             generator=generator, steps=steps)

    def poisson_loader(self, dataset, *, batch_size: int, steps: int, seed: int, collate_fn):
        """A ``DataLoader`` of ``steps`` Poisson batches of ``dataset`` per pass (see module docstring).

        Deterministic under ``seed``. An empty batch comes out as ``None`` (never
        collated): call :meth:`empty_step` for it.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        sampler = self.batch_sampler(n_samples=len(dataset), batch_size=batch_size, steps=steps,
                                     generator=torch.Generator().manual_seed(int(seed)))
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=0,
                                           collate_fn=lambda items: collate_fn(items) if items else None)

    @staticmethod
    def empty_step(optimizer: DPOptimizer) -> None:
        """One DP-SGD step on an empty Poisson batch: ``g = N(0, (z C)^2 I) / B``, accounted as any step."""
        if not isinstance(optimizer, DPOptimizer):
            raise TypeError(f"expected the DPOptimizer from wrap(), got {type(optimizer).__name__}")
        for p in optimizer.params:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
        optimizer.step()

    @property
    def steps(self) -> int:
        """Accounted optimizer steps so far (all rounds)."""
        return sum(h[2] for h in self._accountant.history)

    def epsilon(self) -> float:
        """This client's ``epsilon`` at ``self.delta`` over all its local steps so far."""
        return epsilon_from_history(self._accountant.history, self.delta, self.mechanism)

    def unwrap(self, gs_model: GradSampleModule) -> torch.nn.Module:
        """The plain module, with Opacus' and our hooks and per-parameter attributes removed."""
        if not isinstance(gs_model, GradSampleModule):
            raise TypeError(f"expected a GradSampleModule, got {type(gs_model).__name__}")
        for handle in getattr(gs_model, "speechfl_hooks", []):
            handle.remove()
        module = gs_model.to_standard_module()
        for p in module.parameters():
            if hasattr(p, "summed_grad"):
                delattr(p, "summed_grad")
        return module

    def state_dict(self) -> dict:
        return {"mechanism": self.mechanism, "history": [list(h) for h in self._accountant.history],
                "wraps": self._wraps}

    def load_state_dict(self, d: dict) -> None:
        missing = {"mechanism", "history", "wraps"} - set(d)
        if missing:
            raise ValueError(f"SampleDP state lacks keys {sorted(missing)}")
        if d["mechanism"] != self.mechanism:
            raise ValueError(f"state is for accountant {d['mechanism']!r}, this SampleDP uses {self.mechanism!r}")
        self._accountant.history = check_history(d["history"])
        self._wraps = int(d["wraps"])

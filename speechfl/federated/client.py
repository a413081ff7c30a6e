"""Local training of one client: a lean loop over the shared objective.

We use a lean loop rather than ``sb.Brain.fit`` because a client's run is a
few steps on one speaker: Brain's per-fit setup (checkpointer, dataloader
wrapping, progress bars, distributed checks) would dominate, and the engine
overhead target is 1.10x pure compute. The loop calls exactly the same
objective (``speechfl.models.objective.training_loss``), data pipeline and model
as the centralized Brain recipe, so nothing about the model or loss is copied.

Randomness (batch order, dropout, SpecAugment) is drawn from generators seeded
by (run seed, round, client id), so a client's update does not depend on which
engine runs it, on the order clients run in, or on a resume.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch

from speechfl.data.dataset import make_loader
from speechfl.federated.update import ParamLayout, Update, flatten_params, load_flat_params, unflatten
from speechfl.models.objective import training_loss
from speechfl.registry import Registry

LOCAL_OPTIMIZERS = Registry("local optimizer")
LOCAL_OPTIMIZERS.register("sgd")(torch.optim.SGD)
LOCAL_OPTIMIZERS.register("adam")(torch.optim.Adam)
LOCAL_OPTIMIZERS.register("adamw")(torch.optim.AdamW)


@dataclass
class ClientConfig:
    """How a client trains locally.

    ``local_epochs`` or ``local_steps`` (exactly one). ``prox_mu > 0`` adds the FedProx
    term mu/2 ||w - w_global||^2 (Li et al. 2020). ``lr_decay`` multiplies the local learning
    rate by ``lr_decay ** (round - 1)`` (local learning-rate decay across rounds).
    ``report_global_loss`` adds ``global_loss`` to the update's metadata: the mean CTC loss of
    the client's data at the global model, before training (``F_k`` of q-FedAvg and AFL; set by
    the setup when a fairness-aware server optimizer needs it).
    """

    local_epochs: Optional[int] = 1
    local_steps: Optional[int] = None
    batch_size: int = 8
    optimizer: Dict = field(default_factory=lambda: {"name": "adam", "lr": 1e-3})
    prox_mu: float = 0.0
    max_grad_norm: Optional[float] = 5.0
    keep_optimizer_state: bool = False  # stateful clients (the centralized reference uses it)
    lr_decay: float = 1.0
    report_global_loss: bool = False
    group_dro: Optional[Dict] = None  # centralized group DRO over the batch's utterances (speechfl.fairness.pooled)

    def __post_init__(self):
        if (self.local_epochs is None) == (self.local_steps is None):
            raise ValueError("set exactly one of local_epochs and local_steps")
        if (self.local_epochs or self.local_steps or 0) < 1:
            raise ValueError("local_epochs / local_steps must be >= 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.group_dro is not None:
            from speechfl.fairness.pooled import PooledGroupSpec

            PooledGroupSpec.parse(self.group_dro)  # a bad rule or key fails at configuration time


def _pooled_group_dro(config: ClientConfig, dataset, state, seed: int, n: int, collate_fn):
    """The pooled client's :class:`~speechfl.fairness.pooled.OnlineGroupDRO` (its ``lambda`` restored from
    the persistent state) and, with ``length_matched``, the loader of length-matched batches."""
    from speechfl.fairness.pooled import OnlineGroupDRO, PooledGroupSpec, dataset_groups, make_group_loader

    if state is None:
        raise ValueError("client.group_dro keeps lambda in the client's persistent state, which this engine lacks")
    spec = PooledGroupSpec.parse(config.group_dro)
    dro = OnlineGroupDRO(spec, dataset_groups(dataset, spec.attribute))
    if "group_dro" in state:
        dro.load_state_dict(state["group_dro"])
    steps = config.local_steps or config.local_epochs * -(-n // config.batch_size)
    return dro, make_group_loader(dataset, spec, config.batch_size, seed, steps, collate_fn)


def client_seed(seed: int, round_: int, client_id: str) -> int:
    """A 63-bit seed from (run seed, round, client id), stable across processes."""
    h = hashlib.sha256(f"{seed}|{round_}|{client_id}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def build_local_optimizer(spec: Dict, params):
    spec = dict(spec)
    name = spec.pop("name")
    return LOCAL_OPTIMIZERS.build(name, params=params, **spec)


def local_train(
    model: torch.nn.Module,
    layout: ParamLayout,
    global_flat: torch.Tensor,
    dataset,
    config: ClientConfig,
    *,
    client_id: str,
    seed: int,
    round_: int,
    step_offset: int = 0,
    label_maps=None,
    augment=None,
    device="cpu",
    dp=None,
    state: Optional[Dict] = None,
    control: Optional[torch.Tensor] = None,
    public_pool=None,
) -> Update:
    """Train ``model`` from ``global_flat`` on ``dataset`` and return the delta.

    Parameters
    ----------
    dp : speechfl.privacy.dp_sample.SampleDP or None
        Opacus per-sample DP for this client (its accountant state lives in ``dp``).
    step_offset : int
        Global step count at the start (drives the adversary's lambda schedule).
    state : dict or None
        This client's persistent state; holds the optimizer state when
        ``config.keep_optimizer_state``, and the SCAFFOLD variate ``c_i`` (key ``scaffold_c``).
    control : Tensor [d] or None
        SCAFFOLD's server variate ``c`` (Karimireddy et al. 2020): every local gradient becomes
        ``g - c_i + c`` (after clipping ``g``), and after the ``K`` local steps
        ``c_i <- c_i - c + (x - y) / (K lr)`` (option II) is kept in ``state``.
    public_pool : speechfl.privacy.public_pool.PublicPool or None
        Public voices drawn at every step as the adversary's negatives (draws depend on the run seed,
        round, client and global step only).
    """
    start = time.perf_counter()
    cseed = client_seed(seed, round_, client_id)
    torch.manual_seed(cseed)
    load_flat_params(model, layout, global_flat.to(device))
    model.train()
    n = len(dataset)
    if n == 0:
        raise ValueError(f"client {client_id} has no training utterances")
    global_loss = None
    if config.report_global_loss:  # eval mode; the RNG is re-seeded so the training below is unchanged by it
        from speechfl.metrics.asr import mean_loss

        global_loss = mean_loss(model, make_loader(dataset, config.batch_size, shuffle=False), device)
        torch.manual_seed(cseed)  # a DataLoader draws its base seed from the global generator
    opt_spec = dict(config.optimizer)
    if config.lr_decay != 1.0:
        opt_spec["lr"] = float(opt_spec["lr"]) * config.lr_decay ** (round_ - 1)
    optimizer = build_local_optimizer(opt_spec, [p for p in model.parameters() if p.requires_grad])
    if config.keep_optimizer_state and state is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    loader = make_loader(dataset, config.batch_size, shuffle=True, seed=cseed)
    group_dro = None
    if config.group_dro is not None:
        group_dro, group_loader = _pooled_group_dro(config, dataset, state, cseed, n, loader.collate_fn)
        loader = group_loader or loader
    train_model = model
    if dp is not None:
        train_model, optimizer = dp.wrap(model, optimizer, batch_size=config.batch_size, n_samples=n)
        # the Poisson batches the accountant assumes (not shuffled fixed-size ones); empty ones come as None
        loader = dp.poisson_loader(dataset, batch_size=config.batch_size, seed=cseed, collate_fn=loader.collate_fn,
                                   steps=config.local_steps or -(-n // config.batch_size))
    anchor = global_flat.to(device) if config.prox_mu > 0 else None
    params = [p for p in model.parameters() if p.requires_grad]
    correction = None
    if control is not None:
        if state is None or dp is not None:
            raise ValueError("SCAFFOLD needs the client's persistent state and cannot run under dp_sample")
        c_i = state.get("scaffold_c")
        c_i = torch.zeros(layout.dim) if c_i is None else c_i
        named = dict(model.named_parameters())
        correction = [(named[n], g) for n, g in unflatten((control - c_i).to(device), layout).items()]

    steps, seen, loss_sum, adv_acc, adv_ce, uniform_ce = 0, 0, 0.0, [], [], None
    max_steps = config.local_steps
    epochs = config.local_epochs if config.local_epochs is not None else 10**9
    done = False
    for _ in range(epochs):
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            if batch is None:  # an empty Poisson batch (dp_sample): a noise-only step, accounted as any step
                dp.empty_step(optimizer)
                steps += 1
                done = max_steps is not None and steps >= max_steps
                if done:
                    break
                continue
            public = None if public_pool is None else public_pool.draw(seed, round_, client_id, step_offset + steps)
            out = training_loss(model, batch, step=step_offset + steps, label_maps=label_maps,
                                augment=augment, device=device, forward=train_model, group_dro=group_dro,
                                public=public)
            if out.reinitialised:
                model.adversary.clear_optimizer_state(optimizer, out.reinitialised)
            loss = out.loss
            if anchor is not None:
                diff = torch.cat([p.reshape(-1) for p in params]) - anchor
                loss = loss + 0.5 * config.prox_mu * diff.pow(2).sum()
            loss.backward()
            if dp is None and config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            if correction is not None:
                for p, corr in correction:
                    if p.grad is None:
                        p.grad = corr.clone()
                    else:
                        p.grad.add_(corr)
            optimizer.step()
            steps += 1
            seen += len(batch.id)
            loss_sum += out.ctc
            if out.adv_accuracy is not None:
                adv_acc.append(out.adv_accuracy)
            if out.adv_ce is not None:
                adv_ce.append(out.adv_ce)
                uniform_ce = out.adv_uniform_ce
            if max_steps is not None and steps >= max_steps:
                done = True
                break
        if done:
            break
    if dp is not None:
        model = dp.unwrap(train_model)
    if config.keep_optimizer_state and state is not None:
        state["optimizer"] = optimizer.state_dict()
    if group_dro is not None:
        state["group_dro"] = group_dro.state_dict()
    delta = flatten_params(model, layout).cpu() - global_flat.cpu()
    if control is not None:
        state["scaffold_c"] = c_i - control.cpu() - delta / (steps * float(opt_spec["lr"]))
    meta = {"train_loss": loss_sum / max(steps, 1), "steps": steps, "seconds": time.perf_counter() - start}
    if global_loss is not None:
        meta["global_loss"] = global_loss
    if adv_acc:
        meta["adversary_accuracy"] = sum(adv_acc) / len(adv_acc)
    if group_dro is not None:
        meta["group_lambda"] = {g: float(v) for g, v in zip(group_dro.names, group_dro.lam.tolist())}
    if adv_ce:  # the heads' cross-entropy against log C: above it, the encoder fools them instead of hiding
        meta["adversary_ce"] = sum(adv_ce) / len(adv_ce)
        meta["adversary_uniform_ce"] = float(uniform_ce)
    if dp is not None:
        meta["epsilon"] = dp.epsilon()
    return Update(client_id=client_id, delta=delta, n_samples=n, metadata=meta)

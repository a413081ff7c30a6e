"""Information bottlenecks on the encoder representation (speaker hiding), chosen by name.

A bottleneck sits at the end of ``model.encode``: the CTC head, the training adversaries and
the evaluation attackers all see its output, so what it removes is removed for every observer.
Stages (applied in the order listed in hparams ``bottleneck: [instance_norm, {name: vq, codes: 48}]``):

``instance_norm``
    Per-utterance normalisation over the valid frames, ``y_t = (x_t - mu) / sigma`` (Ulyanov et
    al. 2016 applied over time). Removes the utterance mean and scale, which pooled (mean/std)
    probes rely on; a frame-level x-vector still reads the speaker from the frame dynamics
    (issue 19's calibration: 0.69 top-1), so it is never a defense on its own.
``projection``
    Rank-k linear bottleneck ``y = U (P x)``, ``P: D -> k``, ``U: k -> D``: the representation keeps
    its width D (the CTC head is unchanged) but carries at most k dimensions of information.
    ``whiten: true`` whitens the k-dim frames per utterance, ``y = U L^{-1} (P x - mu)`` with ``mu`` and
    ``L L^T = C + eps (tr C / k) I`` the utterance's mean and covariance over its valid frames (Cholesky
    whitening, differentiable): every first- and second-order statistic of the projected frames is then the
    same for every utterance, which is what pooled (mean/std) probes and Gaussian speaker models read and what
    ``instance_norm`` (per dimension) leaves in the cross-dimension covariance; what remains for an attacker
    is temporal and higher-order structure. ``noise: s`` (with ``whiten: true`` only: a learned scale would
    make fixed noise negligible) adds ``s * N(0, I)`` to the whitened frames, in training and at inference: a
    stochastic bottleneck whose capacity the whitening fixes (signal-to-noise ``1 / s^2`` per dimension). In
    training the noise is fresh from the global generator (the engines seed it per client and round, so a
    resumed run draws the same); otherwise it is a function of the utterance, from a generator seeded by the
    stage's seed and a hash of the utterance's whitened frames rounded to 1e-3, so an utterance gets the same
    representation on every evaluation whatever its batch, and different utterances independent noise.
``vq``
    Vector quantisation with a straight-through gradient (van den Oord et al., "Neural Discrete
    Representation Learning", NeurIPS 2017), as in the VoicePrivacy 2024 ASR-BN baselines (48 codes).
    With G groups the D-dim frame is split into G sub-vectors, each quantised to its own codebook
    of K codes (product quantisation, K^G effective codes)::

        q_g = e_g[argmin_k ||x_g - e_g[k]||^2],   y = x + sg(q - x)          (straight-through)
        L_vq = ||sg(x) - q||^2 + beta ||x - sg(q)||^2                        (codebook + commitment)

    ``update: loss`` trains the codebook by ``L_vq`` (an ordinary parameter: FedAvg averages it);
    ``update: ema`` replaces the codebook term by exponential moving averages of the assigned
    frames (VQ-VAE-2, Razavi et al. 2019): its statistics are buffers, outside the flat parameter
    vector every engine trains, averages and checkpoints, so build_bottleneck refuses it under every
    engine (it is for custom training loops). ``restart_every`` re-draws codes unused for that many
    steps from the current batch's frames (dead-code restart, Dhariwal et al. 2020, Jukebox);
    restarts copy one client's frames into a shared parameter, so they are refused under federated
    averaging (allowed with the centralized engine; the usage bookkeeping is not checkpointed). ``warmup_steps``: identity (no quantisation) for
    the first steps so the ASR learns before the bottleneck closes; evaluation always quantises.
    ``init: {public_pool: {...}, iterations}`` (engines with a server: in-process, centralized, Flower)
    replaces the random ``N(0, 1)`` codebook, at the first round that starts at or after the warm-up, by
    k-means (k-means++ seeding, ``iterations`` Lloyd steps, per group) of the representation that enters the
    VQ on a public pool's utterances (same keys as ``adversary.public_pool``; public voices in no client),
    computed by the server on the global model: the codes start where the frames are, which random codes
    in D dimensions are not (they collapse onto a few codes), and no client's frames reach the shared
    codebook. Refused under gossip (no server).

Placement: ``bottleneck: {stages: [...], after_layer: k}`` puts the stages after encoder block ``k``
instead of at the encoder output (Conformer; ``1 <= k < layers``). The protected representation, the one
the training adversaries and every evaluation attacker see (``model.encode``), is then the bottleneck's
output after block ``k``, and the remaining blocks (and the encoder's final norm) turn it into the CTC head's
input, as in the VoicePrivacy ASR-BN systems, whose bottleneck features feed further acoustic-model layers.
Those layers are a function of the protected representation, so what they see carries no more speaker
information than it (data processing inequality); a frame-wise linear CTC head on 48 codes, by contrast, has
no context to decode from. A plain list (or one stage) sits at the encoder output (``after_layer: null``).
"""

from __future__ import annotations

import hashlib
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from speechfl.models.adversary import length_mask, masked_mean_std
from speechfl.registry import Registry, build_from_spec

BOTTLENECKS = Registry("bottleneck")
VQ_UPDATES = ("loss", "ema")


def nearest_codes(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest code: x [N, G, d], codebook [G, K, d] -> [N, G] (squared Euclidean)."""
    d2 = (x.unsqueeze(2) - codebook.unsqueeze(0)).pow(2).sum(-1)  # [N, G, K]
    return d2.argmin(dim=-1)


def gather_codes(codebook: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """codebook [G, K, d], idx [N, G] -> codes [N, G, d]."""
    G = codebook.shape[0]
    return codebook[torch.arange(G, device=idx.device)[None, :], idx]


class Stage(nn.Module):
    """A bottleneck stage: ``forward(x [B, T, D], mask [B, T]) -> y [B, T, D]``; ``aux_loss`` after each forward."""

    def __init__(self):
        super().__init__()
        self.aux_loss: Optional[torch.Tensor] = None
        self.step = 0

    def set_step(self, step: int) -> None:
        self.step = int(step)


class InstanceNorm(Stage):
    """Per-utterance mean/std normalisation of the representation over valid frames (padding stays 0)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean, std = masked_mean_std(x, mask)
        return (x - mean.unsqueeze(1)) / std.unsqueeze(1) * mask.unsqueeze(-1).to(x.dtype)


class Projection(Stage):
    """Rank-``dim`` bottleneck ``y = U(P x)`` keeping the width D."""

    def __init__(self, rep_dim: int, dim: int, whiten: bool = False, eps: float = 1e-3, noise: float = 0.0,
                 seed: int = 0):
        super().__init__()
        if not 1 <= dim < rep_dim:
            raise ValueError(f"projection dim must lie in [1, {rep_dim}) (rep_dim {rep_dim}), got {dim}")
        if not isinstance(whiten, bool) or not eps > 0:
            raise ValueError(f"projection needs whiten true/false and eps > 0, got whiten={whiten!r}, eps={eps!r}")
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
            raise ValueError(f"projection noise must be a number >= 0, got {noise!r}")
        if noise > 0 and not whiten:
            raise ValueError("projection noise needs whiten: true (without it the learned projection can scale the "
                             "frames up until a fixed noise is negligible)")
        self.down = nn.Linear(rep_dim, dim, bias=False)
        self.up = nn.Linear(dim, rep_dim)
        self.whiten, self.eps, self.noise, self.seed = whiten, float(eps), float(noise), int(seed)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z = self.down(x)
        if self.whiten:
            z = whiten_frames(z, mask, self.eps)
        if self.noise > 0:
            z = z + self.noise * frame_noise(z, mask, self.seed, fresh=self.training)
        return self.up(z)


def frame_noise(z: torch.Tensor, mask: torch.Tensor, seed: int, fresh: bool) -> torch.Tensor:
    """``N(0, 1)`` noise of ``z``'s shape on the valid frames (``mask`` [B, T]), zero on padding.

    ``fresh``: from the global generator. Otherwise one generator per utterance, seeded by ``seed`` and a hash of
    the utterance's valid frames rounded to 1e-3: the same utterance gets the same noise in any batch.
    """
    m = mask.unsqueeze(-1).to(z.dtype)
    if fresh:
        return torch.randn_like(z) * m
    out = torch.zeros_like(z)
    for b in range(z.shape[0]):
        frames = z[b][mask[b]].detach()
        key = torch.round(frames * 1000.0).to(torch.int64).cpu().numpy().tobytes()
        digest = hashlib.blake2b(key, digest_size=8, key=str(seed).encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
        out[b][mask[b]] = torch.randn(frames.shape, generator=gen, dtype=torch.float64).to(z.dtype).to(z.device)
    return out


def whiten_frames(z: torch.Tensor, mask: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Per-utterance Cholesky whitening of ``z`` [B, T, k] over its valid frames (``mask`` [B, T]); padding -> 0.

    ``L^{-1} (z_t - mu)`` with ``L L^T = C + eps (tr C / k) I + 1e-8 I`` (``C``: covariance, divided by the number
    of valid frames), so the valid frames have mean 0 and covariance ``L^{-1} C L^{-T}`` (the identity up to eps).
    """
    m = mask.unsqueeze(-1).to(z.dtype)
    n = m.sum(1, keepdim=True).clamp(min=1.0)
    centred = (z - (z * m).sum(1, keepdim=True) / n) * m
    cov = centred.transpose(1, 2) @ centred / n  # [B, k, k]
    k = z.shape[-1]
    eye = torch.eye(k, dtype=z.dtype, device=z.device)
    ridge = eps * cov.diagonal(dim1=1, dim2=2).sum(-1) / k + 1e-8
    chol = torch.linalg.cholesky(cov + ridge[:, None, None] * eye)
    return torch.linalg.solve_triangular(chol, centred.transpose(1, 2), upper=False).transpose(1, 2) * m


class VectorQuantizer(Stage):
    """Grouped VQ with a straight-through gradient (see module docstring).

    Parameters
    ----------
    rep_dim : int
        D, divisible by ``groups``.
    codes : int
        K codes per group (>= 2).
    groups : int
        G codebooks over D/G-dim sub-vectors.
    beta : float
        Commitment weight.
    weight : float
        Multiplies ``L_vq`` in the training loss.
    update : {"loss", "ema"}
    decay : float
        EMA decay (``update: ema`` only).
    warmup_steps : int
        Steps without quantisation at the start of training.
    restart_every : int, optional
        Restart codes unused during the last ``restart_every`` steps from the batch's frames.
    seed : int
        Codebook initialisation, ``N(0, 1)`` per entry from this seed.
    """

    def __init__(self, rep_dim: int, codes: int = 48, groups: int = 1, beta: float = 0.25, weight: float = 1.0,
                 update: str = "loss", decay: float = 0.99, warmup_steps: int = 0,
                 restart_every: Optional[int] = None, seed: int = 0):
        super().__init__()
        if update not in VQ_UPDATES:
            raise ValueError(f"unknown vq update {update!r}; valid: {', '.join(VQ_UPDATES)}")
        if codes < 2 or groups < 1 or rep_dim % groups:
            raise ValueError(f"vq needs codes >= 2 and groups dividing rep_dim {rep_dim}, got codes={codes}, "
                             f"groups={groups}")
        if not (0.0 < decay < 1.0) or beta < 0 or weight < 0 or warmup_steps < 0:
            raise ValueError(f"vq needs 0 < decay < 1, beta >= 0, weight >= 0, warmup_steps >= 0; got decay={decay}, "
                             f"beta={beta}, weight={weight}, warmup_steps={warmup_steps}")
        if restart_every is not None and (not isinstance(restart_every, int) or restart_every < 1):
            raise ValueError(f"restart_every must be a positive int or null, got {restart_every!r}")
        self.groups, self.codes, self.sub = groups, codes, rep_dim // groups
        self.beta, self.weight, self.update, self.decay = float(beta), float(weight), update, float(decay)
        self.warmup_steps, self.restart_every = int(warmup_steps), restart_every
        init = torch.randn(groups, codes, self.sub, generator=torch.Generator().manual_seed(seed))
        self.codebook = nn.Parameter(init, requires_grad=(update == "loss"))
        if update == "ema":  # state, not parameters: refused under federated averaging by build_bottleneck
            self.register_buffer("ema_count", torch.ones(groups, codes))
            self.register_buffer("ema_sum", init.clone())
        self._last_used = torch.zeros(groups, codes, dtype=torch.long)  # step each code was last assigned
        self.last_usage: Optional[torch.Tensor] = None  # [G, K] counts of the last forward (for logging/tests)

    def quantise(self, x: torch.Tensor):
        """Frames [N, D] -> (straight-through output [N, D], codes [N, D], indices [N, G])."""
        xs = x.reshape(-1, self.groups, self.sub)
        idx = nearest_codes(xs.detach(), self.codebook.detach())
        q = gather_codes(self.codebook, idx).reshape(x.shape)
        return x + (q - x).detach(), q, idx

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training and self.step < self.warmup_steps:
            self.aux_loss = x.new_zeros(())
            return x
        frames = x[mask]  # [N, D] valid frames only
        y_frames, q, idx = self.quantise(frames)
        n = max(frames.shape[0], 1)
        usage = F.one_hot(idx, self.codes).sum(0)  # [G, K]
        self.last_usage = usage.detach().cpu()
        commit = self.beta * (frames - q.detach()).pow(2).sum() / n
        if self.update == "loss":
            self.aux_loss = self.weight * ((frames.detach() - q).pow(2).sum() / n + commit)
        else:
            self.aux_loss = self.weight * commit
        if self.training:
            self._train_updates(frames.detach(), idx, usage)
        out = torch.zeros_like(x)
        out[mask] = y_frames
        return out

    @torch.no_grad()
    def _train_updates(self, frames: torch.Tensor, idx: torch.Tensor, usage: torch.Tensor) -> None:
        if self.update == "ema":
            onehot = F.one_hot(idx, self.codes).to(frames.dtype)  # [N, G, K]
            sums = torch.einsum("ngk,ngd->gkd", onehot, frames.reshape(-1, self.groups, self.sub))
            self.ema_count.mul_(self.decay).add_(usage.to(frames.dtype), alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.ema_count.sum(-1, keepdim=True)
            count = (self.ema_count + 1e-5) / (n + self.codes * 1e-5) * n  # Laplace smoothing (VQ-VAE-2)
            self.codebook.copy_(self.ema_sum / count.unsqueeze(-1))
        self._last_used[usage.cpu() > 0] = self.step
        if self.restart_every is None or frames.shape[0] == 0:
            return
        dead = (self.step - self._last_used) >= self.restart_every
        if bool(dead.any()):
            gen = torch.Generator().manual_seed(self.step)
            xs = frames.reshape(-1, self.groups, self.sub).cpu()
            for g, k in dead.nonzero().tolist():
                j = int(torch.randint(xs.shape[0], (1,), generator=gen))
                self.codebook[g, k] = xs[j, g].to(self.codebook.device)
                if self.update == "ema":
                    self.ema_sum[g, k] = self.codebook[g, k]
                    self.ema_count[g, k] = 1.0
                self._last_used[g, k] = self.step


class Bottleneck(nn.Module):
    """Stages applied in order; ``aux_loss`` is the sum of the stages' losses of the last forward.

    ``forward(reps [B, T, D], lengths [B]) -> reps [B, T, D]`` (relative lengths unchanged).
    """

    def __init__(self, stages: Sequence[Stage], after_layer: Optional[int] = None):
        super().__init__()
        if not stages:
            raise ValueError("a bottleneck needs at least one stage")
        self.stages = nn.ModuleList(stages)
        self.after_layer = after_layer  # encoder block it sits after (None: the encoder output); read by attach
        self.aux_loss: Optional[torch.Tensor] = None

    def set_step(self, step: int) -> None:
        for s in self.stages:
            s.set_step(step)

    def forward(self, reps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, reps.shape[1])
        total = reps.new_zeros(())
        for stage in self.stages:
            reps = stage(reps, mask)
            if stage.aux_loss is not None:
                total = total + stage.aux_loss
        self.aux_loss = total
        return reps


@BOTTLENECKS.register("instance_norm")
def _instance_norm(rep_dim: int, seed: int) -> Stage:
    return InstanceNorm()


@BOTTLENECKS.register("projection")
def _projection(rep_dim: int, seed: int, dim: int = 32, whiten: bool = False, eps: float = 1e-3,
                noise: float = 0.0) -> Stage:
    return Projection(rep_dim, int(dim), whiten=whiten, eps=float(eps), noise=noise, seed=seed)


@BOTTLENECKS.register("vq")
def _vq(rep_dim: int, seed: int, codes: int = 48, groups: int = 1, beta: float = 0.25, weight: float = 1.0,
        update: str = "loss", decay: float = 0.99, warmup_steps: int = 0, restart_every: Optional[int] = None,
        init: Optional[dict] = None) -> Stage:
    # ``init`` is the server's business (check_vq_init, speechfl.federated.simulation), not the stage's
    return VectorQuantizer(rep_dim, codes=int(codes), groups=int(groups), beta=float(beta), weight=float(weight),
                           update=update, decay=float(decay), warmup_steps=int(warmup_steps),
                           restart_every=restart_every, seed=seed)


INIT_KEYS = {"public_pool", "iterations"}
PLACEMENT_KEYS = ("stages", "after_layer")


def bottleneck_spec(spec: Any) -> Tuple[List[Any], Optional[int]]:
    """hparams ``bottleneck:`` -> (its stage specs, the encoder block it sits after, None for the encoder output).

    A name, a stage mapping or a list of them sit at the encoder output; ``{stages: [...], after_layer: k}`` places
    the stages after block ``k`` (the encoder checks ``k`` against its depth when the bottleneck is attached).
    """
    after = None
    if isinstance(spec, dict) and "stages" in spec:
        unknown = sorted(set(spec) - set(PLACEMENT_KEYS))
        if unknown:
            raise ValueError(f"bottleneck: unknown key(s) {unknown} beside 'stages'; valid: {', '.join(PLACEMENT_KEYS)}")
        after = spec.get("after_layer")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 1):
            raise ValueError(f"bottleneck.after_layer must be a positive integer (an encoder block) or null, "
                             f"got {after!r}")
        spec = spec["stages"]
    stages = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    if not stages:
        raise ValueError("bottleneck: a bottleneck needs at least one stage")
    return stages, after


def check_vq_init(spec: Any, *, engine: Optional[str], data_folder: Optional[str] = None) -> List[tuple]:
    """Validate every VQ stage's ``init`` before any data work; returns ``[(stage index, normalised init)]``."""
    from speechfl.privacy.public_pool import POOL_KEYS, check_pool_spec
    from speechfl.registry import optional_section

    specs, _ = bottleneck_spec(spec)
    out = []
    for i, s in enumerate(specs):
        if not isinstance(s, dict) or s.get("name") != "vq" or s.get("init") is None:
            continue
        where = f"bottleneck[{i}].init"
        init = optional_section(s, "init", INIT_KEYS, where)
        if engine in ("gossip", "gossip-dist"):
            raise ValueError(f"{where}: the public k-means initialisation is done by the server on the global "
                             f"model; engine {engine!r} has no server")
        pool = optional_section(init, "public_pool", POOL_KEYS, f"{where}.public_pool")
        if pool is None:
            raise ValueError(f"{where}.public_pool is required (the public utterances the codebook is fit on)")
        iterations = init.get("iterations", 20)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"{where}.iterations must be a positive integer, got {iterations!r}")
        out.append((i, {"public_pool": check_pool_spec(pool, f"{where}.public_pool", data_folder),
                        "iterations": iterations}))
    return out


def kmeans(x: torch.Tensor, k: int, iterations: int = 20, seed: int = 0) -> torch.Tensor:
    """``k`` centres of the rows of ``x`` [N, d]: k-means++ seeding (Arthur & Vassilvitskii 2007) from a generator
    seeded by ``seed``, then ``iterations`` Lloyd steps (an emptied cluster keeps its centre)."""
    if x.dim() != 2 or x.shape[0] < k:
        raise ValueError(f"kmeans needs at least k={k} rows of a [N, d] matrix, got {tuple(x.shape)}")
    x = x.to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    centres = [x[int(torch.randint(x.shape[0], (1,), generator=gen))]]
    d2 = (x - centres[0]).pow(2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / len(d2))
        j = int(torch.multinomial(p, 1, generator=gen))
        centres.append(x[j])
        d2 = torch.minimum(d2, (x - x[j]).pow(2).sum(1))
    c = torch.stack(centres)
    for _ in range(iterations):
        assign = torch.cdist(x, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        c = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], c)
    return c.to(torch.float32)


@torch.no_grad()
def public_codebook(model, stage_index: int, feats: Sequence[torch.Tensor], iterations: int, seed: int,
                    device="cpu") -> torch.Tensor:
    """The k-means codebook ``[G, K, d]`` of VQ stage ``stage_index`` of ``model.bottleneck``, fit on the frames that
    enter that stage (encoder output through the stages before it) for the utterances ``feats`` ([T, F] each),
    one utterance per forward: no padding, so every utterance's frames are exactly those it has alone."""
    bn = model.bottleneck
    vq = bn.stages[stage_index]
    if not isinstance(vq, VectorQuantizer):
        raise ValueError(f"bottleneck stage {stage_index} is {type(vq).__name__}, not a VQ")
    was_training = model.training
    model.eval()
    frames = []
    try:
        for f in feats:
            reps, lengths = model.encode_frames(f.unsqueeze(0).to(device), torch.ones(1, device=device))
            mask = length_mask(lengths, reps.shape[1])
            for stage in bn.stages[:stage_index]:
                reps = stage(reps, mask)
            frames.append(reps[mask].cpu())
    finally:
        model.train(was_training)
    x = torch.cat(frames).reshape(-1, vq.groups, vq.sub)
    return torch.stack([kmeans(x[:, g], vq.codes, iterations, seed + g) for g in range(vq.groups)])


def build_bottleneck(spec: Any, *, rep_dim: int, seed: int, engine: Optional[str]) -> Bottleneck:
    """Build from hparams ``bottleneck:`` (a name, a mapping, a list of them, or ``{stages, after_layer}``).

    ``engine``: the engine that will train it (None: a custom loop, or building only to load a trained
    model). Under every engine EMA statistics are refused; under every engine but ``centralized``
    dead-code restarts are refused too, each with the reason.
    """
    specs, after_layer = bottleneck_spec(spec)
    stages = []
    for i, s in enumerate(specs):
        s = {"name": s} if isinstance(s, str) else dict(s) if isinstance(s, dict) else s
        if not isinstance(s, dict):
            raise ValueError(f"bottleneck[{i}] must be a name or a mapping, got {s!r}")
        if engine is not None and s.get("name") == "vq" and s.get("update", "loss") == "ema":
            raise ValueError(f"bottleneck[{i}]: vq update 'ema' keeps codebook statistics (counts, sums) in buffers "
                             f"that engine {engine!r} neither averages nor checkpoints; use update: loss (the "
                             "codebook is a parameter)")
        if engine not in (None, "centralized") and s.get("name") == "vq" and s.get("restart_every") is not None:
            raise ValueError(f"bottleneck[{i}]: vq restart_every copies one client's frames into the shared "
                             "codebook (a leak, and averaging different restarts is no restart); not with "
                             "federated averaging")
        stages.append(build_from_spec(BOTTLENECKS, {**s, "rep_dim": rep_dim, "seed": seed + 7919 * i}))
    return Bottleneck(stages, after_layer=after_layer)


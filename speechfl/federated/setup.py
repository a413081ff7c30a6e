"""Build a federated experiment from one hparams dict: data, partition, model, client and server pipelines.

Both engines (in-process simulation and Flower) build from this, so they run
the same client function and the same server pipeline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Set, Tuple, Union

import torch

from speechfl.config import Components, Engine, ExperimentConfig, build_components, check_against_partition
from speechfl.config.protocols import RobustAggregator, ServerStep, UplinkCompressor
from speechfl.data.dataset import DataTransforms, make_dataset, make_loader, read_manifest
from speechfl.data.partition import Partition, partition_speakers, pooled_partition
from speechfl.experiment.corpus import Corpus, prepare_corpus
from speechfl.experiment.results import ConfigSection
from speechfl.federated.client import ClientConfig
from speechfl.federated.update import ParamLayout, flatten_params

CLIENT_KEYS = set(ClientConfig.__dataclass_fields__)

if TYPE_CHECKING:  # heavy or optional modules, imported by build_setup only when the mechanism is on
    from speechfl.privacy.dp_user import DPFedAvg
    from speechfl.privacy.secagg import SecureAggregation
    from speechfl.robustness.attacks.base import UpdateAttack


@dataclass(frozen=True)
class RunOrigin:
    """The hparams file and ``--key=value`` overrides a run was built from.

    ``config`` is the results.json ``config`` section captured when the run started
    (:func:`speechfl.experiment.results.capture_config`): the file's text as it was run.
    """

    hparams_file: str
    overrides: Union[str, Tuple[str, ...]] = ()
    config: Optional[ConfigSection] = None


@dataclass
class FederatedSetup:
    hparams: dict
    corpus: Corpus
    partition: Partition
    model: torch.nn.Module
    layout: ParamLayout
    init_flat: torch.Tensor
    client_config: ClientConfig
    uplink: UplinkCompressor
    downlink: Optional[UplinkCompressor]
    robust: RobustAggregator
    server_optimizer: ServerStep
    malicious: Set[str]
    update_attack: Optional[UpdateAttack]
    data_attack: Optional[dict]
    dp_user: Optional[DPFedAvg]
    dp_sample_spec: Optional[dict]
    secagg: Optional[SecureAggregation]
    label_maps: Dict[str, Dict[str, int]]
    client_rows: Dict[str, List[dict]] = field(default_factory=dict)
    genders: Dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    config: Optional[ExperimentConfig] = None
    public_pool: Optional[object] = None  # speechfl.privacy.public_pool.PublicPool: the adversary's negatives
    client_groups: Dict[str, str] = field(default_factory=dict)  # stratified sampling: client id -> group
    # VQ codebooks the server fits on public utterances after the warm-up (speechfl.privacy.bottleneck): one
    # {"stage", "param", "warmup_steps", "iterations", "feats"} per VQ stage with an ``init``
    vq_inits: List[dict] = field(default_factory=list)
    origin: Optional[RunOrigin] = None  # set by run_federated: what engines that rebuild the run need
    _datasets: Dict[str, object] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.hparams["seed"])

    def client_dataset(self, client_id: str):
        """The client's training data (poisoned if it is a data-level attacker)."""
        if client_id not in self._datasets:
            transforms = None
            if client_id in self.malicious and self.data_attack is not None:
                from speechfl.robustness.poisoning import build_data_transforms

                transforms = build_data_transforms(self.data_attack, client_id=client_id, seed=self.seed,
                                                   rows=self.client_rows[client_id])
            if self.hparams.get("anonymize"):  # client-side anonymization defense (before any data attack)
                from speechfl.anonymization.defense import with_anonymizer

                transforms = with_anonymizer(self.hparams["anonymize"], transforms, rows=self.client_rows[client_id],
                                             seed=self.seed, sample_rate=self.corpus.cache.config.sample_rate)
            self._datasets[client_id] = make_dataset(
                self.corpus.manifests["train"], self.corpus.tokenizer, self.corpus.cache,
                transforms=transforms, ids=self.partition.utterances[client_id],
            )
        return self._datasets[client_id]

    def eval_loader(self, role: str, transforms: Optional[DataTransforms] = None):
        ds = make_dataset(self.corpus.manifests[role], self.corpus.tokenizer, self.corpus.cache, transforms=transforms)
        return make_loader(ds.filtered_sorted(sort_key="duration"), int(self.hparams.get("eval_batch_size", 16)),
                           shuffle=False)

    def make_dp_sample(self):
        if not self.dp_sample_spec:
            return None
        from speechfl.privacy.dp_sample import SampleDP

        return SampleDP(**self.dp_sample_spec)

    def sample_clients(self, round_: int) -> List[str]:
        if self.client_groups:  # clients_per_round: {count, stratify}
            return stratified_sample(self.client_groups, int(self.config.clients_per_round), self.seed, round_)
        return sample_clients(self.partition.client_ids, self.hparams.get("clients_per_round", 1.0), self.seed, round_)


def stratified_sample(groups: Mapping[str, str], count: int, seed: int, round_: int) -> List[str]:
    """``count`` clients in equal shares per group (client id -> group), seeded by ``(seed, round_)``.

    Each group gets ``count // G`` clients, the remainder going to groups in a seeded order; a group
    with fewer clients than its share gives all it has and the rest is shared out among the others
    the same way. Within a group the clients are a seeded uniform sample. The training objective this
    samples is the group-balanced one: each group's clients carry ``1 / G`` of every round.
    """
    if not 1 <= count <= len(groups):
        raise ValueError(f"clients_per_round.count={count} but there are {len(groups)} clients")
    rng = random.Random(f"{seed}|stratified|{round_}")
    members = {g: sorted(c for c, v in groups.items() if v == g) for g in sorted(set(groups.values()))}
    quota = {g: 0 for g in members}
    left, open_groups = count, list(members)
    while left > 0:
        share, extra = divmod(left, len(open_groups))
        for i, g in enumerate(rng.sample(open_groups, len(open_groups))):
            quota[g] += share + (1 if i < extra else 0)
        left = 0
        for g in list(open_groups):
            if quota[g] >= len(members[g]):
                left += quota[g] - len(members[g])
                quota[g] = len(members[g])
                open_groups.remove(g)
    return sorted(c for g, ids in members.items() for c in rng.sample(ids, quota[g]))


def sample_clients(ids: List[str], per_round, seed: int, round_: int) -> List[str]:
    """Seeded client sampling: ``per_round`` is a count (int) or a fraction (float in (0, 1])."""
    k = per_round
    if isinstance(k, float):
        if not 0 < k <= 1:
            raise ValueError(f"clients_per_round fraction must be in (0, 1], got {k}")
        k = max(1, round(k * len(ids)))
    k = int(k)
    if not 1 <= k <= len(ids):
        raise ValueError(f"clients_per_round={k} but there are {len(ids)} clients")
    rng = random.Random(f"{seed}|sample|{round_}")
    return sorted(rng.sample(sorted(ids), k))


def partition_stage(cfg: ExperimentConfig, components: Components,
                    corpus: Corpus) -> Tuple[List[dict], Partition, int]:
    """Stage 4: the train manifest's rows, their partition into clients (one pooled client for the
    centralized engine), and the checks that need the number of clients; returns the updates per round."""
    rows = read_manifest(corpus.manifests["train"])
    if cfg.engine.pooled:
        partition = pooled_partition(rows)
    else:
        partition = partition_speakers(rows, cfg.speakers_per_client, cfg.min_utterances, cfg.seed)
    return rows, partition, check_against_partition(cfg, components, len(partition.client_ids))


def attach_bottleneck_stage(model, hparams: dict, cfg: ExperimentConfig) -> None:
    """Attach hparams ``bottleneck`` to the model's ``encode`` (:mod:`speechfl.privacy.bottleneck`), or refuse."""
    if not hasattr(model, "attach_bottleneck"):
        raise ValueError(f"bottleneck: encoder {getattr(model, 'encoder_name', type(model).__name__)!r} has no "
                         "attach_bottleneck (speechfl.models.asr.CTCModel provides it)")
    if hparams.get("dp_sample"):
        raise ValueError("bottleneck with dp_sample: Opacus' per-sample gradients of the VQ codebook (a gather over "
                         "valid frames) are not validated; the two are not combined")
    from speechfl.privacy.bottleneck import build_bottleneck

    engine = getattr(cfg.engine, "value", cfg.engine)
    model.attach_bottleneck(build_bottleneck(hparams["bottleneck"], rep_dim=model.rep_dim, seed=cfg.seed,
                                             engine=engine))


def build_setup(hparams: dict, progress: bool = True, config: Optional[ExperimentConfig] = None,
                components: Optional[Components] = None) -> FederatedSetup:
    """Build an experiment in stages; a bad configuration fails before the corpus is touched.

    1. validate: :meth:`ExperimentConfig.from_hparams` (every key, typed) unless ``config`` is given;
    2. build the server components by name (:func:`build_components`: compressors, robust pipeline,
       server optimizer, each checked against its Protocol) unless ``components`` is given, and the
       mechanisms (:func:`~speechfl.config.mechanisms.check_mechanisms`: malicious, dp_user, secagg,
       SCAFFOLD, fairness rules), then the checks that need the model object but no data (dp_sample's
       Opacus support, the anonymizer), so every refusal that needs no data fails before any data work;
    3. prepare the corpus (generates the synthetic corpus if absent, writes manifests);
    4. partition it, then the checks that need the number of clients (:func:`check_against_partition`);
    5. the model (and the training adversary), then the privacy and threat components.

    Raises :class:`~speechfl.config.ConfigError` (a ``ValueError``) naming the key on bad configuration.
    """
    cfg = config if config is not None else ExperimentConfig.from_hparams(hparams)
    components = components if components is not None else build_components(cfg)
    engine, seed, device = cfg.engine, cfg.seed, cfg.device
    uplink, downlink, robust = components.uplink, components.downlink, components.robust
    mechanisms = components.mechanisms
    client_config = cfg.client
    fair = components.server_optimizer.client_aware  # q-FedAvg / AFL / ...: refused in check_mechanisms
    model = hparams["model"]
    if cfg.dp_sample and not getattr(model, "opacus_compatible", True):
        raise ValueError(f"dp_sample: Opacus cannot compute per-sample gradients of encoder "
                         f"{getattr(model, 'encoder_name', type(model).__name__)!r}; use encoder: conv_rnn with "
                         "rnn_type: dpgru")
    if hparams.get("anonymize"):
        from speechfl.anonymization.defense import build_client_anonymizer

        build_client_anonymizer(hparams["anonymize"], seed)  # bad names/params fail before the corpus
    if engine.kind == "decentralized":  # the gossip section and what gossip cannot compose with
        from speechfl.decentralized.config import check_before_data

        check_before_data(hparams, components, distributed=engine is Engine.GOSSIP_DIST)
    pool_spec = None
    if hparams.get("adversary"):
        from speechfl.privacy.public_pool import check_public_pool

        pool_spec = check_public_pool(dict(hparams["adversary"]), dp_sample=bool(hparams.get("dp_sample")),
                                      data_folder=hparams.get("data_folder"))
    vq_init_specs = []
    if hparams.get("bottleneck"):
        from speechfl.privacy.bottleneck import bottleneck_spec, check_vq_init

        vq_init_specs = check_vq_init(hparams["bottleneck"], engine=getattr(engine, "value", engine),
                                      data_folder=hparams.get("data_folder"))
        after_layer = bottleneck_spec(hparams["bottleneck"])[1]
        if after_layer is not None and hasattr(model, "place_bottleneck"):
            model.place_bottleneck(after_layer)  # an encoder that cannot, or a block it lacks, fails before data
    torch.manual_seed(seed)

    corpus = prepare_corpus(hparams, progress=progress)
    rows, partition, per_round = partition_stage(cfg, components, corpus)
    by_id = {r["ID"]: r for r in rows}
    client_rows = {c: [by_id[u] for u in us] for c, us in partition.utterances.items()}
    genders = {r["spk_id"]: r["gender"] for r in rows}

    from speechfl.models.protocol import check_model

    check_model(model, len(corpus.tokenizer))  # the protocol, the tokenizer's size, no stateful buffers
    label_maps = {
        "speaker": {s: i for i, s in enumerate(sorted({r["spk_id"] for r in rows}))},
        "gender": {g: i for i, g in enumerate(sorted({r["gender"] for r in rows}))},
    }
    adv_spec = hparams.get("adversary")
    if adv_spec:
        from speechfl.privacy.adversarial import build_adversary, check_adversary_compatible

        check_adversary_compatible(dict(adv_spec), dp_sample=bool(hparams.get("dp_sample")))
        longest = max(len(u) for u in partition.utterances.values())
        steps_per_round = client_config.local_steps or (
            client_config.local_epochs * -(-longest // client_config.batch_size))
        model.attach_adversary(build_adversary(adv_spec, rep_dim=model.rep_dim, label_maps=label_maps,
                                               total_steps=cfg.rounds * steps_per_round, seed=seed))
    public_pool = None
    if pool_spec is not None:
        from speechfl.privacy.public_pool import load_public_pool

        public_pool = load_public_pool(pool_spec, cache=corpus.cache, save_folder=hparams["save_folder"],
                                       first_label=len(label_maps["speaker"]), progress=progress)
    vq_inits = []
    if hparams.get("bottleneck"):
        attach_bottleneck_stage(model, hparams, cfg)
        from speechfl.privacy.public_pool import load_public_pool

        for i, init in vq_init_specs:
            pool = load_public_pool(init["public_pool"], cache=corpus.cache,
                                    save_folder=Path(hparams["save_folder"]) / f"vq_init_{i}", first_label=0,
                                    progress=progress)
            vq_inits.append({"stage": i, "param": f"bottleneck.stages.{i}.codebook",
                             "warmup_steps": model.bottleneck.stages[i].warmup_steps,
                             "iterations": init["iterations"], "feats": pool.feats})
    model.to(device)
    layout = ParamLayout.from_module(model)
    if layout.buffers:  # check_model refused these already; a model changed after the check is caught here
        raise ValueError(f"model has stateful buffers {layout.buffers[:3]}: federated averaging cannot average them")
    init_flat = flatten_params(model, layout).cpu()

    server_optimizer = components.server_optimizer
    if adv_spec:
        from speechfl.privacy.adversarial import spread_out_spec

        spread = spread_out_spec(dict(adv_spec))
        if spread is not None:  # FedAwS: the spread-out step on the class rows after every server step
            from speechfl.privacy.fedaws import SpreadOutServer, check_spread_out_compatible, class_weight_slices

            check_spread_out_compatible(server_optimizer, getattr(engine, "value", engine))
            server_optimizer = SpreadOutServer(server_optimizer, class_weight_slices(layout.names, layout.shapes),
                                               **spread)

    if server_optimizer.control_variates:  # SCAFFOLD (its config checks ran in check_mechanisms): the sizes
        server_optimizer.configure(n_clients=len(partition.client_ids), per_round=per_round,
                                   local_steps=client_config.local_steps,
                                   local_lr=float(client_config.optimizer["lr"]), local_lr_decay=client_config.lr_decay)

    if fair:  # client groups, L, and clients reporting their loss at the global model
        from speechfl.fairness import configure_fairness

        client_config = configure_fairness(server_optimizer, hparams, partition, genders, client_config)

    malicious, update_attack, data_attack = set(), None, None
    mal = mechanisms.malicious  # keys, attacks and engine checked in check_mechanisms; who needs the partition
    if mal is not None:
        from speechfl.robustness import select_malicious

        malicious = set(select_malicious(partition.client_ids, count=mal.count, fraction=mal.fraction, seed=seed))
        update_attack, data_attack = mal.update_attack, mal.data_attack

    strata = {}
    if cfg.stratify is not None:  # clients_per_round: {count, stratify}: client id -> group (one group per client)
        from speechfl.fairness.compat import client_groups

        strata = client_groups(partition, genders, cfg.stratify, hparams.get("data_folder"))

    dp_user = None
    if mechanisms.dp_user is not None:  # checked in check_mechanisms; its sampling rate needs the partition
        from speechfl.privacy.dp_user import DPFedAvg

        spec = mechanisms.dp_user
        dp_user = DPFedAvg(clip=spec.clip, noise_multiplier=spec.noise_multiplier, expected_clients=float(per_round),
                           sample_rate=per_round / len(partition.client_ids), seed=seed, adaptive=spec.adaptive)

    return FederatedSetup(
        hparams=hparams, corpus=corpus, partition=partition, model=model, layout=layout, init_flat=init_flat,
        client_config=client_config, uplink=uplink, downlink=downlink, robust=robust,
        server_optimizer=server_optimizer, malicious=malicious, update_attack=update_attack, data_attack=data_attack,
        dp_user=dp_user, dp_sample_spec=hparams.get("dp_sample"), secagg=mechanisms.secagg, label_maps=label_maps,
        client_rows=client_rows, genders=genders, device=device, config=cfg, public_pool=public_pool,
        client_groups=strata, vq_inits=vq_inits,
    )

"""Every stateful component's checkpoint is tensors and plain containers: it is written, and it
reloads with ``weights_only=True``, for each mechanism that keeps state across rounds."""

import pytest
import torch

from speechfl.federated.setup import build_setup
from speechfl.federated.simulation import CHECKPOINT, Simulation
from tests.integration.helpers import fed_hparams

FAST = ("--rounds=2", "--eval_every=0", "--clients_per_round=3", "--augment=null",
        "--client={local_epochs: null, local_steps: 1, batch_size: 4, optimizer: {name: sgd, lr: 0.05}}")
CASES = {
    "centered_clipping+bucketing+fedadam": ["--aggregator={name: centered_clipping, tau: 1.0}",
                                            "--preaggregators=[{name: bucketing, s: 1}]",
                                            "--server_optimizer={name: fedadam, lr: 0.01}"],
    "ef21+ef": ["--uplink={name: ef21, inner: {name: topk, fraction: 0.1}}",
                "--downlink={name: ef, inner: {name: topk, fraction: 0.5}}"],
    "dp_user": ["--dp_user={clip: 1.0, noise_multiplier: 0.5, delta: 1.0e-3}"],
    "dp_sample": ["--dp_sample={noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5}", "--rnn_type=dpgru"],
    "scaffold": ["--server_optimizer={name: scaffold, lr: 1.0}"],
    "mimic": ["--malicious={count: 1, attack: {name: mimic}}", "--aggregator=median"],
    "centralized": ["--engine=centralized", "--clients_per_round=1"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_checkpoint_is_plain_and_resumes(tiny_hparams_overrides, tmp_path, case):
    hp = fed_hparams(tiny_hparams_overrides, tmp_path, *FAST, *CASES[case])
    sim = Simulation(build_setup(hp, progress=False), tmp_path, progress=False)
    sim.run_round()
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["round"] == 1
    resumed = Simulation(build_setup(fed_hparams(tiny_hparams_overrides, tmp_path, *FAST, *CASES[case]),
                                     progress=False), tmp_path, progress=False)
    assert resumed.round == 1 and torch.equal(resumed.server.global_flat, sim.server.global_flat)

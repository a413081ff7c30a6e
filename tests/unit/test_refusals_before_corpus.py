"""Every refusal that needs no data runs before the corpus is generated or prepared (issue 13 §3).

Each case points ``data_folder`` at a folder that does not exist (the synthetic recipe would
generate it) and makes ``prepare_corpus`` fail the test if it is called; the refusal must come
first, name its key, and leave both the corpus and (for component checks) the output folder absent.
"""

import pytest

import speechfl.federated.setup as setup_stage
from speechfl.config import ConfigError, ExperimentConfig, build_components
from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.run import run_federated
from tests.integration.helpers import FED_HPARAMS, RECIPES

SEC, ROB = "--secagg={}", "--aggregator={name: trimmed_mean, f: 1}"
DPU = "--dp_user={clip: 0.5, noise_multiplier: 1.0, delta: 1.0e-3}"
FLIP = "--malicious={count: 1, attack: {name: sign_flip, scale: 4.0}}"
SCAFFOLD = ("--server_optimizer=scaffold",
            "--client={local_epochs: null, local_steps: 1, batch_size: 4, optimizer: {name: sgd, lr: 0.1}}")

# (overrides, message): refused by the typed config / components / mechanisms (no side effect at all)
CONFIG_REFUSALS = [
    (("--engine=centralized", FLIP), r"^malicious: malicious clients need a federated engine, not engine=centralized"),
    (("--malicious={count: 1}",), r"^malicious: malicious clients configured without an attack or data_attack"),
    (("--malicious={count: 1, attack: no_such_attack}",), r"^malicious.attack: .*no_such_attack"),
    (("--malicious={count: 1, attack: sign_flip, who: 2}",), r"^malicious: unknown key\(s\) \['who'\]"),
    (("--malicious={count: 1, data_attack: {name: no_such_poison}}",), r"^malicious.data_attack: .*no_such_poison"),
    ((SEC, ROB), r"^secagg: .*the robust aggregator needs individual client updates"),
    ((SEC, "--uplink={name: topk, fraction: 0.1}"), r"^secagg: .*the compressor is not linear"),
    ((SEC, "--engine=centralized"), r"^secagg: secure aggregation needs a federated engine"),
    ((SEC, DPU.replace("delta: 1.0e-3", "delta: 1.0e-3, adaptive: {}")), r"^secagg: .*adaptive clipping needs"),
    (("--secagg={modulus_bits: 70}",), r"^secagg: modulus_bits must lie in \[8, 62\]"),
    (("--secagg={mask_bits: 8}",), r"^secagg: unknown key\(s\) \['mask_bits'\]"),
    ((DPU, ROB), r"^dp_user: user-level DP noise is calibrated to the sensitivity of a clipped mean"),
    (("--dp_user={clip: -1.0, noise_multiplier: 1.0}",), r"^dp_user: clip must be finite and > 0"),
    (("--dp_user={clip: 1.0, noise: 1.0}",), r"^dp_user: unknown key\(s\) \['noise'\]"),
    (("--dp_user={clip: 1.0}",), r"^dp_user.noise_multiplier: is required"),
    ((*SCAFFOLD, "--engine=flower-sim"), r"^server_optimizer: scaffold sends a control variate .*not flower-sim"),
    (("--server_optimizer=scaffold",), r"^server_optimizer: scaffold needs client.local_steps"),
    ((*SCAFFOLD, "--dp_sample={noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5}", "--encoder=conv_rnn",
      "--rnn_type=dpgru"), r"^server_optimizer: scaffold corrects gradients that dp_sample clips"),
    ((SEC, "--server_optimizer={name: qfedavg, q: 1.0}"),
     r"^server_optimizer: server_optimizer 'qfedavg' cannot be combined with: secagg: the server sees only"),
    ((FLIP, "--server_optimizer={name: qfedavg, q: 1.0}", "--aggregator=median"),
     r"^server_optimizer: .*aggregator 'median': the fairness rule replaces .*; malicious: the server trusts"),
]

# refused in build_setup's first stage (they need the model object or the raw hparams, never the data)
SETUP_REFUSALS = [
    (("--dp_sample={noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5}", "--encoder=conformer"),
     r"dp_sample: Opacus cannot compute per-sample gradients of encoder"),
    (("--anonymize=no_such_anonymizer",), r"no_such_anonymizer"),
    # what gossip cannot compose with (speechfl.decentralized.config.check_before_data)
    (("--engine=gossip", "--uplink={name: topk, fraction: 0.1}"), r"D-PSGD sends full models"),
    (("--engine=gossip", "--downlink=fp16"), r"downlink compresses a server broadcast"),
    (("--engine=gossip", "--clients_per_round=0.5"), r"every gossip node trains every round"),
    (("--engine=gossip-dist", "--record_updates=[1]"), r"record with engine=gossip"),
]


@pytest.fixture
def no_corpus(monkeypatch, tmp_path):
    def prepare_corpus(*args, **kwargs):
        raise AssertionError("prepare_corpus was called before the refusal")

    monkeypatch.setattr(setup_stage, "prepare_corpus", prepare_corpus)
    return tmp_path / "corpus"


def hparams(tmp_path, corpus, overrides):
    return load_hparams(FED_HPARAMS, [f"--data_folder={corpus}", f"--output_folder={tmp_path / 'out'}",
                                      "--clients_per_round=4", *overrides])


@pytest.mark.parametrize("overrides,message", CONFIG_REFUSALS)
def test_mechanism_refusals_come_before_any_side_effect(tmp_path, no_corpus, overrides, message):
    hp = hparams(tmp_path, no_corpus, overrides)
    with pytest.raises(ConfigError, match=message):
        build_components(ExperimentConfig.from_hparams(hp))  # what the config stage alone refuses
    with pytest.raises(ConfigError, match=message):
        run_federated(hp, str(FED_HPARAMS), list(overrides), progress=False)
    assert not no_corpus.exists()  # nothing generated
    assert not (tmp_path / "out").exists()  # refused before the output folder is even created


@pytest.mark.parametrize("overrides,message", SETUP_REFUSALS)
def test_model_and_defense_refusals_come_before_the_corpus(tmp_path, no_corpus, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_federated(hparams(tmp_path, no_corpus, overrides), str(FED_HPARAMS), list(overrides), progress=False)
    assert not no_corpus.exists()


def test_a_composing_configuration_reaches_the_corpus(tmp_path, no_corpus):
    """The oracle for the cases above: without the bad combination, setup does go on to prepare the corpus."""
    overrides = (SEC, DPU, FLIP, "--uplink={name: randk, fraction: 0.1}")
    with pytest.raises(AssertionError, match="prepare_corpus was called"):
        run_federated(hparams(tmp_path, no_corpus, overrides), str(FED_HPARAMS), list(overrides), progress=False)
    mechanisms = build_components(ExperimentConfig.from_hparams(hparams(tmp_path, no_corpus, overrides))).mechanisms
    assert mechanisms.secagg.seed == 1234 and mechanisms.secagg.modulus_bits == 32  # the run seed, the defaults
    assert (mechanisms.dp_user.clip, mechanisms.dp_user.noise_multiplier) == (0.5, 1.0)
    assert mechanisms.malicious.count == 1 and mechanisms.malicious.update_attack.name == "sign_flip"


@pytest.mark.parametrize("gossip,message", [
    ("{algorithm: push_sum}", r"gossip.algorithm must be one of"),
    ("{clipping: {radius: 0.5, farthest: 2}}", r"a fixed radius or farthest .*not both"),
    ("{clipping: {radius: null, farthest: 0}}", r"gossip.clipping.farthest must be an integer >= 1"),
    ("{algorithm: choco, clipping: {radius: null}}", r"robust neighbour aggregation is defined on neighbours' models"),
])
def test_gossip_section_refusals_come_before_the_corpus(tmp_path, no_corpus, gossip, message):
    recipe = RECIPES / "decentralized" / "hparams" / "synthetic_gossip.yaml"
    overrides = [f"--data_folder={no_corpus}", f"--output_folder={tmp_path / 'out'}", f"--gossip={gossip}"]
    with pytest.raises(ValueError, match=message):
        run_federated(load_hparams(recipe, overrides), str(recipe), overrides, progress=False)
    assert not no_corpus.exists()

"""Anonymization evaluation: hand-computed EER on a trial list, scenario wiring, linkability, G_VD, rho_F0,
corpus anonymization layout and consistency errors."""

import numpy as np
import pytest
import soundfile
import torch

from speechfl.anonymization.corpus import SplitData
from speechfl.anonymization.evaluate import Corpora, EvalConfig, load_corpora, privacy
from speechfl.anonymization.metrics import (contour_correlation, gain_of_voice_distinctiveness, linkability,
                                            similarity_matrix)
from speechfl.anonymization.scenarios import SCENARIOS, Scenario, eer_breakdown, scenario_inputs, score_trials
from speechfl.anonymization.trials import Trial, TrialList

from tests.unit.test_kaldi_trials import make_kaldi


def _unit(deg):
    return torch.tensor([np.cos(np.radians(deg)), np.sin(np.radians(deg))])


def test_eer_on_hand_computed_trial_list():
    # enrolled speakers A (F, model at 0 deg) and B (M, model at 90 deg); cosine = cos(angle difference)
    enroll = {"a1": _unit(0), "b1": _unit(90)}
    test = {"a2": _unit(25.84), "a3": _unit(72.54), "b2": _unit(36.87), "b3": _unit(84.26)}
    utt2spk = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "b3": "B"}
    trials = TrialList(("a1", "b1"), (Trial("A", "a2", True), Trial("A", "a3", True), Trial("A", "b2", False),
                                      Trial("B", "b3", True), Trial("B", "a3", False), Trial("B", "a2", False)),
                       "read")
    scored = score_trials(trials, enroll, test, utt2spk, {"A": "F", "B": "M"})
    # cos 25.84 = 0.9, cos 72.54 = 0.3, cos 36.87 = 0.8; cos(90-84.26) = 0.995, cos(90-72.54) = 0.954, cos(90-25.84) = 0.436
    np.testing.assert_allclose(scored.scores, [0.9, 0.3, 0.8, 0.995, 0.954, 0.436], atol=1e-3)
    out = eer_breakdown(scored)
    # all: targets {0.995, 0.9, 0.3}, non-targets {0.954, 0.8, 0.436}; sorted: T .995, N .954, T .9, N .8, N .436, T .3
    # threshold 0.9 accepts 2/3 targets (FNR 1/3) and 1/3 non-targets (FPR 1/3): a ROC point on the diagonal
    assert out["all"]["eer"] == pytest.approx(1 / 3)
    # F (speaker A's trials): targets {0.9, 0.3}, non-target {0.8}: at 0.8 FNR 1/2, FPR 1; at 0.9 FNR 1/2, FPR 0
    # -> crossing between (FPR 0, FNR 1/2) and (FPR 1, FNR 1/2): EER = 1/2
    assert out["F"]["eer"] == pytest.approx(0.5)
    # M: target {0.995}, non-targets {0.954, 0.436}: perfectly separated
    assert out["M"]["eer"] == 0.0 and out["M"]["n_target"] == 1 and out["M"]["n_nontarget"] == 2


def test_scenario_table_is_the_vpc_one():
    assert [(s.name, s.enroll, s.trial, s.asv) for s in SCENARIOS] == [
        ("original", "original", "original", "original"),
        ("ignorant", "original", "anonymized", "original"),
        ("lazy_informed", "anonymized", "anonymized", "original"),
        ("semi_informed", "anonymized", "anonymized", "anonymized"),
    ]
    tables = {(a, d): f"{a}-asv/{d}-data" for a in ("original", "anonymized") for d in ("original", "anonymized")}
    assert scenario_inputs(SCENARIOS[1], tables) == ("original-asv/original-data", "original-asv/anonymized-data")
    assert scenario_inputs(SCENARIOS[3], tables) == ("anonymized-asv/anonymized-data",) * 2
    assert scenario_inputs(Scenario("x", "anonymized", "original", "anonymized"), tables) == (
        "anonymized-asv/anonymized-data", "anonymized-asv/original-data")


def test_privacy_scores_each_scenario_with_its_model_and_data():
    """Only one (ASV, enroll data, trial data) combination separates speakers: each scenario must see its own."""
    spk = {f"s{k}-u{i}": f"s{k}" for k in range(4) for i in range(4)}
    rows = tuple({"ID": u, "spk_id": s, "gender": "F" if s in ("s0", "s1") else "M"} for u, s in spk.items())
    trials = TrialList(tuple(f"s{k}-u0" for k in range(4)),
                       tuple(Trial(e, u, spk[u] == e) for u in spk if not u.endswith("u0")
                             for e in ("s0", "s1", "s2", "s3")
                             if (e in ("s0", "s1")) == (spk[u] in ("s0", "s1"))),
                       "generated")
    voice = {f"s{k}": _unit(45 * k) for k in range(4)}
    rng = np.random.default_rng(0)

    def table(kind):
        if kind == "voice":
            return {u: voice[s] + 0.01 * torch.tensor(rng.standard_normal(2)) for u, s in spk.items()}
        return {u: torch.tensor(rng.standard_normal(2)) for u in spk}

    # original ASV separates original data only; anonymized ASV separates anonymized data only
    normed = {"original": {"original/test": table("voice"), "anonymized/test": table("noise")},
              "anonymized": {"original/test": table("noise"), "anonymized/test": table("voice")}}
    split = SplitData("test", rows, False)
    corpora = Corpora({"original": {"test": split}, "anonymized": {"test": split}}, {}, {"test": trials})
    cfg = EvalConfig(original="o", anonymized="a", out="x", splits=("test",))
    result = privacy(cfg, corpora, normed)
    assert result["original"]["pooled"]["all"]["eer"] == 0.0
    assert result["semi_informed"]["pooled"]["all"]["eer"] == 0.0
    assert result["ignorant"]["pooled"]["all"]["eer"] > 0.15  # enroll on voices, test on noise
    assert result["lazy_informed"]["pooled"]["all"]["eer"] > 0.15
    assert result["semi_informed"]["by_split"]["test"]["F"]["n_target"] == 6


def test_linkability_hand_computed():
    # 2 bins on [0, 1], width 0.5: p_m = [1, 1], p_n = [2, 0]; bin 0: LR 1/2 -> D = max(0, 2(1/3) - 1) = 0;
    # bin 1: only mated -> D = 1; D_sys = p_m[1] * 1 * 0.5 = 0.5
    assert linkability([0.0, 1.0], [0.0, 0.0], n_bins=2) == pytest.approx(0.5)
    assert linkability([5.0, 6.0], [0.0, 1.0]) == pytest.approx(1.0)
    same = np.random.default_rng(0).standard_normal(1000)
    assert linkability(same, same) == 0.0


def test_gvd_and_similarity():
    llr = np.array([[2.0, -2.0], [-2.0, 2.0]])
    m = similarity_matrix(llr, ["a", "b"], ["a", "b"], ["a", "b"])
    np.testing.assert_allclose(m, [[0.880797, 0.119203], [0.119203, 0.880797]], atol=1e-6)
    assert gain_of_voice_distinctiveness(m, m) == 0.0
    half = 0.5 + (m - 0.5) / 2  # diagonal dominance halved -> 10 log10(1/2) = -3.0103 dB
    assert gain_of_voice_distinctiveness(m, half) == pytest.approx(-3.0103, abs=1e-4)


def test_contour_correlation():
    a = np.array([100.0, 110, np.nan, 120, 130, 125])
    assert contour_correlation(a, a) == pytest.approx(1.0)
    assert contour_correlation(a, -a + 300) == pytest.approx(-1.0)
    stretched = np.repeat(a, 2)  # twice as long (slowed down): re-timed to 6 frames
    assert contour_correlation(a, stretched) == pytest.approx(1.0)
    assert contour_correlation(a, np.full(6, np.nan)) is None


def test_anonymize_kaldi_folder_layout_resume_and_errors(tmp_path):
    from speechfl.anonymization.apply import AnonymizationError, anonymize_corpus
    from data_prep.kaldi import read_kaldi_dir

    src = make_kaldi(tmp_path / "in" / "dev", per_spk=2, text=True)
    (src / "enrolls").write_text("s1-u0\n")
    spec = {"name": "mcadams", "seed": 1}
    s = anonymize_corpus(tmp_path / "in", tmp_path / "out", spec, workers=1, progress=False)
    assert s.written == 8 and s.skipped == 0
    out = read_kaldi_dir(tmp_path / "out" / "dev")
    assert out.has_text and (tmp_path / "out" / "dev" / "enrolls").read_text() == "s1-u0\n"
    assert all("/out/dev/wav/" in r["wav"] for r in out.rows)
    x, _ = soundfile.read(str(src / "wav" / "s1-u0.wav"))
    y, _ = soundfile.read(out.rows[0]["wav"])
    assert x.shape == y.shape and not np.allclose(x, y, atol=1e-3)
    again = anonymize_corpus(tmp_path / "in", tmp_path / "out", spec, workers=1, progress=False)
    assert again.written == 0 and again.skipped == 8
    with pytest.raises(AnonymizationError, match="was written by anonymizer"):
        anonymize_corpus(tmp_path / "in", tmp_path / "out", {"name": "vtln"}, workers=1, progress=False)
    bad = tmp_path / "bad" / "train" / "s1" / "c1"
    bad.mkdir(parents=True)
    (bad / "s1-c1-0.flac").write_bytes(b"not audio")
    with pytest.raises(AnonymizationError, match=r"s1-c1-0.flac: unreadable audio"):
        anonymize_corpus(tmp_path / "bad", tmp_path / "bad_out", spec, workers=1, progress=False)


def test_load_corpora_consistency_errors(tmp_path):
    for root in ("orig", "anon"):
        make_kaldi(tmp_path / root / "test", per_spk=3)
        make_kaldi(tmp_path / root / "train", per_spk=3)
    cfg = EvalConfig(original=str(tmp_path / "orig"), anonymized=str(tmp_path / "anon"), out=str(tmp_path / "o"),
                     splits=("test",))
    with pytest.raises(ValueError, match="shares speakers with the ASV training data"):
        load_corpora(cfg)
    (tmp_path / "anon" / "test" / "utt2spk").write_text("".join(
        f"s{k}-u{i} s{k}\n" for k in range(1, 5) for i in range(3) if (k, i) != (2, 1)))
    (tmp_path / "anon" / "test" / "wav.scp").write_text("".join(
        f"s{k}-u{i} wav/s{k}-u{i}.wav\n" for k in range(1, 5) for i in range(3) if (k, i) != (2, 1)))
    with pytest.raises(ValueError, match=r"absent from the anonymized corpus .* \(first: s2-u1\)"):
        load_corpora(cfg)
    with pytest.raises(ValueError, match="give both --train-original and --train-anonymized"):
        EvalConfig(original="o", anonymized="a", out="x", train_original="t")
    with pytest.raises(Exception, match="valid parameters"):
        EvalConfig(original="o", anonymized="a", out="x", attacker_params={"depth": 3})


def test_report_files_from_results(tmp_path):
    from speechfl.anonymization.report import privacy_utility_points, write_report

    block = {"all": {"eer": 0.3, "linkability": 0.4, "n_target": 5, "n_nontarget": 9},
             "F": {"eer": 0.25, "linkability": 0.5, "n_target": 3, "n_nontarget": 4}, "M": None}
    priv = {s.name: {"enroll": s.enroll, "trial": s.trial, "asv": s.asv, "pooled": block, "by_split": {"test": block},
                     "attacker": "ecapa+lda"} for s in SCENARIOS}
    results = {"config": {"original": "o", "anonymized": "corpora/anon", "attackers": ["ecapa"],
                          "backends": ["lda", "cosine"], "seed": 0},
               "corpora": {"test": {"utterances": 10, "speakers": 2, "enroll_utterances": 2, "target": 5,
                                    "nontarget": 9, "trials_source": "generated"}},
               "privacy": priv, "utility": {"rho_f0": {"rho_f0": 0.7, "n_utterances": 4, "n_skipped": 0},
                                            "gvd": {"gvd_db": -2.0}, "asr": {"reason": "no --asr-run given"}},
               "seconds": {"total": 1.0, "asv": 0.5}}
    files = write_report(results, tmp_path)
    md = files["md"].read_text()
    assert "| semi_informed | anonymized | anonymized | anonymized | ecapa+lda | 30.00 | 25.00 | n/a | 0.400 |" in md
    assert "ASR: not computed: no --asr-run given" in md
    html_text = files["html"].read_text()
    assert html_text.count("data:image/png;base64,") == 2 and "<td>ignorant</td>" in html_text
    assert html_text.count("<table") == html_text.count("</table>") == 2
    label, points = privacy_utility_points(results)
    assert label.startswith("rho_F0") and points == [("original", 0.3, 1.0), ("anonymized", 0.3, 0.7)]


def test_strongest_attacker_per_scenario():
    from speechfl.anonymization.evaluate import strongest

    def res(eers):
        return {n: {"enroll": "o", "trial": "a", "asv": "o", "pooled": {"all": {"eer": e}}, "by_split": {}}
                for n, e in eers.items()}

    out = strongest({"ecapa+lda": res({"ignorant": 0.40, "semi_informed": 0.10}),
                     "ecapa+cosine": res({"ignorant": 0.35, "semi_informed": 0.10})})
    assert out["ignorant"]["attacker"] == "ecapa+cosine" and out["ignorant"]["pooled"]["all"]["eer"] == 0.35
    assert out["semi_informed"]["attacker"] == "ecapa+lda"  # tie: the first listed
    assert out["ignorant"]["eer_by_attacker"] == {"ecapa+lda": 0.40, "ecapa+cosine": 0.35}
    with pytest.raises(ValueError, match="back-ends must be among"):
        EvalConfig(original="o", anonymized="a", out="x", backends=("plda",))
    with pytest.raises(ValueError, match="sequence models"):
        EvalConfig(original="o", anonymized="a", out="x", attackers=("mlp",))


def test_asr_utility_matches_direct_transcription(tiny_corpus, tiny_hparams_overrides, tmp_path):
    """WER/CER of a run's model on both corpora equal a direct greedy decode of the same model (oracle)."""
    import json

    from speechfl.anonymization.apply import anonymize_corpus
    from speechfl.anonymization.corpus import load_split
    from speechfl.anonymization.evaluate import _asr
    from speechfl.data.dataset import make_dataset, make_loader
    from speechfl.data.features import FeatureCache, FeatureConfig
    from speechfl.data.tokenizer import CharTokenizer
    from speechfl.experiment.hparams import load_hparams
    from speechfl.metrics.asr import pooled_rates, transcribe
    from tests.integration.helpers import FED_HPARAMS, TINY_MODEL

    argv = [*tiny_hparams_overrides, *TINY_MODEL]
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"config": {"hparams_file": str(FED_HPARAMS), "argv": argv}}))
    torch.manual_seed(0)
    hparams = load_hparams(FED_HPARAMS, argv)
    model = hparams["model"]
    torch.save(model.state_dict(), run / "model.pt")
    anon = tmp_path / "anon"
    anonymize_corpus(tiny_corpus / "test", anon / "test", {"name": "vtln", "seed": 0}, workers=1, progress=False)
    split = {"original": load_split(tiny_corpus, "test"), "anonymized": load_split(anon, "test")}
    corpora = Corpora({d: {"test": split[d]} for d in split}, {}, {})
    cfg = EvalConfig(original=str(tiny_corpus), anonymized=str(anon), out=str(tmp_path / "out"), splits=("test",),
                     asr_run=str(run))
    out = _asr(cfg, corpora)
    cache = FeatureCache(FeatureConfig(n_mels=int(hparams["n_mels"])))
    for d in ("original", "anonymized"):
        from data_prep.kaldi import write_manifest

        csv = write_manifest(split[d].rows, tmp_path / f"{d}.csv", source=d, has_text=True)
        recs = transcribe(model, make_loader(make_dataset(csv, CharTokenizer(), cache), 4, shuffle=False),
                          CharTokenizer())
        rates = pooled_rates(recs)
        # pooled_rates is in percent, the anonymization schema in fractions
        assert 100 * out[d]["wer"] == pytest.approx(rates["wer"]) and 100 * out[d]["cer"] == pytest.approx(rates["cer"])
        assert out[d]["n_utterances"] == len(split[d].rows) == 12
    assert "anonymized_retrained" not in out


def test_cli_anonymize_and_errors(tmp_path, capsys):
    from data_prep.kaldi import read_kaldi_dir
    from speechfl.anonymization.anonymizers import ANONYMIZERS
    from speechfl.cli import main

    make_kaldi(tmp_path / "in" / "dev", per_spk=1)
    main(["anonymize", str(tmp_path / "in"), str(tmp_path / "out"), "--method", "vtln", "--warp_min=0.15",
          "--per=utterance", "--seed", "4", "--workers", "1", "--no-progress"])
    assert "written 4" in capsys.readouterr().out
    row = read_kaldi_dir(tmp_path / "out" / "dev").rows[0]
    x, sr = soundfile.read(str(tmp_path / "in" / "dev" / "wav" / f"{row['ID']}.wav"))
    expected = ANONYMIZERS.build("vtln", warp_min=0.15, per="utterance", seed=4)(x, sr, utt_id=row["ID"],
                                                                                  spk_id=row["spk_id"])
    y, _ = soundfile.read(row["wav"])
    np.testing.assert_allclose(y, expected, atol=1.5 / 32768)  # 16-bit PCM rounding
    with pytest.raises(SystemExit, match="unknown parameter.*'alpha'.*valid parameters: alpha_min"):
        main(["anonymize", str(tmp_path / "in"), str(tmp_path / "o2"), "--method", "mcadams", "--alpha=0.8"])
    with pytest.raises(SystemExit, match="anonymizer parameters are --name=value"):
        main(["anonymize", str(tmp_path / "in"), str(tmp_path / "o3"), "--method", "mcadams", "--alpha_min", "0.8"])

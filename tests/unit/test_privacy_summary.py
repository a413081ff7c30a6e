"""The privacy summaries evaluate writes: what each figure rests on, or why it was skipped."""

import pytest
import torch

from speechfl.attackers import run_privacy_suite
from speechfl.attackers.types import UtteranceSet
from speechfl.experiment.privacy_summary import privacy_summary

pytestmark = pytest.mark.usefixtures("one_thread")


def six_speakers_one_gender():
    g = torch.Generator().manual_seed(0)
    frames, spk = [], []
    for s in range(6):
        mu = 2.0 * torch.randn(8, generator=g)
        for _ in range(6):
            frames.append(mu + torch.randn(20, 8, generator=g))
            spk.append(f"s{s}")
    return UtteranceSet(frames, spk, ["M"] * 36, [f"u{i}" for i in range(36)])


def test_summary_of_six_speakers_one_gender():
    mia = dict(member_scores=[0.1, 0.2, 0.3], nonmember_scores=[0.5, 0.6], member_groups=["M"] * 3,
               nonmember_groups=["M"] * 2, member_speakers=["s0", "s1", "s0"], nonmember_speakers=["s0", "s5"])
    rep = run_privacy_suite(representations=six_speakers_one_gender(), membership=mia, families=("linear",),
                            progress=False)
    s = privacy_summary(rep.to_dict())
    st = s["representations"]["strongest"]
    assert st["chance"] == 0.25 and st["n_id_speakers"] == 4 and st["n_eer_speakers"] == 2  # not 1/6
    assert st["few_speakers"] and st["n_target_trials"] == 2 * 15 and st["n_nontarget_trials"] == 36
    assert st["top1_ci"]["n_units"] == 4
    assert s["gender_inference"] == {"skipped": "gender inference needs exactly 2 label values, got ['M']"}
    assert s["fbank"] == {"strongest": {"skipped": "no Fbank features given"}}
    assert s["linkage"] == {"skipped": "needs recorded client updates of two rounds (linkage_enroll, linkage_probe)"}
    m = s["membership"]
    assert m["auc"] == 1.0 and "utterance-level membership only" in m["caveat"] and m["auc_ci"]["unit"] == "speaker"
    assert (m["n_member_speakers"], m["n_nonmember_speakers"]) == (2, 2)

"""The flat, fixed-shape summary of ``speechfl evaluate``'s privacy section (what sweep tables read).

One mapping per threat, either the strongest attacker's figures with what they
rest on (chance level, speakers/clients and trials, bootstrap intervals) or
``{"skipped": reason}``. The full typed reports sit beside it under
``privacy.reports`` (schema in the README).
"""

from __future__ import annotations


def _skip_reason(notes: dict, name: str) -> str:
    why = notes.get(name, "not computed")
    return why[len("skipped: "):] if why.startswith("skipped: ") else why


def _at(mia: dict, strongest: str) -> dict:
    level, variant = strongest.split("/")
    return mia[level][variant]


def privacy_summary(report: dict) -> dict:
    """Summaries of :meth:`PrivacySuiteReport.to_dict` output ``report``; see the module docstring."""
    notes = report.get("notes", {})

    def strongest_of(rep, name):
        if not rep:
            return {"skipped": _skip_reason(notes, name)}
        fam = rep["families"][rep["strongest_id"]]
        ver = rep["families"][rep["strongest_verification"]]
        return {"family": rep["strongest_id"], "top1": rep["best_top1"], "chance": rep["chance"],
                "chance_note": rep["chance_note"], "top1_ci": fam["top1_ci"], "n_id_speakers": rep["n_attack_speakers"],
                "eer": rep["best_eer"], "eer_family": rep["strongest_verification"], "eer_ci": ver["eer_ci"],
                "n_eer_speakers": rep["n_heldout_speakers"], "n_target_trials": rep["n_target_trials"],
                "n_nontarget_trials": rep["n_nontarget_trials"], "eer_same_gender": fam.get("eer_same_gender"),
                "few_speakers": rep["few_speakers"]}

    link = report.get("update_linkage")
    src = report.get("source_inference")
    mia = report.get("membership")
    gen = report.get("gender")
    ug = report.get("update_gender")
    return {
        "representations": {"strongest": strongest_of(report.get("speaker"), "speaker")},
        "fbank": {"strongest": strongest_of(report.get("fbank_speaker"), "fbank_speaker")},
        "gender_inference": ({"auc": gen["auc"], "auc_ci": gen["auc_ci"], "accuracy": gen["accuracy"],
                              "chance": gen["chance"], "n_speakers": gen["n_groups"]}
                             if gen else {"skipped": _skip_reason(notes, "gender")}),
        "linkage": ({"accuracy": link["accuracy"], "chance": link["chance"], "eer": link["eer"],
                     "accuracy_ci": link["accuracy_ci"], "n_clients": link["n_enroll_clients"],
                     "n_probes": link["n_probes"]} if link
                    else {"skipped": _skip_reason(notes, "update_linkage")}),
        "update_gender": ({k: ug[k] for k in ("auc", "accuracy", "chance", "strongest", "n_items", "n_groups")}
                          if ug else {"skipped": _skip_reason(notes, "update_gender")}),
        "source_inference": ({"accuracy": src["accuracy"], "chance": src["chance"], "accuracy_ci": src["accuracy_ci"],
                              "n_clients": src["n_clients"], "n_utts": src["n_utts"]} if src
                             else {"skipped": _skip_reason(notes, "source_inference")}),
        "membership": ({"auc": mia["best_auc"], "strongest": mia["strongest"],
                        "auc_ci": _at(mia, mia["strongest"])["auc_ci"],
                        "tpr_at_1fpr": max((s or {}).get("tpr_at_1pct_fpr", 0.0) for s in mia["utterance"].values()),
                        "n_member_speakers": mia["n_member_speakers"],
                        "n_nonmember_speakers": mia["n_nonmember_speakers"],
                        "caveat": mia["notes"].get("caveat")}
                       if mia else {"skipped": _skip_reason(notes, "membership")}),
    }

"""Attacker strength and speed on raw Fbank features of the synthetic corpus (no protection).

Figures printed:

1. speaker identification (top-1 vs chance) and verification EER per family,
   overall and per gender, with seconds; plus plain cosine on pooled Fbank
   (no trained embedding, no LDA) as the naive reference;
2. gender inference accuracy / AUC on held-out speakers;
3. server-side attacks on a FedAvg proxy (one client per speaker, a small
   next-frame predictor on Fbank trained with FedAvg): source inference from
   the clients' local models, linkage of round-r+1 updates to round-r updates,
   and gender inference from updates;
4. wall time of the whole suite.

Targets (issue): top-1 >= 95%, EER <= 5% on raw Fbank, source inference well
above chance, whole suite < 5 minutes on 2 cores. The default run uses 40
speakers x 25 utterances (1000 utterances); ``--full`` uses the default
corpus size (48 x 50). Example::

    python benchmarks/bench_attackers.py --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

from data_prep.speakers import read_speakers_txt
from data_prep.synthetic import generate_corpus
from speechfl.attackers import gender_attack, source_inference, speaker_attacks, update_gender_attack, update_linkage_attack
from speechfl.attackers.pooling import Standardizer
from speechfl.attackers.types import UtteranceSet


def load_fbank(root: Path) -> UtteranceSet:
    from speechbrain.lobes.features import Fbank

    speakers = read_speakers_txt(root / "SPEAKERS.TXT")
    fbank = Fbank(n_mels=80)
    frames, spk, gen, utt = [], [], [], []
    for path in sorted(root.glob("*/*/*/*.flac")):
        wav, _ = sf.read(str(path), dtype="float32")
        with torch.no_grad():
            frames.append(fbank(torch.from_numpy(wav).unsqueeze(0)).squeeze(0))
        s = path.stem.split("-")[0]
        spk.append(s)
        gen.append(speakers[s].gender)
        utt.append(path.stem)
    return UtteranceSet(frames, spk, gen, utt)


def figure_speaker(data: UtteranceSet, families) -> None:
    t0 = time.perf_counter()
    rep = speaker_attacks(data, families=families, progress=False)
    print(f"\n[speaker attacks] {rep.n_utts} utts, {rep.n_attack_speakers} attack spk (chance top-1 "
          f"{rep.chance:.3f}), {rep.n_heldout_speakers} held-out spk, {rep.n_target_trials} target / "
          f"{rep.n_nontarget_trials} non-target trials")
    print(f"{'family':10s} {'top1':>6s} {'EER':>6s} {'EER-sg':>6s}  per-gender (top1 / EER)          seconds")
    for name, fr in rep.families.items():
        pg = "  ".join(f"{g}: {v.top1:.3f}/{v.eer:.3f}" for g, v in fr.per_gender.items() if v.eer is not None)
        sg = "  n/a" if fr.eer_same_gender is None else f"{fr.eer_same_gender:6.3f}"
        print(f"{name:10s} {fr.top1:6.3f} {fr.eer:6.3f} {sg}  {pg:32s} {fr.seconds:6.1f}")
    print("(EER: all held-out pairs; EER-sg: same-gender pairs only, the VoicePrivacy convention)")
    print(f"strongest: id={rep.strongest_id} ({rep.best_top1:.3f}), verification={rep.strongest_verification} "
          f"({rep.best_eer:.3f}); {time.perf_counter() - t0:.1f} s")
    naive = speaker_attacks(data, families=("linear",), progress=False, lda_dim=None)
    print(f"naive reference: cosine on standardised pooled Fbank, no LDA: EER {naive.best_eer:.3f}")


def figure_gender(data: UtteranceSet) -> None:
    t0 = time.perf_counter()
    rep = gender_attack(data)
    fams = ", ".join(f"{f} {v.accuracy:.3f}/{v.auc:.3f}" for f, v in rep.families.items())
    print(f"\n[gender from Fbank] acc/AUC: {fams}; strongest {rep.strongest}; chance {rep.chance:.3f}; "
          f"{rep.n_folds} folds; {time.perf_counter() - t0:.1f} s")


def fedavg_proxy(data: UtteranceSet, rounds: int, local_steps: int, seed: int = 0):
    """FedAvg of a next-frame predictor ``x_{t+1} ~ f(x_t)`` on standardised Fbank, one client per speaker.

    Returns the per-round client updates ``{round: {client: [d]}}``, the last
    round's local models' losses ``[n_utts, n_clients]`` and the owner column.
    """
    norm = Standardizer.fit_frames(data.frames)
    frames = [norm(f) for f in data.frames]
    clients = sorted(set(data.spk_ids))
    own = {c: [i for i, s in enumerate(data.spk_ids) if s == c] for c in clients}
    d = data.dim
    torch.manual_seed(seed)
    glob = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.Tanh(), torch.nn.Linear(64, d))

    def flat(m):
        return torch.cat([p.detach().reshape(-1) for p in m.parameters()])

    def utt_loss(model, i):
        f = frames[i]
        return torch.nn.functional.mse_loss(model(f[:-1]), f[1:])

    updates, local = {}, {}
    for r in range(rounds):
        g_flat = flat(glob)
        updates[r], local = {}, {}
        for c in clients:
            model = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.Tanh(), torch.nn.Linear(64, d))
            model.load_state_dict(glob.state_dict())
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            x = torch.cat([frames[i][:-1] for i in own[c]])
            y = torch.cat([frames[i][1:] for i in own[c]])
            for _ in range(local_steps):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                opt.step()
            updates[r][c] = flat(model) - g_flat
            local[c] = model
        with torch.no_grad():
            for name, p in glob.named_parameters():
                p.copy_(torch.stack([dict(m.named_parameters())[name] for m in local.values()]).mean(dim=0))
    with torch.no_grad():
        losses = torch.tensor([[float(utt_loss(local[c], i)) for c in clients] for i in range(len(frames))])
    owner = torch.tensor([clients.index(s) for s in data.spk_ids])
    return updates, losses, owner, clients


def figure_server(data: UtteranceSet, rounds: int, local_steps: int) -> None:
    t0 = time.perf_counter()
    updates, losses, owner, clients = fedavg_proxy(data, rounds, local_steps)
    t1 = time.perf_counter()
    src = source_inference(losses, owner, client_ids=clients)
    link = update_linkage_attack(updates[rounds - 2], updates[rounds - 1])
    genders = dict(zip(data.spk_ids, data.genders))
    ug = update_gender_attack({c: torch.stack([updates[r][c] for r in range(rounds)]) for c in clients}, genders)
    print(f"\n[server-side, FedAvg proxy: {len(clients)} clients, {rounds} rounds x {local_steps} local steps, "
          f"d={updates[0][clients[0]].numel()}; training {t1 - t0:.1f} s]")
    print(f"source inference: accuracy {src.accuracy:.3f} vs chance {src.chance:.3f}")
    meth = ", ".join(f"{m} {v.accuracy:.3f}/{v.eer:.3f}" for m, v in link.methods.items())
    print(f"update linkage (acc/EER): {meth}; chance {link.chance:.3f}")
    print(f"gender from updates: acc {ug.accuracy:.3f}, AUC {ug.auc:.3f} ({ug.strongest}); "
          f"attacks {time.perf_counter() - t1:.1f} s")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--speakers", type=int, default=40)
    p.add_argument("--utterances", type=int, default=25)
    p.add_argument("--full", action="store_true", help="default corpus size: 48 speakers x 50 utterances")
    p.add_argument("--families", default="linear,mlp,xvector")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--local-steps", type=int, default=20)
    p.add_argument("--corpus-dir", default=None, help="reuse/generate the corpus here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.full:
        args.speakers, args.utterances = 48, 50
    if args.rounds < 2:
        p.error("--rounds must be >= 2 (linkage links round r+1 updates to round r)")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.corpus_dir or tmp) / f"synthetic_{args.speakers}x{args.utterances}"
        root = generate_corpus(out, n_speakers=args.speakers, n_utterances=args.utterances, seed=0, progress=False)
        data = load_fbank(root)
        data.validate()
        t_data = time.perf_counter() - t0
        print(f"corpus + Fbank: {len(data)} utterances, {len(set(data.spk_ids))} speakers, "
              f"{sum(f.shape[0] for f in data.frames) / len(data):.0f} frames/utt, {t_data:.1f} s; "
              f"{args.threads} torch threads")
        t1 = time.perf_counter()
        figure_speaker(data, tuple(args.families.split(",")))
        figure_gender(data)
        figure_server(data, args.rounds, args.local_steps)
        print(f"\nattacker suite wall time (excluding corpus): {time.perf_counter() - t1:.1f} s")


if __name__ == "__main__":
    main()

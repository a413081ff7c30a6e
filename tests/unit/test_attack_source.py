"""Source inference (lowest local-model loss) on hand cases and on real FedAvg local models."""

import pytest
import torch

from speechfl.attackers import source_inference


pytestmark = pytest.mark.usefixtures("one_thread")  # small MLPs: threads only add overhead



def test_hand_case_with_tie_counted_as_expected_accuracy():
    losses = torch.tensor([[0.1, 0.5, 0.9], [0.4, 0.2, 0.3], [0.3, 0.3, 0.8], [0.5, 0.6, 0.2]])
    true = torch.tensor([0, 2, 1, 2])
    rep = source_inference(losses, true, client_ids=["a", "b", "c"])
    # utt0 right, utt1 wrong, utt2 tie between 0 and 1 with owner 1 -> 1/2, utt3 right
    assert rep.accuracy == pytest.approx(2.5 / 4)
    assert rep.chance == pytest.approx(1 / 3) and rep.advantage == pytest.approx(2.5 / 4 - 1 / 3)
    assert rep.n_tied == 1
    assert rep.per_client_accuracy == {"a": 1.0, "b": 0.5, "c": pytest.approx(0.5)}


def test_client_without_utterances_is_none_with_note():
    rep = source_inference(torch.tensor([[0.1, 0.2], [0.3, 0.1]]), torch.tensor([0, 0]))
    assert rep.per_client_accuracy["1"] is None and "no known utterance" in rep.notes["per_client_accuracy[1]"]


@pytest.mark.parametrize(
    "losses, true, match",
    [
        (torch.zeros(3), torch.zeros(3, dtype=torch.long), r"\[n_utts, n_clients\]"),
        (torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), "at least 2 clients"),
        (torch.tensor([[0.0, float("nan")]]), torch.zeros(1, dtype=torch.long), "non-finite"),
        (torch.zeros(2, 2), torch.tensor([0, 2]), r"lie in \[0, 2\)"),
        (torch.zeros(2, 2), torch.zeros(2), "integer tensor"),
        (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), "at least one utterance"),
    ],
)
def test_bad_inputs(losses, true, match):
    with pytest.raises(ValueError, match=match):
        source_inference(losses, true)


def test_fedavg_local_models_leak_the_source():
    """4 clients, 2 FedAvg rounds of a small MLP; each local model fits its own data better than others'."""
    torch.manual_seed(0)
    n_clients, n_per, d = 4, 24, 10
    xs = [torch.randn(n_per, d) for _ in range(n_clients)]
    ys = [torch.randint(0, 5, (n_per,)) for _ in range(n_clients)]  # random labels: only memorisation helps
    glob = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.ReLU(), torch.nn.Linear(64, 5))

    def local_train(x, y):
        model = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.ReLU(), torch.nn.Linear(64, 5))
        model.load_state_dict(glob.state_dict())
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(60):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return model

    for _ in range(2):
        local = [local_train(x, y) for x, y in zip(xs, ys)]
        with torch.no_grad():  # FedAvg with equal weights
            for name, p in glob.named_parameters():
                p.copy_(torch.stack([dict(m.named_parameters())[name] for m in local]).mean(dim=0))
    x_all, y_all = torch.cat(xs), torch.cat(ys)
    with torch.no_grad():
        losses = torch.stack([torch.nn.functional.cross_entropy(m(x_all), y_all, reduction="none") for m in local], dim=1)
    owner = torch.arange(n_clients).repeat_interleave(n_per)
    rep = source_inference(losses, owner)
    assert rep.chance == 0.25
    assert rep.accuracy >= 0.65, rep.accuracy  # chance 0.25; seeds 0-3 give 0.80-0.83

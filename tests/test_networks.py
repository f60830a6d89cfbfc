"""PyTorch training of the ReLU + skip network (docs/reference.md §5)."""
import numpy as np

import utils
from planted import data, networks


def easy_cell(seed=0, n=100, d=5):
    rng = utils.cell_rng(seed, n, d, 0)
    inst = data.skip_instance(n, d, 0, 0, 0.0, rng)
    networks.seed_torch(rng)
    return inst, networks.SkipNet(d, n + 1)


def test_paper_settings_lower_the_loss():
    inst, net = easy_cell()
    losses = networks.train(net, inst["X"], inst["y"], epochs=400, lr=2e-3, beta=1e-6)
    assert losses.shape == (400,)
    assert losses[-1] < 1e-2 * losses[0]
    test_error = np.linalg.norm(networks.predict(net, inst["X_test"]) - inst["y_test"])
    assert test_error < 0.5 * np.linalg.norm(inst["y_test"])


def test_l2_weight_decay_learns_the_skip_neuron():
    inst, net = easy_cell()
    losses = networks.train(net, inst["X"], inst["y"], epochs=3000, lr=1e-2, beta=1e-2, optimizer="adam")
    assert losses[-1] < 1e-3
    assert np.linalg.norm(net.skip_weight() - inst["w"]) < 0.02  # dis_abs


def test_training_is_deterministic_per_cell():
    runs = []
    for _ in range(2):
        inst, net = easy_cell(seed=3, n=30, d=4)
        runs.append(networks.train(net, inst["X"], inst["y"], epochs=50, lr=2e-3, beta=1e-6))
    assert np.array_equal(*runs)

"""benchmarks/mlff_learning_curves.py: the active and random arms take the frames they should, share their first
model, never run more than ``--jobs`` trainings at a time, and the labels-to-reach interpolation is right. DeePMD is
replaced by stand-ins (the real trainings run in the benchmark itself, docs/mlff.md)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from aiida_qdtraps.provenance import FrameOrigin


@pytest.fixture(scope='module')
def bench(load_script):
    return load_script('benchmarks/mlff_learning_curves.py')


class StandIn:
    """Records every training; a model is (tag, seed, frames); its RMSE is 1/frames; the deviation of a frame is its
    index, so the active arm must take the highest indices left."""

    def __init__(self, fail_tag=None):
        self.trainings, self.running, self.most = {}, 0, 0
        self.lock = threading.Lock()
        self.fail_tag = fail_tag

    def train(self, indices, seed, tag, init):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
            assert tag not in self.trainings, f'{tag} trained twice'
            self.trainings[tag] = (seed, list(indices), init)
        if tag == self.fail_tag:
            raise RuntimeError(f'training {tag} failed')
        return tag, seed, tuple(indices)

    @staticmethod
    def rmse(model):
        return 1.0 / len(model[2])

    @staticmethod
    def deviation(models, indices):
        assert [m[1] for m in models] == [1, 2] and models[0][2] == models[1][2]
        return np.asarray(indices, dtype=float)


def test_arms_take_the_frames_they_should(bench):
    stand_in = StandIn()
    lines = []
    sizes, repeats = [4, 8, 12], 2
    rmse = bench.learning_curves(30, sizes, repeats, 2, stand_in.train, stand_in.rmse, stand_in.deviation,
                                 report=lines.append)
    # per repeat: the shared first model and its second member, the active arm's 8-frame pair and 12-frame model,
    # the random arm's 8- and 12-frame models
    assert rmse.pop('trainings') == repeats * 7 == len(stand_in.trainings)
    assert stand_in.most == 2
    assert len(lines) == repeats * (2 * len(sizes) - 1)
    for arm in ('active', 'random'):
        np.testing.assert_allclose(rmse[arm], [[1 / 4, 1 / 8, 1 / 12]] * repeats)
    for r in range(repeats):
        first = sorted(int(i) for i in np.random.default_rng(r).choice(30, size=4, replace=False))
        assert sorted(stand_in.trainings[f'r{r}_first_s1'][1]) == first
        assert stand_in.trainings[f'r{r}_first_s2'][1] == stand_in.trainings[f'r{r}_first_s1'][1]
        highest = sorted(set(range(30)) - set(first))[::-1]
        active8 = stand_in.trainings[f'r{r}_active_1_s1'][1]
        assert sorted(active8) == sorted(first + highest[:4])
        assert sorted(stand_in.trainings[f'r{r}_active_2_s1'][1]) == sorted(first + highest[:8])
        assert f'r{r}_active_2_s2' not in stand_in.trainings  # nothing to rank after the last size
        assert all(init is None for _, _, init in stand_in.trainings.values())  # every model from scratch
        random8, random12 = (stand_in.trainings[f'r{r}_random_{k}_s1'][1] for k in (1, 2))
        assert random8[:4] == stand_in.trainings[f'r{r}_first_s1'][1] and random12[:8] == random8
        assert len(set(random12)) == 12
    assert stand_in.trainings['r0_random_2_s1'][1] != stand_in.trainings['r1_random_2_s1'][1]


def test_one_training_at_a_time(bench):
    stand_in = StandIn()
    bench.learning_curves(20, [2, 4], 3, 1, stand_in.train, stand_in.rmse, stand_in.deviation, report=lambda _: None)
    assert stand_in.most == 1


def test_a_failed_training_is_raised(bench):
    stand_in = StandIn(fail_tag='r1_random_1_s1')
    with pytest.raises(RuntimeError, match='r1_random_1_s1 failed'):
        bench.learning_curves(20, [2, 4], 2, 2, stand_in.train, stand_in.rmse, stand_in.deviation,
                              report=lambda _: None)


def test_labels_to_reach(bench):
    sizes = [10, 40, 160]
    curve = np.array([0.4, 0.2, 0.1])  # RMSE ∝ labels^-1/2
    assert bench.labels_to_reach(sizes, curve, 0.2) == 40
    assert bench.labels_to_reach(sizes, curve, 0.15) == 160
    assert bench.labels_to_reach(sizes, curve, 0.05) is None
    assert bench.labels_to_reach_interpolated(sizes, curve, 0.2) == pytest.approx(40)
    assert bench.labels_to_reach_interpolated(sizes, curve, 0.4 / np.sqrt(2)) == pytest.approx(20)
    assert bench.labels_to_reach_interpolated(sizes, curve, 0.15) == pytest.approx(40 * (0.2 / 0.15) ** 2)
    assert bench.labels_to_reach_interpolated(sizes, curve, 0.5) == 10
    assert bench.labels_to_reach_interpolated(sizes, curve, 0.05) is None
    # a flat step stays at the size where the level was first met
    assert bench.labels_to_reach_interpolated(sizes, np.array([0.3, 0.2, 0.2]), 0.2) == pytest.approx(40)


def test_warm_starts_chain_each_arm(bench):
    """With ``warm`` each arm's model (and the active arm's second member) starts from its own model at the size
    before; both arms from the shared first model."""
    stand_in = StandIn()
    rmse = bench.learning_curves(30, [4, 8, 12], 2, 2, stand_in.train, stand_in.rmse, stand_in.deviation,
                                 report=lambda _: None, warm=True)
    assert rmse.pop('trainings') == 14
    np.testing.assert_allclose(rmse['random'], [[1 / 4, 1 / 8, 1 / 12]] * 2)
    for r in range(2):
        runs = stand_in.trainings
        assert runs[f'r{r}_first_s1'][2] is None and runs[f'r{r}_first_s2'][2] is None
        for seed in (1, 2):
            assert runs[f'r{r}_active_1_s{seed}'][2][0] == f'r{r}_first_s{seed}'
        assert runs[f'r{r}_active_2_s1'][2][0] == f'r{r}_active_1_s1'
        assert runs[f'r{r}_random_1_s1'][2][0] == f'r{r}_first_s1'
        assert runs[f'r{r}_random_2_s1'][2][0] == f'r{r}_random_1_s1'


def test_a_failed_first_training_stops_the_warm_random_arm(bench):
    stand_in = StandIn(fail_tag='r0_first_s2')
    with pytest.raises(RuntimeError, match='r0_first_s2 failed'):
        bench.learning_curves(20, [2, 4], 1, 2, stand_in.train, stand_in.rmse, stand_in.deviation,
                              report=lambda _: None, warm=True)


def test_frames_taken_and_their_origins(bench):
    stand_in = StandIn()
    sizes = [4, 8, 12]
    rmse = bench.learning_curves(30, sizes, 2, 2, stand_in.train, stand_in.rmse, stand_in.deviation,
                                 report=lambda _: None, warm=True)
    taken = rmse['frames']
    for r in range(2):
        # in the order taken: the first sizes[k] frames are what the arm's model of size k trained on
        for arm, tag in (('active', 'active_2'), ('random', 'random_2')):
            assert list(taken[arm][r]) == stand_in.trainings[f'r{r}_{tag}_s1'][1]
            assert list(taken[arm][r][:8]) == stand_in.trainings[f'r{r}_{tag[:-1]}1_s1'][1]
    # the stand-in deviation is the index: the active arm's frames after the first four are the highest ones
    origins = ['cold' if i < 20 else 'hot' for i in range(30)]
    table = bench.composition(taken, origins, sizes)
    assert [row['hot'] for row in table['active']] == [
        np.mean([sum(i >= 20 for i in row[:4]) for row in taken['active']]),
        np.mean([sum(i >= 20 for i in row[:4]) + 4 for row in taken['active']]),
        np.mean([sum(i >= 20 for i in row[:4]) + min(8, 10 - sum(i >= 20 for i in row[:4]))
                 for row in taken['active']])]
    for arm in ('active', 'random'):
        assert all(row['hot'] + row['cold'] == size for row, size in zip(table[arm], sizes))
        assert table[arm][0] == table['random'][0]  # the same first frames
    assert bench.origin_name(FrameOrigin('MLFF MD', 450.0, 0.3, 'uuid')) == 'MLFF MD 450 K'
    assert bench.origin_name(FrameOrigin('MLFF relax', None, 0.3, 'uuid')) == 'MLFF relax'


def test_a_pool_restricted_to_origins(bench):
    origins = ['initial MD 300 K', 'MLFF MD 600 K', 'MLFF MD 300 K', 'initial MD 300 K', 'MLFF MD 450 K']
    assert bench.restrict_pool(origins, None) == [0, 1, 2, 3, 4]
    assert bench.restrict_pool(origins, ['initial MD 300 K', 'MLFF MD 300 K']) == [0, 2, 3]
    with pytest.raises(ValueError, match=r"no pool frame has the origin 'MLFF MD 310 K'; the pool has: "
                                         r"'MLFF MD 300 K' \(1\), 'MLFF MD 450 K' \(1\), 'MLFF MD 600 K' \(1\), "
                                         r"'initial MD 300 K' \(2\)"):
        bench.restrict_pool(origins, ['MLFF MD 300 K', 'MLFF MD 310 K'])

"""Carboxylate binding modes (r1, r2, r3 after Sowa et al.) on constructed acetate geometries of each mode."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.analysis.binding_modes import binding_distances, binding_modes, classify, plot_histograms

# Acetate in the xy plane: carboxyl C at the origin, C–O 1.27 Å, O–C–O 125°, methyl C on −y.
HALF = np.radians(62.5)
O1 = np.array([-1.27 * np.sin(HALF), 1.27 * np.cos(HALF), 0.0])
O2 = np.array([1.27 * np.sin(HALF), 1.27 * np.cos(HALF), 0.0])
ACETATE = np.array([[0.0, 0.0, 0.0], O1, O2, [0.0, -1.51, 0.0]])
FAR = np.array([0.0, 0.0, 12.0])  # a metal far from the ligand, so that r3 is defined


def _geometry(metals):
    return ['C', 'O', 'O', 'C'] + ['Pb'] * (len(metals) + 1), np.vstack([ACETATE, metals, FAR])


def chelate():
    return _geometry([[0.0, O1[1] + np.sqrt(2.5 ** 2 - O1[0] ** 2), 0.0]])  # 2.5 Å from both O


def bridge():
    return _geometry([O1 + [0, 2.5, 0], O2 + [0, 2.5, 0]])  # one Pb 2.5 Å above each O


def tilted_bridge():
    # Pb* 2.45 Å from O1 and 2.75 Å from O2 (in the ligand plane, above the O–O edge); a second Pb 2.5 Å from O2.
    d = np.linalg.norm(O2 - O1)
    x = (2.45 ** 2 - 2.75 ** 2 + d ** 2) / (2 * d)
    primary = O1 + [x, np.sqrt(2.45 ** 2 - x ** 2), 0]
    return _geometry([primary, O2 + [2.5, 0, 0]])


def unidentate():
    return _geometry([O1 + 2.4 * O1 / np.linalg.norm(O1)])


CASES = {'chelate': (chelate, (2.5, 2.5, None)), 'bridge': (bridge, (2.5, np.hypot(2.5, 2 * O2[0]), 2.5)),
         'tilted-bridge': (tilted_bridge, (2.45, 2.75, 2.5)), 'unidentate': (unidentate, (2.4, None, None))}


@pytest.mark.parametrize('mode', CASES)
def test_distances_of_each_constructed_mode(mode):
    build, (r1, r2, r3) = CASES[mode]
    symbols, positions = build()
    d = binding_distances(symbols, positions, [(0, 1, 2)])
    assert d['r1'][0, 0] == pytest.approx(r1, abs=1e-6)
    if r2 is not None:
        assert d['r2'][0, 0] == pytest.approx(r2, abs=1e-6)
    else:
        assert d['r2'][0, 0] > 3.5
    if r3 is not None:
        assert d['r3'][0, 0] == pytest.approx(r3, abs=1e-6)
    else:
        assert d['r3'][0, 0] > 9.0
    assert d['primary_metal'][0, 0] == 4


def test_kmeans_separates_bridge_and_tilted_bridge_and_rules_find_the_rest():
    rng = np.random.default_rng(0)
    ligands, truth = [], []
    offset = 0
    symbols, blocks = [], []
    # 10 copies of every mode, each in its own region of space, with 0.05 Å noise over 20 frames.
    for mode, (build, _) in CASES.items():
        for _ in range(10):
            s, p = build()
            blocks.append(p + [offset * 30.0, 0, 0])
            ligands.append((len(symbols), len(symbols) + 1, len(symbols) + 2))
            symbols += s
            truth.append(mode)
            offset += 1
    frames = np.vstack(blocks)[None] + rng.normal(scale=0.05, size=(20, len(symbols), 3))
    result = binding_modes(symbols, frames)
    assert result['r1'].shape == (20, 40)
    np.testing.assert_array_equal(result['carboxylates'], ligands)
    np.testing.assert_array_equal(result['modes'], np.broadcast_to(np.array(truth), (20, 40)))
    assert result['fractions'] == pytest.approx({'bridge': 0.25, 'tilted-bridge': 0.25, 'chelate': 0.25,
                                                'unidentate': 0.25, 'unbound': 0.0})
    assert result['hist_r2_r3'].sum() <= 800 and result['hist_r1_r3'].sum() > 0


def test_unbound_and_single_point_rules():
    labels = classify([2.5, 4.0, 2.5], [3.6, 4.5, 2.7], [2.5, 5.0, 2.5])
    assert list(labels) == ['bridge', 'unbound', 'tilted-bridge']
    assert list(classify([2.5], [3.6], [2.5])) == ['bridge']


@pytest.mark.parametrize('carboxylates, message', [
    ([(0, 1, 3)], r'carboxylate 0 \(0, 1, 3\) is C-O-C, not a carbon with two distinct oxygens'),
    ([(0, 1, 1)], 'two distinct oxygens'),
    ([(0, 1)], 'index triples'),
    ([(0, 1, 99)], 'outside'),
])
def test_a_carboxylate_without_two_oxygens_is_refused(carboxylates, message):
    symbols, positions = bridge()
    with pytest.raises(ValueError, match=message):
        binding_distances(symbols, positions, carboxylates)


def test_no_carboxylate_found_and_too_few_metals():
    with pytest.raises(ValueError, match='no carboxylate'):
        binding_modes(['C', 'O', 'Pb', 'Pb'], np.eye(4, 3) * 3)
    symbols, positions = chelate()
    with pytest.raises(ValueError, match='at least two Pb'):
        binding_distances(symbols[:-1], positions[:-1], [(0, 1, 2)])


def test_histogram_plot_is_written(tmp_path):
    symbols, positions = bridge()
    result = binding_modes(symbols, positions[None])
    plot_histograms(result, tmp_path / 'modes.png')
    assert (tmp_path / 'modes.png').read_bytes()[:4] == b'\x89PNG'


def test_a_single_noisy_population_is_not_split_in_two():
    rng = np.random.default_rng(4)
    r2 = 3.4 + 0.1 * rng.normal(size=500)
    r3 = 2.5 + 0.1 * rng.normal(size=500)
    assert set(classify(np.full(500, 2.5), r2, r3)) == {'bridge'}
    assert set(classify(np.full(500, 2.5), r2 - 0.7, r3)) == {'tilted-bridge'}

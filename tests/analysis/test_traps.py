"""Band edges, traps and per-atom labels on synthetic MO sets whose answer is known (tests/analysis/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_qd import SyntheticQd

from aiida_qdtraps.analysis.traps import (
    BandEdgeNotFound,
    LabelingParameters,
    full_coordination_of,
    label_traps,
    shallow_note,
)


def _first(cn, anions, value):
    return int(next(a for a in anions if cn[a] == value))


def test_structural_hole_trap_found_with_centre_and_depth(cluster):
    probe = SyntheticQd(*cluster)
    centre = _first(probe.coordination, probe.anions, 4)
    qd = SyntheticQd(*cluster, traps=[(centre, -4.6)])
    result = label_traps(**qd.kwargs(), params=LabelingParameters(quantum_confined_virtuals=0))
    assert result.vbm == pytest.approx(-5.0)
    assert result.cbm == pytest.approx(-1.0)
    assert len(result.traps) == 1
    trap = result.traps[0]
    assert trap['carrier'] == 'hole'
    assert trap['center'] == centre
    assert trap['depth'] == pytest.approx(0.4)
    assert trap['kind'] == 'structural'
    assert trap['center_coordination'] == 4
    assert trap['center_share'] == pytest.approx(1.0)
    assert trap['ligand_share'] == 0.0  # no ligands in this cluster
    assert result.atom_label[centre] == 'structural'
    others = [a for a in qd.anions if a != centre]
    assert set(result.atom_label[others]) == {'bulk'}


def test_under_coordinated_trap_and_electron_trap(cluster):
    probe = SyntheticQd(*cluster)
    p3 = _first(probe.coordination, probe.anions, 3)
    in2 = int(next(c for c in probe.cations if probe.coordination[c] == 2))
    qd = SyntheticQd(*cluster, traps=[(p3, -4.8), (in2, -1.5)])
    result = label_traps(**qd.kwargs(), params=LabelingParameters(quantum_confined_virtuals=0))
    by_carrier = {t['carrier']: t for t in result.traps}
    assert by_carrier['hole']['center'] == p3 and by_carrier['hole']['kind'] == 'under-coordinated'
    assert by_carrier['hole']['depth'] == pytest.approx(0.2)
    assert by_carrier['electron']['center'] == in2 and by_carrier['electron']['depth'] == pytest.approx(0.5)
    assert result.atom_label[p3] == 'under-coordinated'
    assert result.atom_label[in2] == 'under-coordinated'
    # 0.2 eV is shallow (< 0.3 eV, the default), 0.5 eV is not; the threshold is a parameter
    assert (by_carrier['hole']['shallow'], by_carrier['electron']['shallow']) == (True, False)
    deeper = label_traps(**qd.kwargs(), params=LabelingParameters(quantum_confined_virtuals=0, shallow_depth=0.1))
    assert [t['shallow'] for t in deeper.traps] == [False, False]


def test_shallow_note_counts_the_shallow_traps():
    spin = {'n_hole_traps': 1, 'n_electron_traps': 3, 'n_shallow_traps': 3}
    assert shallow_note(spin, {'shallow_depth': 0.3}) == ' (3 of them shallow, < 0.3 eV from their band edge)'
    assert shallow_note({**spin, 'n_hole_traps': 0}, {'shallow_depth': 0.25}) == \
        ' (all shallow, < 0.25 eV from their band edge)'
    assert shallow_note({**spin, 'n_shallow_traps': 0}, {}) == ''
    assert shallow_note({'n_hole_traps': 1, 'n_electron_traps': 0}, {}) == ''  # a summary stored without the count


def test_quantum_confined_states_are_skipped(cluster):
    """With the default of 3, the three lowest (band-like) virtuals are quantum-confined and the CBM is the 4th."""
    qd = SyntheticQd(*cluster)
    result = label_traps(**qd.kwargs())
    assert result.cbm == pytest.approx(-0.7)
    assert list(result.state_kind[~result.states.occupied][:4]) == ['quantum-confined'] * 3 + ['conduction']
    assert result.traps == []


def test_localization_unmixes_a_trap_hidden_in_a_near_degenerate_pair(cluster):
    """A trap 0.02 eV above the VBM, mixed 40° with it: the canonical scan sees two localized states (two false
    traps, VBM pushed down); Pipek–Mezey on the pair recovers one band state and one trap on the right atom."""
    probe = SyntheticQd(*cluster)
    centre = _first(probe.coordination, probe.anions, 4)
    n_valence = 6
    qd = SyntheticQd(*cluster, traps=[(centre, -4.98)], n_valence=n_valence, mix=(0, n_valence, np.radians(40)))
    params = {'quantum_confined_virtuals': 0}
    canonical = label_traps(**qd.kwargs(), params=LabelingParameters(localize=False, **params))
    assert len(canonical.traps) == 2
    assert canonical.vbm == pytest.approx(-5.1)
    refined = label_traps(**qd.kwargs(), params=LabelingParameters(**params))
    assert refined.n_localized_clusters == 1
    assert len(refined.traps) == 1
    trap = refined.traps[0]
    assert trap['center'] == centre and trap['localized']
    assert trap['center_share'] == pytest.approx(1.0, abs=1e-4)
    assert refined.vbm == pytest.approx(-5.0 * np.cos(np.radians(40)) ** 2 - 4.98 * np.sin(np.radians(40)) ** 2)
    assert trap['depth'] == pytest.approx(0.02 * (np.cos(np.radians(40)) ** 2 - np.sin(np.radians(40)) ** 2), abs=1e-6)


def test_labels_do_not_depend_on_mo_order(cluster):
    probe = SyntheticQd(*cluster)
    qd = SyntheticQd(*cluster, traps=[(_first(probe.coordination, probe.anions, 4), -4.6)])
    kwargs = qd.kwargs()
    order = np.random.default_rng(0).permutation(len(qd.energies))
    shuffled = dict(kwargs, energies=qd.energies[order], occupations=qd.occupations[order],
                    coefficients=qd.coefficients[:, order])
    a, b = label_traps(**kwargs), label_traps(**shuffled)
    assert a.traps[0]['center'] == b.traps[0]['center'] and a.vbm == b.vbm
    assert list(a.atom_label) == list(b.atom_label)


@pytest.mark.parametrize('change, match', [
    (lambda k: dict(k, occupations=np.full_like(k['occupations'], 2.0)), 'must contain the HOMO and the LUMO'),
    (lambda k: dict(k, positions=k['positions'][:-1]), r'positions have shape \(46, 3\) but there are 47 atoms'),
    (lambda k: dict(k, ao_atom=k['ao_atom'][:-1]), 'ao_atom has 46 entries but the coefficients have 47 AOs'),
    (lambda k: dict(k, overlap=k['overlap'] - 2 * np.eye(len(k['overlap']))), 'not positive definite'),
    (lambda k: dict(k, overlap=np.eye(len(k['overlap']))), 'is not normalised in the given overlap'),
])
def test_bad_input_is_named(cluster, change, match):
    qd = SyntheticQd(*cluster)
    with pytest.raises(ValueError, match=match):
        label_traps(**change(qd.kwargs()))


def test_window_without_valence_band(cluster):
    probe = SyntheticQd(*cluster)
    qd = SyntheticQd(*cluster, n_valence=1, traps=[(_first(probe.coordination, probe.anions, 4), -4.6)])
    keep = qd.energies > -4.9  # drop the one valence state: only the trap is occupied
    kwargs = dict(qd.kwargs(), energies=qd.energies[keep], occupations=qd.occupations[keep],
                  coefficients=qd.coefficients[:, keep])
    with pytest.raises(BandEdgeNotFound, match='no band-like valence state in the MO window') as error:
        label_traps(**kwargs)
    # the one occupied state sits on one 4-coordinate P: share 1, PR = 1/M; the test needs 0.5 · n_P / M
    m, n_p = len(qd.symbols), len(qd.anions)
    assert error.value.side == 'valence'
    assert ('of its 1 occupied states 0 pass the participation test (PR ≥ 0.5·(n_anion/M)/α_anion), 1 the '
            'under-coordination test') in str(error.value)
    assert f'the state at -4.600 eV, PR {1 / m:.3f} of the {0.5 * n_p / m:.3f} needed' in str(error.value)
    assert str(error.value).endswith('Enlarge the window: more occupied MOs (mo_window.occupied)')


def test_window_whose_band_like_virtuals_are_all_quantum_confined(cluster):
    """Three delocalised conduction states, all among the three lowest virtuals the rule skips: no CBM, and the
    message says so rather than blaming the band test."""
    qd = SyntheticQd(*cluster, n_conduction=3)
    with pytest.raises(BandEdgeNotFound) as error:
        label_traps(**qd.kwargs())
    message = str(error.value)
    assert error.value.side == 'conduction'
    assert message.startswith(f'no band-like conduction state in the MO window of {6 + 3} MOs (6 occupied): of its 3 '
                              'virtual states 3 pass the participation test')
    assert ('3 both, and each of these is among the first 3 virtual MOs, which are taken as quantum-confined and '
            'skipped (quantum_confined_virtuals)') in message
    assert message.endswith('more virtual MOs (mo_window.virtual and ADDED_MOS)')
    assert label_traps(**qd.kwargs(), params=LabelingParameters(quantum_confined_virtuals=2)).cbm == pytest.approx(-0.8)


def test_window_of_electron_traps_only(cluster):
    """The virtual side holds two states each on one 2-coordinate In (surface states): neither passes the
    participation test (PR 1/M against 0.5 · n_In / M) nor the under-coordination test (all weight on an
    under-coordinated In: α_UC = 1 > 1.5 · n_UC / (n_In − n_UC) · α_FC = 0)."""
    probe = SyntheticQd(*cluster)
    in2 = [int(c) for c in probe.cations if probe.coordination[c] == 2][:2]
    qd = SyntheticQd(*cluster, traps=[(in2[0], -1.6), (in2[1], -1.5)], n_conduction=1)
    keep = qd.energies < -1.2  # drop the conduction state
    kwargs = dict(qd.kwargs(), energies=qd.energies[keep], occupations=qd.occupations[keep],
                  coefficients=qd.coefficients[:, keep])
    with pytest.raises(BandEdgeNotFound) as error:
        label_traps(**kwargs)
    m, n_in = len(qd.symbols), len(qd.cations)
    assert 'of its 2 virtual states 0 pass the participation test' in str(error.value)
    assert 'α_FC-cation), 0 both' in str(error.value) and '), 0 the under-coordination test' in str(error.value)
    assert f'the state at -1.600 eV, PR {1 / m:.3f} of the {0.5 * n_in / m:.3f} needed' in str(error.value)


def test_bad_parameters():
    with pytest.raises(ValueError, match='population_method'):
        LabelingParameters(population_method='becke')
    with pytest.raises(ValueError, match='atom_share'):
        LabelingParameters(atom_share=1.5)
    with pytest.raises(ValueError, match='shallow_depth must be positive, got -0.1'):
        LabelingParameters(shallow_depth=-0.1)


def test_degenerate_traps_share_one_plot_label():
    from aiida_qdtraps.analysis import plots

    traps = [{'center_element': 'P', 'center': 3, 'center_coordination': 4, 'energy': -8.435,
              'participation_ratio': 0.11},
             {'center_element': 'P', 'center': 1, 'center_coordination': 4, 'energy': -8.4351,
              'participation_ratio': 0.1101},
             {'center_element': 'In', 'center': 12, 'center_coordination': 2, 'energy': -4.2,
              'participation_ratio': 0.08}]
    assert list(plots._trap_annotations(traps).values()) == [['P3-4c', 'P1-4c'], ['In12-2c']]
    png = plots.participation_plot([-9.0, -8.435, -4.2, -3.0], [0.4, 0.11, 0.08, 0.7],
                                   ['valence', 'hole-trap', 'electron-trap', 'conduction'], -9.0, -3.0, traps)
    assert png[:4] == b'\x89PNG'


def test_spin_channels_merge_to_the_most_informative_label():
    """Per atom: the channel with the more informative label (under-coordinated > structural > bulk > ligand) gives
    label, state and spin; ties stay with the lower channel."""
    from aiida_qdtraps.analysis.traps import merge_spin_labels

    up = ['bulk', 'under-coordinated', 'ligand', 'structural', 'bulk']
    down = ['under-coordinated', 'structural', 'ligand', 'structural', 'structural']
    labels, state, spin = merge_spin_labels([up, down], [[-1, 3, -1, 5, -1], [7, 8, -1, 9, 4]])
    assert labels.tolist() == ['under-coordinated', 'under-coordinated', 'ligand', 'structural', 'structural']
    assert state.tolist() == [7, 3, -1, 5, 4]
    assert spin.tolist() == [1, 0, 0, 0, 1]
    labels, state, spin = merge_spin_labels([up], [[-1, 3, -1, 5, -1]])  # restricted: one channel, spin 0
    assert labels.tolist() == up and state.tolist() == [-1, 3, -1, 5, -1] and not spin.any()


def test_spin_merge_keeps_labels_longer_than_those_of_the_first_channel():
    """The kernel's label arrays are as wide as their longest label ('<U6' for bulk / ligand): a longer label of
    another channel is taken whole, not cut to that width."""
    from aiida_qdtraps.analysis.traps import merge_spin_labels

    up = np.array(['bulk', 'ligand', 'bulk'], dtype=str)
    down = np.array(['structural', 'ligand', 'under-coordinated'], dtype=str)
    labels, _, spin = merge_spin_labels([up, down], [[0, -1, 1], [2, -1, 3]])
    assert labels.tolist() == ['structural', 'ligand', 'under-coordinated']
    assert spin.tolist() == [1, 0, 1]


def test_spin_merge_refuses_mismatched_channels():
    from aiida_qdtraps.analysis.traps import merge_spin_labels

    with pytest.raises(ValueError, match=r'different numbers of atoms: \[2, 1\] labels'):
        merge_spin_labels([['bulk', 'bulk'], ['bulk']], [[0, 0], [0]])
    with pytest.raises(ValueError, match=r"unknown atom label\(s\) \['trap'\]"):
        merge_spin_labels([['bulk', 'trap']], [[0, 0]])
    with pytest.raises(ValueError, match='at least one spin channel'):
        merge_spin_labels([], [])


def test_full_coordination_follows_the_lattice():
    assert full_coordination_of('PbS') == full_coordination_of('PbSe') == 6
    assert full_coordination_of('InP') == full_coordination_of('CdSe') == 4
    assert full_coordination_of(None, ['Pb', 'S', 'Cl']) == 6  # material from the elements
    assert full_coordination_of(None, ['Cs', 'Pb', 'Br']) == 4  # not a builder material: zincblende's count


def test_trap_kind_uses_the_full_coordination(cluster):
    """A trap on a 4-coordinate centre is structural in zincblende and under-coordinated when the lattice has 5+."""
    probe = SyntheticQd(*cluster)
    centre = _first(probe.coordination, probe.anions, 4)
    qd = SyntheticQd(*cluster, traps=[(centre, -4.6)])
    kinds = {}
    for full in (4, 5):
        result = label_traps(**qd.kwargs(), params=LabelingParameters(quantum_confined_virtuals=0,
                                                                      full_coordination=full))
        trap = next(t for t in result.traps if t['center'] == centre)
        kinds[full] = (trap['kind'], bool(trap['high_coordination']), str(result.atom_label[centre]))
    assert kinds[4] == ('structural', False, 'structural')
    assert kinds[5] == ('under-coordinated', False, 'under-coordinated')

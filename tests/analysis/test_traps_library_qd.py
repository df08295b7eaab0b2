"""Trap labels of a real, trap-free QD of another material than InP: the DFT-optimised Cd16Se13Cl6 of the nlesc-nano
model library (tests/data/library), relaxed and labelled by the ``fast`` pipeline (PBE0 + ADMM, the window sized by
the QD: 29 occupied + 32 virtual MOs). tests/data/traps/README.md says how the window was recorded; it holds the
Löwdin-orthogonalised coefficients S^½C, so the overlap passed here is the identity."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from aiida_qdtraps.analysis.traps import LabelingParameters, label_traps

WINDOW = pathlib.Path(__file__).parents[1] / 'data' / 'traps' / 'cd16se13cl6_fast_pbe0_window.npz'
PBS_WINDOW = WINDOW.parent / 'pb19s6cl26_fast_pbe_window.npz'


def load_window(path: pathlib.Path) -> dict:
    """The keyword arguments of ``label_traps`` from a recorded window (tests/data/traps/README.md): Löwdin-
    orthogonalised coefficients, so the overlap is the identity."""
    data = np.load(path)
    coefficients = data['lowdin_coefficients'].astype(float)
    return {'symbols': [str(x) for x in data['symbols']], 'positions': data['positions'],
            'energies': data['energies'], 'occupations': data['occupations'], 'coefficients': coefficients,
            'overlap': np.eye(len(coefficients)), 'ao_atom': data['ao_atom'], 'roles': data['roles']}


@pytest.fixture(scope='module')
def window():
    return load_window(WINDOW)


@pytest.mark.parametrize('localize', [True, False])
def test_the_trap_free_cdse_qd_has_band_edges_and_shallow_states_only(window, localize):
    result = label_traps(**window, params=LabelingParameters(localize=localize))
    assert result.vbm == pytest.approx(result.homo, abs=1e-3)  # no hole trap: the HOMO triplet is band-like
    assert result.cbm - result.lumo == pytest.approx(1.064, abs=0.01)
    assert list(result.state_kind[~result.states.occupied][:2]) == ['quantum-confined'] * 2
    # the 1P-like triplet 0.17 eV below the CBM: it passes the participation test but sits on the 3-coordinate Cd
    # that are 12 of the 16 Cd of this small QD, so it fails the under-coordination test, and is shallow
    assert [t['carrier'] for t in result.traps] == ['electron'] * 3
    assert all(t['shallow'] and 0.15 < t['depth'] < 0.2 for t in result.traps)
    assert {window['symbols'][t['center']] for t in result.traps} == {'Cd'}
    assert {t['center_coordination'] for t in result.traps} == {3}
    core = window['roles'] != 'ligand'
    assert int(np.sum(result.coordination[core & (np.array(window['symbols']) == 'Cd')] < 4)) == 12


@pytest.fixture(scope='module')
def pbs_window():
    return load_window(PBS_WINDOW)


def test_the_sub_nanometre_pbs_cluster_keeps_its_confined_triplet(pbs_window):
    """Pb19S6Cl26 (0.9 nm, the nlesc-nano library's DFT-optimised model), `fast` PBE window, rock-salt full
    coordination 6 as the pipeline uses it: the three lowest virtual MOs are the 1S_e-like triplet on the central Pb,
    split by the cluster's shape into the LUMO (PR 0.49, band-like) and a pair 0.14 eV above it (PR 0.38, which fails
    the participation test made for 1.7–2.7 nm InP). The pair has the LUMO's centre and distribution (cosine 0.91), so
    it is quantum-confined, not a 0.65 eV structural trap; what is left is one shallow state."""
    params = LabelingParameters(full_coordination=6)
    result = label_traps(**pbs_window, params=params)
    virtual = ~result.states.occupied
    assert list(result.state_kind[virtual][:3]) == ['quantum-confined'] * 3
    assert result.lumo == pytest.approx(-4.343, abs=1e-3)
    pair = result.states.energies[virtual][1:3]
    assert pair == pytest.approx([-4.200, -4.200], abs=2e-3)
    assert not result.band_like[virtual][1:3].any()  # they fail the band test itself
    assert [(t['carrier'], t['shallow']) for t in result.traps] == [('electron', True)]
    assert result.traps[0]['depth'] < 0.1
    # without the multiplet rule the pair is a pair of deep structural traps on the central (6-coordinate) Pb
    before = label_traps(**pbs_window, params=LabelingParameters(full_coordination=6, qc_multiplet_similarity=1.01))
    deep = [t for t in before.traps if not t['shallow']]
    assert len(deep) == 2 and {t['kind'] for t in deep} == {'structural'}
    assert {t['center_coordination'] for t in deep} == {6}
    assert all(0.6 < t['depth'] < 0.7 for t in deep)


def test_the_multiplet_rule_needs_closeness_same_centre_and_same_distribution(pbs_window):
    """With the window shrunk below the pair's 0.14 eV distance from the LUMO the pair is a trap again; on made-up
    population vectors, a near state centred on another atom is not a multiplet member even at cosine 0.99."""
    from aiida_qdtraps.analysis.traps import _same_multiplet

    result = label_traps(**pbs_window, params=LabelingParameters(full_coordination=6, qc_multiplet_window=0.1))
    assert sum(not t['shallow'] for t in result.traps) == 2
    params = LabelingParameters()
    shares = np.array([[0.50, 0.45, 0.05], [0.45, 0.50, 0.05], [0.50, 0.40, 0.10], [0.10, 0.10, 0.80]])
    energies = np.array([-4.0, -3.9, -3.9, -3.9])
    qc = np.array([True, False, False, False])
    assert [_same_multiplet(i, qc, energies, shares, params) for i in (1, 2, 3)] == [False, True, False]
    assert not _same_multiplet(2, qc, np.array([-4.0, -3.9, -3.7, -3.9]), shares, params)  # 0.3 eV away
    assert not _same_multiplet(2, np.zeros(4, bool), energies, shares, params)  # no confined state yet

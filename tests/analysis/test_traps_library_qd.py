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


@pytest.fixture(scope='module')
def window():
    data = np.load(WINDOW)
    coefficients = data['lowdin_coefficients'].astype(float)
    return {'symbols': [str(x) for x in data['symbols']], 'positions': data['positions'],
            'energies': data['energies'], 'occupations': data['occupations'], 'coefficients': coefficients,
            'overlap': np.eye(len(coefficients)), 'ao_atom': data['ao_atom'], 'roles': data['roles']}


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

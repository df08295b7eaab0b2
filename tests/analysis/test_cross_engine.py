"""Pure kernels of :mod:`aiida_qdtraps.analysis.cross_engine`: projwfc.x Löwdin parser and per-atom band weights."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from aiida_qdtraps.analysis.cross_engine import atom_band_weights, parse_projwfc_lowdin

DATA = pathlib.Path(__file__).parents[1] / 'data' / 'qe'


def test_lowdin_of_recorded_incl3_output():
    """Recorded projwfc.x 6.7 output of planar InCl3 (tests/pseudos/test_atom.py settings, 34 valence electrons)."""
    result = parse_projwfc_lowdin((DATA / 'projwfc_incl3.out').read_text())
    assert result['populations'] == [12.2918, 7.1122, 7.1554, 7.1555]
    assert result['by_l'][0] == {'s': 1.0532, 'p': 1.361, 'd': 9.8776}  # s, p and d lines of In, not only the first
    assert sum(result['by_l'][1].values()) == pytest.approx(result['populations'][1], abs=1e-3)
    assert result['spilling'] == 0.0084
    assert sum(result['populations']) == pytest.approx(34 * (1 - result['spilling']), abs=0.05)


def test_lowdin_spin_blocks_keep_the_first_value_per_atom_and_l():
    text = ('Lowdin Charges: \n'
            '     Atom #   1: total charge =   2.0000, s =  2.0000, \n'
            '     Atom #   1: total charge =   1.5000, s =  1.5000, \n'
            '     Atom #   2: total charge =   1.0000, p =  1.0000, px=  1.0000, \n'
            '     Spilling Parameter:   0.0100\n')
    assert parse_projwfc_lowdin(text) == {'populations': [2.0, 1.0], 'by_l': [{'s': 2.0}, {'p': 1.0}],
                                          'spilling': 0.01}


@pytest.mark.parametrize('text, match', [
    ('JOB DONE.', 'no "Lowdin Charges"'),
    ('Lowdin Charges:\n     Atom #   2: total charge =   1.0000, s =  1.0000, \n', r'incomplete .* atoms \[2\]'),
])
def test_lowdin_bad_output_is_refused(text, match):
    with pytest.raises(ValueError, match=match):
        parse_projwfc_lowdin(text)


def test_atom_band_weights_sum_orbitals_per_atom():
    atoms = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    orbitals = [atoms[0], atoms[0], atoms[1] + 0.004]  # two orbitals on atom 0, one on atom 1 (rounding shift)
    weights = atom_band_weights(orbitals, [[0.5, 0.1], [0.2, 0.1], [0.3, 0.8]], atoms)
    np.testing.assert_allclose(weights, [[0.7, 0.3], [0.2, 0.8]])
    with pytest.raises(ValueError, match='from the nearest atom'):
        atom_band_weights([[1.0, 0.0, 0.0]], [[1.0, 0.0]], atoms)


def test_recorded_in4pcl9_cross_engine_comparison():
    """Regression on the recorded In4PCl9 cross-engine run (examples/cross_engine.py, ``RECORD_DIR``): the pw.x relax
    output read by ase, the CP2K geometry and both engines' Bader charges give the stored comparison again."""
    import json

    from ase.io import read

    from aiida_qdtraps.analysis.cross_engine import aligned_rmsd, bond_lengths_by_pair, mean_by_element

    directory = DATA / 'in4pcl9'
    reference = json.loads((directory / 'reference.json').read_text())
    frames = read(directory / 'pw_relax.out', format='espresso-out', index=':')
    cp2k = read(directory / 'cp2k_relaxed.xyz')
    qe = frames[-1]
    stored = reference['comparison']
    assert qe.get_chemical_formula() == cp2k.get_chemical_formula() == stored['formula'] == 'Cl9In4P'
    # the pw.x relax converged: its last forces are below forc_conv_thr (Ry/bohr -> eV/Å)
    threshold = reference['qe']['forc_conv_thr'] * 13.605693122994 / 0.529177210903
    assert np.abs(qe.get_forces()).max() == pytest.approx(stored['qe_final_max_force'], abs=1e-4)
    assert stored['qe_final_max_force'] < threshold
    rmsd, max_deviation, _ = aligned_rmsd(cp2k, qe)
    assert rmsd == pytest.approx(stored['rmsd'], abs=1e-6)
    assert max_deviation == pytest.approx(stored['max_deviation'], abs=1e-6)
    bonds = bond_lengths_by_pair([cp2k, qe])
    assert bonds.keys() == stored['bonds'].keys() == {'In-Cl', 'In-P'}
    for pair, rows in bonds.items():
        for row, expected in zip(rows, stored['bonds'][pair]):
            assert row['n'] == expected['n'] and row['mean'] == pytest.approx(expected['mean'], abs=1e-6)
    symbols = cp2k.get_chemical_symbols()
    for engine in ('cp2k', 'qe'):
        charges = reference[engine]['bader_charges']
        # Δq = valence − basin population, so Σ Δq = the 120 valence electrons − those in basins = the vacuum charge
        assert sum(charges) == pytest.approx(reference[engine]['vacuum_charge'], abs=0.01)
        means = mean_by_element(symbols, charges)
        assert means == pytest.approx(stored['bader_dq'][engine], abs=1e-3)
    # what docs/qe.md reports: QE bonds about 0.1 Å shorter than CP2K `fast` (SZV), In more positive in QE
    assert -0.15 < stored['bonds']['In-Cl'][1]['mean'] - stored['bonds']['In-Cl'][0]['mean'] < -0.05
    assert stored['bader_dq']['qe']['In'] > stored['bader_dq']['cp2k']['In'] > 0


def test_recorded_in4pcl9_projwfc_lowdin():
    """Regression on the recorded projwfc.x output of the QE-relaxed In4PCl9: the stored Löwdin charges (UPF valence −
    population), the spilling, and HOMO/LUMO = the 60th/61st of pw.x's final eigenvalues (120 electrons)."""
    import json
    import re

    directory = DATA / 'in4pcl9'
    reference = json.loads((directory / 'reference.json').read_text())['qe']
    lowdin = parse_projwfc_lowdin((directory / 'projwfc.out').read_text())
    valence = [13, 5, 13, 13, 13] + [7] * 9  # In P In In In Cl9: the atom order of cp2k_relaxed.xyz
    np.testing.assert_allclose(np.array(valence) - lowdin['populations'], reference['lowdin_charges'], atol=1e-4)
    assert lowdin['spilling'] == reference['orbital_summary']['spilling'] < 0.01
    pw = (directory / 'pw_relax.out').read_text().split('End of self-consistent calculation')[-1]
    bands = [float(v) for v in re.findall(r'-?\d+\.\d+', pw.split('bands (ev):')[1].split('occupation numbers')[0])]
    summary = reference['orbital_summary']
    assert (summary['homo'], summary['lumo']) == pytest.approx((bands[59], bands[60]), abs=2e-3)

"""Pure readers of CP2K files, on a recorded PBE0 run of In4PF9 (CP2K 2023.1, SZV-MOLOPT-SR-GTH, 12 Å box)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida_cp2k.utils import parse_cp2k_output

from aiida_qdtraps.parsers import cp2k_files
from aiida_qdtraps.parsers.cp2k_files import (
    homo_lumo,
    mo_window,
    parse_mo_eigenvalues,
    parse_reported_gap,
    parse_total_walltime,
    read_molden,
    read_pdos,
)


@pytest.fixture
def pbe0(data_dir):
    return data_dir / 'cp2k' / 'pbe0_success'


def test_mo_eigenvalues_block(pbe0):
    blocks = parse_mo_eigenvalues((pbe0 / 'aiida.out').read_text())
    assert list(blocks) == ['alpha']
    energies, occupations = blocks['alpha'].T
    assert energies.shape == (70,)  # 60 occupied + ADDED_MOS 10
    assert occupations[:60].tolist() == [2.0] * 60 and not occupations[60:].any()
    assert energies[59] == pytest.approx(-8.23086091)
    assert energies[60] == pytest.approx(-5.95001416)


def test_reported_gap_and_walltime(pbe0):
    text = (pbe0 / 'aiida.out').read_text()
    assert parse_reported_gap(text) == pytest.approx(2.28084675)
    assert parse_total_walltime(text) == pytest.approx(74.088)


def test_molden_matches_stdout_and_is_orthonormal(pbe0):
    data = read_molden(str(pbe0 / 'aiida-MOS-1_0.molden'))
    printed = parse_mo_eigenvalues((pbe0 / 'aiida.out').read_text())['alpha']
    assert data.energies.shape == (1, 70)
    assert np.abs(data.energies[0] - printed[:, 0]).max() < 1e-5
    homo, lumo = homo_lumo(data.energies[0], data.occupations[0])
    assert (homo, lumo) == (59, 60)
    c = data.coefficients[0]
    assert np.abs(c.T @ data.overlap @ c - np.eye(70)).max() < 1e-6
    assert data.symbols[:2] == ['P', 'In'] and data.ao_atom.max() == 13
    assert np.bincount(data.ao_atom).tolist()[:2] == [4, 9]  # SZV: P sp (4), In (4d 5s 5p ... 9 functions)


def test_mo_window_bounds(pbe0):
    data = read_molden(str(pbe0 / 'aiida-MOS-1_0.molden'))
    assert mo_window(data, 5, 3).tolist() == [55, 56, 57, 58, 59, 60, 61, 62]
    with pytest.raises(ValueError, match='ADDED_MOS'):
        mo_window(data, 5, 11)


def test_read_pdos(pbe0):
    pdos = read_pdos((pbe0 / 'aiida-k2-1.pdos').read_text())
    assert pdos['kind'] == 'In'
    assert pdos['columns'] == ['s', 'p', 'd']
    assert pdos['projections'].shape == (76, 3)  # NLUMO -1: every MO of the basis
    assert pdos['energies'][59] == pytest.approx(-8.2309, abs=1e-3)


def test_homo_lumo_needs_virtuals():
    with pytest.raises(ValueError, match='ADDED_MOS'):
        homo_lumo(np.array([-2.0, -1.0]), np.array([2.0, 2.0]))


@pytest.mark.parametrize('occupations, expected', [
    ([2.0, 2.0, 2.0, 0.0, 0.0], (2, 3)),  # integer: the last occupied and the first empty orbital
    ([2.0, 2.0, 1.9, 0.1, 0.0], (2, 3)),  # Fermi smearing across a small gap: the aufbau count of 6 electrons
    ([2.0, 2.0, 1.0, 1.0, 0.0], (2, 3)),  # a degenerate pair sharing two electrons
    ([2.0, 1.6, 1.2, 0.2, 0.0], (2, 3)),  # 5 electrons, restricted: the singly occupied orbital is the HOMO
    ([1.0, 1.0, 0.97, 0.03, 0.0], (2, 3)),  # an unrestricted channel: at most one electron per orbital
])
def test_homo_lumo_of_smeared_occupations_counts_electrons(occupations, expected):
    assert homo_lumo(np.arange(5.0), np.array(occupations)) == expected


def test_homo_lumo_of_smeared_occupations_follows_energy_order():
    # the orbitals as given are not in energy order: the 4 electrons fill the two lowest in energy
    assert homo_lumo(np.array([0.0, 2.0, 1.0, 3.0]), np.array([2.0, 0.1, 1.9, 0.0])) == (2, 1)
    with pytest.raises(ValueError, match='no HOMO and LUMO'):
        homo_lumo(np.array([0.0, 1.0]), np.array([2.0, 1.9]))


@pytest.mark.parametrize('name, analysis, expected', [
    ('h2o_rks.out', 'mulliken', [-0.716368, 0.358184, 0.358184]),
    ('h2o_rks.out', 'lowdin', [-0.531908, 0.265954, 0.265954]),
    ('h2o_rks.out', 'hirshfeld', [-1.142, 0.574, 0.574]),
    ('h2o_cation_uks.out', 'mulliken', [-0.174831, 0.587415, 0.587415]),
    ('h2o_cation_uks.out', 'lowdin', [0.112298, 0.443851, 0.443851]),
    ('h2o_cation_uks.out', 'hirshfeld', [-0.336, 0.670, 0.670]),
])
def test_parse_atomic_charges(data_dir, name, analysis, expected):
    """Real CP2K 2023.1 outputs (H2O and H2O⁺ UKS, &LOWDIN and &MOMENTS on): RKS and UKS column layouts."""
    text = (data_dir / 'cp2k' / 'charges' / name).read_text()
    np.testing.assert_allclose(cp2k_files.parse_atomic_charges(text, analysis), expected)


def test_parse_dipole_and_missing_tables(data_dir):
    text = (data_dir / 'cp2k' / 'charges' / 'h2o_rks.out').read_text()
    np.testing.assert_allclose(cp2k_files.parse_dipole_moment(text), [0.0, 2.303664, 0.0], atol=1e-6)
    recorded = (data_dir / 'cp2k' / 'pbe0_success' / 'aiida.out').read_text()  # no &LOWDIN, no &MOMENTS
    assert cp2k_files.parse_atomic_charges(recorded, 'lowdin') is None
    assert cp2k_files.parse_dipole_moment(recorded) is None
    assert len(cp2k_files.parse_atomic_charges(recorded, 'mulliken')) == 14


@pytest.mark.parametrize('name, edges, low, high', [
    ('grid/in4pf9_200ry.out', 28, -1.95e-3, -1.93e-3),  # fast relax grid (200 / REL 30 Ry), last value -1.9400132e-3
    ('grid/in4pf9_400ry.out', 0, -1e-6, 1e-6),           # 400 / 50 Ry: -6.46e-8
    ('pbe0_success/aiida.out', 0, -1e-3, 1e-3),          # recorded fast PBE0 of In4PF9, 12 Å box
])
def test_grid_quality(data_dir, name, edges, low, high):
    quality = cp2k_files.parse_grid_quality((data_dir / 'cp2k' / name).read_text())
    assert quality['wavelet_edge_warnings'] == edges
    assert low < quality['grid_electron_error'] < high


def test_grid_noise_of_the_fast_cutoff(data_dir):
    """The recorded egg-box measurement behind docs/pipeline.md (``benchmarks/grid_noise.py`` regenerates it): the
    same In4PF9, rigidly shifted by (0.07, 0.05, 0.03) Å in its 13 Å box, at the fast relax grid and at 400 Ry."""
    def energy_forces(name):
        text = (data_dir / 'cp2k' / 'grid' / name).read_text()
        return parse_cp2k_output(text)['energy'], cp2k_files.parse_forces(text)

    noise = {}
    for cutoff in ('200ry', '400ry'):
        (e0, f0), (e1, f1) = energy_forces(f'in4pf9_{cutoff}.out'), energy_forces(f'in4pf9_{cutoff}_shifted.out')
        assert f0.shape == f1.shape == (14, 3)
        noise[cutoff] = (abs(e1 - e0), np.abs(f1 - f0).max())
    assert noise['200ry'][0] > 0.1 and noise['200ry'][1] > 0.1     # Ha, Ha/bohr: > 20x the fast relax's MAX_FORCE
    assert noise['400ry'][0] < 1e-3 and noise['400ry'][1] < 0.01


def test_grid_quality_of_gapw_is_not_an_electron_error(data_dir):
    """A GAPW run holds only the soft density on the grid: its 'Electronic density on regular grids' line (printed by
    an MD at this print level: -87 of 120 electrons for In4PF9) is no grid error."""
    text = (data_dir / 'cp2k' / 'failed' / 'geo_opt_stopped_by_monitor.out').read_text()
    assert 'QS| Method:' in text and 'GAPW' in text
    text += '\n  Electronic density on regular grids:        -87.0478963357       32.9521036643\n'
    assert cp2k_files.parse_grid_quality(text)['grid_electron_error'] is None
    gpw = text.replace('QS| Method:                                                                GAPW',
                       'QS| Method:                                                                 GPW')
    assert cp2k_files.parse_grid_quality(gpw)['grid_electron_error'] == pytest.approx(32.95, abs=0.01)

"""Pure readers of CP2K files, on a recorded PBE0 run of In4PF9 (CP2K 2023.1, SZV-MOLOPT-SR-GTH, 12 Å box)."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.parsers.cp2k_files import (
    homo_lumo, mo_window, parse_mo_eigenvalues, parse_reported_gap, parse_total_walltime, read_molden, read_pdos,
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

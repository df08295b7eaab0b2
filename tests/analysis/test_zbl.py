"""The ZBL pair table of DP/ZBL models: values against the formula's known points and DeePMD-kit's column order."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.analysis.zbl import COULOMB, zbl_energy, zbl_table


def test_zbl_tends_to_the_bare_coulomb_repulsion_at_short_range_and_decays():
    # phi(0) = sum of the coefficients = 1.0: at r -> 0 the energy is the unscreened k Z1 Z2 / r
    r = 1e-5
    assert zbl_energy(r, 48, 1) == pytest.approx(COULOMB * 48 / r, rel=1e-3)
    energies = zbl_energy(np.array([0.6, 0.8, 1.0, 2.0, 6.0]), 48, 1)
    assert np.all(np.diff(energies) < 0) and energies[-1] < 1e-3
    # Cd-H at 0.8 Å: x = 0.8 / (0.4685 / (48**0.23 + 1)) = 5.865, phi = 0.0370 -> 32.0 eV
    assert energies[1] == pytest.approx(32.0, abs=0.1)
    assert zbl_energy(1.0, 6, 8) == pytest.approx(zbl_energy(1.0, 8, 6))


def test_table_columns_follow_deepmds_pair_order():
    table = zbl_table(['H', 'C', 'O'], r_max=6.0, dr=0.01)
    assert table.shape == (600, 1 + 6)
    assert table[0, 0] == pytest.approx(0.01) and table[-1, 0] == pytest.approx(6.0)
    r = table[:, 0]
    pairs = [(1, 1), (1, 6), (1, 8), (6, 6), (6, 8), (8, 8)]  # 0-0, 0-1, 0-2, 1-1, 1-2, 2-2
    for column, (z1, z2) in enumerate(pairs, start=1):
        assert np.allclose(table[:, column], zbl_energy(r, z1, z2))


@pytest.mark.parametrize(('args', 'message'), [
    ((['H', 'Xx'], 6.0), r"unknown: \['Xx'\]"),
    (([], 6.0), 'type_map must list elements'),
    ((['H'], 6.0, 7.0), 'need 0 < dr < r_max'),
])
def test_bad_tables_are_refused_by_name(args, message):
    with pytest.raises(ValueError, match=message):
        zbl_table(*args)
    with pytest.raises(ValueError, match='must be > 0'):
        zbl_energy([0.0, 1.0], 1, 1)

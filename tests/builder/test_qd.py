"""The one-call recipe :func:`~aiida_qdtraps.builder.qd.build_qd` (no AiiDA): carving, passivation to an exact charge,
boxing."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.builder.crystal import nearest_neighbour_distance
from aiida_qdtraps.builder.passivation import net_charge
from aiida_qdtraps.builder.qd import build_qd, describe
from aiida_qdtraps.builder.shapes import carve_core


def test_demo_cluster_is_neutral_and_evenly_passivated():
    qd = build_qd('InP', 5.2, ligand='F', charge=0, center='anion', vacuum=3.5, min_core_bonds=1)
    report = describe(qd)
    assert report.formula == 'F9In4P' and report.net_charge == 0
    # 9 F over 4 In: spread evenly (3+2+2+2), never 3+3+3+0 or 3+3+2+1
    assert report.coordination['In'] == {4: 1, 3: 3}
    assert report.coordination['P'] == {4: 1}
    assert np.allclose(qd.cell.lengths(), qd.cell.lengths()[0]) and not qd.pbc.any()
    extent = qd.positions.max(0) - qd.positions.min(0)
    assert np.all(qd.positions.min(0) >= 3.5 - 1e-9) and np.all(qd.cell.lengths() - qd.positions.max(0) >= 3.5 - 1e-9)
    assert extent.max() < qd.cell.lengths()[0]


@pytest.mark.parametrize('charge, n_ligands', [(0, 9), (1, 8), (3, 6)])
def test_charge_sets_ligand_count(charge, n_ligands):
    qd = build_qd('InP', 5.2, charge=charge, center='anion', min_core_bonds=1)
    assert qd.get_chemical_symbols().count('F') == n_ligands
    assert net_charge(qd) == charge


def test_deterministic():
    a = build_qd('GaP', 5.0, ligand='Cl', center='anion', min_core_bonds=1)
    b = build_qd('GaP', 5.0, ligand='Cl', center='anion', min_core_bonds=1)
    assert np.array_equal(a.positions, b.positions) and a.get_chemical_symbols() == b.get_chemical_symbols()


def test_pruning_removes_weakly_bound_atoms():
    core = carve_core('InP', 12.0, 'sphere', center='anion', min_core_bonds=2)
    assert len(core) == 35
    positions = core.positions
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    bonds = ((d > 0.1) & (d < 1.1 * nearest_neighbour_distance('InP'))).sum(1)
    assert bonds.min() >= 2


def test_ligand_bonds_point_along_missing_tetrahedral_directions():
    qd = build_qd('InP', 5.2, center='anion', min_core_bonds=1)
    symbols = np.array(qd.get_chemical_symbols())
    indium, fluorine = qd.positions[symbols == 'In'], qd.positions[symbols == 'F']
    d = np.linalg.norm(fluorine[:, None] - indium[None], axis=-1)
    assert np.allclose(d.min(1), 2.05)
    phosphorus = qd.positions[symbols == 'P'][0]
    for f, i in zip(fluorine, d.argmin(1)):  # P–In–F angle is tetrahedral
        u, v = phosphorus - indium[i], f - indium[i]
        angle = np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
        assert angle == pytest.approx(109.47, abs=0.01)


@pytest.mark.parametrize('kwargs, message', [
    ({'material': 'InSb', 'diameter': 5}, "unknown material 'InSb'"),
    ({'material': 'InP', 'diameter': -1}, 'diameter must be positive'),
    ({'material': 'InP', 'diameter': 5.2, 'center': 'anion', 'min_core_bonds': 1, 'ligand': 'OH'},
     "unsupported ligand 'OH'"),
    ({'material': 'InP', 'diameter': 5.2, 'center': 'anion', 'min_core_bonds': 1, 'charge': -5},
     'cannot reach charge -5'),
    ({'material': 'InP', 'diameter': 5.2, 'center': 'edge'}, "center must be"),
])
def test_bad_input_names_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_qd(**kwargs)

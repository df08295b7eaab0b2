"""Named Cd17Se28 clusters (Bhati et al.) and CsPbBr3 nanocubes: composition, charge, geometry, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from ase.data import covalent_radii
from scipy.spatial import cKDTree

from aiida_qdtraps.builder import named, perovskite, qd
from aiida_qdtraps.builder.passivation import net_charge


def _min_ratio(atoms):
    """Smallest pair distance over the sum of covalent radii."""
    pairs = cKDTree(atoms.positions).query_pairs(6.0, output_type='ndarray')
    d = np.linalg.norm(atoms.positions[pairs[:, 0]] - atoms.positions[pairs[:, 1]], axis=1)
    radii = covalent_radii[atoms.numbers]
    return float((d / (radii[pairs[:, 0]] + radii[pairs[:, 1]])).min())


@pytest.mark.parametrize('model, formula, ligand, host', [('Cd17Se28H22', 'H22Cd17Se28', 'H', 'Se'),
                                                          ('Cd28Se17Cl22', 'Cd28Cl22Se17', 'Cl', 'Cd')])
@pytest.mark.parametrize('arrangement', [0, 1, 2, 3])
def test_named_models(model, formula, ligand, host, arrangement, check_qd):
    atoms = qd.build_qd('CdSe', model=model, arrangement=arrangement)
    assert atoms.get_chemical_formula() == formula
    assert net_charge(atoms) == 0
    assert _min_ratio(atoms) > 0.7
    check_qd(atoms, 'CdSe')
    symbols = np.array(atoms.get_chemical_symbols())
    ligands = np.where(symbols == ligand)[0]
    frame = np.where(atoms.arrays['qd_role'] != 'ligand')[0]
    d, j = cKDTree(atoms.positions[frame]).query(atoms.positions[ligands])
    assert set(symbols[frame[j]]) == {host}  # every ligand bound to the right element
    assert d.max() < 1.25 * (covalent_radii[atoms.numbers[ligands[0]]] + covalent_radii[48 if host == 'Cd' else 34])
    assert len(set(j)) == 22  # one ligand per host atom
    assert atoms.info['qd_build']['model'] == model
    assert 14.0 < atoms.info['qd_build']['core_diameter'] < 17.0  # Bhati et al.: ~15 Å


def test_frame_geometry():
    frame = named.supertetrahedral_frame('CdSe')
    bond = np.sqrt(3) / 4 * 6.077
    pairs = cKDTree(frame.positions).query_pairs(1.15 * bond, output_type='ndarray')
    d = np.linalg.norm(frame.positions[pairs[:, 0]] - frame.positions[pairs[:, 1]], axis=1)
    assert np.allclose(d, bond)  # corner caps bond at the lattice bond length too
    cn = np.bincount(pairs.ravel(), minlength=len(frame))
    symbols = np.array(frame.get_chemical_symbols())
    # Cd: 13 four-coordinate, 4 corner caps three-coordinate; Se: 4 μ4, 24 μ2
    assert sorted(np.bincount(cn[symbols == 'Cd'])[3:]) == [4, 13]
    assert np.bincount(cn[symbols == 'Se']).tolist() == [0, 0, 24, 0, 4]
    # the corner caps are off the zincblende cation lattice (fractional coordinates 2/3, not multiples of 1/2)
    corners = frame.positions[-4:] / 6.077
    assert np.allclose(np.abs(corners), 2 / 3)


def test_arrangements_differ_and_are_deterministic():
    a0, b0 = qd.build_qd('CdSe', model='Cd17Se28H22'), qd.build_qd('CdSe', model='Cd17Se28H22')
    a1 = qd.build_qd('CdSe', model='Cd17Se28H22', arrangement=1)
    assert np.array_equal(a0.positions, b0.positions)
    assert not np.allclose(a0.positions, a1.positions)
    assert np.allclose(a0.positions[:45] - a0.positions[0], a1.positions[:45] - a1.positions[0])  # same frame


def test_model_charge_sets_ligand_count():
    atoms = qd.build_qd('CdSe', model='Cd17Se28H22', charge=1)
    assert atoms.get_chemical_symbols().count('H') == 23 and net_charge(atoms) == 1


@pytest.mark.parametrize('kwargs, message', [
    ({'model': 'Cd17Se28Cl22'}, 'not a neutral cluster; use Cd28Se17Cl22'),
    ({'model': 'Cd99'}, "unknown model 'Cd99'"),
    ({'model': 'Cd17Se28H22', 'ligand': 'Cl'}, "got ligand 'Cl'"),
    ({'model': 'Cd17Se28H22', 'diameter': 15.0}, 'fixed size'),
    ({'model': 'Cd17Se28H22', 'shape': 'cube'}, "takes no ['shape']"),
    ({'model': 'Cd17Se28H22', 'charge': 5}, 'cannot reach charge 5'),
])
def test_model_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        qd.build_qd('CdSe', **kwargs)
    assert message in str(info.value)


def test_model_needs_its_material():
    with pytest.raises(ValueError, match="model 'Cd17Se28H22' is CdSe, got material 'InP'"):
        qd.build_qd('InP', model='Cd17Se28H22')


def test_recipe_without_diameter_for_models_only():
    assert qd.check_recipe({'material': 'CdSe', 'model': 'Cd17Se28H22'})
    with pytest.raises(ValueError, match='lacks'):
        qd.check_recipe({'material': 'CdSe'})


def _composition(n, termination):
    if termination == 'CsBr':
        return {'Cs': (n + 1) ** 3 - (3 * n + 1), 'Pb': n ** 3, 'Br': 3 * n * n * (n + 1)}
    return {'Cs': (n - 1) ** 3, 'Pb': n ** 3, 'Br': 3 * n * n * (n + 1) - (6 * n * n - 3 * n + 1)}


@pytest.mark.parametrize('termination', perovskite.TERMINATIONS)
@pytest.mark.parametrize('n', [2, 3, 4])
def test_nanocube_composition_and_charge(n, termination):
    a = perovskite.PEROVSKITES['CsPbBr3'][3]
    atoms = qd.build_qd('CsPbBr3', n * a + 0.4, shape='cube', termination=termination)
    symbols = atoms.get_chemical_symbols()
    assert {el: symbols.count(el) for el in ('Cs', 'Pb', 'Br')} == _composition(n, termination)
    assert net_charge(atoms) == 0
    assert _min_ratio(atoms) > 0.7
    assert atoms.info['qd_build']['cells'] == n and atoms.info['qd_build']['termination'] == termination
    # every Pb keeps at least three Br at a/2, every Br at least one Pb
    pb, br = atoms.positions[np.array(symbols) == 'Pb'], atoms.positions[np.array(symbols) == 'Br']
    n_br = cKDTree(br).query_ball_point(pb, 0.55 * a, return_length=True)
    assert n_br.min() >= (6 if termination == 'CsBr' else 3)
    assert cKDTree(pb).query(br)[0].max() == pytest.approx(a / 2)


def test_nanocube_deterministic_and_arrangements():
    a = qd.build_qd('CsPbBr3', 23.5, shape='cube', termination='CsBr')
    b = qd.build_qd('CsPbBr3', 23.5, shape='cube', termination='CsBr')
    c = qd.build_qd('CsPbBr3', 23.5, shape='cube', termination='CsBr', arrangement=1)
    assert np.array_equal(a.positions, b.positions) and a.get_chemical_symbols() == b.get_chemical_symbols()
    assert a.get_chemical_formula() == c.get_chemical_formula() and not np.allclose(a.positions, c.positions)


def test_nanocube_5nm():
    """(Its speed is measured by benchmarks/build_speed.py, not asserted here.)"""
    atoms = qd.build_qd('CsPbBr3', 50.0, shape='cube')
    assert atoms.get_chemical_formula() == 'Br2430Cs972Pb729' and net_charge(atoms) == 0


def test_nanocube_charge():
    atoms = qd.build_qd('CsPbBr3', 17.6, shape='cube', charge=2)
    assert net_charge(atoms) == 2


@pytest.mark.parametrize('kwargs, message', [
    ({'diameter': 17.6}, "shape must be 'cube', got 'sphere'"),
    ({'diameter': 5.0, 'shape': 'cube'}, 'edge 5.0 Å is below two CsPbBr3 cells'),
    ({'diameter': 17.6, 'shape': 'cube', 'termination': 'PbBr'}, "got 'PbBr'"),
    ({'diameter': 17.6, 'shape': 'cube', 'ligand': 'Cl'}, "takes no ['ligand']"),
    ({'diameter': 17.6, 'shape': 'cube', 'center': 'cation'}, "takes no ['center']"),
    ({'diameter': 17.6, 'shape': 'cube', 'charge': 40}, 'cannot reach charge 40'),
])
def test_nanocube_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        qd.build_qd('CsPbBr3', **kwargs)
    assert message in str(info.value)


def test_termination_only_for_perovskites():
    with pytest.raises(ValueError, match="termination 'CsBr' applies to perovskites"):
        qd.build_qd('InP', 20.0, termination='CsBr')

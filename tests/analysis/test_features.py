"""The 42 per-atom features on geometries and labellings whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_qd import SyntheticQd

from aiida_qdtraps.analysis import features as feats
from aiida_qdtraps.analysis.traps import LabelingParameters, label_traps


def test_feature_catalogue():
    assert len(feats.FEATURES) == 42 and len(set(feats.FEATURES)) == 42
    assert [len(v) for v in feats.CATEGORIES.values()] == [2, 4, 6, 9, 2, 5, 10, 4]
    assert set(feats.GEOMETRY_FEATURES) < set(feats.FEATURES) and len(feats.GEOMETRY_FEATURES) == 21
    assert set(feats.UNITS) == set(feats.FEATURES)


def _star(directions, length=2.5):
    directions = np.asarray(directions, float)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.vstack([[0, 0, 0], length * directions])


def test_angles_of_tetrahedron_and_seesaw():
    tetrahedron = _star([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    values = feats.angle_features(tetrahedron, np.array([0]), np.array([[1, 2, 3, 4]]))[0]
    assert values[:2] == pytest.approx([0, 0], abs=1e-6)
    assert values[4:] == pytest.approx([feats.TETRAHEDRAL_ANGLE] * 6)
    # see-saw: axial pair at 180°, equatorial pair at 120°, the four axial-equatorial angles 90°.
    seesaw = _star([[0, 0, 1], [0, 0, -1], [1, 0, 0], [np.cos(2 * np.pi / 3), np.sin(2 * np.pi / 3), 0]])
    values = feats.angle_features(seesaw, np.array([0]), np.array([[3, 1, 2, 4]]))[0]
    assert values[2:4] == pytest.approx([0, 0], abs=1e-6)
    assert values[4:] == pytest.approx([180, 120, 90, 90, 90, 90])
    expected_tet = abs(180 - 109.4712) + abs(120 - 109.4712) + 4 * abs(90 - 109.4712)
    assert values[0] == pytest.approx(expected_tet, rel=1e-4)


def _labelled(cluster, trap_energy=-4.6, **extra):
    probe = SyntheticQd(*cluster)
    centre = int(next(a for a in probe.anions if probe.coordination[a] == 4))
    qd = SyntheticQd(*cluster, traps=[(centre, trap_energy)])
    result = label_traps(**qd.kwargs(), params=LabelingParameters(quantum_confined_virtuals=0))
    n = len(qd.symbols)
    rng = np.random.default_rng(1)
    full = 4
    uc = result.coordination < full
    roles = result.roles
    masks = [(roles == 'cation') & uc, (roles == 'cation') & ~uc, (roles == 'anion') & uc, (roles == 'anion') & ~uc,
             roles == 'ligand']
    pops = result.states.populations
    kwargs = {
        'symbols': qd.symbols, 'positions': qd.positions, 'coordination': result.coordination, 'roles': roles,
        'bonds': result.bonds, 'labels': result.atom_label, 'state': result.atom_state, 'spin': np.zeros(n, int),
        'energies': result.states.energies[None], 'participation': result.states.participation[None],
        'populations': pops[None], 'class_populations': np.stack([pops[:, m].sum(1) for m in masks], 1)[None],
        'occupied': result.states.occupied[None], 'homo': np.array([result.homo]), 'lumo': np.array([result.lumo]),
        'mulliken': rng.normal(size=n), 'lowdin': rng.normal(size=n), 'dipole': np.array([0.0, 0.0, 2.0]),
        'shape': 'sphere', 'total_charge': 1}
    kwargs.update(extra)
    return feats.LabelledQd(**kwargs), centre, result


def test_structural_trap_centre_features(cluster):
    qd, centre, result = _labelled(cluster)
    atoms, X, y, names = feats.featurize(qd)
    assert np.isfinite(X).all() and X.shape == (len(atoms), 42)
    assert set(qd.symbols[atoms]) == {'P'} and set(qd.coordination[atoms]) == {4}
    row = {n: X[list(atoms).index(centre), k] for k, n in enumerate(names)}
    assert y[list(atoms).index(centre)] == 1 and y.sum() == 1
    # the trap state sits on the centre alone: PR = 1/M, pDOS all on one FC anion, 0.4 eV above the VBM (= HOMO - 0.4)
    m = int(np.sum(qd.roles != 'ligand'))
    assert row['pr_state'] == pytest.approx(1 / m, rel=1e-3)
    assert row['pdos_centre'] == pytest.approx(1.0, abs=1e-3)
    assert row['pdos_anion_fc'] == pytest.approx(1.0, abs=1e-3)
    assert row['lowdin_in_state'] == pytest.approx(m, rel=1e-3)
    assert row['state_energy_ev'] == pytest.approx(-4.6)
    assert row['state_energy_rel_homo_ev'] == pytest.approx(-4.6 - result.homo)
    assert row['homo_lumo_gap_ev'] == pytest.approx(result.lumo - result.homo)
    # bulk zincblende geometry: nearest-neighbour distances equal the mean In-P bond
    bulk_rows = X[qd.coordination[atoms] == 4][:, [names.index(f'bond_length_{k}') for k in range(1, 5)]]
    assert bulk_rows == pytest.approx(1.0, abs=1e-6)
    assert X[:, names.index('tet_abs_error')] == pytest.approx(0, abs=1e-6)
    assert row['n_anions'] == len(qd.anions if hasattr(qd, 'anions') else np.flatnonzero(qd.symbols == 'P'))
    assert row['in_fraction'] == 1.0 and row['total_charge'] == 1.0
    assert row['shape_class'] == 0 and row['dipole_norm_debye'] == pytest.approx(2.0)
    radial = qd.positions[centre] - qd.positions.mean(0)
    assert row['dipole_overlap_debye'] == pytest.approx(2.0 * radial[2] / np.linalg.norm(radial))
    p = qd.symbols == 'P'
    assert row['mulliken_charge_rel'] == pytest.approx(qd.mulliken[centre] - qd.mulliken[p].mean())


def test_distorted_centre_changes_geometry_features(cluster):
    qd, centre, _ = _labelled(cluster)
    positions = qd.positions.copy()
    neighbour = np.argsort(np.linalg.norm(positions - positions[centre], axis=1))[1]
    bond = positions[neighbour] - positions[centre]
    sideways = np.cross(bond, [1.0, 0.0, 0.0] if abs(bond[0]) < 2 else [0.0, 1.0, 0.0])
    positions[neighbour] += 0.3 * bond / np.linalg.norm(bond) + 0.4 * sideways / np.linalg.norm(sideways)
    qd.positions = positions
    atoms, X, _, names = feats.featurize(qd, geometry_only=True)
    assert names == feats.GEOMETRY_FEATURES
    row = X[list(atoms).index(centre)]
    assert row[names.index('bond_length_4')] > 1.05
    assert row[names.index('tet_abs_error')] > 1.0


def test_any_element_and_coordination(cluster):
    qd, _, _ = _labelled(cluster)
    atoms, X, _, _ = feats.featurize(qd, elements=('In', 'P'), coordinations=None)
    assert len(atoms) == len(qd.symbols) and np.isfinite(X).all()
    atoms, _, _, _ = feats.featurize(qd, elements=('In',), coordinations=(1, 2, 3))
    assert set(qd.symbols[atoms]) == {'In'} and (qd.coordination[atoms] < 4).all()


def test_missing_electronic_inputs_are_named(cluster):
    qd, _, _ = _labelled(cluster, mulliken=None, dipole=None)
    with pytest.raises(ValueError, match=r"\['mulliken', 'dipole'\]"):
        feats.featurize(qd)
    assert feats.featurize(qd, geometry_only=True)[1].shape[1] == 21
    with pytest.raises(ValueError, match='lowdin charges have 3 entries'):
        _labelled(cluster, lowdin=np.zeros(3))


def test_ligands_are_not_samples():
    symbols = np.array(['P', 'In', 'In', 'In', 'In', 'F'])
    qd = feats.LabelledQd(symbols=symbols, positions=np.eye(6, 3) * 2, coordination=np.ones(6, int),
                          roles=np.array(['anion'] + ['cation'] * 4 + ['ligand']), bonds=np.zeros((0, 2), int),
                          labels=np.array(['bulk'] * 5 + ['ligand']), state=-np.ones(6, int), spin=np.zeros(6, int),
                          energies=np.zeros((1, 2)), participation=np.ones((1, 2)), populations=np.zeros((1, 2, 6)),
                          class_populations=np.zeros((1, 2, 5)), occupied=np.array([[True, False]]),
                          homo=np.zeros(1), lumo=np.ones(1))
    with pytest.raises(ValueError, match='includes ligand atoms'):
        feats.featurize(qd, elements=('F',), coordinations=None, geometry_only=True)

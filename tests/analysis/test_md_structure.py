"""RDF of finite clusters and RMSF after rigid-body alignment, against analytic values."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from scipy.spatial.transform import Rotation

from aiida_qdtraps.analysis.md_structure import frozen_atoms, rdf, rmsf, site_classes


def _simple_cubic(n: int, a: float) -> np.ndarray:
    grid = np.arange(n) * a
    return np.array(np.meshgrid(grid, grid, grid, indexing='ij')).reshape(3, -1).T


def test_simple_cubic_block_gives_the_analytic_coordination():
    # n×n×n block of a simple cubic lattice: 3n²(n−1) nearest-neighbour pairs and 6n(n−1)² face diagonals.
    n, a = 4, 3.0
    positions = _simple_cubic(n, a)[None]
    result = rdf(['Cu'] * n ** 3, positions, ['Cu-Cu'], r_max=5.0, dr=0.05)
    r, cu = result['r'], result['pairs']['Cu-Cu']
    first = cu['coordination'][np.searchsorted(r, 3.5)]
    second = cu['coordination'][np.searchsorted(r, 4.5)] - first
    assert first == pytest.approx(6 * (n - 1) / n)
    assert second == pytest.approx(12 * (n - 1) ** 2 / n ** 2)
    occupied = r[cu['n'] > 0]
    assert occupied[0] == pytest.approx(a, abs=0.026)
    assert occupied[-1] == pytest.approx(a * np.sqrt(2), abs=0.026)
    assert result['volume'] == pytest.approx((a * (n - 1)) ** 3)


def test_zincblende_cluster_shells_and_coordination():
    a = 6.05
    crystal = bulk('CdSe', 'zincblende', a=a, cubic=True).repeat((4, 4, 4))
    symbols = np.array(crystal.get_chemical_symbols())
    centre = crystal.positions[symbols == 'Cd'].mean(axis=0)
    # Cd atoms within 6 Å of the centre and every Se bonded to them: each Cd keeps its 4 Se.
    cd = np.flatnonzero((symbols == 'Cd') & (np.linalg.norm(crystal.positions - centre, axis=1) < 6.0))
    distances = np.linalg.norm(crystal.positions[:, None] - crystal.positions[cd][None], axis=2)
    se = np.flatnonzero((symbols == 'Se') & (distances.min(axis=1) < 3.0))
    keep = np.concatenate([cd, se])
    positions = crystal.positions[keep][None]
    result = rdf(symbols[keep], positions, ['Cd-Se', 'Se-Cd', 'Cd-Cd'], r_max=5.0, dr=0.02)
    r = result['r']
    bond = a * np.sqrt(3) / 4
    cdse, secd, cdcd = (result['pairs'][p] for p in ('Cd-Se', 'Se-Cd', 'Cd-Cd'))
    assert r[np.argmax(cdse['n'])] == pytest.approx(bond, abs=0.02)
    assert r[np.argmax(cdcd['n'])] == pytest.approx(a / np.sqrt(2), abs=0.02)
    assert cdse['coordination'][np.searchsorted(r, 3.0)] == pytest.approx(4.0)
    assert secd['coordination'][np.searchsorted(r, 3.0)] == pytest.approx(4.0 * cd.size / se.size)
    assert cdse['n'][r < 2.4].sum() == 0


def test_uniform_sphere_g_follows_the_finite_size_factor():
    # Uniform points in a sphere of radius R: g(r) = 1 − 3r/(4R) + r³/(16R³) with the cluster's own density.
    rng = np.random.default_rng(1)
    radius, n, frames = 15.0, 1500, 6
    points = rng.normal(size=(frames, n, 3))
    points *= (radius * rng.random((frames, n, 1)) ** (1 / 3)) / np.linalg.norm(points, axis=2, keepdims=True)
    result = rdf(['Ar'] * n, points, ['Ar-Ar'], r_max=12.0, dr=0.5, volume=4 / 3 * np.pi * radius ** 3)
    r, g = result['r'], result['pairs']['Ar-Ar']['g']
    expected = 1 - 3 * r / (4 * radius) + r ** 3 / (16 * radius ** 3)
    select = r > 3.0
    np.testing.assert_allclose(g[select], expected[select], rtol=0.05)
    hull = rdf(['Ar'] * n, points, ['Ar-Ar'], r_max=12.0, dr=0.5)['volume']
    # The hull of the atom centres lies inside the sphere: smaller by ~3·(mean gap to the surface)/R.
    assert 0.85 < hull / (4 / 3 * np.pi * radius ** 3) < 1.0


@pytest.mark.parametrize('pairs, message', [(['Pb-O'], "element 'Pb'"), (['Cu'], "not of the form 'A-B'")])
def test_rdf_refuses_unknown_pairs(pairs, message):
    with pytest.raises(ValueError, match=message):
        rdf(['Cu'] * 4, np.eye(4, 3)[None] * 2, pairs)


def test_rmsf_removes_rigid_motion_and_measures_vibration():
    rng = np.random.default_rng(2)
    n_frames, n_atoms = 300, 120
    base = rng.normal(scale=6.0, size=(n_atoms, 3))
    amplitude = np.repeat([0.1, 0.2], n_atoms // 2)  # Å: Cd, then Se
    noise = rng.normal(size=(n_frames, n_atoms, 3))
    noise -= noise.mean(axis=0)
    noise /= np.sqrt((noise ** 2).sum(axis=2).mean(axis=0))[None, :, None]  # unit RMS displacement per atom
    frames = base + amplitude[None, :, None] * noise
    # A large rigid rotation and translation of every frame must not change the result.
    rotations = Rotation.random(n_frames, random_state=3).as_matrix()
    moved = np.einsum('fij,fnj->fni', rotations, frames) + rng.normal(scale=20.0, size=(n_frames, 1, 3))
    symbols = ['Cd'] * 60 + ['Se'] * 60
    labels = ['core'] * 40 + ['surface'] * 80
    result = rmsf(moved, symbols=symbols, labels=labels)
    # Alignment absorbs 6 of the 3N = 360 degrees of freedom: RMSF close to the imposed amplitudes.
    np.testing.assert_allclose(result['rmsf'], amplitude, rtol=0.15)
    assert result['per_element']['Cd']['mean'] == pytest.approx(0.1, rel=0.03)
    assert result['per_element']['Se']['mean'] == pytest.approx(0.2, rel=0.03)
    np.testing.assert_allclose(rmsf(frames)['rmsf'], result['rmsf'], rtol=0.02)
    assert result['per_element']['Cd']['mean'] == pytest.approx(result['rmsf'][:60].mean())
    assert result['per_label']['core']['count'] == 40
    still = rmsf(np.repeat(base[None], 5, axis=0) @ rotations[0])
    np.testing.assert_allclose(still['rmsf'], 0.0, atol=1e-6)


def test_rmsf_refuses_bad_labels():
    with pytest.raises(ValueError, match='label array has 2 entries for 3 atoms'):
        rmsf(np.zeros((2, 3, 3)) + np.eye(3), labels=['core', 'surface'])


@pytest.mark.parametrize('skin', [0.0, 0.3, 1.0])
def test_rdf_follows_atoms_that_move_far_between_frames(skin):
    # A Cu atom flies past an Au dimer and a far Au atom (keeps the cluster 3D): its distances to the first Au are
    # known in every frame, whatever the neighbour-list skin (the list is rebuilt when atoms move > skin/2).
    n = 300
    x = np.linspace(-10.0, 10.0, n)
    positions = np.zeros((n, 4, 3))
    positions[:, 0] = np.column_stack([x, np.full(n, 2.0), np.zeros(n)])  # Cu
    positions[:, 1] = [0.0, 0.0, 0.0]
    positions[:, 2] = [0.0, 0.0, 30.0]
    positions[:, 3] = [0.0, 40.0, 5.0]
    result = rdf(['Cu', 'Au', 'Au', 'Au'], positions, ['Cu-Au'], r_max=6.0, dr=0.1, skin=skin)
    expected, _ = np.histogram(np.hypot(x, 2.0), bins=np.arange(61) * 0.1)
    np.testing.assert_allclose(result['pairs']['Cu-Au']['n'] * n * 0.1, expected)


def test_site_classes_core_surface_ligand():
    # Cd atoms within 6 Å of a Cd at the centre keep their four Se (core); the outer Se have fewer Cd (surface) except
    # those bonded to four of the kept Cd; one H on a Se is a ligand.
    a = 6.05
    crystal = bulk('CdSe', 'zincblende', a=a, cubic=True).repeat((4, 4, 4))
    symbols = np.array(crystal.get_chemical_symbols())
    cd_all = np.flatnonzero(symbols == 'Cd')
    centre = crystal.positions[cd_all[np.argmin(np.linalg.norm(crystal.positions[cd_all] - crystal.positions.mean(0),
                                                                 axis=1))]]
    cd = cd_all[np.linalg.norm(crystal.positions[cd_all] - centre, axis=1) < 6.0]
    distances = np.linalg.norm(crystal.positions[:, None] - crystal.positions[cd][None], axis=2)
    bonded = (distances < 3.0).sum(axis=1)
    se = np.flatnonzero((symbols == 'Se') & (bonded > 0))
    positions = np.vstack([crystal.positions[cd], crystal.positions[se], crystal.positions[se[0]] + [0, 0, 1.46]])
    names = ['Cd'] * cd.size + ['Se'] * se.size + ['H']
    classes = site_classes(names, positions)
    assert list(classes[:cd.size]) == ['core'] * cd.size
    np.testing.assert_array_equal(classes[cd.size:-1] == 'core', bonded[se] == 4)
    assert classes[-1] == 'ligand' and 'surface' in set(classes)


def test_frozen_atoms_by_element_and_core():
    """FF1 holds the whole nanocrystal (its elements), FF2 its interior (`core`: the atoms with a full shell of
    counter-ions); a token that selects nothing is refused by name."""
    crystal = bulk('CdSe', 'zincblende', a=6.05, cubic=True).repeat((2, 2, 2))
    centre = crystal.positions.mean(0)
    cluster = crystal[np.linalg.norm(crystal.positions - centre, axis=1) < 5.5]
    symbols, positions = cluster.get_chemical_symbols(), cluster.positions
    classes = site_classes(symbols, positions)
    core = [int(i) for i in np.flatnonzero(classes == 'core')]
    assert 0 < len(core) < len(symbols)
    assert frozen_atoms(symbols, positions, 'core') == core
    assert frozen_atoms(symbols, positions, 'Cd, Se') == list(range(len(symbols)))
    cadmium = [i for i, s in enumerate(symbols) if s == 'Cd']
    assert frozen_atoms(symbols, positions, 'core,Cd') == sorted(set(core) | set(cadmium))
    with pytest.raises(ValueError, match=r"'Pb,Cd': the QD has no 'Pb'"):
        frozen_atoms(symbols, positions, 'Pb,Cd')
    with pytest.raises(ValueError, match='names no elements'):
        frozen_atoms(symbols, positions, ' , ')
    # a Cd4Se pyramid: every Cd has the one Se of the most coordinated Cd, so `core` would be every atom, no surface
    pyramid = np.array([[0, 0, 0], [1.5, 1.5, 1.5], [-1.5, -1.5, 1.5], [-1.5, 1.5, -1.5], [1.5, -1.5, -1.5]])
    with pytest.raises(ValueError, match='no surface atom'):
        frozen_atoms(['Se', 'Cd', 'Cd', 'Cd', 'Cd'], pyramid, 'core')

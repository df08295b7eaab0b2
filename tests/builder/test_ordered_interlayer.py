"""The ordered core@shell interlayer: the ⟨111⟩-(2×2) pattern on single {111} lattice planes (period two sites,
one site in four), and on an InAs@CdSe QD (vacancies only over the (111) facets, In only over the (-1-1-1) ones, As on
a quarter of the anion sites, charge 0, deterministic)."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.builder import passivation, qd, shell
from aiida_qdtraps.builder.crystal import TETRAHEDRAL

A = 6.058  # InAs lattice constant (Å)
BOND = A * np.sqrt(3) / 4


def _plane(normal, size=8, layer=3):
    """Cation sites (Å) of a size × size patch of one {111} plane of the fcc lattice (cation at the origin), with
    the in-plane coordinates (i, j) along the two fcc vectors of the plane written out here independently:
    (n1, -n2, 0) and (0, n2, -n3) in units of a/2 for the normal (n1, n2, n3) with ±1 entries."""
    n = np.sign(normal).astype(int)
    u1, u2, w = np.array([n[0], -n[1], 0]), np.array([0, n[1], -n[2]]), np.array([n[0], n[1], 0])
    ij = np.array([(i, j) for i in range(size) for j in range(size)])
    sites = (ij[:, :1] * u1 + ij[:, 1:] * u2 + layer * w) * A / 2
    return sites, ij


@pytest.mark.parametrize('k', range(4))
@pytest.mark.parametrize('sign', [1, -1])
def test_2x2_pattern_on_a_111_cation_plane(k, sign):
    normal = sign * TETRAHEDRAL[k]
    sites, ij = _plane(normal)
    centre = sites.mean(0) - 100 * normal  # every site faces this plane's normal
    labels, facing = shell.ordered_interlayer(sites, np.full(len(sites), 'cation'), centre, BOND,
                                              np.zeros(3), np.full(3, A / 4))
    assert np.allclose(facing, normal)
    picked = labels == ('vacancy' if sign > 0 else 'core')
    assert set(labels) == {'shell', 'vacancy' if sign > 0 else 'core'}
    assert picked.sum() == len(sites) // 4  # one site in four
    # one (2×2) coset: both in-plane coordinates even
    assert np.all(ij[picked] % 2 == 0) and picked.sum() == np.all(ij % 2 == 0, axis=1).sum()
    # period: picked sites are 2 × the in-plane spacing a/√2 apart, never nearest neighbours
    d = np.linalg.norm(sites[picked][:, None] - sites[picked][None], axis=-1)
    assert np.min(d[d > 0]) == pytest.approx(np.sqrt(2) * A)
    d_all = np.linalg.norm(sites[:, None] - sites[None], axis=-1)
    assert np.min(d_all[d_all > 0]) == pytest.approx(A / np.sqrt(2))


def test_anion_planes_take_the_core_anion_on_both_polarities():
    for normal in (TETRAHEDRAL[0], -TETRAHEDRAL[0]):
        sites, ij = _plane(normal)
        sites = sites + A / 4  # the anion sublattice
        labels, _ = shell.ordered_interlayer(sites, np.full(len(sites), 'anion'), sites.mean(0) - 100 * normal, BOND,
                                             np.zeros(3), np.full(3, A / 4))
        assert (labels == 'core').sum() == len(sites) // 4
        assert np.all(ij[labels == 'core'] % 2 == 0)


def test_off_lattice_sites_are_refused():
    with pytest.raises(ValueError, match='not on the lattice'):
        shell.ordered_interlayer(np.array([[0.7, 0.0, 0.0]]), np.array(['cation']), np.zeros(3), BOND, np.zeros(3),
                                 np.full(3, A / 4))


@pytest.fixture(scope='module')
def ordered_qd():
    return qd.build_qd('InAs', 16.0, ligand='Cl', center='cation', shell='CdSe', monolayers=3, interlayer='ordered')


def test_ordered_interlayer_on_inas_cdse(ordered_qd, check_qd):
    check_qd(ordered_qd, 'InAs')
    assert passivation.net_charge(ordered_qd) == 0
    abrupt = qd.build_qd('InAs', 16.0, ligand='Cl', center='cation', shell='CdSe', monolayers=3, interlayer='abrupt')
    symbols = np.array(ordered_qd.get_chemical_symbols())
    domains = ordered_qd.arrays['qd_domain']
    core = ordered_qd.positions[domains == 'core']
    centre = core.mean(0)
    origin = core[symbols[domains == 'core'] == 'In'][0]

    def facing_sign(points):
        projections = (points - centre) @ TETRAHEDRAL.T
        return np.sign(projections[np.arange(len(points)), np.argmax(np.abs(projections), axis=1)])

    il = domains == 'interlayer'
    # In in the interlayer only over (-1-1-1) facets, As on the anion sites
    indium = ordered_qd.positions[il & (symbols == 'In')]
    assert len(indium) and np.all(facing_sign(indium) < 0)
    # the vacancies: interlayer cation sites of the abrupt QD missing here, all over (111) facets, on the (2×2)
    # superlattice: any two on the same {111} plane differ by an even combination of the plane's fcc vectors
    abrupt_sites = abrupt.positions[(abrupt.arrays['qd_domain'] == 'interlayer') &
                                    (abrupt.arrays['qd_role'] == 'cation')]
    here = ordered_qd.positions[il & (ordered_qd.arrays['qd_role'] == 'cation')]
    missing = np.array([p for p in abrupt_sites if np.linalg.norm(here - p, axis=1).min() > 0.1])
    assert len(missing) and np.all(facing_sign(missing) > 0)
    for points in (missing, indium):
        m = np.rint((points - origin) / (A / 2)).astype(int)
        assert np.all(m.sum(axis=1) % 2 == 0)  # fcc sites
        for k, t in enumerate(TETRAHEDRAL):
            n = np.rint(np.sign(t)).astype(int)
            basis = np.array([[n[0], -n[1], 0], [0, n[1], -n[2]], [n[0], n[1], 0]]).T
            projections = (points - centre) @ TETRAHEDRAL.T
            on = np.argmax(np.abs(projections), axis=1) == k
            coefficients = np.rint(np.linalg.solve(basis, m[on].T).T).astype(int)
            assert np.all(coefficients[:, :2] % 2 == 0)
    # composition: a quarter of the interlayer anion sites hold As; fewer Cl than the abrupt interface needs
    anions = il & (ordered_qd.arrays['qd_role'] == 'anion')
    assert (symbols[anions] == 'As').sum() / anions.sum() == pytest.approx(0.25, abs=0.05)
    assert symbols.tolist().count('Cl') < abrupt.get_chemical_symbols().count('Cl')


def test_ordered_interlayer_is_deterministic(ordered_qd):
    again = qd.build_qd('InAs', 16.0, ligand='Cl', center='cation', shell='CdSe', monolayers=3, interlayer='ordered',
                        seed=7)
    assert again.get_chemical_symbols() == ordered_qd.get_chemical_symbols()
    assert np.array_equal(again.positions, ordered_qd.positions)

"""Bond graph, Löwdin/Mulliken populations and participation ratios on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from aiida_qdtraps.analysis import bonds, populations


def test_zincblende_interior_is_fourfold():
    crystal = bulk('InP', 'zincblende', a=5.869, cubic=True).repeat((3, 3, 3))
    pairs = bonds.bond_pairs(crystal.positions, crystal.get_chemical_symbols())
    cn = bonds.coordination_numbers(pairs, len(crystal))
    interior = np.linalg.norm(crystal.positions - crystal.positions.mean(0), axis=1) < 4.0
    assert set(cn[interior]) == {4}
    symbols = np.array(crystal.get_chemical_symbols())
    assert np.all(symbols[pairs[:, 0]] != symbols[pairs[:, 1]])  # In-In at 4.15 Å is not bonded (1.1 × 2.84 Å)


def test_same_element_scale_and_pair_override():
    positions = np.array([[0, 0, 0], [3.3, 0, 0], [0, 2.6, 0]])  # In-In 3.3 Å; In-P 2.6 Å
    symbols = ['In', 'In', 'P']
    assert bonds.bond_pairs(positions, symbols).tolist() == [[0, 2]]  # 3.3 > 1.1 × 2.84 Å
    assert bonds.bond_pairs(positions, symbols, same_element_scale=None).tolist() == [[0, 1], [0, 2]]  # < 1.25 ×
    assert bonds.bond_pairs(positions, symbols, pair_scale={('P', 'In'): 0.5}).tolist() == []


CHARGES = {'In': 3, 'P': -3, 'F': -1, 'Cd': 2, 'Se': -2, 'Cl': -1}


def test_like_charge_bond_of_an_f_that_moved_from_in_onto_p():
    symbols = ['In', 'P', 'F']
    before = np.array([[0.0, 0.0, 0.0], [2.55, 0.0, 0.0], [-2.0, 0.0, 0.0]])  # F on In, In-P 2.55 Å
    after = before.copy()
    after[2] = [2.55, 1.62, 0.0]  # F onto P: P-F 1.62 Å (0.99 × the covalent sum)
    assert bonds.like_charge_bonds(before, after, symbols, CHARGES).tolist() == [[1, 2]]
    assert bonds.like_charge_bonds(before, before, symbols, CHARGES).tolist() == []
    summary = bonds.rearrangement(before, after, symbols, CHARGES)
    assert summary['like_charge_bonds'] == ['P1-F2']
    assert summary['max_displacement'] == pytest.approx(np.hypot(4.55, 1.62))
    assert summary['rmsd'] == pytest.approx(np.hypot(4.55, 1.62) / np.sqrt(3))
    # In-F broken (3.02 Å > 1.25 × 1.99 Å), P-F made; In-P (2.55 Å) kept
    assert summary['bonds_made'] == 1 and summary['bonds_broken'] == 1


def test_like_charge_bonds_ignore_close_cations_unknown_elements_and_old_bonds():
    symbols = ['Cd', 'Cd', 'Se', 'C', 'C', 'Cl', 'Cl']
    before = np.array([[0.0, 0.0, 0.0], [4.3, 0.0, 0.0], [2.15, 1.5, 0.0],
                       [10.0, 0.0, 0.0], [12.0, 0.0, 0.0], [20.0, 0.0, 0.0], [21.8, 0.0, 0.0]])
    after = before.copy()
    after[1] = [3.31, 0.0, 0.0]  # Cd-Cd 3.31 Å: a close contact of a relaxed surface, 1.15 × 2.88 Å > 1.1 ×
    after[4] = [11.5, 0.0, 0.0]  # a new C-C bond: C has no formal charge
    # the Cl-Cl pair at 1.8 Å was already bonded before: not new
    assert bonds.like_charge_bonds(before, after, symbols, CHARGES).tolist() == []
    after[1] = [3.0, 0.0, 0.0]  # Cd-Cd 3.0 Å: 1.04 × the covalent sum
    assert bonds.like_charge_bonds(before, after, symbols, CHARGES).tolist() == [[0, 1]]
    with pytest.raises(ValueError, match=r'differ in shape: \(7, 3\) and \(6, 3\)'):
        bonds.like_charge_bonds(before, after[:6], symbols, CHARGES)


@pytest.mark.parametrize('kwargs, match', [({'scale': 0}, 'scale must be positive'),
                                           ({'pair_scale': {('In', 'Xx'): 1.0}}, "unknown element symbol 'Xx'")])
def test_bond_pairs_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bonds.bond_pairs(np.zeros((2, 3)), ['In', 'P'], **kwargs)


def test_lowdin_populations_of_orthonormal_basis():
    """With S = 1 the Löwdin populations are the squared coefficients summed per atom."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    ao_atom = np.array([0, 0, 1, 1, 2, 2])
    pops = populations.atomic_populations(q, np.eye(6), ao_atom, 3)
    expected = np.stack([(q[2 * a:2 * a + 2] ** 2).sum(0) for a in range(3)], axis=1)
    np.testing.assert_allclose(pops, expected, atol=1e-12)
    np.testing.assert_allclose(pops.sum(1), 1, atol=1e-12)


def test_lowdin_recovers_orthogonal_populations_in_nonorthogonal_basis():
    rng = np.random.default_rng(2)
    s = np.eye(4) + 0.2 * (np.ones((4, 4)) - np.eye(4))
    x, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    w, v = np.linalg.eigh(s)
    c = (v / np.sqrt(w)) @ v.T @ x  # MOs with Cᵀ S C = 1 whose Löwdin-orthogonal components are x
    pops = populations.atomic_populations(c, s, np.arange(4), 4)
    np.testing.assert_allclose(pops, (x ** 2).T, atol=1e-12)
    mulliken = populations.atomic_populations(c, s, np.arange(4), 4, method='mulliken')
    np.testing.assert_allclose(mulliken.sum(1), 1, atol=1e-12)
    assert not np.allclose(mulliken, pops)


def test_participation_ratio_limits():
    one_atom = np.array([[1.0, 0, 0, 0]])
    uniform = np.full((1, 4), 0.25)
    assert populations.participation_ratio(one_atom)[0] == pytest.approx(0.25)  # 1/N
    assert populations.participation_ratio(uniform)[0] == pytest.approx(1.0)
    assert populations.inverse_participation_ratio(one_atom)[0] == pytest.approx(1.0)
    assert populations.inverse_participation_ratio(uniform)[0] == pytest.approx(0.25)
    two = populations.renormalize(np.array([[0.5, 0.3, 0.2]]), np.array([True, True, False]))
    np.testing.assert_allclose(two, [[0.625, 0.375]])


def test_overlap_not_positive_definite():
    with pytest.raises(ValueError, match='not positive definite: smallest eigenvalue -1'):
        populations.atomic_populations(np.eye(2), np.array([[1.0, 2.0], [2.0, 1.0]]), np.arange(2), 2)


@pytest.mark.parametrize('overlap, ao_atom, match', [
    (np.eye(3), np.arange(2), r'overlap has shape \(3, 3\) but the coefficients have 2 AOs'),
    (np.eye(2), np.arange(3), 'ao_atom has 3 entries but the coefficients have 2 AOs'),
    (np.eye(2), np.array([0, 5]), 'ao_atom refers to atom 5 but the structure has 2 atoms'),
])
def test_population_size_mismatch(overlap, ao_atom, match):
    with pytest.raises(ValueError, match=match):
        populations.atomic_populations(np.eye(2), overlap, ao_atom, 2)


def test_chebyshev_sqrt_matches_diagonalisation(data_dir):
    """On the real AO overlap of the recorded CP2K run (SZV-MOLOPT-SR, κ ≈ 7) both routes to S^{1/2} C agree."""
    from aiida_qdtraps.parsers.cp2k_files import read_molden

    data = read_molden((data_dir / 'cp2k' / 'pbe0_success' / 'aiida-MOS-1_0.molden').read_text())
    exact = populations.overlap_sqrt_times(data.overlap, data.coefficients[0], method='exact')
    chebyshev = populations.overlap_sqrt_times(data.overlap, data.coefficients[0], method='chebyshev',
                                               precision='double')
    np.testing.assert_allclose(chebyshev, exact, atol=1e-9)
    single = populations.overlap_sqrt_times(data.overlap, data.coefficients[0], method='chebyshev')
    np.testing.assert_allclose(single, exact, atol=2e-6)
    np.testing.assert_allclose(single ** 2, exact ** 2, atol=2e-6)  # Löwdin weights to ~1e-6
    np.testing.assert_allclose(exact.T @ exact, np.eye(exact.shape[1]), atol=1e-6)  # MOs orthonormal
    with pytest.raises(ValueError, match="method must be 'auto', 'exact' or 'chebyshev', got 'cholesky'"):
        populations.overlap_sqrt_times(data.overlap, data.coefficients[0], method='cholesky')


def _local_overlap(n_atoms=400, cutoff=6.0, seed=1):
    """A local AO overlap on a random cluster: Gaussian coupling within ``cutoff`` Å, exactly 0 beyond, PD."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 40.0, size=(n_atoms, 3))
    ao_atom = np.repeat(np.arange(n_atoms), 3)
    ao_positions = positions[ao_atom]
    pairs = cKDTree(ao_positions).query_pairs(cutoff, output_type='ndarray')
    overlap = np.eye(len(ao_atom))
    values = 0.05 * np.exp(-np.sum((ao_positions[pairs[:, 0]] - ao_positions[pairs[:, 1]]) ** 2, axis=1) / 9)
    overlap[pairs[:, 0], pairs[:, 1]] = overlap[pairs[:, 1], pairs[:, 0]] = values
    return overlap, ao_positions


@pytest.mark.parametrize('with_positions', [True, False])
def test_tiled_overlap_product(with_positions):
    """The block-sparse product equals the dense one; spatial blocks skip most of a local overlap."""
    overlap, ao_positions = _local_overlap()
    tiled = populations.TiledOverlap(overlap, ao_positions if with_positions else None, dtype=np.float64,
                                     tile_aos=64)
    vectors = np.random.default_rng(2).normal(size=(overlap.shape[0], 5))
    product = tiled.from_blocked(tiled.matmul(tiled.to_blocked(vectors)))
    np.testing.assert_allclose(product, overlap @ vectors, atol=1e-12)
    if with_positions:
        assert tiled.fill < 0.5, tiled.fill  # ~0.3 here; a dense product would be 1
    low, high = tiled.extreme_eigenvalues(tol=1e-10)
    w = np.linalg.eigvalsh(overlap)
    assert low == pytest.approx(w[0], rel=1e-6) and high == pytest.approx(w[-1], rel=1e-6)
    with pytest.raises(ValueError, match=r'ao_positions must have shape \(1200, 3\), got \(5, 3\)'):
        populations.TiledOverlap(overlap, np.zeros((5, 3)))


def test_chebyshev_single_precision_on_local_overlap():
    """float32 tiled Chebyshev ``S^{1/2} V`` agrees with diagonalisation to ~1e-6; the double route to 1e-9."""
    overlap, ao_positions = _local_overlap()
    vectors = np.random.default_rng(3).normal(size=(overlap.shape[0], 8))
    vectors /= np.linalg.norm(vectors, axis=0)
    exact = populations.overlap_sqrt_times(overlap, vectors, method='exact')
    single = populations.overlap_sqrt_times(overlap, vectors, method='chebyshev', ao_positions=ao_positions)
    double = populations.overlap_sqrt_times(overlap, vectors, method='chebyshev', ao_positions=ao_positions,
                                            precision='double')
    assert np.abs(single - exact).max() < 2e-6
    assert np.abs(double - exact).max() < 1e-9
    with pytest.raises(ValueError, match="precision must be 'single' or 'double', got 'half'"):
        populations.overlap_sqrt_times(overlap, vectors, method='chebyshev', precision='half')

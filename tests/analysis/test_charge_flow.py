"""Charge-flow kernels on graphs with known answers and against dense minimum-norm least squares."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.analysis import charge_flow as cf


def dense_min_norm(dq, bonds, n_atoms, regularization=0.0):
    incidence = cf.incidence_matrix(bonds, n_atoms).toarray()
    if regularization:
        return np.linalg.solve(incidence.T @ incidence + regularization * np.eye(len(bonds)), incidence.T @ dq)
    return np.linalg.lstsq(incidence, dq, rcond=None)[0]


def test_chain_flows_are_partial_sums():
    """Chain 0-1-2-3: the flow over bond (k, k+1) is the charge lost by atoms 0..k."""
    dq = np.array([0.5, 0.25, -0.5, -0.25])
    result = cf.solve_charge_flow(dq, np.array([[0, 1], [1, 2], [2, 3]]))
    np.testing.assert_allclose(result.flows, [0.5, 0.75, 0.25], atol=1e-12)
    np.testing.assert_allclose(result.residual, 0, atol=1e-12)
    assert result.net_charge == pytest.approx(0)


def test_ring_splits_the_flow_evenly():
    """Ring of 4 with a donor at 0 and an acceptor at 2: half the charge goes each way round."""
    dq = np.array([1.0, 0.0, -1.0, 0.0])
    result = cf.solve_charge_flow(dq, np.array([[0, 1], [1, 2], [2, 3], [0, 3]]))
    np.testing.assert_allclose(result.flows, [0.5, 0.5, -0.5, 0.5], atol=1e-12)


def test_star_centre_feeds_the_leaves():
    """Star: each leaf receives its own charge from the centre; the centre vector is zero by symmetry."""
    dq = np.array([0.9, -0.3, -0.3, -0.3])
    bonds = np.array([[0, 1], [0, 2], [0, 3]])
    result = cf.solve_charge_flow(dq, bonds)
    np.testing.assert_allclose(result.flows, [0.3, 0.3, 0.3], atol=1e-12)
    angle = np.radians(120)
    positions = np.array([[0, 0, 0], [1, 0, 0], [np.cos(angle), np.sin(angle), 0], [np.cos(angle), -np.sin(angle), 0]])
    vectors = cf.atom_vectors(positions, bonds, result.flows)
    np.testing.assert_allclose(vectors[0], 0, atol=1e-12)
    np.testing.assert_allclose(vectors[1], [0.3, 0, 0], atol=1e-12)  # arrow into the acceptor, along the flow


def test_non_neutral_component_keeps_its_charge_as_residual():
    """Two fragments: a neutral pair and a charged pair; the charged one keeps its mean as residual on each atom."""
    dq = np.array([0.4, -0.4, 0.5, 0.1])
    result = cf.solve_charge_flow(dq, np.array([[0, 1], [2, 3]]))
    np.testing.assert_allclose(result.flows, [0.4, 0.2], atol=1e-12)
    np.testing.assert_allclose(result.component_charge, [0.0, 0.6], atol=1e-12)
    np.testing.assert_allclose(result.residual, [0, 0, 0.3, 0.3], atol=1e-12)
    np.testing.assert_allclose(result.component_residual, [0, np.sqrt(0.18)], atol=1e-12)
    assert result.net_charge == pytest.approx(0.6)


@pytest.mark.parametrize('method', ['direct', 'cg'])
@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('regularization', [0.0, 0.05, 1.0])
def test_equals_dense_least_squares_on_random_graphs(seed, regularization, method):
    """Random graphs with several components, isolated atoms and a non-neutral Δq: equal to the dense solution."""
    rng = np.random.default_rng(seed)
    n_atoms = 60
    pairs = {tuple(sorted(rng.choice(50, 2, replace=False))) for _ in range(90)}  # atoms 50..59 stay isolated
    bonds = np.array(sorted(pairs))
    dq = rng.normal(size=n_atoms)
    result = cf.solve_charge_flow(dq, bonds, regularization, method=method)
    np.testing.assert_allclose(result.flows, dense_min_norm(dq, bonds, n_atoms, regularization), atol=1e-8)
    incidence = cf.incidence_matrix(bonds, n_atoms)
    np.testing.assert_allclose(result.residual, dq - incidence @ result.flows, atol=1e-12)
    assert len(result.component_charge) > 10


def test_regularization_shrinks_flows_and_grows_residual():
    rng = np.random.default_rng(7)
    bonds = np.array([[i, i + 1] for i in range(19)])
    dq = rng.normal(size=20)
    dq -= dq.mean()
    plain, damped = cf.solve_charge_flow(dq, bonds), cf.solve_charge_flow(dq, bonds, 0.5)
    assert np.linalg.norm(damped.flows) < np.linalg.norm(plain.flows)
    assert np.linalg.norm(damped.residual) > np.linalg.norm(plain.residual) + 1e-6


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'regularization': -0.1}, 'regularization'),
    ({'regularization': float('nan')}, 'regularization'),
])
def test_bad_inputs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cf.solve_charge_flow(np.zeros(3), np.array([[0, 1]]), **kwargs)


def test_bad_method_is_refused():
    with pytest.raises(ValueError, match="'auto', 'direct' or 'cg'"):
        cf.solve_charge_flow(np.array([1.0, -1.0]), np.array([[0, 1]]), method='svd')


def test_bad_bonds_are_refused():
    with pytest.raises(ValueError, match='out of range'):
        cf.solve_charge_flow(np.zeros(3), np.array([[0, 5]]))
    with pytest.raises(ValueError, match='itself'):
        cf.incidence_matrix(np.array([[1, 1]]), 3)
    with pytest.raises(ValueError, match='valence'):
        cf.charge_transfer(np.ones(3), np.ones(4))


def test_domain_summary_and_inter_domain_flow():
    domains = ['core', 'core', 'shell', 'ligand']
    dq = np.array([0.6, 0.2, -0.3, -0.5])
    bonds = np.array([[0, 1], [1, 2], [2, 3]])
    flow = cf.solve_charge_flow(dq, bonds)
    mags = np.linalg.norm(cf.atom_vectors(np.eye(4) * 2.0, bonds, flow.flows), axis=1)
    summary = cf.domain_summary(domains, dq, mags, bonds, flow.flows)
    assert summary['domains'] == ['core', 'shell', 'ligand']
    assert summary['per_domain']['core']['dq_total'] == pytest.approx(0.8)
    assert summary['per_domain']['core']['dq_mean'] == pytest.approx(0.4)
    assert summary['inter_domain_flow']['core->shell'] == pytest.approx(0.8)
    assert summary['inter_domain_flow']['ligand->shell'] == pytest.approx(-0.5)  # 0.5 e flow shell → ligand
    assert list(cf.infer_domains(['In', 'P', 'F', 'Cl'])) == ['core', 'core', 'ligand', 'ligand']


def test_plane_normal_and_planar_map(cluster, tmp_path):
    np.testing.assert_allclose(cf.plane_normal(miller=[1, 0, -1]), np.array([1, 0, -1]) / np.sqrt(2))
    hexagonal = np.array([[1.0, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [0, 0, 1.6]])
    normal = cf.plane_normal(miller=[1, 0, 0], lattice=hexagonal)
    assert normal @ hexagonal[1] == pytest.approx(0, abs=1e-12)  # (100) contains a2 and a3
    with pytest.raises(ValueError, match='exactly one'):
        cf.plane_normal()
    symbols, positions = cluster
    vectors = np.tile([1.0, 0.0, 0.0], (len(symbols), 1))
    pmap = cf.planar_map(positions, vectors, cf.plane_normal(miller=[0, 0, 1]), thickness=1.0,
                         select=np.array(symbols) == 'In')
    assert len(pmap.indices) > 0
    assert np.all(np.abs(positions[pmap.indices, 2] - positions[:, 2].mean()) <= 0.5)
    assert all(symbols[i] == 'In' for i in pmap.indices)
    np.testing.assert_allclose(np.linalg.norm(pmap.vectors, axis=1), 1.0)  # x lies in the (001) plane
    facets = cf.facet_label_positions(pmap, {'(100)': [1, 0, 0], '(001)': [0, 0, 1]})
    assert [label for label, _ in facets] == ['(100)']
    path = tmp_path / 'map.png'
    cf.plot_planar_map(pmap, path, facets=facets)
    assert path.read_bytes()[:4] == b'\x89PNG'


def test_domain_pdos_and_frontier_composition(tmp_path):
    populations = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
    names, weights = cf.domain_populations(populations, ['core', 'shell', 'ligand'])
    assert names == ['core', 'shell', 'ligand']
    energies, occupations = np.array([-6.0, -5.0, -2.0]), np.array([2.0, 2.0, 0.0])
    composition = cf.frontier_composition(energies, occupations, weights)
    assert composition['homo_index'] == 1 and composition['lumo_index'] == 2
    np.testing.assert_allclose(composition['homo'], [0.1, 0.1, 0.8])
    grid = np.linspace(-10, 4, 2801)
    pdos = cf.broadened_pdos(energies, weights, grid, sigma=0.1)
    np.testing.assert_allclose(pdos.sum(axis=0) * (grid[1] - grid[0]), weights.sum(axis=0), rtol=1e-6)
    cf.plot_domain_pdos(energies, weights, names, composition, tmp_path / 'pdos.png')
    assert (tmp_path / 'pdos.png').stat().st_size > 1000
    with pytest.raises(ValueError, match='occupied and empty'):
        cf.frontier_composition(energies, np.zeros(3), weights)


def test_analysis_of_a_bader_chain():
    """In-P-In along x (In-In too far to bond): the P gains 1 e, half from each In, so 0.5 e flows over each bond
    towards P; the In atoms' vectors point at P (|v| = 0.5 e), the P's cancel."""
    positions = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [5.0, 0.0, 0.0]])
    result = cf.analyse_charge_flow(['In', 'P', 'In'], positions, [13.0, 5.0, 13.0], [12.5, 6.0, 12.5],
                                    ['shell', 'core', 'shell'])
    np.testing.assert_allclose(result.dq, [0.5, -1.0, 0.5])
    assert result.flow.bonds.tolist() == [[0, 1], [1, 2]]
    np.testing.assert_allclose(result.flow.flows, [0.5, -0.5], atol=1e-12)
    np.testing.assert_allclose(result.vectors, [[0.5, 0, 0], [0, 0, 0], [-0.5, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(result.magnitudes, [0.5, 0, 0.5], atol=1e-12)
    summary = result.summary
    assert summary['valence_electrons'] == 31.0 and summary['electrons_in_basins'] == 31.0
    assert summary['electron_difference'] == pytest.approx(0.0) and summary['sum_dq'] == pytest.approx(0.0)
    assert (summary['n_bonds'], summary['n_components'], summary['bond_scale']) == (2, 1, cf.CHARGE_FLOW_SCALE)
    assert summary['residual_norm'] == pytest.approx(0.0, abs=1e-12)
    assert summary['per_element'] == {'In': {'n_atoms': 2, 'dq_mean': 0.5}, 'P': {'n_atoms': 1, 'dq_mean': -1.0}}
    assert summary['domains'] == ['core', 'shell']
    assert summary['per_domain']['shell'] == pytest.approx({'n_atoms': 2, 'dq_total': 1.0, 'dq_mean': 0.5,
                                                           'magnitude_mean': 0.5, 'magnitude_max': 0.5})
    assert summary['inter_domain_flow'] == {'core->shell': pytest.approx(-1.0)}  # one electron from shell to core
    assert summary['max_magnitude'] == pytest.approx(0.5)


def test_charge_flow_summary_bookkeeping_of_a_charged_qd():
    """A cation (net charge +1) whose basins hold 30.8 e of 31 valence electrons, 0.2 e in the vacuum."""
    positions = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [5.0, 0.0, 0.0]])
    result = cf.analyse_charge_flow(['In', 'P', 'In'], positions, [13.0, 5.0, 13.0], [12.4, 6.0, 12.4],
                                    ['core'] * 3, vacuum_charge=0.2, net_charge=1, bond_scale=1.3)
    summary = result.summary
    assert summary['valence_electrons'] == 30.0 and summary['electrons_in_basins'] == pytest.approx(30.8)
    assert summary['electron_difference'] == pytest.approx(1.0)  # 30.8 + 0.2 - 31 + 1: one electron too many
    assert summary['sum_dq'] == pytest.approx(0.2) and summary['component_charge'] == pytest.approx([0.2])
    assert summary['bond_scale'] == 1.3 and summary['net_charge'] == 1 and summary['inter_domain_flow'] == {}
    # the component's net 0.2 e cannot flow anywhere: it stays as a residual spread evenly over the 3 atoms
    np.testing.assert_allclose(result.flow.residual, [0.2 / 3] * 3, atol=1e-12)


def test_charge_flow_analysis_refuses_tags_that_do_not_cover_the_atoms():
    positions = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0]])
    with pytest.raises(ValueError, match='1 domain tags for 2 atoms'):
        cf.analyse_charge_flow(['In', 'P'], positions, [13.0, 5.0], [12.5, 5.5], ['core'])
    with pytest.raises(ValueError, match='1 valence charges for 2 atoms'):
        cf.analyse_charge_flow(['In', 'P'], positions, [13.0], [12.5, 5.5], ['core', 'core'])

"""Trajectory layout round trip and the trajectory-analysis calcfunctions on synthetic TrajectoryData."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory

from aiida_qdtraps.analysis.gap_dynamics import HBAR_EV_FS
from aiida_qdtraps.analysis.spectra import C_CM_PER_FS, peak_wavenumbers
from aiida_qdtraps.analysis.trajectory import MdTrajectory
from aiida_qdtraps.workchains.dynamics import (
    UNITS,
    compute_binding_modes,
    compute_dephasing,
    compute_gap_statistics,
    compute_ir,
    compute_nac,
    compute_rdf,
    compute_rmsf,
    compute_vdos,
    node_to_trajectory,
    trajectory_to_node,
)

DT = 1.0  # fs between frames
N_FRAMES = 2048
WAVENUMBER = 300.0  # cm⁻¹ of the synthetic Cd–Se vibration


def _synthetic(with_velocities=True, with_dipole=True) -> MdTrajectory:
    """A Cd2Se2 square whose Cd–Se bonds breathe at 300 cm⁻¹, with velocities and a dipole following it."""
    t = np.arange(N_FRAMES) * DT
    omega = 2 * np.pi * WAVENUMBER * C_CM_PER_FS
    base = np.array([[0.0, 0.0, 0.0], [2.6, 0.0, 0.0], [2.6, 2.6, 0.0], [0.0, 2.6, 0.0]])
    direction = base - base.mean(axis=0)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    amplitude = 0.05
    positions = base[None] + amplitude * np.sin(omega * t)[:, None, None] * direction[None]
    velocities = amplitude * omega * np.cos(omega * t)[:, None, None] * direction[None]
    dipole = np.zeros((N_FRAMES, 3))
    dipole[:, 0] = 0.2 * np.sin(omega * t)
    return MdTrajectory(symbols=['Cd', 'Se', 'Cd', 'Se'], positions=positions, times_fs=t,
                        velocities=velocities if with_velocities else None, dipole=dipole if with_dipole else None,
                        temperature=np.full(N_FRAMES, 300.0), conserved_energy=np.full(N_FRAMES, -12.0))


@pytest.fixture
def trajectory():
    return trajectory_to_node(_synthetic(), engine='mlff', md_timestep_fs=0.5).store()


def test_layout_round_trip():
    source = _synthetic()
    node = trajectory_to_node(source, engine='cp2k', md_timestep_fs=0.5)
    assert not node.is_stored
    assert node.base.attributes.get('units') == UNITS
    assert (node.base.attributes.get('timestep_fs'), node.base.attributes.get('md_timestep_fs')) == (DT, 0.5)
    assert node.base.attributes.get('engine') == 'cp2k'
    np.testing.assert_allclose(node.get_array('times'), source.times_fs)
    assert {'dipole', 'temperature', 'conserved_energy', 'velocities'} <= set(node.get_arraynames())
    back = node_to_trajectory(node.store())
    np.testing.assert_allclose(back.positions, source.positions)
    np.testing.assert_allclose(back.velocities, source.velocities)
    np.testing.assert_allclose(back.dipole, source.dipole)
    assert back.symbols == source.symbols and back.potential_energy is None and back.cell is None


def test_layout_refuses_an_unknown_engine():
    with pytest.raises(ValueError, match="engine 'lammps'"):
        trajectory_to_node(_synthetic(), engine='lammps', md_timestep_fs=0.5)


def test_rdf_and_rmsf_nodes(trajectory):
    rdf = compute_rdf(trajectory, orm.Dict({'pairs': ['Cd-Se'], 'r_max': 4.0, 'dr': 0.05}))['rdf']
    r = rdf.get_array('r')
    assert rdf.base.attributes.get('units')['r'] == 'angstrom'
    coordination = rdf.get_array('coordination_Cd_Se')
    assert coordination[np.searchsorted(r, 3.0)] == pytest.approx(2.0)  # each Cd has two Se at 2.6 Å
    assert 'g_Cd_Se' in rdf.get_arraynames()
    outputs = compute_rmsf(trajectory, orm.Dict({'labels': ['core', 'surface', 'core', 'surface']}))
    # Breathing of amplitude 0.05 Å: RMS of 0.05 sin(ωt) is 0.05/√2 for every atom (18.4 periods: 0.2 %).
    np.testing.assert_allclose(outputs['rmsf'].get_array('rmsf'), 0.05 / np.sqrt(2), rtol=5e-3)
    assert outputs['summary']['per_label']['core']['count'] == 2
    assert outputs['rmsf'].get_array('labels').tolist() == ['core', 'surface', 'core', 'surface']
    _, process = run_get_node(compute_rmsf, trajectory=trajectory, options=orm.Dict({'labels': 'shells'}))
    assert process.exit_status == 302 and "or 'sites', got 'shells'" in process.exit_message


def test_rmsf_classes_from_the_trajectory_itself():
    """``labels: 'sites'``: core / surface / ligand from the bonds of the first frame of a CdSe cluster with an H
    ligand (a Cd with its four Se is core), stored with the RMSF."""
    from ase.build import bulk

    from aiida_qdtraps.analysis.md_structure import site_classes

    crystal = bulk('CdSe', 'zincblende', a=6.05, cubic=True).repeat((3, 3, 3))
    symbols = np.array(crystal.get_chemical_symbols())
    centre = crystal.positions[np.flatnonzero(symbols == 'Cd')][13]
    keep = np.linalg.norm(crystal.positions - centre, axis=1) < 5.5
    positions = np.vstack([crystal.positions[keep], crystal.positions[keep][symbols[keep] == 'Se'][0] + [0, 0, 1.46]])
    names = list(symbols[keep]) + ['H']
    rng = np.random.default_rng(1)
    frames = positions[None] + 0.02 * rng.standard_normal((40, len(names), 3))
    node = trajectory_to_node(MdTrajectory(symbols=names, positions=frames, times_fs=np.arange(40.0)),
                              engine='mlff', md_timestep_fs=1.0).store()
    outputs = compute_rmsf(node, orm.Dict({'labels': 'sites', 'start_frame': 5}))
    labels = outputs['rmsf'].get_array('labels')
    assert labels.tolist() == site_classes(names, frames[5]).tolist()
    assert {'core', 'surface', 'ligand'} == set(labels) == set(outputs['summary']['per_label'])
    assert outputs['summary']['per_label']['ligand']['count'] == 1


def test_vdos_and_ir_peaks_at_the_imposed_frequency(trajectory):
    vdos = compute_vdos(trajectory)['vdos']
    x = vdos.get_x()[1]
    names = [name for name, _, _ in vdos.get_y()]
    assert names == ['total', 'Cd', 'Se'] and vdos.get_x()[2] == 'cm^-1'
    total = vdos.get_y()[0][1]
    assert peak_wavenumbers(x, total, n_peaks=1)[0] == pytest.approx(WAVENUMBER, rel=0.01)
    ir = compute_ir(trajectory)['ir']
    assert peak_wavenumbers(ir.get_x()[1], ir.get_y()[0][1], n_peaks=1)[0] == pytest.approx(WAVENUMBER, rel=0.01)
    assert ir.base.attributes.get('correction') == 'harmonic'


def test_vdos_without_velocities_fails_by_name_and_makes_no_output():
    node = trajectory_to_node(_synthetic(with_velocities=False, with_dipole=False), 'mlff', 0.5).store()
    results, process = run_get_node(compute_vdos, trajectory=node)
    assert process.exit_status == 300
    assert 'needs velocities' in process.exit_message
    assert results == {} and not process.base.links.get_outgoing().all()
    _, process = run_get_node(compute_ir, trajectory=node)
    assert process.exit_status == 300 and 'needs dipole' in process.exit_message
    _, process = run_get_node(compute_rdf, trajectory=node, options=orm.Dict({'pair': ['Cd-Se']}))
    assert process.exit_status == 302 and "unknown option(s) ['pair']" in process.exit_message


def test_uneven_frames_and_a_false_carboxylate_fail_by_name_and_make_no_output():
    """A stored trajectory whose frames are not evenly spaced in time, and carboxylate triples that are not a carbon
    bonded to two oxygens, are refused by the calcfunctions with the value named and no output node."""
    uneven = orm.TrajectoryData()
    positions = np.random.default_rng(0).normal(size=(4, 3, 3))
    uneven.set_trajectory(['Cd', 'Se', 'O'], positions, times=np.array([0.0, 1.0, 2.0, 3.5]),
                          velocities=np.zeros_like(positions))
    uneven.base.attributes.set_many({'timestep_fs': 1.0, 'engine': 'cp2k'})
    uneven.store()
    for function in (compute_vdos, compute_rmsf):
        results, process = run_get_node(function, trajectory=uneven)
        assert process.exit_status == 300, (function, process.exit_message)
        assert 'not constant' in process.exit_message and '1.5 fs between frames 2 and 3' in process.exit_message
        assert results == {} and not process.base.links.get_outgoing().all()

    frame = np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [-1.2, 0.0, 0.0], [0.0, 3.0, 0.0]])
    node = trajectory_to_node(MdTrajectory(['C', 'O', 'Se', 'Pb'], np.repeat(frame[None], 3, axis=0),
                                           np.arange(3) * 10.0), 'cp2k', 0.5).store()
    results, process = run_get_node(compute_binding_modes, trajectory=node,
                                    options=orm.Dict({'carboxylates': [[0, 1, 2]]}))
    assert process.exit_status == 300 and 'carboxylate 0 (0, 1, 2) is C-O-Se' in process.exit_message
    assert results == {} and not process.base.links.get_outgoing().all()


def test_binding_modes_of_a_bridging_acetate():
    half = np.radians(62.5)
    o1 = np.array([-1.27 * np.sin(half), 1.27 * np.cos(half), 0.0])
    o2 = o1 * [-1, 1, 1]
    frame = np.array([[0.0, 0.0, 0.0], o1, o2, [0, -1.51, 0], o1 + [0, 2.5, 0], o2 + [0, 2.5, 0]])
    positions = np.repeat(frame[None], 3, axis=0)
    traj = MdTrajectory(['C', 'O', 'O', 'C', 'Pb', 'Pb'], positions, np.arange(3) * 10.0)
    node = trajectory_to_node(traj, 'cp2k', 0.5).store()
    outputs = compute_binding_modes(node)
    distances = outputs['distances']
    np.testing.assert_allclose(distances.get_array('r1'), 2.5)
    np.testing.assert_allclose(distances.get_array('r3'), 2.5)
    assert outputs['fractions']['fractions']['bridge'] == 1.0
    modes = distances.base.attributes.get('modes')
    assert {modes[k] for k in distances.get_array('mode').ravel()} == {'bridge'}


def test_gap_statistics_and_dephasing_from_each_input_kind():
    sigma, dt = 0.1, 0.5
    t = np.arange(80_000) * dt
    gaps = 2.0 + sigma * np.sqrt(2) * np.cos(2 * np.pi * t / 10_000.0)
    array = orm.ArrayData()
    array.set_array('gaps', gaps)
    array.base.attributes.set('timestep_fs', dt)
    stats = compute_gap_statistics(array)['statistics']
    assert stats['mean'] == pytest.approx(2.0) and stats['std'] == pytest.approx(sigma, rel=1e-4)
    outputs = compute_dephasing(array, orm.Dict({'max_time_fs': 100.0}))
    assert outputs['summary']['tau_fs'] == pytest.approx(HBAR_EV_FS / sigma, rel=0.02)
    assert outputs['dephasing'].get_x()[2] == 'fs'
    small = orm.Dict({'gaps': [2.0, 2.1, 1.9, 2.05, 1.95, 2.0, 2.1, 1.9], 'dt_fs': 1.0})
    assert compute_gap_statistics(small)['statistics']['n'] == 8
    broken = orm.ArrayData()
    broken.set_array('gaps', np.array([2.0, np.nan, 2.1]))
    _, process = run_get_node(compute_dephasing, gaps=broken, options=orm.Dict({'dt_fs': 1.0}))
    assert process.exit_status == 300 and 'index 1' in process.exit_message
    _, process = run_get_node(compute_dephasing, gaps=orm.Dict({'gaps': [2.0, 2.1, 2.2]}))
    assert process.exit_status == 302 and 'dt_fs' in process.exit_message


def test_gap_statistics_of_homo_and_lumo_too():
    """A gap series with its HOMO and LUMO energies (the layout of MdGapsWorkChain's ``gaps``): statistics and
    histograms of all three; a NaN in the LUMO series is refused by name, nothing stored."""
    rng = np.random.default_rng(0)
    homo = -5.0 + 0.05 * rng.standard_normal(500)
    lumo = -3.0 + 0.08 * rng.standard_normal(500)
    series = orm.ArrayData()
    for name, values in (('gaps', lumo - homo), ('homo', homo), ('lumo', lumo)):
        series.set_array(name, values)
    outputs = compute_gap_statistics(series, orm.Dict({'bins': 20}))
    stats, histogram = outputs['statistics'], outputs['histogram']
    assert stats['mean'] == pytest.approx(np.mean(lumo - homo)) and stats['std'] == pytest.approx(np.std(lumo - homo))
    assert stats['homo']['mean'] == pytest.approx(homo.mean()) and stats['homo']['std'] == pytest.approx(homo.std())
    assert stats['lumo']['min'] == pytest.approx(lumo.min()) and stats['lumo']['n'] == 500
    assert histogram.get_array('homo_counts').sum() == 500 and histogram.get_array('lumo_edges').shape == (21,)
    assert histogram.base.attributes.get('units')['lumo_edges'] == 'eV'
    lumo[7] = np.nan
    series = orm.ArrayData()
    for name, values in (('gaps', np.abs(homo)), ('homo', homo), ('lumo', lumo)):
        series.set_array(name, values)
    _, process = run_get_node(compute_gap_statistics, gaps=series)
    assert process.exit_status == 300 and process.exit_message.startswith('lumo:') and 'index 7' in process.exit_message
    assert not process.base.links.get_outgoing().all()


def test_nac_of_a_rotating_two_level_system():
    # Two orbitals rotating at ω = 0.01 rad/fs in an orthonormal basis, with random sign flips per frame.
    omega, dt, n = 0.01, 1.0, 30
    theta = omega * np.arange(n) * dt
    c = np.zeros((n, 2, 2))
    c[:, 0, 0], c[:, 1, 0], c[:, 0, 1], c[:, 1, 1] = np.cos(theta), np.sin(theta), -np.sin(theta), np.cos(theta)
    c *= np.random.default_rng(2).choice([-1.0, 1.0], size=(n, 1, 2))
    frames = orm.ArrayData()
    frames.set_array('coefficients', c)
    frames.set_array('ao_overlap', np.repeat(np.eye(2)[None], n, axis=0))
    frames.base.attributes.set('timestep_fs', dt)
    outputs = compute_nac(frames, orm.Dict({'i': 0, 'j': 1}))
    expected_mev = HBAR_EV_FS * np.sin(omega * dt) / dt * 1e3
    np.testing.assert_allclose(outputs['nac'].get_y()[1][1], expected_mev, rtol=1e-10)
    assert outputs['summary']['mean_mev'] == pytest.approx(expected_mev)
    assert sum(outputs['summary']['histogram_counts']) == n - 1
    _, process = run_get_node(compute_nac, mo_frames=frames, options=orm.Dict({'i': 0}))
    assert process.exit_status == 302 and 'need i and j' in process.exit_message


@pytest.mark.parametrize('name', ['rdf', 'rmsf', 'vdos', 'ir', 'binding_modes', 'gap_statistics', 'dephasing', 'nac'])
def test_entry_points(name):
    assert CalculationFactory(f'qdtraps.compute_{name}').__name__ == f'compute_{name}'

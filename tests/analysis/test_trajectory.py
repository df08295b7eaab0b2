"""MdTrajectory: validation, the extended-xyz reader (ASE units) and the NVE drift."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, io, units

from aiida_qdtraps.analysis.trajectory import MdTrajectory, drift, from_extxyz, join_frames


def _trajectory(**changes):
    rng = np.random.default_rng(0)
    values = {'symbols': ['Cd', 'Se', 'Se'], 'positions': rng.normal(size=(5, 3, 3)),
              'times_fs': np.arange(5) * 2.0}
    values.update(changes)
    return MdTrajectory(**values)


def test_valid_trajectory_keeps_shapes():
    traj = _trajectory(velocities=np.zeros((5, 3, 3)), dipole=np.zeros((5, 3)), temperature=np.full(5, 300.0))
    assert (traj.n_frames, traj.n_atoms, traj.timestep_fs) == (5, 3, 2.0)
    assert traj.masses()[0] == pytest.approx(112.414, abs=1e-2)


@pytest.mark.parametrize('changes, message', [
    ({'positions': [np.zeros((3, 3)), np.zeros((2, 3))]}, 'frame 1 has 2'),
    ({'times_fs': [0.0, 1.0, 2.0, 3.5, 4.5]}, 'not constant: 1.5 fs between frames 2 and 3'),
    ({'times_fs': [0.0, -1.0, -2.0, -3.0, -4.0]}, 'must increase'),
    ({'positions': np.full((5, 3, 3), np.nan)}, 'positions holds a non-finite value'),
    ({'velocities': np.zeros((5, 2, 3))}, r'velocities has shape \(5, 2, 3\), expected \(5, 3, 3\)'),
    ({'dipole': np.zeros((4, 3))}, 'dipole has shape'),
    ({'temperature': [300.0, 300.0, np.nan, 300.0, 300.0]}, r'temperature holds a non-finite value .* index \(2,\)'),
])
def test_bad_trajectories_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        _trajectory(**changes)


def test_time_step_within_relative_tolerance_is_accepted():
    traj = _trajectory(times_fs=np.arange(5) * 2.0 + np.array([0, 1e-8, 0, -1e-8, 0]))
    assert traj.timestep_fs == pytest.approx(2.0)


def test_extxyz_momenta_become_angstrom_per_fs(tmp_path):
    path = tmp_path / 'md.extxyz'
    frames = []
    for k in range(3):
        atoms = Atoms('CuAu', positions=[[0, 0, 0], [2.5 + 0.1 * k, 0, 0]])
        atoms.set_velocities([[0.01, 0, 0], [0, -0.02, 0]])  # Å/fs, converted to ASE units below
        atoms.set_velocities(atoms.get_velocities() / units.fs)
        atoms.info['time'] = 5.0 * k * units.fs
        atoms.info['dipole'] = [0.1 * k, 0.0, 0.0]
        atoms.info['temperature'] = 300.0
        frames.append(atoms)
    io.write(path, frames, format='extxyz')
    traj = from_extxyz(path)
    np.testing.assert_allclose(traj.velocities[:, 0, 0], 0.01, rtol=1e-6)
    np.testing.assert_allclose(traj.velocities[:, 1, 1], -0.02, rtol=1e-6)
    np.testing.assert_allclose(traj.times_fs, [0.0, 5.0, 10.0])
    np.testing.assert_allclose(traj.dipole[:, 0], [0.0, 0.1, 0.2])
    np.testing.assert_allclose(traj.positions[2, 1, 0], 2.7)
    assert traj.cell is None
    assert from_extxyz(path, dt_fs=1.0).timestep_fs == 1.0


def test_extxyz_without_times_needs_dt(tmp_path):
    path = tmp_path / 'md.xyz'
    io.write(path, [Atoms('Cu2', positions=[[0, 0, 0], [2.5, 0, 0]])] * 3, format='extxyz')
    with pytest.raises(ValueError, match='give dt_fs'):
        from_extxyz(path)
    assert from_extxyz(path, dt_fs=0.5).velocities is None


def test_drift_of_a_linear_energy():
    t = np.arange(0.0, 2001.0, 1.0)  # 2 ps
    energy = -100.0 + 0.02 * t / 1000.0  # +20 meV per ps
    assert drift(t, energy, n_atoms=10) == pytest.approx(2.0)


def test_extxyz_with_changing_atom_count_is_refused(tmp_path):
    path = tmp_path / 'ragged.extxyz'
    io.write(path, [Atoms('Cu2', positions=[[0, 0, 0], [2.5, 0, 0]]), Atoms('Cu', positions=[[0, 0, 0]])],
             format='extxyz')
    with pytest.raises(ValueError, match='frame 0 has 2 atoms, frame 1 has 1'):
        from_extxyz(path, dt_fs=1.0)


def test_join_frames_drops_the_repeated_start_and_refuses_a_gap():
    first = {'steps': np.array([0, 10, 20]), 'x': np.arange(3.0), 'only_here': np.zeros(3)}
    second = {'steps': np.array([30, 40]), 'x': np.array([3.0, 4.0])}
    joined = join_frames([first, second])
    assert joined['steps'].tolist() == [0, 10, 20, 30, 40] and joined['x'].tolist() == [0, 1, 2, 3, 4]
    assert 'only_here' not in joined  # an array one piece lacks is left out
    repeated = {'steps': np.array([20, 30]), 'x': np.array([2.0, 3.0])}
    assert join_frames([first, repeated])['steps'].tolist() == [0, 10, 20, 30]
    with pytest.raises(ValueError, match=r'piece 1 starts at step 50 where piece 0 ends at step 20 \(frame stride 10'):
        join_frames([first, {'steps': np.array([50, 60]), 'x': np.zeros(2)}])
    with pytest.raises(ValueError, match='piece 1 starts at step 10 where piece 0 ends at step 20'):
        join_frames([first, {'steps': np.array([10, 20]), 'x': np.zeros(2)}])
    with pytest.raises(ValueError, match="piece 0: array 'x' has shape \\(2,\\), not 3 frames"):
        join_frames([{'steps': np.array([0, 1, 2]), 'x': np.zeros(2)}])
    with pytest.raises(ValueError, match='no pieces to join'):
        join_frames([])

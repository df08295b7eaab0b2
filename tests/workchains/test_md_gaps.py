"""MdGapsWorkChain: frames of a recorded CP2K MD in one box, the gap series and MO frames it collects, refusals,
and a real run of PBE0 single points along the trajectory."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.workchains.md import cp2k_md_trajectory
from aiida_qdtraps.workchains.md_gaps import MdGapsWorkChain, collect_md_gaps, select_md_frames


@pytest.fixture
def recorded_trajectory(data_dir, folder_data) -> orm.TrajectoryData:
    """The 7-frame In4PF9 CP2K MD recorded in tests/data/cp2k/md (two chained runs, 1 fs steps, every 2nd printed)."""
    md = data_dir / 'cp2k' / 'md'
    settings = orm.Dict({'md_timestep_fs': 1.0, 'velocity_unit': 'angstrom*fs^-1', 'nve_first_step': None})
    return cp2k_md_trajectory(settings, run_000=folder_data(md), run_001=folder_data(md / 'restarted'))['trajectory']


def test_frames_share_one_box(recorded_trajectory):
    outputs = select_md_frames(recorded_trajectory, orm.Dict({'every': 3}), orm.Float(3.5))
    selection = outputs.pop('selection')
    assert selection['indices'] == [0, 3, 6] and selection['steps'] == [0, 6, 12]
    assert selection['times_fs'] == pytest.approx([0.0, 6.0, 12.0])
    frames = [outputs[key] for key in sorted(outputs)]
    assert len(frames) == 3
    cells = {tuple(np.round(frame.cell, 9).ravel()) for frame in frames}
    assert len(cells) == 1  # one grid for all frames
    positions = recorded_trajectory.get_positions()
    for frame, index in zip(frames, [0, 3, 6]):
        atoms = frame.get_ase()
        assert not atoms.pbc.any()
        # the frame itself, only translated
        shift = atoms.positions - positions[index]
        assert np.allclose(shift, shift[0], atol=1e-9)
        assert atoms.positions.min() >= 3.5 - 1e-9 and atoms.positions.max() <= selection['box_length'] - 3.5 + 1e-9


def _window(homo_column: int) -> orm.ArrayData:
    window = orm.ArrayData()
    occupations = np.zeros((1, 4))
    occupations[0, :homo_column + 1] = 2.0
    window.set_array('occupations', occupations)
    window.set_array('coefficients', np.eye(4)[None])
    window.set_array('overlap', np.eye(4))
    return window


def test_collect_gap_series_and_mo_frames():
    selection = orm.Dict({'indices': [0, 2, 4], 'steps': [0, 2, 4], 'times_fs': [0.0, 2.0, 4.0]})
    params = {f'params_{k:04d}': orm.Dict({'homo_ev': -6.0 - 0.1 * k, 'lumo_ev': -2.0}) for k in range(3)}
    windows = {f'window_{k:04d}': _window(1) for k in range(3)}
    outputs = collect_md_gaps(selection, **params, **windows)
    gaps = outputs['gaps']
    assert gaps.get_array('gaps') == pytest.approx([4.0, 4.1, 4.2])
    assert gaps.base.attributes.get('timestep_fs') == 2.0
    mo_frames = outputs['mo_frames']
    assert mo_frames.get_array('coefficients').shape == (3, 4, 4)
    assert (mo_frames.base.attributes.get('homo_column'), mo_frames.base.attributes.get('lumo_column')) == (1, 2)
    # frames whose HOMO sits in different window columns give no MO frames (the NAC would pair the wrong MOs)
    windows['window_0002'] = _window(2)
    assert 'mo_frames' not in collect_md_gaps(selection, **params, **windows)


@pytest.mark.parametrize('frames, match', [
    ({'every': 0}, 'every must be >= 1'),
    ({'start': 7}, 'start = 7 is outside the trajectory of 7 frames'),
    ({'stride': 2}, r"unknown frames key\(s\) \['stride'\]"),
])
def test_bad_frames_are_refused_before_anything_runs(recorded_cp2k_code, recorded_trajectory, frames, match):
    builder = MdGapsWorkChain.get_builder_from_protocol(recorded_cp2k_code, recorded_trajectory, protocol='fast',
                                                        frames=frames)
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError, match=match):
        run_get_node(builder)
    assert orm.QueryBuilder().append(orm.Node).count() == before


@pytest.fixture
def breathing_inf3() -> orm.TrajectoryData:
    """Seven frames, 1 fs apart, of a planar InF3 whose In–F bonds breathe by ±0.05 Å around 2.0 Å with an 8 fs
    period (the smallest closed-shell molecule the protocols' kinds cover): the engine runs here, the trajectory is
    synthetic."""
    from aiida_qdtraps.analysis.trajectory import MdTrajectory
    from aiida_qdtraps.workchains.dynamics import trajectory_to_node

    angles = np.deg2rad([90.0, 210.0, 330.0])
    bond = 2.0 + 0.05 * np.sin(2 * np.pi * np.arange(7) / 8.0)  # frames 0, 3, 6: 2.0, 2.035, 1.95 Å
    positions = np.zeros((7, 4, 3))
    positions[:, 1:, 0] = bond[:, None] * np.cos(angles)
    positions[:, 1:, 1] = bond[:, None] * np.sin(angles)
    frames = MdTrajectory(symbols=['In', 'F', 'F', 'F'], positions=positions, times_fs=np.arange(7.0))
    return trajectory_to_node(frames, engine='cp2k', md_timestep_fs=1.0).store()


@pytest.mark.slow
def test_real_gaps_along_a_trajectory(cp2k_code, breathing_inf3):
    """Frames 0, 3, 6 of a breathing InF3: PBE (``functional='pbe'``, the fast protocol on a 100 Ry grid, plumbing
    only), each frame from the previous one's wavefunction; gap series, statistics, dephasing and NAC stored."""
    cheap = {'scf': {'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 100},
                                                                    'SCF': {'EPS_SCF': 1.0e-5}}}}}},
             'mo_window': {'occupied': 4, 'virtual': 4}}
    builder = MdGapsWorkChain.get_builder_from_protocol(cp2k_code, breathing_inf3, protocol='fast',
                                                        overrides=cheap, frames={'every': 3}, functional='pbe')
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    gaps = results['gaps']
    assert gaps.get_array('steps').tolist() == [0, 3, 6]
    assert gaps.base.attributes.get('timestep_fs') == pytest.approx(3.0)
    assert np.all((gaps.get_array('gaps') > 1.0) & (gaps.get_array('gaps') < 12.0))
    assert np.ptp(gaps.get_array('gaps')) > 1e-3  # three different geometries
    frames = [node.base.links.get_outgoing(link_label_filter=f'frame_{k:04d}').one().node for k in range(3)]
    # each frame's SCF started from the previous frame's wavefunction
    assert 'parent_calc_folder' not in frames[0].inputs
    assert frames[2].inputs.parent_calc_folder.uuid == frames[1].outputs.remote_folder.uuid
    # the series is what the frames' own outputs say
    homo = [frame.outputs.output_parameters['homo_ev'] for frame in frames]
    assert gaps.get_array('homo') == pytest.approx(homo)
    assert results['statistics']['mean'] == pytest.approx(gaps.get_array('gaps').mean())
    assert 'dephasing_summary' in results and results['dephasing_summary']['tau_fs'] > 0
    assert results['nac'].get_y()[1][1].shape == (2,)


def test_frames_at_the_pbe_level_have_no_exact_exchange(recorded_cp2k_code, recorded_trajectory):
    pbe0 = MdGapsWorkChain.get_builder_from_protocol(recorded_cp2k_code, recorded_trajectory, protocol='fast')
    pbe = MdGapsWorkChain.get_builder_from_protocol(recorded_cp2k_code, recorded_trajectory, protocol='fast',
                                                     functional='pbe')
    assert 'HF' in pbe0.scf_frame.scf.cp2k.parameters['FORCE_EVAL']['DFT']['XC']
    xc = pbe.scf_frame.scf.cp2k.parameters['FORCE_EVAL']['DFT']['XC']
    assert xc == {'XC_FUNCTIONAL': {'PBE': {}}}

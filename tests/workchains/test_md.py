"""QdMdWorkChain: settings, stages, CP2K parameters, the trajectory of recorded runs, the MD restart handler and a
real heat-up -> NVE run of InF3."""

from __future__ import annotations

import re

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.workchains.cp2k_base import QdCp2kBaseWorkChain
from aiida_qdtraps.workchains.md import (
    MD_FILES,
    QdMdWorkChain,
    cp2k_md_trajectory,
    md_settings,
    md_stage_parameters,
    md_stages,
    mo_window,
)
from aiida_qdtraps.workchains.parent_folder import MD_RESTART_FILE

FAST = {'temperature': 300.0, 'timestep_fs': 1.0, 'heatup_fs': 100.0, 'heatup_segments': 2, 'thermostat': 'CSVR',
        'thermostat_tau_fs': 25.0, 'nve_fs': 100.0, 'stride': 1, 'dipole': True, 'orbital_energies': True, 'seed': 1}


@pytest.mark.parametrize('change, match', [
    ({'temperature': -1.0}, 'md.temperature'),
    ({'timestep_fs': 10.0}, 'md.timestep_fs'),
    ({'heatup_fs': -5.0}, 'md.heatup_fs'),
    ({'heatup_fs': 0.0, 'nve_fs': 0.0}, 'nothing to run'),
    ({'heatup_segments': 0}, 'md.heatup_segments'),
    ({'heatup_fs': 3.0, 'heatup_segments': 5}, 'fewer than md.heatup_segments 5'),
    ({'thermostat': 'berendsen'}, "'berendsen'"),
    ({'thermostat_tau_fs': 0.0}, 'thermostat_tau_fs'),
    ({'stride': 0}, 'md.stride'),
    ({'stride': 1.5}, 'md.stride must be int'),
    ({'dipole': 'yes'}, 'md.dipole must be bool'),
    ({'orbital_energies': 1}, 'md.orbital_energies must be bool'),
    ({'seed': 0}, 'md.seed must be >= 1'),
    ({'speed': 1}, "unknown md key"),
])
def test_bad_md_settings_are_named(change, match):
    with pytest.raises(ValueError, match=match):
        md_settings({**FAST, **change})


def test_stages_ramp_the_thermostat_then_nve():
    stages = md_stages(md_settings(FAST))
    assert [(s['name'], s['ensemble'], s['temperature'], s['last_step'], s['steps']) for s in stages] == [
        ('heatup_1', 'NVT', 150.0, 50, 50), ('heatup_2', 'NVT', 300.0, 100, 50), ('nve', 'NVE', 300.0, 200, 100)]
    only_nve = md_stages(md_settings({**FAST, 'heatup_fs': 0.0}))
    assert [(s['name'], s['last_step']) for s in only_nve] == [('nve', 100)]
    assert [s['name'] for s in md_stages(md_settings({**FAST, 'nve_fs': 0.0}))] == ['heatup_1', 'heatup_2']


def test_stage_parameters():
    dft = {'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}, 'MOTION': {'GEO_OPT': {}}, 'FORCE_EVAL': {'DFT': {'SCF': {}}}}
    settings = md_settings({**FAST, 'stride': 5})
    first, second, nve = md_stages(settings)
    p = md_stage_parameters(dft, settings, first, first=True)
    assert p['GLOBAL']['RUN_TYPE'] == 'MD' and 'GEO_OPT' not in p['MOTION'] and 'EXT_RESTART' not in p
    md = p['MOTION']['MD']
    assert (md['ENSEMBLE'], md['STEPS'], md['MAX_STEPS'], md['TEMPERATURE']) == ('NVT', 50, 51, 150.0)
    assert md['THERMOSTAT'] == {'TYPE': 'CSVR', 'REGION': 'GLOBAL', 'CSVR': {'TIMECON': 25.0}}
    assert p['MOTION']['PRINT']['VELOCITIES']['EACH'] == {'MD': 5}
    assert p['MOTION']['PRINT']['RESTART']['EACH'] == {'MD': 1}
    assert p['FORCE_EVAL']['DFT']['PRINT']['MOMENTS']['EACH'] == {'MD': 5}
    p = md_stage_parameters(dft, settings, nve, first=False)
    assert p['MOTION']['MD']['ENSEMBLE'] == 'NVE' and 'THERMOSTAT' not in p['MOTION']['MD']
    # a continuing run does its own steps (STEPS counts from the restarted counter); MAX_STEPS caps all runs
    assert (p['MOTION']['MD']['STEPS'], p['MOTION']['MD']['MAX_STEPS']) == (100, 201)
    assert p['EXT_RESTART']['RESTART_VEL'] and p['EXT_RESTART']['RESTART_COUNTERS']
    assert not p['EXT_RESTART']['RESTART_DEFAULT']  # the thermostat of the heat-up is not carried into NVE
    assert p['FORCE_EVAL']['DFT']['SCF']['SCF_GUESS'] == 'RESTART'
    # the first run from a given wavefunction: the SCF restarts from it, positions and velocities do not
    p = md_stage_parameters(dft, settings, first, first=True, wavefunction=True)
    assert p['FORCE_EVAL']['DFT']['SCF']['SCF_GUESS'] == 'RESTART' and 'EXT_RESTART' not in p
    assert p['FORCE_EVAL']['DFT']['WFN_RESTART_FILE_NAME'] == './parent_calc/aiida-RESTART.wfn'
    assert 'SCF_GUESS' not in md_stage_parameters(dft, settings, first, first=True)['FORCE_EVAL']['DFT']['SCF']
    nose = md_stage_parameters(dft, md_settings({**FAST, 'thermostat': 'nose'}), second, first=False)
    assert nose['MOTION']['MD']['THERMOSTAT']['NOSE'] == {'LENGTH': 3, 'TIMECON': 25.0}
    assert dft['GLOBAL']['RUN_TYPE'] == 'GEO_OPT'  # the input is not changed


def test_orbital_energies_print_a_window_around_the_gap():
    kinds = [{'_': 'In', 'POTENTIAL': 'GTH-PBE-q13'}, {'_': 'F', 'POTENTIAL': 'GTH-PBE-q7'}]
    dft = {'FORCE_EVAL': {'DFT': {'SCF': {'DIAGONALIZATION': {}}}, 'SUBSYS': {'KIND': kinds}}}
    symbols = ['In', 'F', 'F', 'F']
    assert mo_window(dft, symbols, charge=0, multiplicity=1) == (14, 21)  # 34 electrons: HOMO 17
    assert mo_window(dft, symbols, charge=2, multiplicity=1) == (13, 20)
    assert mo_window(dft, symbols, charge=1, multiplicity=2) is None  # open shell: alpha and beta blocks
    ot = {'FORCE_EVAL': {'DFT': {'SCF': {'OT': {}}}, 'SUBSYS': {'KIND': kinds}}}
    assert mo_window(ot, symbols, charge=0, multiplicity=1) is None  # OT has no virtual orbitals
    # GFN1-xTB counts its own valence electrons: Cd6Se4Cl4 has 6*2 + 4*6 + 4*7 = 64, HOMO 32
    xtb = {'FORCE_EVAL': {'DFT': {'QS': {'METHOD': 'xTB'}, 'SCF': {'ADDED_MOS': -1}}}}
    assert mo_window(xtb, ['Cd'] * 6 + ['Se'] * 4 + ['Cl'] * 4, charge=0, multiplicity=1) == (29, 36)

    settings = md_settings({**FAST, 'stride': 2})
    first = md_stages(settings)[0]
    p = md_stage_parameters(dft, settings, first, first=True, window=(14, 21))
    mo = p['FORCE_EVAL']['DFT']['PRINT']['MO']
    assert mo['MO_INDEX_RANGE'] == '14 21' and mo['ENERGIES'] and mo['OCCUPATION_NUMBERS']
    assert mo['EACH'] == {'MD': 2, 'QS_SCF': 0} and mo['FILENAME'] == '=aiida-mo.MOLog'
    assert p['FORCE_EVAL']['DFT']['SCF']['ADDED_MOS'] == 4  # the LUMO and three more are computed
    assert md_stage_parameters(xtb, settings, first, first=True, window=(29, 36))[
        'FORCE_EVAL']['DFT']['SCF']['ADDED_MOS'] == -1  # all MOs stay all MOs
    off = md_stage_parameters(dft, md_settings({**FAST, 'orbital_energies': False}), first, first=True,
                              window=(14, 21))
    assert 'MO' not in off['FORCE_EVAL']['DFT']['PRINT'] and 'ADDED_MOS' not in off['FORCE_EVAL']['DFT']['SCF']
    assert 'MO' not in md_stage_parameters(dft, settings, first, first=True)['FORCE_EVAL']['DFT']['PRINT']


def _with_orbital_energies(source, target, homo: int, shift: float):
    """Copy of a recorded MD folder with an &MO file (one block per dipole block, MOs HOMO-1 .. LUMO+1, the gap
    growing by 0.01 eV per block from 2 eV + shift) and the output line naming the occupied orbitals."""
    import shutil

    shutil.copytree(source, target, ignore=shutil.ignore_patterns('restarted', '*.out'))
    blocks = (source / 'aiida-moments.dat').read_text().count('Dipole moment')
    text = ''
    for b in range(blocks):
        gap = 2.0 + shift + 0.01 * b
        rows = [(homo - 1, -6.5), (homo, -5.0), (homo + 1, -5.0 + gap), (homo + 2, -2.0)]
        text += ('\n MO| EIGENVALUES AND OCCUPATION NUMBERS\n MO|\n'
                 ' MO|  Index  Eigenvalue [a.u.]  Eigenvalue [eV]  Occupation\n')
        text += ''.join(f' MO| {i:6d} {e / 27.211386:20.6f} {e:20.6f} {2.0 if i <= homo else 0.0:20.6f}\n'
                        for i, e in rows)
    (target / 'aiida-mo.MOLog').write_text(text)
    (target / 'aiida.out').write_text(f' Number of electrons: {2 * homo}\n Number of occupied orbitals: {homo}\n')
    return target


def test_trajectory_with_orbital_energies_of_each_frame(data_dir, folder_data, tmp_path):
    """HOMO, LUMO and gap per frame join like the dipoles: the continuing run's first block is its start."""
    from aiida_qdtraps.workchains.dynamics import compute_dephasing, compute_gap_statistics

    md = data_dir / 'cp2k' / 'md'
    first = _with_orbital_energies(md, tmp_path / 'first', homo=47, shift=0.0)
    second = _with_orbital_energies(md / 'restarted', tmp_path / 'second', homo=47, shift=1.0)
    settings = orm.Dict({'md_timestep_fs': 1.0, 'velocity_unit': 'angstrom*fs^-1', 'nve_first_step': 6})
    result = cp2k_md_trajectory(settings, run_000=folder_data(first), run_001=folder_data(second))
    trajectory = result['trajectory']
    gap = trajectory.get_array('gap')
    # steps 0, 2, 4, 6 from the first run; 8, 10, 12 from blocks 2-4 of the second (its block 1 is step 6 again)
    assert gap == pytest.approx([2.0, 2.01, 2.02, 2.03, 3.01, 3.02, 3.03])
    assert trajectory.get_array('homo') == pytest.approx([-5.0] * 7)
    assert trajectory.base.attributes.get('units')['gap'] == 'eV'
    summary = result['md_summary'].get_dict()
    assert summary['nve_gap_mean_ev'] == pytest.approx(3.02) and 'left_out' not in summary
    # the statistics and the dephasing read the trajectory directly, from a given frame on
    statistics = compute_gap_statistics(trajectory, orm.Dict({'start_frame': 4, 'bins': 3}))['statistics']
    assert statistics['mean'] == pytest.approx(3.02) and statistics['lumo']['mean'] == pytest.approx(-1.98)
    _, dephasing = compute_dephasing.run_get_node(trajectory, orm.Dict({'start_frame': 1, 'max_time_fs': 6.0}))
    assert dephasing.exit_status == 0, dephasing.exit_message
    assert dephasing.outputs.summary['dt_fs'] == 2.0

    # a run whose HOMO lies outside the printed range: no orbital energies in the trajectory, and the summary says why
    (second / 'aiida.out').write_text(' Number of occupied orbitals: 60\n')
    result = cp2k_md_trajectory(settings, run_000=folder_data(first), run_001=folder_data(second))
    assert 'gap' not in result['trajectory'].get_arraynames()
    assert 'does not hold the HOMO 60' in result['md_summary']['left_out']['run_001 orbital energies']
    _, node = compute_gap_statistics.run_get_node(result['trajectory'])
    assert node.exit_status == 300 and 'has no array named gap' in node.exit_message
    with pytest.raises(ValueError, match='start_frame 7 leaves fewer than 2 of the 7 gaps'):
        from aiida_qdtraps.workchains.dynamics import gap_series
        gap_series(trajectory, 7)


def test_builder_takes_the_relax_dft_and_the_md_protocol(tiny_qd, recorded_cp2k_code):
    builder = QdMdWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast',
                                                      overrides={'md': {'temperature': 200.0}})
    assert builder.md['temperature'] == 200.0 and builder.md['nve_fs'] == 100.0
    parameters = builder.base.cp2k.parameters.get_dict()
    assert parameters['GLOBAL']['RUN_TYPE'] == 'MD' and 'MOTION' not in parameters
    assert parameters['FORCE_EVAL']['DFT']['MGRID']['CUTOFF'] == 200  # the fast relax grid
    assert parameters['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'GAPW'
    assert set(MD_FILES) <= set(builder.base.cp2k.settings['additional_retrieve_list'])
    assert 'scf' in builder.base.cp2k.monitors
    moderate = QdMdWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd)
    assert moderate.md['nve_fs'] == 35000.0 and moderate.md['heatup_fs'] == 2000.0
    assert moderate.base.cp2k.parameters['FORCE_EVAL']['DFT']['MGRID']['CUTOFF'] == 400
    with pytest.raises(ValueError, match='md.temperature'):
        QdMdWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast',
                                                overrides={'md': {'temperature': 0.0}})



def test_trajectory_of_two_recorded_runs(data_dir, folder_data):
    md = data_dir / 'cp2k' / 'md'
    settings = orm.Dict({'md_timestep_fs': 1.0, 'velocity_unit': 'angstrom*fs^-1', 'nve_first_step': 6})
    result = cp2k_md_trajectory(settings, run_000=folder_data(md), run_001=folder_data(md / 'restarted'))
    trajectory = result['trajectory']
    assert trajectory.get_stepids().tolist() == [0, 2, 4, 6, 8, 10, 12]
    assert trajectory.get_times().tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    assert trajectory.get_array('velocities').shape == (7, 14, 3)
    # the continuing run's first dipole block is its start (step 6, the first run's last frame), not a frame
    dipoles = trajectory.get_array('dipole')
    assert dipoles.shape == (7, 3)
    assert dipoles[4, 0] == pytest.approx(6.2447982 * 0.20819433622621247)
    assert trajectory.get_array('temperature')[0] == pytest.approx(150.0)
    attributes = trajectory.base.attributes.all
    assert attributes['timestep_fs'] == 2.0 and attributes['md_timestep_fs'] == 1.0 and attributes['engine'] == 'cp2k'
    assert attributes['units']['velocities'] == 'angstrom/fs'
    # the positions continue across the restart: the step 6 -> 8 move is like the 4 -> 6 move
    positions = trajectory.get_positions()
    moves = np.abs(np.diff(positions, axis=0)).max(axis=(1, 2))
    assert moves[3] < 3 * moves[2]
    summary = result['md_summary'].get_dict()
    assert summary['frames'] == 7 and summary['runs'] == 2 and summary['nve_frames'] == 3
    assert summary['nve_drift_mev_per_atom_ps'] is not None


def test_trajectory_of_a_run_continued_after_its_wall_time_and_ended_at_its_cap(data_dir, folder_data):
    """A real GFN1-xTB run continued after its wall time (steps 156-170, ended at MAX_STEPS): its dipole and MO files
    hold a block for its start and one for the forces it evaluated after step 170; the frames get the 15 between."""
    from aiida_qdtraps.parsers.cp2k_md_files import read_dipoles, read_mo_energies

    capped = data_dir / 'cp2k' / 'md_capped'
    settings = orm.Dict({'md_timestep_fs': 1.0, 'velocity_unit': 'angstrom*fs^-1', 'nve_first_step': 20})
    result = cp2k_md_trajectory(settings, run_000=folder_data(capped))
    trajectory, summary = result['trajectory'], result['md_summary'].get_dict()
    assert trajectory.get_stepids().tolist() == list(range(156, 171))
    assert 'left_out' not in summary, summary['left_out']
    blocks = read_dipoles((capped / 'aiida-moments.dat').read_text())
    assert len(blocks) == 17
    assert trajectory.get_array('dipole') == pytest.approx(blocks[1:16])
    _, energies, _ = read_mo_energies((capped / 'aiida-mo.MOLog').read_text())
    assert len(energies) == 17 and trajectory.get_array('gap').shape == (15,)
    # the dipole moves smoothly from frame to frame: no block is shifted by one
    steps = np.linalg.norm(np.diff(trajectory.get_array('dipole'), axis=0), axis=1)
    assert steps.max() < 2 * np.median(steps)


def test_trajectory_without_frames_is_refused():
    settings = orm.Dict({'md_timestep_fs': 1.0, 'velocity_unit': 'angstrom*fs^-1', 'nve_first_step': None})
    empty = orm.FolderData()
    empty.base.repository.put_object_from_bytes(b'CP2K started\n', 'aiida.out')
    with pytest.raises(ValueError, match='no MD run wrote a frame'):
        cp2k_md_trajectory(settings, run_000=empty)


@pytest.fixture
def md_base(generate_workchain, recorded_cp2k_code, tiny_qd):
    parameters = md_stage_parameters({'GLOBAL': {}, 'FORCE_EVAL': {'DFT': {'SCF': {'MAX_SCF': 50}}}},
                                     md_settings(FAST), md_stages(md_settings(FAST))[-1], first=False)
    inputs = {'cp2k': {'code': recorded_cp2k_code, 'structure': tiny_qd, 'parameters': orm.Dict(parameters),
                       'metadata': {'options': {'max_wallclock_seconds': 1000, 'resources': {'num_machines': 1}}}}}
    process = generate_workchain(QdCp2kBaseWorkChain, inputs)
    process.setup()
    return process


def test_md_out_of_walltime_continues_from_its_restart_file(md_base, generate_cp2k_calc, data_dir, tmp_path):
    (tmp_path / MD_RESTART_FILE).write_text('restart file of the recorded run\n')  # the recorded run's remote folder
    calc = generate_cp2k_calc({'aiida.out': data_dir / 'cp2k' / 'md' / 'walltime_md.out'}, 'ERROR_OUT_OF_WALLTIME')
    report = md_base.handle_out_of_walltime(calc)
    assert report.do_break and report.exit_code.status == 0
    restart = md_base.ctx.inputs.parameters['EXT_RESTART']
    assert restart['RESTART_DEFAULT'] and restart['RESTART_FILE_NAME'] == './parent_calc/aiida-1.restart'
    assert md_base.ctx.inputs.parent_calc_folder.uuid == calc.outputs.remote_folder.uuid


def test_killed_md_continues_from_its_restart_file(md_base, generate_cp2k_calc, data_dir, tmp_path):
    """Recorded: a GFN1-xTB MD run killed by a CPU-time limit in the SCF of its step 76 (the output just stops): it
    continues from its restart file like a run stopped at its wall time, with one wavefunction restart keyword (the
    aiida-cp2k handler added a second, and CP2K aborted on it)."""
    (tmp_path / MD_RESTART_FILE).write_text('restart file of the recorded run\n')
    calc = generate_cp2k_calc({'aiida.out': data_dir / 'cp2k' / 'md' / 'killed_md.out'}, 'ERROR_OUTPUT_INCOMPLETE')
    report = md_base.restart_incomplete_calculation(calc)
    assert report.do_break and report.exit_code.status == 0
    parameters = md_base.ctx.inputs.parameters.get_dict()
    assert parameters['EXT_RESTART']['RESTART_FILE_NAME'] == './parent_calc/aiida-1.restart'
    assert parameters['EXT_RESTART']['RESTART_DEFAULT']
    dft = parameters['FORCE_EVAL']['DFT']
    assert [key for key in dft if key.upper().endswith('RESTART_FILE_NAME')] == ['WFN_RESTART_FILE_NAME']
    assert md_base.ctx.inputs.parent_calc_folder.uuid == calc.outputs.remote_folder.uuid
    # killed before its first step: it runs again as it was
    before = md_base.ctx.inputs.parameters.get_dict()
    early = generate_cp2k_calc({'aiida.out': 'CP2K started\n SCF WAVEFUNCTION OPTIMIZATION\n'},
                               'ERROR_OUTPUT_INCOMPLETE')
    report = md_base.restart_incomplete_calculation(early)
    assert report.do_break and report.exit_code.status == 0
    assert md_base.ctx.inputs.parameters.get_dict() == before


def test_md_that_completed_no_step_starts_again_from_its_own_parent(md_base, generate_cp2k_calc):
    before = md_base.ctx.inputs.parameters.get_dict()['EXT_RESTART']
    calc = generate_cp2k_calc({'aiida.out': 'CP2K started\n  SCF WAVEFUNCTION OPTIMIZATION\n'},
                              'ERROR_OUT_OF_WALLTIME')
    md_base.handle_out_of_walltime(calc)
    assert md_base.ctx.inputs.parameters['EXT_RESTART'] == before
    assert 'parent_calc_folder' not in md_base.ctx.inputs


def test_a_wavefunction_of_another_qd_is_refused(generate_cp2k_calc, recorded_cp2k_code, tiny_qd):
    """A parent folder from a CP2K run of other atoms is refused before anything is stored; the same atoms pass."""
    other = generate_cp2k_calc({'aiida.out': 'CP2K\n'}, input_structure=_inf3())
    same = generate_cp2k_calc({'aiida.out': 'CP2K\n'}, input_structure=tiny_qd)
    builder = QdMdWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast')
    builder.base.cp2k.parent_calc_folder = other.outputs.remote_folder
    message = QdMdWorkChain.spec().inputs.validate(builder._inputs(prune=True))
    assert message is not None
    assert 'holds the wavefunction of F3In (4 atoms' in message.message
    assert f'not of the structure {tiny_qd.get_formula()} (14 atoms)' in message.message
    builder.base.cp2k.parent_calc_folder = same.outputs.remote_folder
    assert QdMdWorkChain.spec().inputs.validate(builder._inputs(prune=True)) is None


def _inf3() -> orm.StructureData:
    """Planar InF3 with one bond stretched (4 atoms): the smallest In/F system, so three chained CP2K MD runs of the
    ``fast`` DFT stay cheap. The chaining, not the molecule, is under test."""
    from ase import Atoms

    angles = np.radians([0.0, 120.0, 240.0])
    lengths = np.array([1.95, 1.95, 2.05])
    positions = [[0.0, 0.0, 0.0]] + [[r * np.cos(a), r * np.sin(a), 0.0] for r, a in zip(lengths, angles)]
    return orm.StructureData(ase=Atoms('InF3', positions=positions, cell=[10.0, 10.0, 10.0])).store()


#: the ``fast`` DFT on a coarser grid (GAPW, 100 instead of 200 Ry): the cost of these runs is the grid (FFTs and the
#: GGA on it), and the test is about the chaining of the runs, not the forces' last digits
COARSE_GRID = {'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 100}}}}}}


@pytest.mark.slow
def test_real_heatup_then_nve(cp2k_code):
    """InF3, fast DFT on a coarse grid: 2 Nosé–Hoover segments of 2 steps (150 K, 300 K), then 2 NVE steps: three
    CP2K runs, each continuing the one before from its restart file (the xTB CdSe tests run the CSVR default)."""
    n_atoms = 4
    md = {'heatup_fs': 4.0, 'heatup_segments': 2, 'nve_fs': 2.0, 'thermostat_tau_fs': 10.0, 'stride': 1,
          'thermostat': 'NOSE'}
    builder = QdMdWorkChain.get_builder_from_protocol(cp2k_code, _inf3(), protocol='fast',
                                                      overrides={'md': md, 'base': COARSE_GRID})
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    trajectory = results['trajectory']
    assert trajectory.get_stepids().tolist() == list(range(7))
    assert trajectory.get_times()[-1] == pytest.approx(6.0)
    velocities = trajectory.get_array('velocities')
    assert velocities.shape == (7, n_atoms, 3) and np.isfinite(velocities).all()
    # positions move by less than 0.05 Å per fs step, also across the two restarts (steps 2 -> 3, 4 -> 5)
    assert np.abs(np.diff(trajectory.get_positions(), axis=0)).max() < 0.05
    # the CP2K runs are chained through their restart files
    stages = [node.base.links.get_outgoing(link_label_filter=name).one().node
              for name in ('heatup_1', 'heatup_2', 'nve')]
    assert all(stage.is_finished_ok for stage in stages)
    nve_calc = [n for n in stages[2].called if n.process_type == 'aiida.calculations:cp2k'][0]
    assert nve_calc.inputs.parameters['EXT_RESTART']['RESTART_VEL']
    heat_calc = [n for n in stages[1].called if n.process_type == 'aiida.calculations:cp2k'][-1]
    thermostat = heat_calc.inputs.parameters['MOTION']['MD']['THERMOSTAT']
    assert thermostat['TYPE'] == 'NOSE' and thermostat['NOSE'] == {'LENGTH': 3, 'TIMECON': 10.0}
    assert 'Nose-Hoover-Chains' in heat_calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
    assert nve_calc.inputs.parent_calc_folder.uuid == heat_calc.outputs.remote_folder.uuid
    summary = results['md_summary'].get_dict()
    assert summary['runs'] == 3 and summary['nve_frames'] == 2  # steps 5 and 6 (step 4 is the heat-up's last)
    # NVE: the conserved energy of the NVE run stays within 1 meV/atom
    conserved = trajectory.get_array('conserved_energy')[5:]
    assert np.ptp(conserved) / n_atoms < 1e-3
    assert trajectory.get_array('dipole').shape == (7, 3)
    # HOMO/LUMO of every frame (InF3: 34 valence electrons, MOs 14-21 printed, the diagonalisation keeps 4 virtual)
    gap = trajectory.get_array('gap')
    assert gap.shape == (7,) and np.all((gap > 1.0) & (gap < 10.0)), gap
    assert 'left_out' not in summary

    # A second MD given the first one's folder starts its first SCF from that wavefunction: fewer SCF steps than
    # the first run's first SCF from the atomic guess.
    again = QdMdWorkChain.get_builder_from_protocol(cp2k_code, _inf3(), protocol='fast',
                                                     overrides={'md': {**md, 'heatup_fs': 0.0}, 'base': COARSE_GRID})
    again.base.cp2k.parent_calc_folder = results['remote_folder']
    _, second = run_get_node(again)
    assert second.is_finished_ok, second.exit_message
    assert any('starts its first SCF from the wavefunction' in line for line in _reports(second))

    def first_scf(workchain):
        calc = [n for n in workchain.called if n.process_type == 'aiida.calculations:cp2k'][0]
        text = calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
        return calc, int(re.search(r'SCF run converged in\s+(\d+) steps', text).group(1))

    calc, restarted = first_scf(second.base.links.get_outgoing(link_label_filter='nve').one().node)
    assert calc.inputs.parameters['FORCE_EVAL']['DFT']['SCF']['SCF_GUESS'] == 'RESTART'
    assert calc.inputs.parent_calc_folder.uuid == results['remote_folder'].uuid
    _, atomic = first_scf(stages[0])
    assert restarted < atomic, (restarted, atomic)


def _reports(node):
    from aiida.orm import Log

    return [log.message for log in Log.collection.get_logs_for(node)]


def test_cp2k_trajectory_feeds_the_trajectory_analyses(data_dir, folder_data):
    """The CP2K MD trajectory has the layout the analyses read: RMSF and VDOS calcfunctions run on it."""
    from aiida_qdtraps.workchains.dynamics import compute_rmsf, compute_vdos, node_to_trajectory

    md = data_dir / 'cp2k' / 'md'
    settings = orm.Dict({'md_timestep_fs': 1.0, 'velocity_unit': 'angstrom*fs^-1', 'nve_first_step': None})
    runs = {'run_000': folder_data(md), 'run_001': folder_data(md / 'restarted')}
    trajectory = cp2k_md_trajectory(settings, **runs)['trajectory']
    frames = node_to_trajectory(trajectory)
    assert frames.positions.shape == (7, 14, 3) and frames.velocities.shape == (7, 14, 3)
    rmsf, node = compute_rmsf.run_get_node(trajectory)
    assert node.is_finished_ok, node.exit_message
    vdos, node = compute_vdos.run_get_node(trajectory)
    assert node.is_finished_ok, node.exit_message
    assert set(rmsf) and set(vdos)


def test_blocks_of_a_killed_run_that_printed_one_step_past_its_last_frame():
    """A continued run killed after it printed the dipole and MOs of a step but not its frame (seen in a real killed
    GFN1-xTB MD: 34 blocks for 32 frames, no ENERGY line for the last one): the start block and the trailing one go."""
    from aiida_qdtraps.workchains.md_functions import _aligned_blocks

    steps = np.arange(11, 43)
    assert _aligned_blocks(34, steps, list(range(11, 43))) == slice(1, 33)
    assert _aligned_blocks(33, steps, list(range(11, 43))) == slice(1, 33)
    assert _aligned_blocks(35, steps, list(range(11, 43))) is None
    # print stride 2, start at the odd step 9: no start block, one trailing block
    assert _aligned_blocks(5, np.array([10, 12, 14, 16]), [10, 11, 12, 13, 14, 15, 16]) == slice(0, 4)

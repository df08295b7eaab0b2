"""Error handlers of QdCp2kBaseWorkChain, called directly on faked failed CP2K calculations."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import ProcessHandlerReport

from aiida_qdtraps.workchains.cp2k_base import WFN_RESTART, QdCp2kBaseWorkChain, _last_scf_residual
from aiida_qdtraps.workchains.parent_folder import MD_RESTART_FILE, WFN_FILE

FAILED = 'cp2k/failed'


@pytest.fixture(autouse=True)
def restart_files_in_remote_folders(tmp_path):
    """The remote folder of every recorded calculation (``generate_cp2k_calc``: the test's ``tmp_path``) holds the
    restart files a real run leaves there, so that the handlers restart from it (a cleaned folder:
    tests/workchains/test_parent_folder.py)."""
    for name in (WFN_FILE, MD_RESTART_FILE):
        (tmp_path / name).write_text('restart file of the recorded run\n')


def scf_of(process):
    return process.ctx.inputs.parameters.get_dict()['FORCE_EVAL']['DFT']['SCF']


def test_setup_sets_cp2k_walltime(base_workchain):
    process = base_workchain({'MAX_SCF': 20})
    assert process.ctx.inputs.parameters['GLOBAL']['WALLTIME'] == 900


def test_scf_not_converged_diagonalisation(base_workchain, generate_cp2k_calc, data_dir):
    process = base_workchain({'MAX_SCF': 3, 'MIXING': {'ALPHA': 0.3}})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'scf_not_converged.out'}, 'ERROR_SCF_NOT_CONVERGED')
    report = process.handle_scf_not_converged(calc)
    assert isinstance(report, ProcessHandlerReport) and report.do_break and report.exit_code.status == 0
    scf = scf_of(process)
    assert scf['MIXING']['ALPHA'] == 0.15 and scf['MAX_SCF'] == 6
    assert scf['SMEAR'] == {'_': True, 'METHOD': 'FERMI_DIRAC', 'ELECTRONIC_TEMPERATURE': 300}
    assert scf['ADDED_MOS'] == 10
    assert scf['SCF_GUESS'] == 'RESTART'
    assert process.ctx.inputs.parameters['FORCE_EVAL']['DFT']['WFN_RESTART_FILE_NAME'] == WFN_RESTART
    assert process.ctx.inputs.parent_calc_folder.uuid == calc.outputs.remote_folder.uuid


def test_diverged_diagonalisation_retries_at_alpha_0_1_from_the_atomic_guess(base_workchain, generate_cp2k_calc,
                                                                           data_dir):
    """Recorded: Cd13Se4Cl18 (35 atoms) with the protocols' density-matrix mixing at ALPHA 0.4, residual 11-18 after
    30 steps. The first retry mixes at ALPHA 0.1 with 300 K smearing from the atomic guess (not the diverged
    wavefunction); a run that fails again at ALPHA 0.1 goes on to the ALPHA / 2 rung, from its wavefunction."""
    process = base_workchain({'MAX_SCF': 100, 'SCF_GUESS': 'ATOMIC', 'DIAGONALIZATION': {'ALGORITHM': 'STANDARD'},
                              'MIXING': {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.4}}, run_type='GEO_OPT')
    diverged = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'scf_diverged.out'}, 'ERROR_SCF_NOT_CONVERGED')
    assert _last_scf_residual(diverged) == pytest.approx(11.42354274)
    report = process.handle_scf_not_converged(diverged)
    assert report.do_break and report.exit_code.status == 0
    scf = scf_of(process)
    assert scf['MIXING'] == {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.1}
    assert scf['SCF_GUESS'] == 'ATOMIC' and scf['MAX_SCF'] == 150 and scf['ADDED_MOS'] == 10
    assert scf['SMEAR'] == {'_': True, 'METHOD': 'FERMI_DIRAC', 'ELECTRONIC_TEMPERATURE': 300}
    assert 'parent_calc_folder' not in process.ctx.inputs
    process.handle_scf_not_converged(diverged)
    scf = scf_of(process)
    assert scf['MIXING']['ALPHA'] == 0.05 and scf['MAX_SCF'] == 300 and scf['SCF_GUESS'] == 'RESTART'
    assert process.ctx.inputs.parent_calc_folder.uuid == diverged.outputs.remote_folder.uuid


def test_scf_not_converged_broyden_switches_to_p_mixing_diis_then_smears(base_workchain, generate_cp2k_calc,
                                                                        data_dir):
    """Broyden (the protocols' mixing) -> density-matrix mixing + DIIS from the atomic guess -> ALPHA / 2 + smearing."""
    process = base_workchain({'MAX_SCF': 150, 'SCF_GUESS': 'ATOMIC',
                              'MIXING': {'METHOD': 'BROYDEN_MIXING', 'ALPHA': 0.3, 'NBROYDEN': 8}})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'scf_not_converged.out'}, 'ERROR_SCF_NOT_CONVERGED')
    report = process.handle_scf_not_converged(calc)
    assert report.do_break and report.exit_code.status == 0
    scf = scf_of(process)
    assert scf['MIXING']['METHOD'] == 'DIRECT_P_MIXING' and scf['MIXING']['ALPHA'] == 0.4
    assert scf['SCF_GUESS'] == 'ATOMIC' and scf['MAX_SCF'] == 150 and 'SMEAR' not in scf
    assert 'parent_calc_folder' not in process.ctx.inputs
    process.handle_scf_not_converged(calc)
    scf = scf_of(process)
    assert scf['MIXING'] == {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.2, 'NBROYDEN': 12}
    assert scf['SMEAR']['_'] is True and scf['SCF_GUESS'] == 'RESTART' and scf['MAX_SCF'] == 300


def test_scf_stalled_near_convergence_keeps_its_wavefunction(base_workchain, generate_cp2k_calc, data_dir):
    """A Broyden run whose last SCF step was at residual 1e-5 switches to density-matrix mixing + DIIS but continues
    from its wavefunction instead of the atomic guess. (Recorded: the end of an F6In6P3³⁺ PBE GEO_OPT, at first
    read as stalled; it was a finished relax, which the parser now accepts, but its last lines are what a real stall
    near convergence looks like to the handler.)"""
    process = base_workchain({'MAX_SCF': 15, 'MIXING': {'METHOD': 'BROYDEN_MIXING', 'ALPHA': 0.3}}, run_type='GEO_OPT')
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'scf_stalled_geo_opt.out'}, 'ERROR_SCF_NOT_CONVERGED')
    assert _last_scf_residual(calc) == pytest.approx(9.78e-6)
    process.handle_scf_not_converged(calc)
    scf = scf_of(process)
    assert scf['MIXING']['METHOD'] == 'DIRECT_P_MIXING' and scf['SCF_GUESS'] == 'RESTART' and scf['MAX_SCF'] == 150
    assert process.ctx.inputs.parent_calc_folder.uuid == calc.outputs.remote_folder.uuid


def test_scf_not_converged_keeps_existing_smearing(base_workchain, generate_cp2k_calc, data_dir):
    """A second failure (smearing already on, e.g. the hybrid protocol's 12 added MOs) only lowers the mixing."""
    process = base_workchain({'MAX_SCF': 3, 'ADDED_MOS': 12, 'MIXING': {'ALPHA': 0.3},
                              'SMEAR': {'_': True, 'METHOD': 'FERMI_DIRAC', 'ELECTRONIC_TEMPERATURE': 500}})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'scf_not_converged.out'}, 'ERROR_SCF_NOT_CONVERGED')
    process.handle_scf_not_converged(calc)
    scf = scf_of(process)
    assert scf['SMEAR']['ELECTRONIC_TEMPERATURE'] == 500 and scf['ADDED_MOS'] == 12
    assert scf['MIXING']['ALPHA'] == 0.15


@pytest.mark.parametrize('off', [False, 'F', '.FALSE.', 'N', 'no', 'OFF'])
def test_scf_not_converged_switches_on_smearing_written_off_in_any_cp2k_spelling(base_workchain, generate_cp2k_calc,
                                                                                 data_dir, off):
    """A ``&SMEAR`` section whose section parameter is a CP2K false ('N' and 'NO' included: the handler once read
    them as on and left smearing off) counts as off, so the handler switches on its 300 K smearing."""
    process = base_workchain({'MAX_SCF': 3, 'MIXING': {'ALPHA': 0.3}, 'SMEAR': {'_': off, 'METHOD': 'FERMI_DIRAC'}})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'scf_not_converged.out'}, 'ERROR_SCF_NOT_CONVERGED')
    process.handle_scf_not_converged(calc)
    scf = scf_of(process)
    assert scf['SMEAR']['_'] is True and scf['SMEAR']['ELECTRONIC_TEMPERATURE'] == 300 and scf['ADDED_MOS'] == 10


def test_scf_not_converged_ot_written_off_is_not_ot(base_workchain, generate_cp2k_calc, data_dir):
    """An ``&OT`` section switched off as 'NO' is diagonalisation: the Broyden rung applies, not the OT ladder."""
    process = base_workchain({'MAX_SCF': 150, 'OT': {'_': 'NO', 'MINIMIZER': 'DIIS'},
                              'MIXING': {'METHOD': 'BROYDEN_MIXING', 'ALPHA': 0.3}})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'scf_not_converged.out'}, 'ERROR_SCF_NOT_CONVERGED')
    process.handle_scf_not_converged(calc)
    scf = scf_of(process)
    assert scf['MIXING']['METHOD'] == 'DIRECT_P_MIXING' and scf['OT']['MINIMIZER'] == 'DIIS'


def test_scf_not_converged_ot_ladder_and_give_up(base_workchain, generate_cp2k_calc, data_dir):
    process = base_workchain({'MAX_SCF': 30, 'OT': {'MINIMIZER': 'DIIS'}})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'scf_not_converged.out'}, 'ERROR_SCF_NOT_CONVERGED')
    process.handle_scf_not_converged(calc)
    assert scf_of(process)['OT'] == {'MINIMIZER': 'CG', 'PRECONDITIONER': 'FULL_ALL'}
    process.handle_scf_not_converged(calc)
    scf = scf_of(process)
    # density-matrix mixing, not Broyden (which diverged on GAPW inputs)
    assert scf['OT']['_'] is False and scf['MIXING'] == {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.2}
    process.handle_scf_not_converged(calc)
    scf = scf_of(process)
    assert scf['MIXING']['ALPHA'] == 0.1 and scf['SMEAR']['_'] is True
    report = process.handle_scf_not_converged(calc)
    assert report.exit_code.status == QdCp2kBaseWorkChain.exit_codes.ERROR_SCF_NOT_CONVERGED_AFTER_RETRIES.status


def test_handler_ignores_other_exit_codes(base_workchain, generate_cp2k_calc, data_dir):
    process = base_workchain({'MAX_SCF': 3})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'walltime.out'}, 'ERROR_OUT_OF_WALLTIME')
    assert process.handle_scf_not_converged(calc) is None


@pytest.mark.parametrize('recorded, exit_code, optimizer', [
    ('geo_max_iter.out', 'ERROR_MAXIMUM_NUMBER_OPTIMIZATION_STEPS_REACHED', None),  # the optimiser as it was
    # CP2K's LBFGS ended it on its own criteria above MAX_FORCE and would stop there again: BFGS
    ('xtb_lbfgs_stopped_above_criterion.out', 'ERROR_GEOMETRY_CONVERGENCE_NOT_REACHED', 'BFGS'),
])
def test_geometry_not_converged_continues_from_last_geometry(base_workchain, generate_cp2k_calc, data_dir, tiny_qd,
                                                             recorded, exit_code, optimizer):
    process = base_workchain({'MAX_SCF': 50}, run_type='GEO_OPT')
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / recorded}, exit_code, structure=tiny_qd)
    report = process.handle_geometry_not_converged(calc)
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.inputs.parent_calc_folder.uuid == calc.outputs.remote_folder.uuid
    assert scf_of(process)['SCF_GUESS'] == 'RESTART'
    assert process.ctx.inputs.parameters.get_dict().get('MOTION', {}).get('GEO_OPT', {}).get('OPTIMIZER') == optimizer


def test_geometry_not_converged_without_structure_gives_up(base_workchain, generate_cp2k_calc, data_dir):
    process = base_workchain({'MAX_SCF': 50}, run_type='GEO_OPT')
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'geo_max_iter.out'},
                              'ERROR_MAXIMUM_NUMBER_OPTIMIZATION_STEPS_REACHED')
    report = process.handle_geometry_not_converged(calc)
    assert report.exit_code.status == QdCp2kBaseWorkChain.exit_codes.NO_RESTART_DATA.status


def test_walltime_restarts_from_wavefunction(base_workchain, generate_cp2k_calc, data_dir):
    process = base_workchain({'MAX_SCF': 50})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'walltime.out'}, 'ERROR_OUT_OF_WALLTIME')
    report = process.handle_out_of_walltime(calc)
    assert report.do_break and report.exit_code.status == 0
    assert scf_of(process)['SCF_GUESS'] == 'RESTART'


def test_walltime_without_progress_asks_for_more_time(base_workchain, generate_cp2k_calc):
    process = base_workchain({'MAX_SCF': 50})
    calc = generate_cp2k_calc({'aiida.out': 'CP2K started\n exceeded requested execution time\n'},
                              'ERROR_OUT_OF_WALLTIME')
    process.handle_out_of_walltime(calc)
    assert process.ctx.inputs.metadata['options']['max_wallclock_seconds'] == 1500
    assert process.ctx.inputs.parameters['GLOBAL']['WALLTIME'] == 1350


def test_incomplete_output_is_restarted(base_workchain, generate_cp2k_calc, data_dir):
    process = base_workchain({'MAX_SCF': 50})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'incomplete.out'}, 'ERROR_OUTPUT_INCOMPLETE')
    report = process.restart_incomplete_calculation(calc)
    assert report.exit_code.status == 0
    assert process.ctx.inputs.parent_calc_folder.uuid == calc.outputs.remote_folder.uuid


def test_eigensolver_crash_retries_with_scalapack(base_workchain, generate_cp2k_calc, data_dir):
    """Recorded: Debian's CP2K 2026.2 stopped by SIGFPE inside ELPA (a truncated output and the backtrace on its
    standard error): the run is repeated with PREFERRED_DIAG_LIBRARY SCALAPACK, from scratch; a second crash with
    ScaLAPACK already set is left to the other handlers."""
    process = base_workchain({'MAX_SCF': 50})
    files = {'aiida.out': data_dir / FAILED / 'elpa_sigfpe_2026.2.out',
             '_scheduler-stderr.txt': data_dir / FAILED / 'elpa_sigfpe_2026.2.stderr'}
    calc = generate_cp2k_calc(files, 'ERROR_OUTPUT_INCOMPLETE')
    report = process.handle_eigensolver_crash(calc)
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.inputs.parameters['GLOBAL']['PREFERRED_DIAG_LIBRARY'] == 'SCALAPACK'
    assert 'parent_calc_folder' not in process.ctx.inputs
    assert process.handle_eigensolver_crash(calc) is None
    # an incomplete output without such a backtrace is not this handler's
    plain = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'incomplete.out'}, 'ERROR_OUTPUT_INCOMPLETE')
    assert base_workchain({'MAX_SCF': 50}).handle_eigensolver_crash(plain) is None


def test_pdos_section_of_older_cp2k_is_moved_for_cp2k_2026(base_workchain, generate_cp2k_calc, data_dir):
    """Recorded: CP2K 2026.2 aborting on the hybrid stage's ``PRINT/PDOS`` ("unknown subsection PDOS of section
    PRINT"): the section moves to ``PRINT/DOS/PDOS`` through ``move_pdos_into_dos`` and the run is repeated; once
    moved, or for another abort, the handler leaves it to the others."""
    process = base_workchain({'MAX_SCF': 50})
    parameters = process.ctx.inputs.parameters.get_dict()
    parameters['FORCE_EVAL']['DFT']['PRINT'] = {'PDOS': {'NLUMO': -1, 'COMPONENTS': False},
                                                'MO_MOLDEN': {'NDIGITS': 12}}
    process.ctx.inputs.parameters = orm.Dict(parameters)
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'pdos_section_2026.2.out'},
                              'ERROR_OUTPUT_CONTAINS_ABORT')
    report = process.handle_pdos_input_layout(calc)
    assert report.do_break and report.exit_code.status == 0
    printed = process.ctx.inputs.parameters['FORCE_EVAL']['DFT']['PRINT']
    assert printed == {'DOS': {'NLUMO': -1, 'PDOS': {'COMPONENTS': False}}, 'MO_MOLDEN': {'NDIGITS': 12}}
    assert process.ctx.inputs.parameters.creator.process_label == 'move_pdos_into_dos'
    assert process.handle_pdos_input_layout(calc) is None  # nothing left to move
    other = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'elpa_sigfpe_2026.2.out'},
                               'ERROR_OUTPUT_CONTAINS_ABORT')
    assert base_workchain({'MAX_SCF': 50}).handle_pdos_input_layout(other) is None


def test_pdos_section_move_keeps_everything_else():
    from aiida_qdtraps.workchains.cp2k_parameters import move_pdos_into_dos, pdos_in_dos_section

    given = {'FORCE_EVAL': {'DFT': {'PRINT': {'pdos': {'NLUMO': 20, 'components': True, 'EACH': {'QS_SCF': 0}},
                                              'DOS': {'DELTA_E': 0.001}}}}, 'GLOBAL': {'RUN_TYPE': 'ENERGY'}}
    moved = pdos_in_dos_section(given)
    assert moved == {'FORCE_EVAL': {'DFT': {'PRINT': {'DOS': {'DELTA_E': 0.001, 'NLUMO': 20, 'EACH': {'QS_SCF': 0},
                                                              'PDOS': {'components': True}}}}},
                     'GLOBAL': {'RUN_TYPE': 'ENERGY'}}
    assert 'pdos' in given['FORCE_EVAL']['DFT']['PRINT']  # a copy
    assert pdos_in_dos_section({'FORCE_EVAL': {'DFT': {}}}) is None
    with pytest.raises(ValueError, match='no FORCE_EVAL/DFT/PRINT/PDOS section'):
        move_pdos_into_dos(orm.Dict({'GLOBAL': {}}))


def test_robust_scf_settings_are_valid_cp2k_input(base_workchain, generate_cp2k_calc, data_dir, tmp_path, find_engine):
    """The inputs the SCF handler writes (OT switched off, diagonalisation) pass ``cp2k --check``."""
    import subprocess

    from aiida_cp2k.utils import Cp2kInput

    executable = find_engine('cp2k.psmp')
    process = base_workchain({'MAX_SCF': 30, 'OT': {'MINIMIZER': 'DIIS'}, 'OUTER_SCF': {'MAX_SCF': 5}})
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'scf_not_converged.out'}, 'ERROR_SCF_NOT_CONVERGED')
    for _ in range(3):  # OT CG, diagonalisation + density-matrix mixing + DIIS, ALPHA / 2 + smearing
        process.handle_scf_not_converged(calc)
        (tmp_path / 'aiida.inp').write_text(Cp2kInput(process.ctx.inputs.parameters.get_dict()).render())
        result = subprocess.run([executable, '--check', '-i', 'aiida.inp'], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout[-2000:]


def test_grid_quality_is_reported_and_changes_nothing(base_workchain, generate_cp2k_calc, data_dir):
    """A successful run on the fast relax grid (recorded In4PF9, 200 Ry: 28 edge warnings, 2e-3 electrons lost) is
    reported in `verdi process report`; a 400 Ry run is not; neither is restarted."""
    from aiida_qdtraps.parsers.cp2k import QdCp2kParser

    reports = []
    for name in ('in4pf9_200ry.out', 'in4pf9_400ry.out'):
        process = base_workchain({'MAX_SCF': 50})
        process.report = reports.append
        files = {'aiida.out': data_dir / 'cp2k' / 'grid' / name}
        results, parsing = QdCp2kParser.parse_from_node(generate_cp2k_calc(files), store_provenance=False)
        assert parsing.is_finished_ok, (parsing.exit_status, parsing.exit_message)
        calc = generate_cp2k_calc(files, outputs={'output_parameters': results['output_parameters'].clone()})
        before = process.ctx.inputs.parameters.get_dict()
        assert process.report_grid_quality(calc) is None
        assert process.ctx.inputs.parameters.get_dict() == before
    assert len(reports) == 1
    assert '-1.9e-03 electrons lost on the real-space grid' in reports[0]
    assert '28 CP2K warnings of density on the cell faces' in reports[0]


def test_unconverged_scf_cycles_on_the_way_are_reported(base_workchain, generate_cp2k_calc, data_dir):
    """A finished GEO_OPT with one unconverged SCF cycle on its way (recorded F6In6P3³⁺) is reported, not restarted."""
    from aiida_qdtraps.parsers.cp2k import QdCp2kParser

    reports = []
    process = base_workchain({'MAX_SCF': 100})
    process.report = reports.append
    name = 'scf_unconverged_early_geo_opt_completed'
    files = {'aiida.out': data_dir / FAILED / f'{name}.out', 'aiida-1.restart': data_dir / FAILED / f'{name}-1.restart',
             'aiida-pos-1.xyz': data_dir / FAILED / f'{name}-pos-1.xyz'}
    results, parsing = QdCp2kParser.parse_from_node(generate_cp2k_calc(files, parameters={'GLOBAL': {
        'RUN_TYPE': 'GEO_OPT'}}), store_provenance=False)
    assert parsing.is_finished_ok
    calc = generate_cp2k_calc(files, outputs={'output_parameters': results['output_parameters'].clone()})
    before = process.ctx.inputs.parameters.get_dict()
    assert process.report_unconverged_scf_cycles(calc) is None
    assert process.ctx.inputs.parameters.get_dict() == before
    assert reports == [f'{calc.process_label}<{calc.pk}>: 1 SCF cycle(s) on the way did not converge and CP2K '
                       'carried on; the last step and the final re-evaluation converged, so the result stands.']


def test_geo_opt_stopped_by_the_monitor_gets_the_scf_rung(base_workchain, generate_cp2k_calc, data_dir):
    """Recorded: a real In4PF9 ``fast`` GEO_OPT with MAX_SCF 3 that the ``cp2k_scf`` monitor stopped right after its
    first (unconverged) SCF cycle, before CP2K moved the atoms on its forces. The parser reads it as
    ERROR_SCF_NOT_CONVERGED and the handler retries from its wavefunction with ALPHA / 2 and smearing."""
    from aiida_qdtraps.monitors import default_cp2k_monitors
    from aiida_qdtraps.parsers.cp2k import QdCp2kParser

    process = base_workchain({'MAX_SCF': 3, 'MIXING': {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.4}}, run_type='GEO_OPT')
    stopped = generate_cp2k_calc({'aiida.out': data_dir / FAILED / 'geo_opt_stopped_by_monitor.out'},
                                 'ERROR_SCF_NOT_CONVERGED', monitors=default_cp2k_monitors(),
                                 parameters={'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}})
    _, parsed = QdCp2kParser.parse_from_node(stopped, store_provenance=False)
    assert parsed.exit_status == 450
    process.handle_scf_not_converged(stopped)
    scf = scf_of(process)
    assert scf['MIXING']['ALPHA'] == 0.2 and scf['MAX_SCF'] == 6 and scf['SMEAR']['_'] is True
    assert scf['SCF_GUESS'] == 'RESTART'


def test_diverged_scf_stopped_by_the_monitor_gets_the_diverged_rung(base_workchain, generate_cp2k_calc,
                                                                  recorded_cp2k_output):
    """The Cd13Se4Cl18 output as the monitor leaves it (stopped at step 14 of 100, residual 11-28): the diverged rung
    (ALPHA 0.1 from the atomic guess), the same as after the whole run."""
    process = base_workchain({'MAX_SCF': 100, 'SCF_GUESS': 'ATOMIC', 'DIAGONALIZATION': {'ALGORITHM': 'STANDARD'},
                              'MIXING': {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.4}}, run_type='GEO_OPT')
    stopped = generate_cp2k_calc({'aiida.out': recorded_cp2k_output('scf_diverged.out', 1, 14)},
                                 'ERROR_SCF_NOT_CONVERGED')
    assert _last_scf_residual(stopped) > 10
    process.handle_scf_not_converged(stopped)
    scf = scf_of(process)
    assert scf['MIXING'] == {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.1} and scf['SCF_GUESS'] == 'ATOMIC'


@pytest.mark.parametrize('recorded', ['scf_not_converged.out', 'scf_diverged.out'])
def test_scf_retry_drops_screening_on_the_initial_density(base_workchain, generate_cp2k_calc, data_dir, recorded):
    """A PBE0 restarted from a converged wavefunction screens the exact exchange on that density
    (SCREEN_ON_INITIAL_P); a retry starts from the atomic guess or an unconverged wavefunction, so it is switched off
    (other HF settings stay)."""
    process = base_workchain({'MAX_SCF': 100, 'SCF_GUESS': 'RESTART', 'DIAGONALIZATION': {'ALGORITHM': 'STANDARD'},
                              'MIXING': {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.4}})
    parameters = process.ctx.inputs.parameters.get_dict()
    parameters['FORCE_EVAL']['DFT']['XC'] = {'HF': {'FRACTION': 0.25, 'SCREENING': {'EPS_SCHWARZ': 1.0e-7,
                                                                                   'SCREEN_ON_INITIAL_P': True}}}
    process.ctx.inputs.parameters = orm.Dict(parameters)
    calc = generate_cp2k_calc({'aiida.out': data_dir / FAILED / recorded}, 'ERROR_SCF_NOT_CONVERGED')
    process.handle_scf_not_converged(calc)
    hf = process.ctx.inputs.parameters.get_dict()['FORCE_EVAL']['DFT']['XC']['HF']
    assert hf == {'FRACTION': 0.25, 'SCREENING': {'EPS_SCHWARZ': 1.0e-7, 'SCREEN_ON_INITIAL_P': False}}

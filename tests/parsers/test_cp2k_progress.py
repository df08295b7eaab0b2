"""The progress reader of CP2K outputs (SCF cycles, evaluation energies) and the stop rules of the SCF monitor."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_qdtraps.parsers.cp2k_progress import (
    crashed_in_library,
    lbfgs_stopped_above_criterion,
    optimisation_stalled,
    read_abort_message,
    read_evaluation_energies,
    read_run_type,
    read_scf_cycles,
    scf_diverged,
    scf_stalled,
    stop_reason,
)


def test_read_scf_cycles_of_a_geo_opt(recorded_cp2k_output):
    text = recorded_cp2k_output('scf_unconverged_early_geo_opt_completed.out')
    cycles = read_scf_cycles(text)
    assert read_run_type(text) == 'GEO_OPT'
    assert [(len(cycle.residuals), cycle.status) for cycle in cycles] == [
        (100, 'not converged'), (11, 'converged'), (15, 'converged'), (15, 'converged')]
    assert cycles[0].residuals[0] == pytest.approx(1.07, abs=0.01)
    assert np.all(cycles[1].energies < -400)
    assert len(read_evaluation_energies(text)) == 3


def test_running_cycle_and_newer_energy_line():
    text = ('  Step     Update method      Time    Convergence         Total energy    Change\n'
            '     1 P_Mix/Diag. 0.40E+00    6.9     1.50000000     -1208.9220386714 -1.21E+03\n'
            '     2 OT DIIS     0.15E+00    0.5     0.01234567     -1209.0000000000 -7.80E-02\n'
            '     3 OT DIIS     0.15E+00    0.5     8.8773E-10     -1209.0000000001 -1.00E-10\n'
            ' ENERGY| Total FORCE_EVAL ( QS ) energy [hartree]               -1209.06290000\n')
    (cycle,) = read_scf_cycles(text)
    assert cycle.status == 'running' and cycle.residuals.tolist() == [1.5, 0.01234567, 8.8773e-10]
    assert read_evaluation_energies(text).tolist() == [-1209.0629]
    assert read_run_type(text) is None


def test_unconverged_cycle_of_a_geo_opt_stops_it(recorded_cp2k_output):
    kind, message = stop_reason(recorded_cp2k_output('scf_not_converged_geo_opt.out'))
    assert kind == 'scf_unconverged'
    assert 'SCF cycle 1 of this GEO_OPT' in message and '3 steps' in message
    # without that rule, the optimisation on unconverged forces is caught going nowhere: no lower energy in its last
    # 25 of 48 evaluations
    kind, message = stop_reason(recorded_cp2k_output('scf_not_converged_geo_opt.out'), stop_unconverged_scf=False)
    assert kind == 'geometry_stalled' and 'last 25 of 48 evaluations' in message
    # a single point ends after its unconverged cycle anyway: nothing to stop
    assert stop_reason(recorded_cp2k_output('scf_not_converged.out')) is None


def test_diverged_scf_is_stopped_after_ten_steps_above_five_times_its_start(recorded_cp2k_output):
    # Cd13Se4Cl18, density-matrix mixing ALPHA 0.4: residual 1.78 at step 1, 11-28 from step 9 on
    assert stop_reason(recorded_cp2k_output('scf_diverged.out', 1, 13)) is None
    kind, message = stop_reason(recorded_cp2k_output('scf_diverged.out', 1, 14))
    assert kind == 'scf_diverged' and '14 steps' in message


def test_stalled_scf_is_stopped_when_fifty_steps_gain_less_than_five(recorded_cp2k_output):
    # F6In6P3 GEO_OPT, Broyden mixing: the first cycle oscillated 100 steps between residuals 1e-3 and 0.7
    name = 'scf_unconverged_early_geo_opt_completed.out'
    assert stop_reason(recorded_cp2k_output(name, 1, 79)) is None
    kind, message = stop_reason(recorded_cp2k_output(name, 1, 80))
    assert kind == 'scf_stalled' and '80 steps' in message
    assert stop_reason(recorded_cp2k_output(name, 1, 80), scf_window=60) is None


def test_converging_scf_is_never_stopped():
    # a slow but steady SCF: 8 % per step from a residual of 2 (one of the slowest seen converge: ~10 %)
    residuals = 2.0 * 0.92 ** np.arange(200)
    assert not any(scf_stalled(residuals[:n]) or scf_diverged(residuals[:n]) for n in range(1, 201))
    # overshooting its first residual for a few steps is not divergence
    assert not scf_diverged([1.0, 3.0, 8.0, 9.0, 6.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02])


def test_optimisation_stalled():
    descending = -100 - 1e-4 * np.arange(60)
    assert not optimisation_stalled(descending)
    oscillating = np.concatenate([descending[:10], descending[9] + 1e-4 * (np.arange(30) % 2)])
    assert optimisation_stalled(oscillating)
    assert not optimisation_stalled(oscillating[:34]) and optimisation_stalled(oscillating[:35])


@pytest.mark.parametrize('function, kwargs', [
    (scf_stalled, {'window': 0}), (scf_stalled, {'factor': 1.0}), (scf_diverged, {'window': 0}),
    (optimisation_stalled, {'tolerance': -1.0})])
def test_bad_thresholds_are_refused(function, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        function(np.ones(100), **kwargs)


def test_crash_inside_a_library_is_read_from_the_backtrace(data_dir):
    """Recorded: Debian's CP2K 2026.2 stopped by SIGFPE inside ELPA before its first SCF step, run by aiida-cp2k
    (which sends CP2K's standard error into the main output; the scheduler's standard error has the shell's line)."""
    failed = data_dir / 'cp2k' / 'failed'
    stderr = (failed / 'elpa_sigfpe_2026.2.out').read_text()
    assert crashed_in_library((failed / 'elpa_sigfpe_2026.2.stderr').read_text(), 'elpa') is None
    assert crashed_in_library(stderr, 'elpa') == 'SIGFPE'
    assert crashed_in_library(stderr, 'ELPA') == 'SIGFPE'
    assert crashed_in_library(stderr, 'scalapack') is None
    assert crashed_in_library('', 'elpa') is None
    assert crashed_in_library('elpa_invert_trm mentioned, but no signal\n', 'elpa') is None
    # a signal whose backtrace runs through other code only
    other = 'Program received signal SIGSEGV: Segmentation fault\n\nBacktrace for this error:\n#0  0x7f in ???\n' \
            '#1  0x7f1 in __dbcsr_mm_MOD_dbcsr_multiply\n'
    assert crashed_in_library(other, 'elpa') is None and crashed_in_library(other, 'dbcsr') == 'SIGSEGV'


def test_abort_message(data_dir):
    """The words of CP2K's [ABORT] box without its drawing or source file; None without a box."""
    failed = data_dir / 'cp2k' / 'failed'
    assert read_abort_message((failed / 'pdos_section_2026.2.out').read_text()) == \
        'unknown subsection PDOS of section PRINT'
    assert read_abort_message((failed / 'elpa_sigfpe_2026.2.out').read_text()) is None
    box = (' ' + '*' * 79 + '\n *   ___' + ' ' * 69 + '*\n *  /   \\' + ' ' * 68 + '*\n * [ABORT]' + ' ' * 69 + '*\n'
           ' *  \\___/  The specified OLD file <BASIS_MOLOPT> cannot be opened. It does not *\n'
           ' *    |              exist. Data directory path: /usr/share/cp2k/data          *\n'
           ' *  O/|                                                                        *\n'
           ' * /| |                                                                        *\n'
           ' * / \\                                                   common/cp_files.F:406 *\n'
           ' ' + '*' * 79 + '\n')
    assert read_abort_message(box) == ('The specified OLD file <BASIS_MOLOPT> cannot be opened. It does not exist. '
                                       'Data directory path: /usr/share/cp2k/data')


def test_lbfgs_stop_above_the_force_criterion_is_found(data_dir):
    """The recorded GFN1-xTB relax of the built In4PF9: CP2K's LBFGS ended it on its own criteria at step 51."""
    text = (data_dir / 'cp2k' / 'failed' / 'xtb_lbfgs_stopped_above_criterion.out').read_text()
    assert lbfgs_stopped_above_criterion(text) == pytest.approx((1.6602960e-3, 4.5e-4))
    # a completed optimisation, or an LBFGS stop below the limit, is not
    assert lbfgs_stopped_above_criterion(text + '\n GEOMETRY OPTIMIZATION COMPLETED\n') is None
    below = text.replace('Max. gradient              =         0.0016602960',
                         'Max. gradient              =         0.0004000000')
    assert lbfgs_stopped_above_criterion(below) is None
    assert lbfgs_stopped_above_criterion('no optimisation here') is None

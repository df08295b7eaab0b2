"""The ``qdtraps.cp2k_scf`` CalcJob monitor on outputs in a real (local) remote folder, and the parser's reading of
the outputs it stopped."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine.processes.calcjobs.monitors import CalcJobMonitor

from aiida_qdtraps.monitors import CP2K_SCF_DEFAULTS, cp2k_scf, default_cp2k_monitors, monitor_settings
from aiida_qdtraps.parsers.cp2k import QdCp2kParser
from aiida_qdtraps.parsers.cp2k_progress import stop_reason


@pytest.fixture
def running_job(aiida_localhost, tmp_path):
    """An unstored CalcJobNode whose remote work directory holds ``text`` as its CP2K output."""

    def factory(text: str) -> orm.CalcJobNode:
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:cp2k')
        node.set_option('output_filename', 'aiida.out')
        node.set_remote_workdir(str(tmp_path))
        (tmp_path / 'aiida.out').write_text(text)
        return node

    return factory


def test_monitor_input_is_valid_for_aiida():
    monitors = default_cp2k_monitors(scf_window=60)
    monitor = CalcJobMonitor(**monitors['scf'].get_dict())
    assert monitor.load_entry_point() is cp2k_scf
    assert monitor.kwargs == {**CP2K_SCF_DEFAULTS, 'scf_window': 60} and monitor.minimum_poll_interval == 30
    with pytest.raises(ValueError, match='scf_windw'):
        default_cp2k_monitors(scf_windw=60)


def test_monitor_reads_the_running_output(running_job, aiida_localhost, data_dir, recorded_cp2k_output):
    with aiida_localhost.get_transport() as transport:
        assert cp2k_scf(running_job(recorded_cp2k_output('scf_diverged.out', 1, 13)), transport) is None
        result = cp2k_scf(running_job(recorded_cp2k_output('scf_diverged.out', 1, 14)), transport)
        assert result.override_exit_code is False and result.retrieve and result.parse
        assert result.message.startswith('stopped by the cp2k_scf monitor: SCF cycle 1 diverged')
        assert cp2k_scf(running_job(recorded_cp2k_output('scf_diverged.out', 1, 14)), transport,
                        diverged_window=20) is None
        # no output yet (job queued or just started): nothing to say
        node = running_job('')
        node.set_remote_workdir(str(data_dir / 'no-such-folder'))
        assert cp2k_scf(node, transport) is None


@pytest.mark.parametrize('name, cycle, step, expected', [
    ('scf_diverged.out', 1, 14, 450),                              # diverged: ERROR_SCF_NOT_CONVERGED
    ('scf_unconverged_early_geo_opt_completed.out', 1, 80, 450),   # stalled SCF
    ('scf_diverged.out', 1, 13, 303),                              # not a monitor's stop: incomplete output
])
def test_parser_reads_a_stopped_output_with_the_monitor_settings(generate_cp2k_calc, recorded_cp2k_output, name, cycle,
                                                                 step, expected):
    text = recorded_cp2k_output(name, cycle, step)
    node = generate_cp2k_calc({'aiida.out': text}, monitors=default_cp2k_monitors())
    assert monitor_settings(node) == CP2K_SCF_DEFAULTS
    _, calcfunction = QdCp2kParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == expected
    # without the monitor the same truncated output is an incomplete run
    node = generate_cp2k_calc({'aiida.out': text})
    assert monitor_settings(node) is None
    _, calcfunction = QdCp2kParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == 303


def test_real_diverged_geo_opt_stopped_by_the_monitor(generate_cp2k_calc, recorded_cp2k_output):
    """Recorded: the `fast` relax of Ga10P4F18 (32 atoms) as the monitor left it, stopped at SCF step 19 of its
    first geometry (residual 1.47 at step 1, 7.6-18 in the last 10): the parser reads ERROR_SCF_NOT_CONVERGED."""
    text = recorded_cp2k_output('ga10p4f18_geo_opt_diverged_stopped_by_monitor.out')
    assert 'PROGRAM ENDED' not in text
    kind, message = stop_reason(text)
    assert kind == 'scf_diverged' and '19 steps' in message
    node = generate_cp2k_calc({'aiida.out': text}, monitors=default_cp2k_monitors(),
                              parameters={'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}})
    _, calcfunction = QdCp2kParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == 450


def test_parser_reads_a_stalled_optimisation(generate_cp2k_calc, recorded_cp2k_output):
    text = recorded_cp2k_output('scf_not_converged_geo_opt.out')
    text = text[:text.rindex('ENERGY| Total FORCE_EVAL')]
    text = text[:text.index('\n', text.rindex('ENERGY| Total FORCE_EVAL')) + 1]  # stopped after an evaluation
    monitors = default_cp2k_monitors(stop_unconverged_scf=False)
    node = generate_cp2k_calc({'aiida.out': text}, monitors=monitors, parameters={'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}})
    _, calcfunction = QdCp2kParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == 500  # ERROR_GEOMETRY_CONVERGENCE_NOT_REACHED


def test_monitor_stops_a_real_geo_opt_at_its_first_unconverged_scf(cp2k_code, tiny_qd):
    """A real CP2K GEO_OPT of In4PF9 (``fast``) with MAX_SCF 3: CP2K would carry on for MAX_ITER 40 steps on
    unconverged forces (~40 evaluations); the monitor stops it after the first unconverged cycle and the parser
    returns ERROR_SCF_NOT_CONVERGED, which the relax's SCF handler answers."""
    from aiida.cmdline.utils.common import get_workchain_report
    from aiida.engine import run_get_node

    from aiida_qdtraps.parsers.cp2k_progress import read_evaluation_energies, read_scf_cycles
    from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

    overrides = {'base': {'max_iterations': 1, 'scf_monitor': {'poll_interval': 1},
                          'cp2k': {'parameters': {'MOTION': {'GEO_OPT': {'MAX_ITER': 40}},
                                                  'FORCE_EVAL': {'DFT': {'SCF': {'MAX_SCF': 3}}}}}}}
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast', overrides=overrides)
    assert builder.base.cp2k.monitors['scf']['kwargs']['stop_unconverged_scf'] is True
    _, node = run_get_node(builder)
    (calc,) = [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)]
    output = calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
    assert calc.exit_status == 450, calc.exit_message   # ERROR_SCF_NOT_CONVERGED, read from the stopped output
    assert 'PROGRAM ENDED' not in output                # killed, not finished
    cycles = read_scf_cycles(output)
    assert cycles[0].status == 'not converged' and len(cycles[0].residuals) == 3
    # stopped within a few evaluations of the first unconverged cycle, not after MAX_ITER 40
    evaluations = len(read_evaluation_energies(output))
    print(f'stopped after {evaluations} evaluations, {len(cycles)} SCF cycles, '
          f'{(calc.mtime - calc.ctime).total_seconds():.0f} s')
    assert evaluations < 10
    report = get_workchain_report(node, 'REPORT')
    assert 'SCF not converged: retrying with' in report
    assert not node.is_finished_ok  # max_iterations 1: the handler's retry is not run here

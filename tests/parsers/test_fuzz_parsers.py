"""Property-based tests of the AiiDA parsers on truncated, garbled and mixed-version retrieved files.

A finished ``CalcJobNode`` is faked with one retrieved file replaced by a mutation of its recording (the strategies
of ``test_fuzz_readers.py``) and parsed with ``Parser.parse_from_node``. The contract (docs/reliability.md): the
parsing finishes (never excepted) with exit status 0 or a named exit code of the calculation class; on a non-zero
exit code it leaves no outputs but those the parser documents for failures (:data:`CP2K_FAILURE_OUTPUTS`).
"""

from __future__ import annotations

import shutil

import pytest
from aiida.plugins import CalculationFactory
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_fuzz_readers import CP2K_OUTPUTS, FUZZ, mutated, recorded

from aiida_qdtraps.parsers.cp2k import QdCp2kParser
from aiida_qdtraps.parsers.cp2k_hybrid import CUBE_FILE, MOLDEN_FILE, Cp2kHybridParser

CP2K_EXIT_CODES = {code.status: name for name, code in CalculationFactory('cp2k').exit_codes.items()}
#: What ``qdtraps.cp2k`` and ``qdtraps.cp2k_hybrid`` may leave on a failed calculation: the values read from the main
#: output (the work chains' handlers read them) and the last structure of an optimisation.
CP2K_FAILURE_OUTPUTS = {'output_parameters', 'atomic_charges', 'output_structure', 'output_trajectory'}

FAILED = ('cp2k/failed/scf_not_converged.out', 'cp2k/failed/walltime.out', 'cp2k/failed/scf_stalled_geo_opt.out',
          'cp2k/failed/scf_unconverged_early_geo_opt_completed.out')


def check_parsed(parse, node, success_outputs: set[str] | None = None) -> tuple[dict, int]:
    """Parse ``node``; assert the contract; return the outputs and the exit status."""
    results, calcfunction = parse(node, store_provenance=False)
    assert calcfunction.is_finished, 'the parser raised an exception'
    status = calcfunction.exit_status
    assert status == 0 or status in CP2K_EXIT_CODES, f'exit status {status} is not an exit code of Cp2kCalculation'
    if status:
        assert set(results or {}) <= CP2K_FAILURE_OUTPUTS, (CP2K_EXIT_CODES[status], sorted(results))
    elif success_outputs is not None:
        assert success_outputs <= set(results)
    return results or {}, status


@settings(FUZZ, max_examples=12)
@given(text=mutated(CP2K_OUTPUTS + FAILED, splice_with=CP2K_OUTPUTS),
       restart=st.one_of(st.none(), mutated(('cp2k/failed/geo_max_iter-1.restart',))))
@example(text='\x00\xff garbage', restart=None)
@example(text=' ENERGY| Total FORCE_EVAL ( QS )', restart=None)  # a cut energy line: IndexError in aiida-cp2k
@example(text=recorded('cp2k/failed/geo_max_iter.out'),
         restart=recorded('cp2k/failed/geo_max_iter-1.restart')[:3000])  # no &COORD: AttributeError in aiida-cp2k
@example(text=recorded('cp2k/pbe0_success/aiida.out').replace('1208.', 'NaN', 3), restart=None)
def test_cp2k_parser(generate_cp2k_calc, text, restart):
    files = {'aiida.out': text + '\n'}
    if restart is not None:
        files['aiida-1.restart'] = restart + '\n'
    node = generate_cp2k_calc(files, parameters={'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}})
    check_parsed(QdCp2kParser.parse_from_node, node)


PBE0 = 'cp2k/pbe0_success'
PBE0_FILES = ('aiida.out', MOLDEN_FILE, 'aiida-k1-1.pdos', 'aiida-k2-1.pdos', 'aiida-k3-1.pdos', CUBE_FILE)


@settings(FUZZ, max_examples=6)
@given(name=st.sampled_from(PBE0_FILES), data=st.data())
@example(name='aiida-k2-1.pdos', data=None)
def test_hybrid_parser(generate_cp2k_calc, data_dir, name, data):
    """One file of the recorded PBE0 single point mutated; the others as recorded."""
    files = {other: data_dir / PBE0 / other for other in PBE0_FILES}
    files[name] = (data.draw(mutated((f'{PBE0}/{name}',))) if data is not None else
                   recorded(f'{PBE0}/{name}').replace('0.', 'NaN', 5)) + '\n'
    results, status = check_parsed(Cp2kHybridParser.parse_from_node, generate_cp2k_calc(files),
                                   {'output_parameters', 'mo_energies', 'pdos', 'density_cube'})
    if status == 0:
        params = results['output_parameters'].get_dict()
        assert params['gap_ev'] > 0 and results['mo_energies'].get_array('energies').shape[1] == params['n_mo']


def test_hybrid_parser_with_a_damaged_restart_file(generate_cp2k_calc, data_dir):
    """The MOs and PDOS are read but not registered: the damaged restart file fails the calculation."""
    files = {name: data_dir / PBE0 / name for name in PBE0_FILES}
    files['aiida-1.restart'] = recorded('cp2k/failed/geo_max_iter-1.restart')[:3000]
    results, status = check_parsed(Cp2kHybridParser.parse_from_node, generate_cp2k_calc(files))
    assert CP2K_EXIT_CODES[status] == 'ERROR_STRUCTURE_PARSE'
    assert 'mo_energies' not in results and 'pdos' not in results


# --- Bader (aiida-shell ShellJob) ---------------------------------------------------------------------------------

SHELL_EXIT_CODES = {code.status for code in CalculationFactory('core.shell').exit_codes.values()}


@pytest.fixture
def henkelman_job(aiida_localhost, aiida_code_installed):
    """A ShellJob node of the Henkelman ``bader`` program (ACF.dat has Cartesian positions: no CHGCAR needed)."""
    from aiida import orm
    from aiida.common import LinkType

    code = aiida_code_installed(label='bader-fuzz', filepath_executable='/bin/true',
                                default_calc_job_plugin='core.shell')
    node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:core.shell')
    node.set_option('resources', {'num_machines': 1, 'tot_num_mpiprocs': 1})
    node.base.links.add_incoming(code, LinkType.INPUT_CALC, 'code')
    node.store()
    return node


@settings(FUZZ, max_examples=30)
@given(text=mutated(('bader/ACF.dat',)))
@example(text=recorded('bader/ACF.dat')[:600])
@example(text=''.join(line for line in recorded('bader/ACF.dat').splitlines(keepends=True)
                      if not line.lstrip()[:2].isdigit() or line.split()[0] == '1'))  # atoms 2-14 lost
def test_bader_parser(henkelman_job, tmp_path_factory, text):
    from aiida.plugins import ParserFactory

    folder = tmp_path_factory.mktemp('retrieved')
    (folder / 'stdout').write_text('')
    (folder / 'status').write_text('0\n')
    (folder / 'ACF.dat').write_text(text)
    parser = ParserFactory('qdtraps.bader')(henkelman_job)
    exit_code = parser.parse(retrieved_temporary_folder=str(folder))
    assert exit_code.status == 0 or exit_code.status in SHELL_EXIT_CODES
    if exit_code.status:
        assert 'bader_populations' not in parser.outputs
    else:
        assert parser.outputs['bader_populations'].get_array('populations').shape == (14,)  # rows are numbered
    shutil.rmtree(folder)


def test_cp2k_parser_on_bytes_that_are_not_text(generate_cp2k_calc, tmp_path):
    (tmp_path / 'aiida.out').write_bytes(b' CP2K| version string: \xff\xfe\x00 PROGRAM STOPPED IN\n')
    _, status = check_parsed(QdCp2kParser.parse_from_node, generate_cp2k_calc({'aiida.out': tmp_path / 'aiida.out'}))
    assert CP2K_EXIT_CODES[status] == 'ERROR_OUTPUT_READ'

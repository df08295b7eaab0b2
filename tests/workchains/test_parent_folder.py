"""A parent folder that is gone (a cached calculation whose remote folder was cleaned) is never handed to CP2K: the
PBE0 starts from the atomic guess, a handler's retry keeps its start, an MD run is computed again."""

from __future__ import annotations

import shutil

import pytest
from aiida import orm

from aiida_qdtraps.workchains.cp2k_base import WFN_RESTART
from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.md import QdMdWorkChain
from aiida_qdtraps.workchains.parent_folder import (
    MD_RESTART_FILE,
    WFN_FILE,
    forget_dead_folder,
    parent_folder_problem,
)


def remote_at(computer, path) -> orm.RemoteData:
    return orm.RemoteData(computer=computer, remote_path=str(path)).store()


def reports(process) -> str:
    return '\n'.join(log.message for log in orm.Log.collection.get_logs_for(process.node))


def test_parent_folder_problem_names_what_is_missing(aiida_localhost, tmp_path):
    folder = tmp_path / 'run'
    folder.mkdir()
    remote = remote_at(aiida_localhost, folder)
    assert parent_folder_problem(remote) == f'RemoteData<{remote.pk}> ({folder} on {aiida_localhost.label}) is empty'
    (folder / 'aiida.out').write_text('output\n')
    assert parent_folder_problem(remote) is None
    assert parent_folder_problem(remote, [WFN_FILE]).endswith(f'lacks {WFN_FILE}')
    (folder / WFN_FILE).write_text('wavefunction\n')
    assert parent_folder_problem(remote, [WFN_FILE]) is None
    shutil.rmtree(folder)
    assert parent_folder_problem(remote, [WFN_FILE]).endswith('does not exist any more')
    folder.mkdir()
    (folder / WFN_FILE).write_text('wavefunction\n')
    remote._clean()  # AiiDA's own clean: removes the folder and sets the `cleaned` extra
    assert not folder.exists()
    assert parent_folder_problem(remote, [WFN_FILE]).endswith('was cleaned')


def test_forget_dead_folder_marks_the_calculations_of_that_folder(recorded_cp2k_code, aiida_localhost, tmp_path,
                                                                  process_nodes):
    """Three calculations of the same hash: two share the dead folder (a cache source and its clone), the third ran
    elsewhere. The two stop being cache sources, the third stays one."""
    dead, alive = tmp_path / 'dead', tmp_path / 'alive'
    parameters = {'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}}
    calcs = [process_nodes.finish(
        process_nodes.calcjob(aiida_localhost, 'aiida.calculations:cp2k', recorded_cp2k_code,
                              {'parameters': orm.Dict(parameters)}),
        {'remote_folder': orm.RemoteData(computer=aiida_localhost, remote_path=str(folder))})
        for folder in (dead, dead, alive)]
    assert len({calc.base.caching.get_hash() for calc in calcs}) == 1
    assert all(calc.base.caching.is_valid_cache for calc in calcs)
    marked = forget_dead_folder(calcs[1].outputs.remote_folder)
    assert {node.pk for node in marked} == {calcs[0].pk, calcs[1].pk}
    assert [calc.base.caching.is_valid_cache for calc in calcs] == [False, False, True]


@pytest.fixture
def hybrid_process(generate_workchain, recorded_cp2k_code, tiny_qd, monkeypatch):
    """``HybridScfWorkChain`` (fast protocol) with ``parent_calc_folder``, stepped up to ``run_scf`` with the CP2K
    work chain's submission recorded instead of run; returns ``(process, submitted)``."""

    def factory(parent: orm.RemoteData):
        builder = HybridScfWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast')
        builder.parent_calc_folder = parent
        process = generate_workchain(HybridScfWorkChain, dict(builder))
        submitted = []
        monkeypatch.setattr(process, 'submit', lambda cls, **inputs: submitted.append(inputs) or orm.WorkflowNode())
        process.setup()
        process.put_in_box()
        assert process.validate_inputs() is None
        process.run_scf()
        assert len(submitted) == 1
        return process, submitted[0]

    return factory


def test_hybrid_restarts_from_a_parent_that_holds_its_wavefunction(hybrid_process, aiida_localhost, tmp_path):
    (tmp_path / WFN_FILE).write_text('wavefunction\n')
    parent = remote_at(aiida_localhost, tmp_path)
    process, inputs = hybrid_process(parent)
    dft = inputs['cp2k']['parameters'].get_dict()['FORCE_EVAL']['DFT']
    assert dft['SCF']['SCF_GUESS'] == 'RESTART' and dft['WFN_RESTART_FILE_NAME'] == WFN_RESTART
    assert dft['XC']['HF']['SCREENING']['SCREEN_ON_INITIAL_P'] is True  # screened on the converged density
    assert inputs['cp2k']['parent_calc_folder'].uuid == parent.uuid


@pytest.mark.parametrize('damage', ['deleted', 'cleaned', 'no wavefunction'])
def test_hybrid_with_a_dead_parent_starts_from_the_atomic_guess(hybrid_process, generate_cp2k_calc, tmp_path,
                                                                damage):
    """The relax of a cached pipeline: its CalcJob's folder was deleted, cleaned by AiiDA, or holds no wavefunction.
    The PBE0 gets neither the folder nor a RESTART guess, the report says why, and the relax stays a cache source
    (its structure and energies are still right; only the initial guess it offered is gone)."""
    relax = generate_cp2k_calc({'aiida.out': 'CP2K output\n'}, parameters={'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}})
    (tmp_path / 'aiida.out').write_text('CP2K output\n')
    if damage != 'no wavefunction':
        (tmp_path / WFN_FILE).write_text('wavefunction\n')
    parent = relax.outputs.remote_folder
    if damage == 'deleted':
        shutil.rmtree(tmp_path)
    elif damage == 'cleaned':
        parent._clean()
    process, inputs = hybrid_process(parent)
    dft = inputs['cp2k']['parameters'].get_dict()['FORCE_EVAL']['DFT']
    assert dft['SCF']['SCF_GUESS'] == 'ATOMIC' and 'WFN_RESTART_FILE_NAME' not in dft
    assert 'SCREEN_ON_INITIAL_P' not in dft['XC']['HF']['SCREENING']
    assert 'parent_calc_folder' not in inputs['cp2k']
    expected = {'deleted': 'does not exist any more', 'cleaned': 'was cleaned', 'no wavefunction': f'lacks {WFN_FILE}'}
    assert f'{expected[damage]}: the PBE0 starts from the atomic guess instead of its wavefunction' in reports(process)
    assert relax.base.caching.is_valid_cache


def test_scf_handler_does_not_restart_from_a_cleaned_folder(base_workchain, generate_cp2k_calc, data_dir, tmp_path):
    """A failed SCF taken from the cache whose folder was cleaned: the next rung's settings, but no wavefunction
    restart, and the failed run stops being a cache source (else the retry could be cloned from it again)."""
    process = base_workchain({'MAX_SCF': 3, 'SCF_GUESS': 'ATOMIC', 'MIXING': {'ALPHA': 0.3}})
    calc = generate_cp2k_calc({'aiida.out': data_dir / 'cp2k' / 'failed' / 'scf_not_converged.out'},
                              'ERROR_SCF_NOT_CONVERGED')
    calc.outputs.remote_folder._clean()
    report = process.handle_scf_not_converged(calc)
    assert report.do_break and report.exit_code.status == 0
    scf = process.ctx.inputs.parameters.get_dict()['FORCE_EVAL']['DFT']['SCF']
    assert scf['MIXING']['ALPHA'] == 0.15 and scf['SCF_GUESS'] == 'ATOMIC'
    assert 'parent_calc_folder' not in process.ctx.inputs
    assert not calc.base.caching.is_valid_cache
    assert 'was cleaned, so the retry cannot restart from it' in reports(process)


def test_md_walltime_handler_with_a_cleaned_folder_runs_the_same_inputs_afresh(base_workchain, generate_cp2k_calc,
                                                                               data_dir, tmp_path):
    process = base_workchain({'MAX_SCF': 50}, run_type='MD')
    before = process.ctx.inputs.parameters.get_dict()
    calc = generate_cp2k_calc({'aiida.out': data_dir / 'cp2k' / 'md' / 'walltime_md.out'}, 'ERROR_OUT_OF_WALLTIME')
    shutil.rmtree(tmp_path)
    process.handle_out_of_walltime(calc)
    assert process.ctx.inputs.parameters.get_dict() == before and 'parent_calc_folder' not in process.ctx.inputs
    assert not calc.base.caching.is_valid_cache


def test_md_stage_after_a_run_with_a_cleaned_folder_runs_that_stage_again(generate_workchain, recorded_cp2k_code,
                                                                          tiny_qd, generate_cp2k_calc, tmp_path,
                                                                          monkeypatch, process_nodes):
    builder = QdMdWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast')
    process = generate_workchain(QdMdWorkChain, dict(builder))
    submitted = []
    monkeypatch.setattr(process, 'submit', lambda cls, **inputs: submitted.append(inputs) or orm.WorkflowNode())
    process.setup()
    process.plan_stages()
    first = generate_cp2k_calc({'aiida.out': 'MD| Step number 1\n'}, parameters={'GLOBAL': {'RUN_TYPE': 'MD'}})
    (tmp_path / MD_RESTART_FILE).write_text('restart\n')
    process.ctx.done = [process_nodes.workflow('qdtraps.cp2k_base', remote_folder=first.outputs.remote_folder)]
    process.run_stage()  # the folder holds its restart file: the second stage continues from it
    assert submitted[-1]['metadata']['call_link_label'] == process.ctx.stages[1]['name']
    assert submitted[-1]['cp2k']['parent_calc_folder'].uuid == first.outputs.remote_folder.uuid

    first.outputs.remote_folder._clean()
    process.run_stage()  # cleaned: the first stage runs again, from the start, not from the cache
    assert process.ctx.done == []
    assert submitted[-1]['metadata']['call_link_label'] == process.ctx.stages[0]['name']
    assert 'parent_calc_folder' not in submitted[-1]['cp2k']
    assert not first.base.caching.is_valid_cache
    assert f"MD run `{process.ctx.stages[0]['name']}`" in reports(process)

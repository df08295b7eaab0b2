"""Strings that reach job scripts (Bader job options, scheduler names, file names, arguments) cannot inject commands."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.resources import scale_resources
from aiida_qdtraps.shell_safety import check_argument, check_filename, check_options
from aiida_qdtraps.workchains.charge_flow import BaderChargeFlowWorkChain
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain

MALICIOUS = ['a; rm -rf /', '$(touch x)', '`touch x`', 'name\ntouch x', 'a|b', 'a && b', '../../etc/passwd', '-rf',
             "it's", 'a b', '']


@pytest.mark.parametrize('value', MALICIOUS)
def test_file_names_and_arguments_refused(value):
    with pytest.raises(ValueError, match='file name') as error:
        check_filename(value)
    assert repr(value) in str(error.value)
    if value not in ('-rf', '../../etc/passwd'):  # both are harmless once quoted as one argument
        with pytest.raises(ValueError, match='command-line argument') as error:
            check_argument(value)
        assert repr(value) in str(error.value)


@pytest.mark.parametrize('value', ['CHGCAR', 'density.cube', 'aiida-ELECTRON_DENSITY-1_0.cube', 'ACF.dat'])
def test_plain_names_pass(value):
    assert check_filename(value) == value and check_argument(value) == value
    assert check_argument('{chgcar}') == '{chgcar}' and check_argument('--format=vasp') == '--format=vasp'


@pytest.mark.parametrize('options, message', [
    ({'queue_name': 'debug\ntouch x'}, r"options.queue_name 'debug\\ntouch x' is not a plain scheduler name"),
    ({'account': 'a; rm -rf /'}, r"options.account 'a; rm -rf /' is not a plain scheduler name"),
    ({'qos': '$(touch x)'}, r"options.qos '\$\(touch x\)'"),
    ({'environment_variables': {'A=1; touch x; B': '1'}}, r"'A=1; touch x; B' is not a valid environment variable"),
    ({'environment_variables': {'OMP_NUM_THREADS': '`touch x`'}}, r"\['OMP_NUM_THREADS'\] = '`touch x`'"),
    ({'environment_variables': {'X': '$(touch x)'}}, r"\['X'\] = '\$\(touch x\)'"),
    ({'environment_variables': {'X': 'a\ntouch x'}}, r"line breaks"),
    ({'output_filename': 'out; touch x'}, r"options.output_filename 'out; touch x' is not a plain file name"),
    ({'scheduler_stdout': 'logs/$(touch x)'}, r"options.scheduler_stdout part '\$\(touch x\)'"),
    ({'mpirun_extra_params': ['--bind-to', 'core; touch x']}, r"mpirun_extra_params item 'core; touch x'"),
    ({'custom_scheduler_commands': '#SBATCH --constraint=cpu\ntouch x'}, r"line 'touch x' is not a scheduler"),
])
def test_options_refused_with_the_value_named(options, message):
    with pytest.raises(ValueError, match=message):
        check_options(options)


def test_reasonable_options_pass():
    check_options({'queue_name': 'normal', 'account': 'proj-42', 'qos': 'high',
                   'environment_variables': {'OMP_NUM_THREADS': '4', 'PATH': '$HOME/bin:$PATH'},
                   'scheduler_stdout': 'logs/slurm.out', 'mpirun_extra_params': ['--bind-to', 'core'],
                   'custom_scheduler_commands': '#SBATCH --constraint=cpu\n#SBATCH --exclusive',
                   'prepend_text': 'module load cp2k', 'resources': {'num_machines': 1}, 'withmpi': True})


def test_scale_resources_refuses_injected_queue():
    with pytest.raises(ValueError, match=r"queue_name 'debug\\n/bin/rm -rf /' is not a plain scheduler name"):
        scale_resources(['H', 'H'], 'relax', 'fast', cores_per_node=4, queue_name='debug\n/bin/rm -rf /')


def test_bader_options_refused_before_anything_runs(baderkit_code, aiida_localhost, tmp_path):
    """The work chain refuses the options at launch: no process node, no CHGCAR, no ShellJob is stored."""
    structure = orm.StructureData(cell=[[5, 0, 0], [0, 5, 0], [0, 0, 5]])
    structure.append_atom(position=(0, 0, 0), symbols='H')
    cube = orm.SinglefileData(_empty(tmp_path))
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    bad = {'environment_variables': {f'A=1; touch {tmp_path}/pwned; B': '1'}}
    with pytest.raises(ValueError, match=r"environment_variables: 'A=1; touch .*pwned; B' is not a valid"):
        run_get_node(BaderChargeFlowWorkChain, structure=structure, density_cube=cube, valence=orm.Dict({'H': 1}),
                     bader={'code': baderkit_code, 'options': orm.Dict(bad)})
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before
    assert not (tmp_path / 'pwned').exists()
    # the pipeline exposes the same port, validator included
    port = QdTrapsPipelineWorkChain.spec().inputs['charge_flow']['bader']['options']
    assert 'is not a valid environment variable name' in port.validate(orm.Dict(bad)).message
    assert port.validate(orm.Dict({'max_wallclock_seconds': 600})) is None


def _empty(tmp_path):
    path = tmp_path / 'density.cube'
    path.write_text('not used: the inputs are refused first\n')
    return path


def test_the_vector_is_real_without_validation(aiida_localhost, tmp_path):
    """Control: a plain aiida-shell job with the same option runs the injected command (why the check exists)."""
    from aiida_shell import launch_shell_job

    marker = tmp_path / 'pwned'
    _, node = launch_shell_job('true', metadata={'options': {
        'environment_variables': {f'A=1; touch {marker}; B': '1'}}, 'computer': aiida_localhost})
    assert node.is_finished_ok
    assert marker.exists()  # the key was written verbatim into `export ...` in _aiidasubmit.sh

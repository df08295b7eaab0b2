"""``aiida_qdtraps.resources``: scheduler resources that scale with the QD, and what core.slurm makes of them."""

from __future__ import annotations

import pytest
from aiida.plugins import SchedulerFactory

from aiida_qdtraps.resources import (
    count_basis_functions,
    pipeline_overrides,
    scale_resources,
)
from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain

IN4PF9 = ['In'] * 4 + ['P'] + ['F'] * 9


def test_basis_function_count_from_cp2k_file():
    """In: 2s... SZV = s+p+d (9), DZVP = 2s2p2d1f (25); P, F: SZV 4, DZVP 13 (CP2K's BASIS_MOLOPT)."""
    assert count_basis_functions(IN4PF9, 'SZV-MOLOPT-SR-GTH') == 4 * 9 + 4 + 9 * 4 == 76
    assert count_basis_functions(IN4PF9, 'DZVP-MOLOPT-SR-GTH') == 4 * 25 + 13 + 9 * 13 == 230
    with pytest.raises(FileNotFoundError, match='/nonexistent/BASIS'):
        count_basis_functions(IN4PF9, 'SZV-MOLOPT-SR-GTH', basis_file='/nonexistent/BASIS')


def test_resources_grow_with_size():
    """Ranks ∝ basis functions, whole nodes once a job spans several, wall time grows and is capped with a warning."""
    small = scale_resources(IN4PF9, 'hybrid_scf', 'moderate', cores_per_node=128)
    assert small['resources'] == {'num_machines': 1, 'num_mpiprocs_per_machine': 6, 'num_cores_per_mpiproc': 2}
    assert small['max_wallclock_seconds'] == 1800  # the minimum: the estimate is ~12 min
    assert small['environment_variables'] == {'OMP_NUM_THREADS': '2'} and small['withmpi'] is True

    medium = scale_resources(IN4PF9 * 10, 'hybrid_scf', 'moderate', cores_per_node=128)
    assert medium['resources']['num_machines'] == 1
    assert medium['resources']['num_mpiprocs_per_machine'] == 58  # ceil(2300 / 40)
    assert 1800 < medium['max_wallclock_seconds'] < 86400

    with pytest.warns(UserWarning, match=r'hybrid_scf of 1400 atoms \(23000 basis functions\) on 9 node'):
        large = scale_resources(IN4PF9 * 100, 'hybrid_scf', 'moderate', cores_per_node=128)
    assert large['resources'] == {'num_machines': 9, 'num_mpiprocs_per_machine': 64, 'num_cores_per_mpiproc': 2}
    assert large['max_wallclock_seconds'] == 86400

    relax = scale_resources(IN4PF9 * 10, 'relax', 'moderate', cores_per_node=128)
    assert relax['resources']['num_cores_per_mpiproc'] == 1 and relax['resources']['num_mpiprocs_per_machine'] == 39
    # every protocol uses the DZVP basis (no minimal basis): fast needs as many ranks as moderate for the same QD
    fast = scale_resources(IN4PF9 * 10, 'relax', 'fast', cores_per_node=128)
    assert fast['resources']['num_mpiprocs_per_machine'] == 39  # ceil(2300 / 60)


def test_capped_nodes_and_serial_codes():
    capped = scale_resources(IN4PF9 * 100, 'relax', 'moderate', cores_per_node=32, max_nodes=4,
                             max_walltime=10 ** 7, queue_name='normal', account='proj42')
    assert capped['resources']['num_machines'] == 4 and capped['resources']['num_mpiprocs_per_machine'] == 32
    assert capped['queue_name'] == 'normal' and capped['account'] == 'proj42'
    serial = scale_resources(IN4PF9, 'hybrid_scf', 'fast', cores_per_node=2, withmpi=False)
    assert serial['resources'] == {'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 2}
    assert serial['withmpi'] is False
    bader = scale_resources(IN4PF9, 'bader', cores_per_node=64)
    assert bader['resources']['num_mpiprocs_per_machine'] == 1 and bader['withmpi'] is False


@pytest.mark.parametrize('kwargs, message', [
    ({'stage': 'md'}, "unknown stage 'md'"),
    ({'protocol': 'ultra'}, "unknown protocol 'ultra'"),
    ({'protocol': 'xtb'}, "protocol 'xtb' has no Gaussian basis set"),
    ({'cores_per_node': 0}, 'cores_per_node must be a positive integer, got 0'),
    ({'threads': 500}, 'threads must be an integer in \\[1, cores_per_node=128\\], got 500'),
    ({'min_walltime': 7200, 'max_walltime': 3600}, 'min_walltime 7200 s is larger than max_walltime 3600 s'),
])
def test_bad_arguments_are_named(kwargs, message):
    arguments = {'stage': 'relax', 'protocol': 'moderate', 'cores_per_node': 128, **kwargs}
    with pytest.raises(ValueError, match=message):
        scale_resources(IN4PF9, **arguments)
    with pytest.raises(TypeError, match='list of element symbols'):
        scale_resources([1, 2], cores_per_node=4)


def test_options_reach_the_builders(cp2k_code, tiny_qd):
    """The scaled options go through the builders' existing ``options`` / ``overrides`` arguments."""
    options = scale_resources(tiny_qd, 'hybrid_scf', 'fast', cores_per_node=2, withmpi=False)
    builder = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, 'fast', options=options)
    got = builder.scf.cp2k.metadata['options']
    assert dict(got['resources']) == options['resources'] and got['parser_name'] == 'qdtraps.cp2k_hybrid'

    overrides = pipeline_overrides(tiny_qd, 'moderate', cores_per_node=128, memory_per_node_mb=256000)
    pipeline = QdTrapsPipelineWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, 'moderate', overrides=overrides)
    relax = pipeline.relax.base.cp2k.metadata['options']
    hybrid = pipeline.hybrid_scf.scf.cp2k.metadata['options']
    assert relax['resources']['num_mpiprocs_per_machine'] == 4 and relax['resources']['num_cores_per_mpiproc'] == 1
    assert hybrid['resources']['num_mpiprocs_per_machine'] == 6 and hybrid['resources']['num_cores_per_mpiproc'] == 2
    hf = pipeline.hybrid_scf.scf.cp2k.parameters.get_dict()['FORCE_EVAL']['DFT']['XC']['HF']
    assert hf['MEMORY']['MAX_MEMORY'] == int(0.8 * 256000 / 6) and hf['FRACTION'] == 0.25


def test_slurm_submit_script_from_scaled_options():
    """What core.slurm writes for the scaled options of a 140-atom PBE0 step on 2 nodes of 64 cores."""
    from aiida.common.datastructures import CodeRunMode
    from aiida.schedulers.datastructures import JobTemplate, JobTemplateCodeInfo

    options = scale_resources(IN4PF9 * 10, 'hybrid_scf', 'moderate', cores_per_node=64, queue_name='normal',
                              account='proj42')
    scheduler = SchedulerFactory('core.slurm')()
    template = JobTemplate()
    template.job_resource = scheduler.create_job_resource(**options['resources'])
    template.max_wallclock_seconds = options['max_wallclock_seconds']
    template.queue_name, template.account = options['queue_name'], options['account']
    template.job_environment = options['environment_variables']
    template.prepend_text = 'module load cp2k/2024.1'
    code_info = JobTemplateCodeInfo()
    code_info.prepend_cmdline_params = ['srun']
    code_info.cmdline_params = ['cp2k.psmp', '-i', 'aiida.inp']
    code_info.stdout_name = 'aiida.out'
    template.codes_info = [code_info]
    template.codes_run_mode = CodeRunMode.SERIAL
    script = scheduler.get_submit_script(template)
    hours, rest = divmod(options['max_wallclock_seconds'], 3600)
    for line in ('#SBATCH --nodes=2', '#SBATCH --ntasks-per-node=32', '#SBATCH --cpus-per-task=2',
                 '#SBATCH --partition=normal', '#SBATCH --account=proj42',
                 f'#SBATCH --time={hours:02d}:{rest // 60:02d}:{rest % 60:02d}',
                 "export OMP_NUM_THREADS='2'", 'module load cp2k/2024.1', "'srun' 'cp2k.psmp' '-i' 'aiida.inp'"):
        assert line in script, (line, script)

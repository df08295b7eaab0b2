"""The HPC recipe of docs/hpc.md, run for real: ``verdi computer setup`` / ``configure core.ssh`` / ``code create``
from ``examples/hpc/*.yaml`` on a project profile, ``verdi computer test``, then a CP2K single point with
``scale_resources`` options submitted over SSH to Slurm.

The "cluster" is this machine: a private sshd (login node) whose sessions see a private one-node Slurm cluster.
Command-line options override only what must differ here (host, port, key, work dir, the executable and the module
lines); everything else comes from the YAML files users copy.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / 'examples' / 'hpc'

#: One interpreter runs the whole recipe: verdi's own click commands through CliRunner (same option and --config
#: parsing as the shell commands in docs/hpc.md), then the CP2K job. Starting `verdi` once per command cost ~2 min here.
RECIPE = textwrap.dedent("""
    import shlex, sys
    from click.testing import CliRunner
    from aiida_qdtraps.profile import ensure_profile, load_project_profile
    print(ensure_profile())  # the project profile only: the job runs on the cluster's codes
    load_project_profile()
    from aiida.cmdline.commands.cmd_verdi import verdi

    def call(command):
        result = CliRunner().invoke(verdi, shlex.split(command), catch_exceptions=False)
        print(f'$ verdi {{command}}\\n{{result.output}}')
        assert result.exit_code == 0, (command, result.output)
        return result.output

    ex = {examples!r}
    call(f"computer setup -n --config {{ex}}/computer-setup.yaml --hostname {host} --work-dir {workdir} "
         "--mpiprocs-per-machine 1 --default-memory-per-machine 500000")
    call(f"computer configure core.ssh cluster -n --config {{ex}}/computer-configure-ssh.yaml --username {username} "
         f"--port {port} --key-filename {key} --no-load-system-host-keys --key-policy AutoAddPolicy --safe-interval 0")
    print('COMPUTER-TEST', call('computer test cluster'))
    for name in ('cp2k', 'pw', 'pp', 'baderkit', 'dp'):  # every recipe file is a valid `verdi code create` config
        extra = " --filepath-executable {cp2k} --prepend-text 'export OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}}'" \\
            if name == 'cp2k' else ''
        call(f'code create core.code.installed -n --config {{ex}}/code-{{name}}.yaml' + extra)
    print('CODES', call('code list -Y cluster'))

    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory
    from ase import Atoms
    from aiida_qdtraps.resources import scale_resources
    from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

    orm.load_computer('cluster').set_minimum_job_poll_interval(1)  # test only: a real cluster keeps >= 10 s
    code = orm.load_code('cp2k@cluster')
    water = Atoms('OH2', positions=[(0, 0, 0), (0.97, 0, 0), (-0.24, 0.94, 0)], cell=[6.0, 6.0, 6.0])
    water.center()
    structure = orm.StructureData(ase=water)
    parameters = QdRelaxWorkChain.get_builder_from_protocol(code, structure, 'fast').base.cp2k.parameters.get_dict()
    parameters['GLOBAL']['RUN_TYPE'] = 'ENERGY'
    parameters.pop('MOTION')
    builder = CalculationFactory('cp2k').get_builder()
    builder.code, builder.structure, builder.parameters = code, structure, orm.Dict(parameters)
    builder.metadata.options = scale_resources(structure, 'relax', 'fast', cores_per_node=1, min_walltime=600,
                                               queue_name='debug')
    results, calc = run_get_node(builder)
    assert calc.is_finished_ok, (calc.exit_status, calc.exit_message)
    print('JOB', calc.get_job_id(), 'ENERGY', results['output_parameters']['energy'])
    print('REMOTE', calc.outputs.remote_folder.get_remote_path())
    print(calc.base.repository.get_object_content('_aiidasubmit.sh'))
""")


@pytest.mark.slow
def test_hpc_recipe_ssh_slurm(private_ssh_slurm, tmp_path):
    server, slurm = private_ssh_slurm
    if slurm.mpi != 'pmix':
        pytest.skip('srun cannot start Open MPI programs without PMIx (Debian: apt-get install libpmix-dev)')
    cp2k = shutil.which('cp2k.psmp')
    if cp2k is None:
        pytest.fail('cp2k is not installed; run `make setup`')
    aiida_path = tmp_path / '.aiida'
    env = {k: v for k, v in os.environ.items() if k not in ('AIIDA_PATH', 'SLURM_CONF')}
    env |= {'QDTRAPS_AIIDA_PATH': str(aiida_path), 'AIIDA_PATH': str(aiida_path), 'OMP_NUM_THREADS': '1'}
    remote = tmp_path / 'remote_scratch'
    script = RECIPE.format(examples=str(EXAMPLES), host=server.host, workdir=remote, username=server.username,
                           port=server.port, key=server.key_filename, cp2k=cp2k)
    result = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=400,
                            check=False)
    stdout = result.stdout
    assert result.returncode == 0, f'stdout:\n{stdout[-6000:]}\nstderr:\n{result.stderr[-4000:]}'
    assert 'Success: all' in stdout.split('COMPUTER-TEST')[1], stdout
    for label in ('cp2k@cluster', 'pw@cluster', 'pp@cluster', 'baderkit@cluster', 'dp-python@cluster'):
        assert label in stdout.split('CODES')[1], stdout
    job = stdout.split('JOB ')[1].split()[0]
    energy = float(stdout.split('ENERGY ')[1].split()[0])
    assert -17.5 < energy < -16.5, energy  # H2O, GTH-PBE, SZV: a real SCF
    assert stdout.split('REMOTE ')[1].split()[0].startswith(str(remote))
    for line in ('#SBATCH --partition=debug', '#SBATCH --nodes=1', '#SBATCH --ntasks-per-node=1',
                 "export OMP_NUM_THREADS='1'", f"'srun' '{cp2k}'"):
        assert line in stdout, (line, stdout)
    assert f'JobId={job} WEXITSTATUS 0' in (slurm.folder / 'slurmctld.log').read_text()
    assert "Starting session: subsystem 'sftp'" in server.log_text()

"""A real CP2K calculation submitted through AiiDA's ``core.slurm`` scheduler to a private one-node Slurm cluster.

The cluster (munged + slurmctld + slurmd of Debian's slurm-wlm 22.05) is started by the ``private_slurm`` fixture in a
temporary folder; the test skips when it cannot be started (no packages, not root).
"""

from __future__ import annotations

import shutil

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory
from ase import Atoms

from aiida_qdtraps.resources import scale_resources
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain


@pytest.fixture
def slurm_computer(private_slurm, tmp_path, monkeypatch):
    """``core.local`` + ``core.slurm``: sbatch/squeue/scancel of the private cluster (found via SLURM_CONF)."""
    for key, value in private_slurm.environment().items():
        monkeypatch.setenv(key, value)  # the local transport's shell inherits it; sbatch exports it to the job
    computer = orm.Computer(label=f'slurm-{tmp_path.name}', hostname='localhost', transport_type='core.local',
                            scheduler_type='core.slurm', workdir=str(tmp_path / 'scratch')).store()
    computer.set_default_mpiprocs_per_machine(1)
    computer.set_minimum_job_poll_interval(0)
    computer.configure(safe_interval=0, use_login_shell=False)
    return computer


@pytest.mark.slow
def test_cp2k_energy_through_core_slurm(slurm_computer, private_slurm, cp2k_code):
    """The ``fast`` protocol's CP2K input, as a single point of H2O, sbatch'ed with scaled options and parsed."""
    executable = shutil.which('cp2k.psmp')
    if executable is None:
        pytest.fail('cp2k is not installed; run `make setup`')
    code = orm.InstalledCode(computer=slurm_computer, filepath_executable=executable, label='cp2k-slurm',
                             default_calc_job_plugin='cp2k', with_mpi=False,
                             prepend_text='export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}').store()
    water = Atoms('OH2', positions=[(0, 0, 0), (0.97, 0, 0), (-0.24, 0.94, 0)], cell=[6.0, 6.0, 6.0])
    water.center()
    structure = orm.StructureData(ase=water)
    parameters = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, structure, 'fast').base.cp2k.parameters
    parameters = parameters.get_dict()
    parameters['GLOBAL']['RUN_TYPE'] = 'ENERGY'
    parameters.pop('MOTION')
    options = scale_resources(structure, 'relax', 'fast', cores_per_node=1, withmpi=False, min_walltime=600,
                              queue_name='debug')
    builder = CalculationFactory('cp2k').get_builder()
    builder.code, builder.structure, builder.parameters = code, structure, orm.Dict(parameters)
    builder.metadata.options = options
    results, calc = run_get_node(builder)
    assert calc.is_finished_ok, calc.exit_message
    assert calc.computer.scheduler_type == 'core.slurm' and calc.get_job_id().isdigit()
    script = calc.base.repository.get_object_content('_aiidasubmit.sh')
    for line in ('#SBATCH --partition=debug', '#SBATCH --nodes=1', '#SBATCH --ntasks-per-node=1',
                 '#SBATCH --cpus-per-task=1', '#SBATCH --time=00:10:00', "export OMP_NUM_THREADS='1'"):
        assert line in script, (line, script)
    log = (private_slurm.folder / 'slurmctld.log').read_text()
    assert f'JobId={calc.get_job_id()} WEXITSTATUS 0' in log  # slurmctld itself ran the job to completion
    energy = results['output_parameters']['energy']
    assert -17.5 < energy < -16.5, energy  # H2O, GTH-PBE, SZV: about -17.1 Ha (a real SCF, not a mock)

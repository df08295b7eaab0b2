"""A real calculation through AiiDA's ``core.ssh`` transport against a private sshd on localhost.

The Bader charge-flow work chain runs its aiida-shell ``baderkit`` job on a ``core.ssh`` computer: the CHGCAR is
uploaded over SFTP, the job is started with the ``core.direct`` scheduler through SSH, polled, and its output
retrieved over SFTP, exactly as on a remote cluster (the "cluster" is this machine's sshd on a private port).
"""

from __future__ import annotations

import gzip
import io
import pathlib
import shutil
import sys

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.io.cube import read_cube

from aiida_qdtraps.workchains.charge_flow import BaderChargeFlowWorkChain

KINDS = [{'_': 'In', 'BASIS_SET': 'SZV-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q13'},
         {'_': 'P', 'BASIS_SET': 'SZV-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q5'},
         {'_': 'F', 'BASIS_SET': 'SZV-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q7'}]


def test_ssh_transport_opens_and_runs(ssh_computer, private_sshd):
    """The transport logs in with the key, runs a command and transfers a file both ways."""
    with ssh_computer.get_transport() as transport:
        retval, stdout, stderr = transport.exec_command_wait('echo "$((6 * 7))"')
        assert (retval, stdout.strip(), stderr) == (0, '42', '')
        workdir = pathlib.PurePosixPath(ssh_computer.get_workdir())
        transport.makedirs(str(workdir), ignore_existing=True)
        transport.put(__file__, str(workdir / 'copy.py'))
        assert transport.isfile(str(workdir / 'copy.py'))
    assert 'Accepted publickey for' in private_sshd.log_text()


@pytest.mark.slow
def test_bader_job_through_core_ssh(ssh_computer, private_sshd, data_dir):
    baderkit = shutil.which('baderkit') or shutil.which('baderkit', path=str(pathlib.Path(sys.executable).parent))
    if baderkit is None:
        pytest.fail('baderkit is not installed; run `make setup`')
    code = orm.InstalledCode(computer=ssh_computer, filepath_executable=baderkit, label='baderkit-ssh',
                             default_calc_job_plugin='core.shell', prepend_text='export OMP_NUM_THREADS=1',
                             with_mpi=False).store()
    text = gzip.decompress((data_dir / 'bader' / 'in4pf9_pbe0_density.cube.gz').read_bytes())
    atoms = read_cube(io.StringIO(text.decode()), read_data=False)['atoms']
    atoms.pbc = False
    parameters = orm.Dict({'FORCE_EVAL': {'DFT': {'CHARGE': 0}, 'SUBSYS': {'KIND': KINDS}}})
    results, node = run_get_node(BaderChargeFlowWorkChain, structure=orm.StructureData(ase=atoms),
                                 density_cube=orm.SinglefileData(io.BytesIO(text), filename='density.cube'),
                                 parameters=parameters, bader={'code': code})
    assert node.is_finished_ok, node.exit_message
    job = node.base.links.get_outgoing(link_label_filter='bader').one().node
    assert job.computer.uuid == ssh_computer.uuid and job.computer.transport_type == 'core.ssh'
    assert job.is_finished_ok
    remote = job.outputs.remote_folder
    assert remote.get_remote_path().startswith(ssh_computer.get_workdir())
    assert 'CHGCAR' in remote.listdir()  # uploaded over SFTP, still on the "cluster"
    summary = results['summary'].get_dict()
    assert summary['valence_electrons'] == 120.0 and abs(summary['electron_difference']) < 0.1
    log = private_sshd.log_text()
    assert log.count('Accepted publickey for') >= 2, log[-2000:]  # upload/submit/retrieve went through this sshd
    assert "Starting session: subsystem 'sftp'" in log

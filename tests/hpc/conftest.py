"""A private OpenSSH server on a free localhost port, for real runs through AiiDA's ``core.ssh`` transport.

Nothing global is changed except, when running as root, creating sshd's empty privilege-separation directory
``/run/sshd`` if it is missing (sshd refuses to start without it; Debian's init scripts normally create it). The host
key, the client key, ``authorized_keys``, the config, the pid file and the log all live in a temporary folder; the
server is stopped at the end of the session. Tests skip, saying why, when no sshd can be started.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import dataclasses
import getpass
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest


@dataclasses.dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    username: str
    key_filename: pathlib.Path
    log: pathlib.Path

    def log_text(self) -> str:
        return self.log.read_text(errors='replace') if self.log.exists() else ''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _keygen(ssh_keygen: str, path: pathlib.Path) -> None:
    subprocess.run([ssh_keygen, '-q', '-t', 'ed25519', '-N', '', '-f', str(path)], check=True, timeout=30)


@contextlib.contextmanager
def _sshd(folder: pathlib.Path, extra_config: tuple[str, ...] = ()):
    """Run ``sshd -D`` on 127.0.0.1:<free port> with keys and config in ``folder``; yield an :class:`SshServer`."""
    sshd = shutil.which('sshd', path=f"/usr/sbin:/usr/local/sbin:{os.environ.get('PATH', '')}")
    ssh_keygen = shutil.which('ssh-keygen')
    if sshd is None or ssh_keygen is None:
        pytest.skip('no sshd/ssh-keygen on this machine (Debian: apt-get install openssh-server); '
                    'core.ssh tests need a local OpenSSH server')
    if os.geteuid() == 0 and not pathlib.Path('/run/sshd').is_dir():
        try:
            pathlib.Path('/run/sshd').mkdir(mode=0o755, parents=True)
        except OSError as exc:
            pytest.skip(f'sshd needs its privilege separation directory /run/sshd and it cannot be created: {exc}')

    host_key, client_key = folder / 'host_key', folder / 'client_key'
    _keygen(ssh_keygen, host_key)
    _keygen(ssh_keygen, client_key)
    (folder / 'authorized_keys').write_text((folder / 'client_key.pub').read_text())
    port = _free_port()
    config = folder / 'sshd_config'
    config.write_text('\n'.join((
        f'Port {port}', 'ListenAddress 127.0.0.1', f'HostKey {host_key}',
        f'AuthorizedKeysFile {folder}/authorized_keys', f'PidFile {folder}/sshd.pid',
        'StrictModes no', 'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password', 'Subsystem sftp internal-sftp', 'LogLevel VERBOSE', *extra_config, '')))
    check = subprocess.run([sshd, '-t', '-f', str(config)], capture_output=True, text=True, timeout=30,
                           check=False)
    if check.returncode != 0:
        pytest.skip(f'sshd refuses the test configuration: {check.stderr.strip()}')

    log = folder / 'sshd.log'
    with log.open('w') as handle:
        process = subprocess.Popen([sshd, '-D', '-e', '-f', str(config)], stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.skip(f'sshd exited with status {process.returncode}: {log.read_text()[-500:]}')
            try:
                with socket.create_connection(('127.0.0.1', port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.skip(f'sshd did not listen on 127.0.0.1:{port} within 15 s: {log.read_text()[-500:]}')
        yield SshServer('127.0.0.1', port, getpass.getuser(), client_key, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope='session')
def private_sshd(tmp_path_factory):
    """A private sshd on 127.0.0.1:<free port> with its own host key; yields an :class:`SshServer`."""
    with _sshd(tmp_path_factory.mktemp('sshd')) as server:
        yield server


@pytest.fixture(scope='session')
def private_ssh_slurm(private_slurm, tmp_path_factory):
    """A private sshd whose sessions see the private Slurm cluster (``SetEnv SLURM_CONF=...``): a login node."""
    with _sshd(tmp_path_factory.mktemp('sshd_slurm'), (f'SetEnv SLURM_CONF={private_slurm.conf}',)) as server:
        yield server, private_slurm


@pytest.fixture
def ssh_computer(private_sshd, tmp_path):
    """A stored ``core.ssh`` + ``core.direct`` computer that logs in to :func:`private_sshd` with its key."""
    from aiida import orm

    workdir = tmp_path / 'remote_scratch'
    computer = orm.Computer(label=f'ssh-localhost-{private_sshd.port}-{tmp_path.name}', hostname=private_sshd.host,
                            transport_type='core.ssh', scheduler_type='core.direct', workdir=str(workdir)).store()
    computer.set_default_mpiprocs_per_machine(1)
    computer.set_minimum_job_poll_interval(0)
    computer.configure(username=private_sshd.username, port=private_sshd.port,
                       key_filename=str(private_sshd.key_filename), look_for_keys=False, allow_agent=False,
                       load_system_host_keys=False, key_policy='AutoAddPolicy', use_login_shell=False,
                       safe_interval=0)
    return computer


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    conf: pathlib.Path
    folder: pathlib.Path
    node: str
    mpi: str  # MpiDefault: 'pmix' when srun can start (Open)MPI programs, else 'none'

    def environment(self) -> dict[str, str]:
        return {'SLURM_CONF': str(self.conf)}


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope='session')
def private_slurm(tmp_path_factory):
    """A one-node Slurm cluster of this machine: private ``munged`` + ``slurmctld`` + ``slurmd`` (Debian slurm-wlm).

    Everything (munge key and socket, ``slurm.conf``, state, spool, logs, pid files, free ports) lives in a temporary
    folder; clients find it through ``SLURM_CONF``. Only root can run ``slurmd`` (it switches to the job's user);
    otherwise, or without the Debian packages, the tests that need it skip.
    """
    binaries = {name: shutil.which(name, path=f"/usr/sbin:/usr/bin:{os.environ.get('PATH', '')}")
                for name in ('munged', 'mungekey', 'slurmctld', 'slurmd', 'sbatch', 'sinfo')}
    missing = [name for name, path in binaries.items() if path is None]
    if missing:
        pytest.skip(f'no {", ".join(missing)} on this machine (Debian: apt-get install slurm-wlm munge)')
    if os.geteuid() != 0:
        pytest.skip('a private slurmd must run as root (it starts jobs as their user)')

    folder = tmp_path_factory.mktemp('slurm')
    munge = folder / 'munge'
    munge.mkdir(mode=0o700)
    for sub in ('state', 'spool'):
        (folder / sub).mkdir()
    subprocess.run([binaries['mungekey'], '-c', '-k', str(munge / 'munge.key')], check=True, timeout=30)
    socket_path = munge / 'munge.socket'
    subprocess.run([binaries['munged'], f'--key-file={munge / "munge.key"}', f'--socket={socket_path}',
                    f'--pid-file={munge / "munged.pid"}', f'--log-file={munge / "munged.log"}',
                    f'--seed-file={munge / "munged.seed"}', '--force'], check=True, timeout=30)
    node = socket.gethostname().split('.')[0]
    # srun starts Debian's Open MPI programs (cp2k.psmp, pw.x) through PMIx; Slurm's mpi/pmix plugin dlopens
    # libpmix.so, which only the libpmix-dev package provides.
    mpi = 'pmix' if ctypes.util.find_library('pmix') and any(
        pathlib.Path(d, 'libpmix.so').exists() for d in ('/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib',
                                                         '/usr/lib/aarch64-linux-gnu')) else 'none'
    cpus = os.cpu_count() or 1
    conf = folder / 'slurm.conf'
    conf.write_text('\n'.join((
        'ClusterName=qdtraps-test', f'SlurmctldHost={node}(127.0.0.1)', f'SlurmctldPort={_free_port()}',
        f'SlurmdPort={_free_port()}', 'SlurmUser=root', 'SlurmdUser=root', 'AuthType=auth/munge',
        f'AuthInfo=socket={socket_path}', 'CryptoType=crypto/munge', f'StateSaveLocation={folder}/state',
        f'SlurmdSpoolDir={folder}/spool', f'SlurmctldPidFile={folder}/slurmctld.pid',
        f'SlurmdPidFile={folder}/slurmd.pid', f'SlurmctldLogFile={folder}/slurmctld.log',
        f'SlurmdLogFile={folder}/slurmd.log', 'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none',
        'JobAcctGatherType=jobacct_gather/none', 'AccountingStorageType=accounting_storage/none',
        'JobCompType=jobcomp/none', 'SchedulerType=sched/backfill', 'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_Core', f'MpiDefault={mpi}', 'ReturnToService=2', 'MinJobAge=600',
        f'NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN',
        f'PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP', '')))
    environment = {**os.environ, 'SLURM_CONF': str(conf)}
    started = []
    try:
        for daemon in ('slurmctld', 'slurmd'):
            result = subprocess.run([binaries[daemon], '-f', str(conf)], env=environment, capture_output=True,
                                    text=True, timeout=60, check=False)
            if result.returncode != 0:
                pytest.skip(f'{daemon} did not start: {result.stderr.strip()}')
            started.append(folder / f'{daemon}.pid')

        def idle() -> bool:
            result = subprocess.run([binaries['sinfo'], '-h', '-o', '%t'], env=environment, capture_output=True,
                                    text=True, timeout=30, check=False)
            return result.returncode == 0 and result.stdout.strip() == 'idle'

        if not _wait_for(idle, 30):
            log = (folder / 'slurmctld.log').read_text(errors='replace')[-800:]
            pytest.skip(f'the private Slurm node did not become idle within 30 s: {log}')
        yield SlurmCluster(conf, folder, node, mpi)
    finally:
        for pid_file in (*reversed(started), munge / 'munged.pid'):
            try:
                os.kill(int(pid_file.read_text().split()[0]), 15)
            except (OSError, ValueError, IndexError):
                pass

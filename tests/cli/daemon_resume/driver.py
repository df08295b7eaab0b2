"""Run the kill/resume scenario of ``test_daemon_resume.py`` in the test's own profile (``QDTRAPS_AIIDA_PATH``):
store the QD, start the daemon, submit the pipeline, ``kill -9`` the worker while the hybrid stage's CalcJob runs, start
the uninterrupted reference (``reference.py``), restart the daemon and wait for both. argv[1]: a JSON file with
``loose`` and ``scf`` (CP2K parameter overrides of the relax and the hybrid stage), ``functional`` (of the hybrid
stage), ``xyz`` (the QD), ``wait_calc`` and ``wait_end`` (seconds). Prints a log as it goes and a last line
``RESULT {json}``."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

from aiida import orm
from aiida.engine import submit
from aiida.engine.daemon.client import get_daemon_client
from aiida.schedulers.datastructures import JobState
from ase.io import read

from aiida_qdtraps.profile import load_project_profile

load_project_profile()
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain  # noqa: E402 (after the profile is loaded)

CONFIG = json.loads(pathlib.Path(sys.argv[1]).read_text())
REFERENCE = str(pathlib.Path(__file__).with_name('reference.py'))


def make_builder(structure):
    return QdTrapsPipelineWorkChain.get_builder_from_protocol(
        orm.load_code('cp2k@localhost'), structure, protocol='fast',
        overrides={'relax': {'base': {'cp2k': {'parameters': CONFIG['loose']}}},
                   'hybrid_scf': {'scf': {'cp2k': {'parameters': CONFIG['scf']}}}}, functional=CONFIG['functional'])

VERDI = [os.path.join(os.path.dirname(sys.executable), 'verdi'), '-p', 'qdtraps']
log = []
t0 = time.time()

def note(text):
    log.append(f'{time.time() - t0:7.1f} s  {text}')
    print(log[-1], flush=True)

def verdi(*args, timeout=120):
    result = subprocess.run([*VERDI, *args], capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr

def worker_pids():
    code, out = verdi('daemon', 'status', '--timeout', '60')
    pids = [int(m) for m in re.findall(r'^\s*(\d+)\s+\S+\s+\S+\s+\d{4}-', out, re.M)]
    return code, out, pids

def fresh():
    # End this interpreter's read transaction: SQLite (WAL) would keep showing the snapshot it started with.
    from aiida.manage import get_manager
    get_manager().get_profile_storage().get_session().rollback()

def alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as handle:
            return handle.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False

structure = orm.StructureData(ase=read(CONFIG['xyz']))
structure.pbc = (False, False, False)
structure.store()
client = get_daemon_client()
client.start_daemon(number_workers=1)
code, status, pids = worker_pids()
note(f'daemon started, worker pids {pids}')
assert code == 0 and len(pids) == 1, status

pipeline = submit(make_builder(structure))
note(f'submitted QdTrapsPipelineWorkChain<{pipeline.pk}>')

def running_cp2k():
    # the hybrid stage's single point (the CP2K CalcJob with RUN_TYPE ENERGY), once it runs under the scheduler;
    # a CalcJobNode just stored by the worker has no process_state yet (seen in CI as None.value)
    fresh()
    for calc in orm.load_node(pipeline.pk).called_descendants:
        if calc.process_type == 'aiida.calculations:cp2k' and getattr(calc.process_state, 'value', None) == 'waiting' \
                and calc.inputs.parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY' \
                and calc.get_job_id() and calc.get_scheduler_state() == JobState.RUNNING:
            return calc
    return None

deadline = time.time() + CONFIG['wait_calc']
calc = None
while calc is None:
    assert time.time() < deadline, 'no CP2K CalcJob of the daemon copy reached RUNNING in time'
    assert not pipeline.is_terminated, f'pipeline terminated early: {pipeline.exit_status} {pipeline.exit_message}'
    time.sleep(1)
    calc = running_cp2k()
job_id = calc.get_job_id()
note(f'CalcJob<{calc.pk}> job {job_id} RUNNING; CP2K job pid alive: {alive(int(job_id))}')
time.sleep(5)  # let CP2K get going, so the kill lands in the middle of the job

code, status, pids = worker_pids()
assert code == 0 and len(pids) == 1, status
worker = pids[0]
with open(f'/proc/{worker}/cmdline') as handle:
    cmdline = handle.read().replace('\0', ' ')
assert 'daemon worker' in cmdline, cmdline
os.kill(worker, signal.SIGKILL)
while alive(worker):
    time.sleep(0.1)
cp2k_alive = alive(int(job_id))
note(f'kill -9 {worker} ({cmdline.strip()}): worker gone; CP2K job {job_id} alive: {cp2k_alive}')
reference = subprocess.Popen([sys.executable, REFERENCE, str(calc.pk)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
note(f'reference: CalcJob<{calc.pk}> run again from its inputs in another interpreter')
time.sleep(3)
_, _, after_kill = worker_pids()
note(f'workers 3 s after the kill (circus respawns them): {after_kill}')

code, out = verdi('daemon', 'restart', '--timeout', '120', timeout=300)
assert code == 0, out
code, status, pids = worker_pids()
assert code == 0 and pids and worker not in pids, status
note(f'verdi daemon restart: workers {pids}')

deadline = time.time() + CONFIG['wait_end']
while fresh() or not pipeline.is_terminated:
    assert time.time() < deadline, 'the daemon copy did not finish in time'
    time.sleep(2)
note(f'daemon copy terminated: exit status {pipeline.exit_status}')
out, _ = reference.communicate(timeout=CONFIG['wait_end'])
note('reference finished')
assert reference.returncode == 0, out
ref_pk = int(re.search(r'^REFERENCE (\d+)', out, re.M).group(1))
client.stop_daemon(wait=True)
# (not `verdi daemon status`: on a stopped daemon it waits its whole --timeout, 60 s, before saying so)
note(f'daemon stopped (running: {client.is_daemon_running})')
print('RESULT', json.dumps({'daemon': pipeline.pk, 'reference': ref_pk, 'killed_calc': calc.pk, 'job_id': job_id,
                            'worker': worker, 'cp2k_alive_after_kill': cp2k_alive, 'log': log}))

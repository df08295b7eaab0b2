"""Kill/resume: the pipeline submitted to the daemon survives a ``kill -9`` of the daemon worker mid-CalcJob.

A separate project profile (temporary ``QDTRAPS_AIIDA_PATH``, made by ``qdtraps setup``) runs the pipeline (tiny
In4PF9 QD, ``fast`` protocol with loose GEO_OPT thresholds, no Bader stage) in the daemon. It starts from the
recorded CP2K ``fast``-relaxed In4PF9 (``tests/data/cp2k/relaxed/in4pf9_fast.xyz``), so its GEO_OPT is short: the
relax of the built QD is run for real in ``tests/workchains/test_pipeline_real.py``. As soon as its PBE0 CP2K
CalcJob is running under the scheduler, the daemon worker gets ``SIGKILL`` (no clean-up, no checkpoint of its own),
then ``verdi daemon restart`` brings up a fresh worker, which picks the requeued tasks up from the broker and the
processes up from their checkpoints.

The *reference* is the killed CalcJob run again, uninterrupted, from the very same input nodes
(``get_builder_restart``) in a plain interpreter, started at the moment of the kill so that the two CP2K runs share
the two cores. (The relax and labeling are covered by ``tests/workchains/test_pipeline_real.py``; docs/scaleout.md
has the timings.) Caching is switched off in the test
profile, else the reference could be a copy of the killed job's result; the test also checks that no CalcJob was
created from the cache. Then: the killed CalcJob and the reference have the same outputs with the same values (to
round-off), the daemon pipeline has exactly one CalcJob per call link, every process finished ``ok``, the PBE0 ran on
the relax's output structure, the labels were made from the killed job's MO window, and the profile holds no other
CalcJob.

With ``QDTRAPS_TEST_SERVICES=1`` the same test also runs on a profile with RabbitMQ and PostgreSQL
(``qdtraps setup --broker rabbitmq --storage psql``; ``make rabbitmq postgresql`` installs and starts them).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

#: GEO_OPT thresholds that the `fast` minimum (largest gradient 4.2e-3 Ha/bohr) meets after the first step, on a
#: coarser grid and SCF than `fast`'s (150 Ry, EPS_SCF 1e-4), with BFGS: 3 evaluations (26 SCF steps, 52 s here) where
#: the protocol's LBFGS line search takes 4 (53 steps, 101 s). The relax is plumbing here, the killed CalcJob is the
#: PBE0; test_pipeline_real.py relaxes with the protocol's own settings.
LOOSE = {'MOTION': {'GEO_OPT': {'OPTIMIZER': 'BFGS', 'MAX_FORCE': 5.0e-2, 'RMS_FORCE': 3.0e-2, 'MAX_DR': 5.0e-1,
                                'RMS_DR': 3.0e-1}},
         'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 150}, 'SCF': {'EPS_SCF': 1.0e-4}}}}
#: A cheaper PBE0 than `fast`'s (200 instead of 300 Ry, EPS_SCF 1e-5): the killed CalcJob and its re-run only have to
#: be the same job; the protocol's PBE0 runs for real in test_pipeline_real.py.
CHEAP_PBE0 = {'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 200}, 'SCF': {'EPS_SCF': 1.0e-5}}}}

BUILDER = """
from aiida import orm
from aiida_qdtraps.profile import load_project_profile
load_project_profile()
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain

def make_builder(structure):
    return QdTrapsPipelineWorkChain.get_builder_from_protocol(
        orm.load_code('cp2k@localhost'), structure, protocol='fast',
        overrides={{'relax': {{'base': {{'cp2k': {{'parameters': {loose!r}}}}}}},
                   'hybrid_scf': {{'scf': {{'cp2k': {{'parameters': {pbe0!r}}}}}}}}})
"""

#: Uninterrupted reference: the killed CalcJob run again from the same input nodes. argv[1]: pk of the killed CalcJob.
REFERENCE = """
import sys
from aiida import orm
from aiida.engine import run_get_node
from aiida_qdtraps.profile import load_project_profile
load_project_profile()
_, node = run_get_node(orm.load_node(int(sys.argv[1])).get_builder_restart())
print('REFERENCE', node.pk, node.exit_status, flush=True)
"""

#: Store the QD, start the daemon, submit, kill the worker mid-PBE0 CalcJob and start the reference, restart, wait.
DRIVER = BUILDER + """
import json, os, re, signal, subprocess, sys, time
from aiida.engine import submit
from aiida.engine.daemon.client import get_daemon_client
from aiida.schedulers.datastructures import JobState
from ase.io import read

VERDI = [os.path.join(os.path.dirname(sys.executable), 'verdi'), '-p', 'qdtraps']
log = []
t0 = time.time()

def note(text):
    log.append(f'{{time.time() - t0:7.1f}} s  {{text}}')
    print(log[-1], flush=True)

def verdi(*args, timeout=120):
    result = subprocess.run([*VERDI, *args], capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr

def worker_pids():
    code, out = verdi('daemon', 'status', '--timeout', '60')
    pids = [int(m) for m in re.findall(r'^\\s*(\\d+)\\s+\\S+\\s+\\S+\\s+\\d{{4}}-', out, re.M)]
    return code, out, pids

def fresh():
    # End this interpreter's read transaction: SQLite (WAL) would keep showing the snapshot it started with.
    from aiida.manage import get_manager
    get_manager().get_profile_storage().get_session().rollback()

def alive(pid):
    try:
        with open(f'/proc/{{pid}}/stat') as handle:
            return handle.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False

structure = orm.StructureData(ase=read({xyz!r}))
structure.pbc = (False, False, False)
structure.store()
client = get_daemon_client()
client.start_daemon(number_workers=1)
code, status, pids = worker_pids()
note(f'daemon started, worker pids {{pids}}')
assert code == 0 and len(pids) == 1, status

pipeline = submit(make_builder(structure))
note(f'submitted QdTrapsPipelineWorkChain<{{pipeline.pk}}>')

def running_cp2k():
    # the PBE0 single point (the CP2K CalcJob whose XC section has HF), once it runs under the scheduler;
    # a CalcJobNode just stored by the worker has no process_state yet (seen in CI as None.value)
    fresh()
    for calc in orm.load_node(pipeline.pk).called_descendants:
        if calc.process_type == 'aiida.calculations:cp2k' and getattr(calc.process_state, 'value', None) == 'waiting' \\
                and 'HF' in calc.inputs.parameters['FORCE_EVAL']['DFT']['XC'] \\
                and calc.get_job_id() and calc.get_scheduler_state() == JobState.RUNNING:
            return calc
    return None

deadline = time.time() + {wait_calc}
calc = None
while calc is None:
    assert time.time() < deadline, 'no CP2K CalcJob of the daemon copy reached RUNNING in time'
    assert not pipeline.is_terminated, f'pipeline terminated early: {{pipeline.exit_status}} {{pipeline.exit_message}}'
    time.sleep(1)
    calc = running_cp2k()
job_id = calc.get_job_id()
note(f'CalcJob<{{calc.pk}}> job {{job_id}} RUNNING; CP2K job pid alive: {{alive(int(job_id))}}')
time.sleep(5)  # let CP2K get going, so the kill lands in the middle of the job

code, status, pids = worker_pids()
assert code == 0 and len(pids) == 1, status
worker = pids[0]
with open(f'/proc/{{worker}}/cmdline') as handle:
    cmdline = handle.read().replace('\\0', ' ')
assert 'daemon worker' in cmdline, cmdline
os.kill(worker, signal.SIGKILL)
while alive(worker):
    time.sleep(0.1)
cp2k_alive = alive(int(job_id))
note(f'kill -9 {{worker}} ({{cmdline.strip()}}): worker gone; CP2K job {{job_id}} alive: {{cp2k_alive}}')
reference = subprocess.Popen([sys.executable, '-c', {reference!r}, str(calc.pk)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
note(f'reference: CalcJob<{{calc.pk}}> run again from its inputs in another interpreter')
time.sleep(3)
_, _, after_kill = worker_pids()
note(f'workers 3 s after the kill (circus respawns them): {{after_kill}}')

code, out = verdi('daemon', 'restart', '--timeout', '120', timeout=300)
assert code == 0, out
code, status, pids = worker_pids()
assert code == 0 and pids and worker not in pids, status
note(f'verdi daemon restart: workers {{pids}}')

deadline = time.time() + {wait_end}
while fresh() or not pipeline.is_terminated:
    assert time.time() < deadline, 'the daemon copy did not finish in time'
    time.sleep(2)
note(f'daemon copy terminated: exit status {{pipeline.exit_status}}')
out, _ = reference.communicate(timeout={wait_end})
note('reference finished')
assert reference.returncode == 0, out
ref_pk = int(re.search(r'^REFERENCE (\\d+)', out, re.M).group(1))
client.stop_daemon(wait=True)
# (not `verdi daemon status`: on a stopped daemon it waits its whole --timeout, 60 s, before saying so)
note(f'daemon stopped (running: {{client.is_daemon_running}})')
print('RESULT', json.dumps({{'daemon': pipeline.pk, 'reference': ref_pk, 'killed_calc': calc.pk, 'job_id': job_id,
                            'worker': worker, 'cp2k_alive_after_kill': cp2k_alive, 'log': log}}))
"""

#: Describe both pipelines and the whole profile as JSON: process trees, outputs with their values, stray nodes.
DESCRIBE = """
import json, sys
import numpy as np
from aiida import orm
from aiida.common.links import LinkType
from aiida_qdtraps.profile import load_project_profile
load_project_profile()

def tree(node, path=''):
    rows = []
    for link in node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all():
        child, label = link.node, f'{path}/{link.link_label}'
        row = {'path': label, 'type': child.process_type, 'state': child.process_state.value,
               'exit_status': child.exit_status, 'cached': child.base.caching.is_created_from_cache}
        if isinstance(child, orm.CalcJobNode):
            row['job_id'] = child.get_job_id()
            out = child.outputs.retrieved.base.repository.get_object_content('aiida.out') \\
                if 'retrieved' in child.outputs and child.process_type == 'aiida.calculations:cp2k' else ''
            row['cp2k_starts'] = out.count('PROGRAM STARTED AT')
            row['cp2k_ends'] = out.count('PROGRAM ENDED AT')
        rows.append(row)
        rows.extend(tree(child, label))
    return rows

def value(node):
    if isinstance(node, orm.Dict):
        return node.get_dict()
    if isinstance(node, orm.StructureData):
        return {'symbols': [s.kind_name for s in node.sites], 'positions': [list(s.position) for s in node.sites],
                'cell': node.cell}
    if isinstance(node, (orm.ArrayData, orm.TrajectoryData)):
        return {name: np.asarray(node.get_array(name)).tolist() for name in node.get_arraynames()
                if np.asarray(node.get_array(name)).dtype.kind in 'fiub'}
    if isinstance(node, orm.SinglefileData):
        return {'size': len(node.get_content('rb'))}
    if isinstance(node, orm.RemoteData):
        return None  # a path in the scratch folder: differs by construction
    return dict(node.base.attributes.all)

def outputs(node, link_types=(LinkType.RETURN,)):
    result = {}
    for link in node.base.links.get_outgoing(link_type=link_types).all():
        if link.link_label != 'retrieved':  # the retrieved files hold wall times and dates
            result[link.link_label] = [type(link.node).__name__, value(link.node)]
    return result

def ancestors(node):
    query = orm.QueryBuilder().append(orm.Node, filters={'id': node.pk}, tag='n')
    return set(query.append(orm.Node, with_descendants='n', project='uuid').all(flat=True))

daemon_pk, killed_pk, reference_pk = (int(pk) for pk in sys.argv[1:])
pipeline, killed, reference = (orm.load_node(pk) for pk in (daemon_pk, killed_pk, reference_pk))
description = {'daemon': {'state': pipeline.process_state.value, 'exit_status': pipeline.exit_status,
                          'tree': tree(pipeline), 'outputs': sorted(outputs(pipeline))}}
for name, calc in (('killed', killed), ('reference', reference)):
    description[name] = {'state': calc.process_state.value, 'exit_status': calc.exit_status,
                         'cached': calc.base.caching.is_created_from_cache,
                         'outputs': outputs(calc, (LinkType.CREATE,))}
# provenance: the PBE0 ran on the relax's output structure, and the labels came from the killed job's MO window
relaxed = pipeline.outputs.relax.relaxed_structure
labels = [n for n in pipeline.called_descendants if n.process_label == 'TrapLabelingWorkChain']
description['pbe0_on_relaxed'] = relaxed.uuid in ancestors(killed.inputs.structure) | {killed.inputs.structure.uuid}
description['labels_from_killed'] = len(labels) == 1 and killed.uuid in ancestors(labels[0].inputs.mo_window)
mine = {n.pk for n in pipeline.called_descendants} | {reference.pk}
calcjobs = orm.QueryBuilder().append(orm.CalcJobNode, project='id').all(flat=True)
processes = orm.QueryBuilder().append(orm.ProcessNode, project=['id', 'process_type', 'attributes.process_state',
                                                                 'attributes.exit_status']).all()
description['stray_calcjobs'] = sorted(set(calcjobs) - mine)
description['not_ok'] = [row for row in processes if row[2] != 'finished' or row[3] != 0]
description['n_processes'] = len(processes)
print('DESCRIPTION', json.dumps(description))
"""


def services_up() -> str | None:
    """Return why the RabbitMQ + PostgreSQL variant cannot run here, or None if it can."""
    if os.environ.get('QDTRAPS_TEST_SERVICES') != '1':
        return 'set QDTRAPS_TEST_SERVICES=1 (and `make rabbitmq postgresql`) to run on RabbitMQ + PostgreSQL'
    from aiida_qdtraps.services import postgresql_problem, rabbitmq_problem

    problems = [p for p in (rabbitmq_problem(), postgresql_problem()) if p]
    return '; '.join(problems) or None


#: Tolerance of the value comparison. Both copies run the same CP2K binary with one OpenMP thread (FFTW plans
#: ESTIMATE, serial OpenBLAS) on the same inputs on the same machine, which is deterministic: in the runs recorded in
#: docs/scaleout.md every output number other than a wall time was bitwise equal (9,503 of 9,504). 1e-9 leaves room
#: for last-digit noise only; any real difference (a CalcJob re-run from another state, a lost restart) is far larger.
TOLERANCE = 1e-9


def _is_timing(key: str) -> bool:
    return 'walltime' in key or 'wall_time' in key or key.endswith(('_time', 'time_s', '_date'))


def assert_close(daemon, reference, where=''):
    """Values equal; floats to :data:`TOLERANCE` (absolute); wall times are not compared."""
    if isinstance(reference, dict):
        assert isinstance(daemon, dict) and set(daemon) == set(reference), f'{where}: keys differ'
        for key in reference:
            if _is_timing(key):
                continue  # timings differ between any two runs
            assert_close(daemon[key], reference[key], f'{where}.{key}')
    elif isinstance(reference, list):
        assert isinstance(daemon, list) and len(daemon) == len(reference), f'{where}: lengths differ'
        if reference and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in np.ravel(reference)):
            np.testing.assert_allclose(np.asarray(daemon, float), np.asarray(reference, float), rtol=1e-12,
                                       atol=TOLERANCE, err_msg=where)
        else:
            for index, (a, b) in enumerate(zip(daemon, reference)):
                assert_close(a, b, f'{where}[{index}]')
    elif isinstance(reference, float):
        assert daemon == pytest.approx(reference, rel=1e-12, abs=TOLERANCE), where
    else:
        assert daemon == reference, f'{where}: {daemon!r} != {reference!r}'


def _variants():
    reason = services_up()
    return [pytest.param(('zeromq', 'sqlite'), id='zeromq-sqlite'),
            pytest.param(('rabbitmq', 'psql'), id='rabbitmq-psql',
                         marks=pytest.mark.skipif(reason is not None, reason=reason or ''))]


@pytest.mark.slow
@pytest.mark.parametrize('services', _variants())
def test_kill_worker_and_resume(services, tmp_path, run_qdtraps, run_python, data_dir):
    broker, storage = services
    aiida_path = tmp_path / '.aiida'
    start = time.perf_counter()
    args = ['setup', '--broker', broker] + (['--storage', storage] if storage != 'sqlite' else [])
    setup = run_qdtraps(args, aiida_path)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    try:
        # Caching off in this profile (see the module docstring); the test checks no CalcJob was a cache hit.
        # The daemon client's 2 s default timeout is too short while CP2K keeps both cores busy.
        run_python("""
            from aiida_qdtraps.profile import _get_config, PROFILE_NAME
            config = _get_config()
            config.set_option('caching.enabled_for', [], scope=PROFILE_NAME)
            config.set_option('daemon.timeout', 60, scope=PROFILE_NAME)  # circus answers slowly on a busy machine
            config.store()
        """, aiida_path)

        xyz = str(data_dir / 'cp2k' / 'relaxed' / 'in4pf9_fast.xyz')
        script = DRIVER.format(loose=LOOSE, pbe0=CHEAP_PBE0, xyz=xyz, wait_calc=3000, wait_end=3600,
                               reference=REFERENCE)
        environment = {k: v for k, v in os.environ.items() if k != 'AIIDA_PATH'}
        # the daemon client looks `verdi` up on PATH (`make test` does not activate the venv)
        environment.update(QDTRAPS_AIIDA_PATH=str(aiida_path), OMP_NUM_THREADS='1',
                           PATH=f'{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}')
        log = tmp_path / 'driver.log'  # written as it goes: `tail -f` it to follow a run
        with log.open('w') as handle:
            driver = subprocess.run([sys.executable, '-c', script], env=environment, stdout=handle,
                                    stderr=subprocess.STDOUT, timeout=9000, check=False)
        output = log.read_text()
        assert driver.returncode == 0, output[-8000:]
        result = json.loads(output.split('RESULT ', 1)[1])
        argv = [str(result[key]) for key in ('daemon', 'killed_calc', 'reference')]
        description = json.loads(run_python(DESCRIBE, aiida_path, argv=argv).split('DESCRIPTION ', 1)[1])
    finally:
        _stop_daemon(aiida_path)
        _kill_jobs(aiida_path)
        if storage == 'psql':
            from aiida_qdtraps.services import drop_psql_storage
            drop_psql_storage(aiida_path)
    print('\n'.join(result['log']), f'\ntotal {time.perf_counter() - start:.0f} s')
    check(description, result)


def check(description: dict, result: dict) -> None:
    """The assertions on the description of the run (also usable on a saved description)."""
    daemon, killed, reference = description['daemon'], description['killed'], description['reference']
    assert (daemon['state'], daemon['exit_status']) == ('finished', 0)
    assert (killed['state'], killed['exit_status']) == ('finished', 0)
    assert (reference['state'], reference['exit_status']) == ('finished', 0)

    # The kill landed while CP2K ran; the killed CalcJob is in the daemon pipeline, it kept its scheduler job and CP2K
    # ran once, start to end.
    assert result['cp2k_alive_after_kill']
    rows = [row for row in daemon['tree'] if row.get('job_id') == result['job_id']]
    assert len(rows) == 1 and rows[0]['type'] == 'aiida.calculations:cp2k'
    assert (rows[0]['cp2k_starts'], rows[0]['cp2k_ends']) == (1, 1)

    # One process per call link, exactly one CP2K CalcJob per `.../iteration_01` link (relax and PBE0), every one
    # finished ok and ran CP2K once; nothing taken from a cache.
    calcjobs = [row['path'] for row in daemon['tree'] if 'job_id' in row]
    assert len(calcjobs) == 2 and len(set(calcjobs)) == len(calcjobs), calcjobs
    assert all((row['state'], row['exit_status']) == ('finished', 0) for row in daemon['tree'])
    assert all((row['cp2k_starts'], row['cp2k_ends']) == (1, 1) for row in daemon['tree'] if 'job_id' in row)
    assert not any(row['cached'] for row in daemon['tree']) and not killed['cached'] and not reference['cached']
    assert {name.split('__')[0] for name in daemon['outputs']} == {'relax', 'hybrid_scf', 'labels'}
    assert description['pbe0_on_relaxed'] and description['labels_from_killed']
    # No CalcJob outside the pipeline and the reference, no excepted / killed / failed process anywhere.
    assert description['stray_calcjobs'] == []
    assert description['not_ok'] == []

    # The killed CalcJob's outputs equal the uninterrupted run's.
    assert set(killed['outputs']) == set(reference['outputs']) and 'output_parameters' in killed['outputs']
    assert_close(killed['outputs'], reference['outputs'], 'outputs')


def _stop_daemon(aiida_path: pathlib.Path) -> None:
    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    environment = {k: v for k, v in os.environ.items() if k != 'QDTRAPS_AIIDA_PATH'} | {'AIIDA_PATH': str(aiida_path)}
    subprocess.run([str(verdi), '-p', 'qdtraps', 'daemon', 'stop'], env=environment, capture_output=True, timeout=120,
                   check=False)


def _kill_jobs(aiida_path: pathlib.Path) -> None:
    """Stop CP2K jobs left in this profile's scratch folder (after a failure: detached jobs outlive the daemon)."""
    scratch = str(aiida_path / 'scratch')
    for proc in pathlib.Path('/proc').iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / 'cwd').startswith(scratch):
                os.kill(int(proc.name), 15)
        except OSError:
            continue

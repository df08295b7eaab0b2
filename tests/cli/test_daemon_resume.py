"""Kill/resume: the pipeline submitted to the daemon survives a ``kill -9`` of the daemon worker mid-CalcJob.

A separate project profile (temporary ``QDTRAPS_AIIDA_PATH``, made by ``qdtraps setup``) runs the pipeline (tiny
In4PF9 QD, ``fast`` protocol with loose GEO_OPT thresholds, no Bader stage) in the daemon. It starts from the
recorded CP2K ``fast``-relaxed In4PF9 (``tests/data/cp2k/relaxed/in4pf9_fast.xyz``), so its GEO_OPT is short: the
relax of the built QD is run for real in ``tests/workchains/test_pipeline_real.py``; its hybrid stage is a PBE single
point (``functional='pbe'``). As soon as that CP2K CalcJob is running under the scheduler, the daemon worker gets
``SIGKILL`` (no clean-up, no checkpoint of its own), then ``verdi daemon restart`` brings up a fresh worker, which
picks the requeued tasks up from the broker and the processes up from their checkpoints.

The *reference* is the killed CalcJob run again, uninterrupted, from the very same input nodes
(``get_builder_restart``) in a plain interpreter, started at the moment of the kill so that the two CP2K runs share
the two cores. (The relax and labeling are covered by ``tests/workchains/test_pipeline_real.py``; docs/scaleout.md
has the timings.) Caching is switched off in the test
profile, else the reference could be a copy of the killed job's result; the test also checks that no CalcJob was
created from the cache. Then: the killed CalcJob and the reference have the same outputs with the same values (to
round-off), the daemon pipeline has exactly one CalcJob per call link, every process finished ``ok``, the single
point ran on the relax's output structure, the labels were made from the killed job's MO window, and the profile
holds no other CalcJob.

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
#: hybrid stage's; test_pipeline_real.py relaxes with the protocol's own settings.
LOOSE = {'MOTION': {'GEO_OPT': {'OPTIMIZER': 'BFGS', 'MAX_FORCE': 5.0e-2, 'RMS_FORCE': 3.0e-2, 'MAX_DR': 5.0e-1,
                                'RMS_DR': 3.0e-1}},
         'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 150}, 'SCF': {'EPS_SCF': 1.0e-4}}}}
#: A cheaper hybrid stage than `fast`'s (PBE through `functional`, 200 instead of 300 Ry, EPS_SCF 1e-5): the killed
#: CalcJob and its re-run only have to be the same job; the protocol's PBE0 runs for real in test_pipeline_real.py.
CHEAP_SCF = {'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 200}, 'SCF': {'EPS_SCF': 1.0e-5}}}}

#: the scripts the test runs in subprocesses, in the test's own profile
SCRIPTS = pathlib.Path(__file__).with_name('daemon_resume')


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
        run_python((SCRIPTS / 'configure_profile.py').read_text(), aiida_path)

        xyz = str(data_dir / 'cp2k' / 'relaxed' / 'in4pf9_fast.xyz')
        config = tmp_path / 'driver.json'
        config.write_text(json.dumps({'loose': LOOSE, 'scf': CHEAP_SCF, 'functional': 'pbe', 'xyz': xyz,
                                      'wait_calc': 3000, 'wait_end': 3600}))
        environment = {k: v for k, v in os.environ.items() if k != 'AIIDA_PATH'}
        # the daemon client looks `verdi` up on PATH (`make test` does not activate the venv)
        environment.update(QDTRAPS_AIIDA_PATH=str(aiida_path), OMP_NUM_THREADS='1',
                           PATH=f'{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}')
        log = tmp_path / 'driver.log'  # written as it goes: `tail -f` it to follow a run
        with log.open('w') as handle:
            driver = subprocess.run([sys.executable, str(SCRIPTS / 'driver.py'), str(config)], env=environment,
                                    stdout=handle,
                                    stderr=subprocess.STDOUT, timeout=9000, check=False)
        output = log.read_text()
        assert driver.returncode == 0, output[-8000:]
        result = json.loads(output.split('RESULT ', 1)[1])
        argv = [str(result[key]) for key in ('daemon', 'killed_calc', 'reference')]
        description = json.loads(run_python((SCRIPTS / 'describe.py').read_text(), aiida_path,
                                            argv=argv).split('DESCRIPTION ', 1)[1])
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

    # One process per call link, exactly one CP2K CalcJob per `.../iteration_01` link (relax and PBE), every one
    # finished ok and ran CP2K once; nothing taken from a cache.
    calcjobs = [row['path'] for row in daemon['tree'] if 'job_id' in row]
    assert len(calcjobs) == 2 and len(set(calcjobs)) == len(calcjobs), calcjobs
    assert all((row['state'], row['exit_status']) == ('finished', 0) for row in daemon['tree'])
    assert all((row['cp2k_starts'], row['cp2k_ends']) == (1, 1) for row in daemon['tree'] if 'job_id' in row)
    assert not any(row['cached'] for row in daemon['tree']) and not killed['cached'] and not reference['cached']
    assert {name.split('__')[0] for name in daemon['outputs']} == {'relax', 'hybrid_scf', 'labels'}
    assert description['scf_on_relaxed'] and description['labels_from_killed']
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

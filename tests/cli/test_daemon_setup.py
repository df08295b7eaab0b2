"""``qdtraps setup --broker/--storage/--daemon``: switching brokers, refusing storage switches, starting the daemon,
and the messages when RabbitMQ or PostgreSQL is not running (they must name the command that starts the service)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from aiida_qdtraps import services


def _lines(result) -> dict[str, str]:
    """``{step name: status}`` of the lines ``qdtraps setup`` printed."""
    steps = {}
    for line in result.stdout.splitlines():
        for status in ('created', 'exists', 'updated'):
            if f' {status}' in line:
                steps[line.split(f' {status}')[0].strip()] = status
                break
    return steps


@pytest.fixture(scope='module')
def profile_path(tmp_path_factory, run_qdtraps):
    aiida_path = tmp_path_factory.mktemp('daemon_setup') / '.aiida'
    result = run_qdtraps(['setup'], aiida_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return aiida_path


def test_switch_broker_and_back(profile_path, run_qdtraps):
    none = run_qdtraps(['setup', '--broker', 'none'], profile_path)
    assert none.returncode == 0, none.stderr
    assert 'updated' in none.stdout and 'broker core.zeromq -> none' in none.stdout
    refused = run_qdtraps(['setup', '--daemon'], profile_path)
    assert refused.returncode != 0 and 'has no broker' in refused.stderr and '--broker zeromq' in refused.stderr
    back = run_qdtraps(['setup', '--broker', 'zeromq'], profile_path)
    assert back.returncode == 0 and 'broker none -> core.zeromq' in back.stdout
    again = run_qdtraps(['setup', '--broker', 'zeromq'], profile_path)
    assert _lines(again)['profile qdtraps'] == 'exists'


def test_storage_cannot_be_switched(profile_path, run_qdtraps):
    result = run_qdtraps(['setup', '--storage', 'psql'], profile_path)
    assert result.returncode != 0
    assert 'uses storage `core.sqlite_dos`, not `core.psql_dos`' in result.stderr and 'verdi archive' in result.stderr


def test_bad_values_are_named(profile_path, run_qdtraps):
    result = run_qdtraps(['setup', '--broker', 'kafka'], profile_path)
    assert result.returncode != 0 and "'kafka' is not one of" in result.stderr
    result = run_qdtraps(['setup', '--daemon', '--workers', '0'], profile_path)
    assert result.returncode != 0 and '0 is not in the range' in result.stderr


@pytest.mark.skipif(services.rabbitmq_problem() is None, reason='RabbitMQ is running here; the message is for when not')
def test_rabbitmq_not_running_says_how_to_start(tmp_path, run_qdtraps):
    result = run_qdtraps(['setup', '--broker', 'rabbitmq'], tmp_path / '.aiida')
    assert result.returncode != 0
    assert 'make rabbitmq' in result.stderr
    assert not (tmp_path / '.aiida' / 'repository' / 'qdtraps').exists(), 'nothing may be created without a broker'


@pytest.mark.skipif(services.postgresql_problem() is None, reason='PostgreSQL is running here; the message is for when '
                    'not')
def test_postgresql_not_running_says_how_to_start(tmp_path, run_qdtraps):
    result = run_qdtraps(['setup', '--storage', 'psql'], tmp_path / '.aiida')
    assert result.returncode != 0
    assert 'make postgresql' in result.stderr


def test_psql_names_are_per_folder(tmp_path):
    assert services.psql_names(tmp_path / 'a') == services.psql_names(tmp_path / 'a')
    assert services.psql_names(tmp_path / 'a') != services.psql_names(tmp_path / 'b')
    assert services.psql_names(tmp_path).startswith('qdtraps_')


def test_daemon_start_is_idempotent(profile_path, run_qdtraps):
    """`qdtraps setup --daemon` starts the ZeroMQ daemon once; the second call finds it; `status` shows its worker."""
    try:
        first = run_qdtraps(['setup', '--daemon'], profile_path)
        assert first.returncode == 0, first.stdout + first.stderr
        assert _lines(first)['daemon'] == 'created'
        second = run_qdtraps(['setup', '--daemon'], profile_path)
        assert _lines(second)['daemon'] == 'exists'
        status = run_qdtraps(['status'], profile_path)
        assert 'daemon:      running, worker pids [' in status.stdout
        switch = run_qdtraps(['setup', '--broker', 'none'], profile_path)
        assert switch.returncode != 0 and 'verdi daemon stop' in switch.stderr
    finally:
        verdi = pathlib.Path(sys.executable).parent / 'verdi'
        environment = {k: v for k, v in os.environ.items() if k != 'QDTRAPS_AIIDA_PATH'}
        stopped = subprocess.run([str(verdi), '-p', 'qdtraps', 'daemon', 'stop'], capture_output=True, text=True,
                                 env=environment | {'AIIDA_PATH': str(profile_path)}, timeout=120, check=False)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert 'daemon:      not running' in run_qdtraps(['status'], profile_path).stdout

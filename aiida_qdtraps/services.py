"""Daemon mode of the project profile: the RabbitMQ broker, PostgreSQL storage and the AiiDA daemon.

The default profile needs no service: ``core.sqlite_dos`` storage and aiida-core 2.9's ZeroMQ broker, which
``verdi daemon start`` starts together with the workers. Two options need system services, which this module checks
but never starts (they need root and belong to the machine, not to a profile):

* ``core.rabbitmq`` broker: Debian ``rabbitmq-server`` with ``consumer_timeout`` disabled in
  ``/etc/rabbitmq/advanced.config`` (RabbitMQ >= 3.8.15 otherwise cancels tasks that run longer than 30 min);
* ``core.psql_dos`` storage: Debian ``postgresql``; one role and one database per configuration folder, named
  ``qdtraps_<hash of the folder>`` so that several checkouts (and the tests' temporary profiles) never share one.

``make rabbitmq`` and ``make postgresql`` install, configure and start them (docs/scaleout.md). Every check returns a
message that says the exact command to run when a service is down.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import secrets
import shutil
import socket
import subprocess
import sys

from .project import SetupStep, aiida_path

RABBITMQ_HOST, RABBITMQ_PORT = '127.0.0.1', 5672
POSTGRES_HOST, POSTGRES_PORT = 'localhost', 5432
RABBITMQ_ADVANCED_CONFIG = pathlib.Path('/etc/rabbitmq/advanced.config')
#: What `make rabbitmq` writes to RABBITMQ_ADVANCED_CONFIG.
RABBITMQ_ADVANCED_TEXT = '[{rabbit, [{consumer_timeout, undefined}]}].\n'
RABBITMQ_START = 'service rabbitmq-server start'
POSTGRESQL_START = 'service postgresql start'

__all__ = ('rabbitmq_problem', 'rabbitmq_consumer_timeout', 'postgresql_problem', 'psql_names', 'ensure_psql_storage',
           'drop_psql_storage', 'ensure_daemon', 'daemon_state')


def _port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def rabbitmq_problem() -> str | None:
    """Return why the RabbitMQ broker cannot be used (with the command that fixes it), or None if it is up."""
    if shutil.which('rabbitmq-server') is None and not os.path.exists('/usr/sbin/rabbitmq-server'):
        return ('RabbitMQ is not installed (no `rabbitmq-server`); install, configure and start it with '
                '`make rabbitmq` (Debian package rabbitmq-server)')
    if not _port_open(RABBITMQ_HOST, RABBITMQ_PORT):
        return (f'RabbitMQ is not running (nothing listens on {RABBITMQ_HOST}:{RABBITMQ_PORT}); start it with '
                f'`{RABBITMQ_START}` (as root; or `rabbitmq-server -detached`, or `make rabbitmq`)')
    from aiida.brokers.rabbitmq.defaults import detect_rabbitmq_config

    try:
        detect_rabbitmq_config(host=RABBITMQ_HOST, port=RABBITMQ_PORT)
    except ConnectionError as exception:
        return (f'RabbitMQ listens on {RABBITMQ_HOST}:{RABBITMQ_PORT} but refused the login guest/guest '
                f'({exception.__cause__!r}); is it still starting? Check with `rabbitmq-diagnostics -q ping`')
    return None


def rabbitmq_consumer_timeout() -> str:
    """Return RabbitMQ's effective ``consumer_timeout`` (``undefined`` when disabled, as AiiDA needs).

    Asks the running server (``rabbitmqctl eval``, needs root or the Erlang cookie); falls back to reading
    ``/etc/rabbitmq/advanced.config``.
    """
    ctl = shutil.which('rabbitmqctl') or '/usr/sbin/rabbitmqctl'
    try:
        result = subprocess.run([ctl, 'eval', 'application:get_env(rabbit, consumer_timeout).'], capture_output=True,
                                text=True, timeout=60, check=False)
        if result.returncode == 0 and result.stdout.strip():
            value = result.stdout.strip()
            match = re.fullmatch(r'\{ok,(\w+)\}', value)  # `{ok,undefined}` when disabled, `{ok,1800000}` by default
            return match.group(1) if match else value
    except (OSError, subprocess.SubprocessError):
        pass
    text = RABBITMQ_ADVANCED_CONFIG.read_text() if RABBITMQ_ADVANCED_CONFIG.exists() else ''
    match = re.search(r'consumer_timeout\s*,\s*(\w+)', text)
    return match.group(1) if match else '1800000 (RabbitMQ default)'


def postgresql_problem() -> str | None:
    """Return why PostgreSQL cannot be used (with the command that fixes it), or None if it accepts connections."""
    if shutil.which('psql') is None:
        return ('PostgreSQL is not installed (no `psql`); install and start it with `make postgresql` '
                '(Debian package postgresql)')
    if not _port_open(POSTGRES_HOST, POSTGRES_PORT):
        return (f'PostgreSQL is not running (nothing listens on {POSTGRES_HOST}:{POSTGRES_PORT}); start it with '
                f'`{POSTGRESQL_START}` (as root; or `pg_ctlcluster 15 main start`, or `make postgresql`)')
    return None


def psql_names(path: pathlib.Path | None = None) -> str:
    """Return the PostgreSQL role and database name of a configuration folder: ``qdtraps_<10 hex of its path>``."""
    path = pathlib.Path(path or aiida_path()).absolute()
    return f'qdtraps_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}'


def _psql_admin(sql: str) -> str:
    """Run one SQL statement as the PostgreSQL superuser ``postgres`` (through ``runuser``/``sudo``); return stdout."""
    psql = ['psql', '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres', '-c', sql]
    prefix = ['runuser', '-u', 'postgres', '--'] if os.geteuid() == 0 else ['sudo', '-n', '-u', 'postgres']
    try:
        result = subprocess.run([*prefix, *psql], capture_output=True, text=True, timeout=60, check=False,
                                cwd='/tmp')
    except (OSError, subprocess.SubprocessError) as exception:
        raise RuntimeError(f'could not run psql as user postgres ({exception}); create the role and database by hand '
                           '(docs/scaleout.md)') from exception
    if result.returncode != 0:
        raise RuntimeError(f'psql as user postgres failed on `{sql.split(" PASSWORD ")[0]}`: {result.stderr.strip()}')
    return result.stdout.strip()


def ensure_psql_storage(repository: pathlib.Path) -> tuple[str, dict]:
    """Create the role and database of this configuration folder unless they exist; return (status, storage config).

    Only called while the profile is being created. A database of this folder that exists already belongs to a profile
    that is gone from ``config.json``: we stop rather than reuse or drop it (it may hold results).
    """
    problem = postgresql_problem()
    if problem:
        raise RuntimeError(problem)
    name = psql_names()
    if _psql_admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        raise RuntimeError(
            f'PostgreSQL database `{name}` exists but no profile in `{aiida_path()}` uses it (left from an earlier '
            f'profile of this folder?); drop it with `runuser -u postgres -- dropdb {name}` (after `verdi archive '
            'create` if you need its data), then run the set-up again.'
        )
    password = secrets.token_urlsafe(18)
    if _psql_admin(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'"):
        _psql_admin(f"ALTER ROLE \"{name}\" WITH LOGIN PASSWORD '{password}'")  # our own per-folder role
        status = 'updated'
    else:
        _psql_admin(f"CREATE ROLE \"{name}\" WITH LOGIN PASSWORD '{password}'")
        status = 'created'
    _psql_admin(f'CREATE DATABASE "{name}" OWNER "{name}" ENCODING \'UTF8\' TEMPLATE template0')
    config = {
        'database_engine': 'postgresql_psycopg',
        'database_hostname': POSTGRES_HOST,
        'database_port': POSTGRES_PORT,
        'database_username': name,
        'database_password': password,
        'database_name': name,
        'repository_uri': repository.absolute().as_uri(),
    }
    return status, config


def drop_psql_storage(path: pathlib.Path | None = None) -> bool:
    """Drop the database and role of a configuration folder (stop its daemon first); return whether one existed."""
    name = psql_names(path)
    existed = bool(_psql_admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))
    _psql_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _psql_admin(f'DROP ROLE IF EXISTS "{name}"')
    return existed


def daemon_state(profile) -> tuple[bool, list[int]]:
    """Return (running, worker pids) of the daemon of ``profile``."""
    from aiida.engine.daemon.client import DaemonClient

    client = DaemonClient(profile)
    if not client.is_daemon_running:
        return False, []
    try:
        return True, sorted(int(pid) for pid in client.get_worker_info()['info'])
    except Exception:  # noqa: BLE001 - circus answers slowly while starting
        return True, []


def ensure_daemon(profile, workers: int = 1) -> SetupStep:
    """Start the daemon of ``profile`` with ``workers`` workers unless it runs; check the broker it needs first."""
    from aiida.engine.daemon.client import DaemonClient

    if workers < 1:
        raise ValueError(f'the daemon needs at least one worker, got workers={workers}')
    backend = profile.process_control_backend
    if backend is None:
        raise RuntimeError(f'profile `{profile.name}` has no broker (`--broker none`), so it cannot run a daemon; '
                           'run `qdtraps setup --broker zeromq` (or rabbitmq) first.')
    if backend == 'core.rabbitmq':
        problem = rabbitmq_problem()
        if problem:
            raise RuntimeError(problem)
    running, pids = daemon_state(profile)
    if running:
        return SetupStep('daemon', 'exists', f'broker {backend}, worker pids {pids}; `verdi daemon stop` stops it')
    # aiida's daemon client finds `verdi` on PATH when it is imported; `.venv/bin/qdtraps` runs without an activated
    # venv, so fall back to the `verdi` next to this interpreter (and put it on PATH for the workers too).
    from aiida.engine.daemon import client as daemon_client

    bin_dir = os.path.dirname(sys.executable)
    if daemon_client.VERDI_BIN is None and os.access(os.path.join(bin_dir, 'verdi'), os.X_OK):
        daemon_client.VERDI_BIN = os.path.join(bin_dir, 'verdi')
        os.environ['PATH'] = f'{bin_dir}{os.pathsep}{os.environ.get("PATH", "")}'
    DaemonClient(profile).start_daemon(number_workers=workers)
    _, pids = daemon_state(profile)
    return SetupStep('daemon', 'created',
                     f'broker {backend}, {workers} worker(s), pids {pids}; `verdi daemon stop` stops it')

"""``qdtraps setup`` and ``qdtraps status``: the project-local profile, its computer and its codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

import click

from .root import cli

PROBE_TIMEOUT_S = 30


def _run(args, **kwargs) -> str:
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'OMPI_ALLOW_RUN_AS_ROOT': '1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1'}
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env, check=False, **kwargs
    )
    return result.stdout + result.stderr


def cp2k_version(executable: str) -> str | None:
    """Return the version of a CP2K executable, from the first line of ``cp2k.psmp --version``."""
    try:
        output = _run([executable, '--version'], stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'CP2K version\s+(\S+)', output)
    return match.group(1) if match else None


def pw_version(executable: str) -> str | None:
    """Return the version of a pw.x executable: the ``Program PWSCF v.X`` banner it prints on start-up.

    pw.x with an empty stdin prints the banner and stops within a second; it runs in a throw-away directory because it
    writes its input copy to the working directory. Falls back to the Debian package version.
    """
    try:
        with tempfile.TemporaryDirectory(prefix='qdtraps-pw-version-') as tmpdir:
            output = _run([executable], stdin=subprocess.DEVNULL, cwd=tmpdir)
        match = re.search(r'Program PWSCF v\.(\S+)', output)
        if match:
            return match.group(1)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        output = _run(['dpkg-query', '-W', '-f=${Version}', 'quantum-espresso'])
    except (OSError, subprocess.SubprocessError):
        return None
    return f'{output.strip()} (Debian package)' if output.strip() and 'no packages' not in output else None


def baderkit_version(executable: str | None = None) -> str | None:
    """Return the version of the ``baderkit`` Python package installed in this environment."""
    import importlib.metadata

    try:
        return importlib.metadata.version('baderkit')
    except importlib.metadata.PackageNotFoundError:
        return None


VERSION_PROBES = {'cp2k': cp2k_version, 'pw': pw_version, 'baderkit': baderkit_version}


class Component(NamedTuple):
    """One thing that set-up installs: its version and whether a small check of it passed."""

    name: str
    version: str | None
    state: str
    """``works``, ``broken``, ``not installed`` or ``missing``."""
    detail: str = ''
    required: bool = True


def _package_version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _python_check(source: str) -> tuple[bool, str]:
    """Run ``source`` in a fresh interpreter of this environment: (exit status 0, last line of its output)."""
    try:
        result = subprocess.run([sys.executable, '-c', source], capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT_S, check=False,
                                env={**os.environ, 'OMP_NUM_THREADS': '1'}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f'no answer within {PROBE_TIMEOUT_S} s'
    lines = (result.stdout + result.stderr).strip().splitlines()
    return result.returncode == 0, lines[-1] if lines else ''


#: A tiny real calculation per Python engine; the last line printed is the detail shown.
PYSCF_CHECK = ("from pyscf import gto; "
               "e = gto.M(atom='H 0 0 0; H 0 0 0.74', basis='sto-3g', verbose=0).RHF().kernel(); "
               "assert abs(e + 1.11676) < 1e-4, e; print(f'H2/STO-3G RHF {e:.5f} Ha')")
DEEPMD_CHECK = ('import torch, deepmd.pt; from deepmd.pt.cxx_op import ENABLE_CUSTOMIZED_OP; '
                "assert ENABLE_CUSTOMIZED_OP, 'custom ops not built'; "
                "print(f'PyTorch backend, torch {torch.__version__}, custom ops loaded')")


def _executable_component(name: str, executable: str | None, version: str | None) -> Component:
    if executable is None or not os.access(executable, os.X_OK):
        return Component(name, None, 'not installed', f'{executable or name} not found; `make setup` installs it')
    if version is None:
        return Component(name, None, 'broken', f'{executable} gave no version')
    return Component(name, version, 'works', executable)


def _python_component(name: str, package: str, check: str) -> Component:
    version = _package_version(package)
    if version is None:
        return Component(name, None, 'not installed', f'Python package {package}; `make setup` installs it')
    works, detail = _python_check(check)
    return Component(name, version, 'works' if works else 'broken', detail)


def _chromium_component() -> Component:
    from aiida_qdtraps.html_report.browser import chromium_version, find_chromium

    executable = find_chromium()
    if executable is None:
        return Component('Chromium (report browser test)', None, 'not installed',
                         'Debian package chromium; `make setup` installs it')
    version = chromium_version(executable)
    try:
        result = subprocess.run([executable, '--headless', '--no-sandbox', '--disable-gpu', '--dump-dom',
                                 'data:text/html,<p id=ok>ok</p>'], capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
        works = 'id="ok"' in result.stdout
    except (OSError, subprocess.SubprocessError):
        works = False
    detail = f'{executable}, headless page load ' + ('ok' if works else 'FAILED')
    return Component('Chromium (report browser test)', version, 'works' if works and version else 'broken', detail)


def _pseudo_family_component(profile_loaded: bool) -> Component:
    from aiida_qdtraps.pseudo_family import PSEUDO_FAMILY_LABEL, upf_family

    name = f'UPF family {PSEUDO_FAMILY_LABEL}'
    version = _package_version('aiida-pseudo')
    version = f'aiida-pseudo {version}' if version else None
    if not profile_loaded:
        return Component(name, version, 'missing', 'no profile to hold it')
    try:
        family = upf_family(PSEUDO_FAMILY_LABEL)
    except ValueError:
        return Component(name, version, 'missing', '`qdtraps setup` installs it')
    elements = sorted(node.element for node in family.nodes)
    return Component(name, version, 'works' if elements else 'broken',
                     f"{len(elements)} UPF files ({', '.join(elements)})")


def _docs_component() -> Component:
    versions = {package: _package_version(package) for package in ('sphinx', 'myst-parser')}
    if versions['sphinx'] is None:
        return Component('docs tooling (Sphinx)', None, 'not installed', 'optional: builds the docs site',
                         required=False)
    works, detail = _python_check('import sphinx, sphinx.application; print("sphinx imports")')
    extra = ', '.join(f'{k} {v}' for k, v in versions.items() if v and k != 'sphinx')
    return Component('docs tooling (Sphinx)', versions['sphinx'], 'works' if works else 'broken',
                     extra or detail, required=False)


def components(profile_loaded: bool = True) -> list[Component]:
    """Every component set-up installs, with its version and whether its check passed."""
    from concurrent.futures import ThreadPoolExecutor

    from aiida_qdtraps.profile import code_specs

    executables = {spec.label: spec.executable for spec in code_specs()}
    cp2k, pw = executables.get('cp2k'), executables.get('pw')

    def engine(name, executable, probe):
        found = executable is not None and os.access(executable, os.X_OK)
        return _executable_component(name, executable, probe(executable) if found else None)

    probes = [  # the checks run in subprocesses: run them side by side
        lambda: engine('CP2K', cp2k, cp2k_version),
        lambda: engine('Quantum ESPRESSO (pw.x)', pw, pw_version),
        lambda: _python_component('baderkit', 'baderkit', 'import baderkit; print("baderkit imports")'),
        lambda: _python_component('DeePMD-kit', 'deepmd-kit', DEEPMD_CHECK),
        lambda: _python_component('PySCF', 'pyscf', PYSCF_CHECK),
        _chromium_component,
        _docs_component,
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = [future.result() for future in [pool.submit(probe) for probe in probes]]
    return [*found[:5], _pseudo_family_component(profile_loaded), *found[5:]]  # the family: a query, here


@cli.command()
@click.option(
    '--broker',
    type=click.Choice(['zeromq', 'rabbitmq', 'none']),
    default=None,
    help='Message broker. zeromq (default for a new profile): aiida-core 2.9 ZeroMQ broker, no external service, '
    'started with `verdi daemon start`; rabbitmq: a running RabbitMQ with consumer_timeout disabled (`make rabbitmq`); '
    'none: `run` only, no daemon. Given for an existing profile, switches its broker (daemon stopped).',
)
@click.option(
    '--storage',
    type=click.Choice(['sqlite', 'psql']),
    default=None,
    help='Storage of a new profile: sqlite (default, core.sqlite_dos) or psql (core.psql_dos on the local PostgreSQL, '
    '`make postgresql`; one role + database per AIIDA_PATH). Cannot switch an existing profile.',
)
@click.option('--daemon', is_flag=True, help='Also start the daemon (unless it runs), so `submit` works.')
@click.option('--workers', type=click.IntRange(min=1), default=1, show_default=True,
              help='Number of daemon workers started by --daemon.')
def setup(broker, storage, daemon, workers):
    """Create or validate the project profile, the `localhost` computer and the codes (idempotent)."""
    from aiida_qdtraps.profile import aiida_path, setup_project

    start = time.perf_counter()
    try:
        steps = setup_project(broker=broker, storage=storage, daemon=daemon, workers=workers)
    except RuntimeError as exception:
        raise click.ClickException(str(exception)) from exception
    for step in steps:
        click.echo(str(step))
    click.echo(f'qdtraps setup: done in {time.perf_counter() - start:.1f} s (AIIDA_PATH={aiida_path()})')


def _broker_summary(profile) -> str:
    backend = profile.process_control_backend
    if backend is None:
        return 'none (processes run with `verdi run` / `aiida.engine.run`; no daemon)'
    if backend == 'core.zeromq':
        from aiida.brokers import ZeromqBroker

        running = ZeromqBroker(profile).check_service_reachable()
        state = 'service running' if running else 'service not running; `verdi daemon start` starts it'
        return f'{backend} ({state})'
    if backend == 'core.rabbitmq':
        from aiida_qdtraps.services import rabbitmq_problem

        return f'{backend} ({rabbitmq_problem() or "running"})'
    return backend


def _daemon_summary(profile) -> str:
    from aiida_qdtraps.services import daemon_state

    if profile.process_control_backend is None:
        return 'not available (no broker)'
    running, pids = daemon_state(profile)
    if not running:
        return 'not running (`qdtraps setup --daemon` or `verdi daemon start` starts it)'
    return f'running, worker pids {pids}'


@cli.command()
def status():
    """Show the project profile, its storage and broker, the codes, and every component set-up installs (CP2K,
    pw.x, baderkit, DeePMD-kit, PySCF, the UPF family, Chromium, docs tooling) with its version and a small check.

    Exits with status 1 if the profile, a code or a required component is missing or fails its check.
    """
    from aiida_qdtraps.profile import PROFILE_NAME, aiida_path, code_specs, load_project_profile, profile_exists

    ok = True
    click.echo(f'AIIDA_PATH:  {aiida_path()}')
    profile = None
    if profile_exists():
        profile = load_project_profile()
        click.echo(f'profile:     {profile.name}')
        config = profile.storage_config
        where = config.get('filepath') or (f'postgresql://{config.get("database_username")}@'
                                           f'{config.get("database_hostname")}:{config.get("database_port")}/'
                                           f'{config.get("database_name")}, {config.get("repository_uri")}')
        click.echo(f'storage:     {profile.storage_backend} @ {where}')
        click.echo(f'broker:      {_broker_summary(profile)}')
        click.echo(f'daemon:      {_daemon_summary(profile)}')
        if profile.storage_backend == 'core.psql_dos':
            from aiida_qdtraps.services import postgresql_problem

            problem = postgresql_problem()
            if problem:
                click.echo(f'storage:     UNREACHABLE: {problem}')
                ok, profile = False, None
    else:
        ok = False
        click.echo(f'profile:     {PROFILE_NAME} MISSING (run `qdtraps setup` or `make setup`)')

    stored = {}
    if profile is not None:
        from aiida import orm
        from aiida.common.exceptions import NotExistent

        try:
            computer = orm.load_computer('localhost')
            click.echo(
                f'computer:    localhost ({computer.transport_type} + {computer.scheduler_type}, '
                f'workdir {computer.get_workdir()})'
            )
        except NotExistent:
            ok = False
            click.echo('computer:    localhost MISSING')
        for spec in code_specs():
            try:
                stored[spec.label] = orm.load_code(spec.full_label)
            except NotExistent:
                pass

    click.echo('codes:')
    for spec in code_specs():
        code = stored.get(spec.label)
        executable = str(code.filepath_executable) if code is not None else spec.executable
        if code is None:
            state = 'missing'
        elif not os.access(executable, os.X_OK):
            state = 'missing executable'
        else:
            state = 'found'
        ok = ok and state == 'found'
        probe = VERSION_PROBES.get(spec.label)
        version = probe(executable) if probe and os.access(executable, os.X_OK) else None
        click.echo(f'  {spec.full_label:<20} {state:<8} {executable:<34} version {version or "unknown"}')

    click.echo('components:')
    for component in components(profile_loaded=profile is not None):
        ok = ok and (component.state == 'works' or not component.required)
        click.echo(f'  {component.name:<31} {component.version or "-":<20} {component.state:<13} {component.detail}')

    if not ok:
        raise SystemExit(1)

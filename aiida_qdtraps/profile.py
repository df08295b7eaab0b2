"""The project-local AiiDA profile: where it lives, how to create it, how to load it.

Everything the project runs (``make demo``, ``qdtraps ...``, ``verdi`` after ``source env.sh``) uses one embedded
AiiDA profile called ``qdtraps`` whose configuration folder lives inside the repository (``<repo>/.aiida``,
git-ignored):

* storage: ``core.sqlite_dos`` (SQLite database + disk object store) in ``<AIIDA_PATH>/repository/qdtraps``;
* broker: ``core.zeromq`` -- the ZeroMQ broker of aiida-core 2.9; no external service is needed. ``aiida.engine.run``
  works without it running; ``verdi daemon start`` starts it together with the daemon, so ``submit`` works too;
* computer ``localhost`` (``core.local`` transport, ``core.direct`` scheduler, work dir ``<AIIDA_PATH>/scratch``);
* codes ``cp2k@localhost``, ``pw@localhost``, ``pp@localhost``, ``projwfc@localhost`` and ``baderkit@localhost``;
* pseudopotential family ``qdtraps-gth-pbe-upf`` (aiida-pseudo; CP2K's GTH-PBE potentials as UPF files).

This module imports aiida only inside functions: ``AIIDA_PATH`` is read by aiida when its configuration module is first
imported, so :func:`activate` must be able to run before that. Use::

    from aiida_qdtraps.profile import load_project_profile
    profile = load_project_profile()
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import sys
import typing as t
import warnings

from .project import AIIDA_PATH_ENV, CONFIG_DIR_NAME, SetupStep, aiida_path, project_root  # noqa: F401

if t.TYPE_CHECKING:
    from aiida.manage.configuration.profile import Profile
    from aiida.orm import Computer

PROFILE_NAME = 'qdtraps'
PROFILE_EMAIL = 'qdtraps@localhost'
COMPUTER_LABEL = 'localhost'
STORAGE_BACKEND = 'core.sqlite_dos'
BROKERS = {'zeromq': 'core.zeromq', 'rabbitmq': 'core.rabbitmq', 'none': None}
#: Storage of a new profile: SQLite (default, no service) or PostgreSQL (``aiida_qdtraps.services``, docs/scaleout.md).
STORAGES = {'sqlite': STORAGE_BACKEND, 'psql': 'core.psql_dos'}

__all__ = (
    'PROFILE_NAME',
    'COMPUTER_LABEL',
    'CODES',
    'SetupStep',
    'project_root',
    'aiida_path',
    'activate',
    'profile_exists',
    'ensure_profile',
    'ensure_computer',
    'ensure_codes',
    'setup_project',
    'ensure_pseudo_family',
    'load_project_profile',
)


@dataclasses.dataclass(frozen=True)
class CodeSpec:
    """What one code of the project profile must look like."""

    label: str
    executable: str
    default_calc_job_plugin: str
    prepend_text: str = ''
    with_mpi: bool | None = None
    description: str = ''

    @property
    def full_label(self) -> str:
        return f'{self.label}@{COMPUTER_LABEL}'


def scratch_path() -> pathlib.Path:
    """Return the work directory of the ``localhost`` computer."""
    return aiida_path() / 'scratch'


def storage_path() -> pathlib.Path:
    """Return the folder of the ``core.sqlite_dos`` storage of the project profile."""
    return aiida_path() / 'repository' / PROFILE_NAME


def _which(name: str, default: str) -> str:
    return shutil.which(name) or default


#: DeePMD/torch thread counts: 1 unless the environment says otherwise (more threads were far slower on one core).
DP_THREADS = '\n'.join(
    f'export {name}=${{{name}:-{value}}}'
    for name, value in (('OMP_NUM_THREADS', 1), ('DP_INTRA_OP_PARALLELISM_THREADS', 1),
                        ('DP_INTER_OP_PARALLELISM_THREADS', 1), ('NUM_WORKERS', 0))
)


#: Debian's OpenMPI refuses root without these, even for serial pw.x / pp.x / projwfc.x runs (docs/qe.md)
QE_PREPEND = 'export OMPI_ALLOW_RUN_AS_ROOT=1\nexport OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\nexport OMP_NUM_THREADS=1'


def _qe_code(name: str, description: str) -> CodeSpec:
    """Spec of the Debian Quantum ESPRESSO executable ``<name>.x`` for the ``quantumespresso.<name>`` plugin."""
    return CodeSpec(label=name, executable=_which(f'{name}.x', f'/usr/bin/{name}.x'),
                    default_calc_job_plugin=f'quantumespresso.{name}', prepend_text=QE_PREPEND, description=description)


def code_specs() -> tuple[CodeSpec, ...]:
    """Return the specifications of the codes, with executables resolved on this machine."""
    venv_bin = pathlib.Path(sys.prefix) / 'bin'
    baderkit = venv_bin / 'baderkit'
    return (
        CodeSpec(
            label='cp2k',
            executable=_which('cp2k.psmp', '/usr/bin/cp2k.psmp'),
            default_calc_job_plugin='cp2k',
            # The Debian build runs fine without mpirun for one rank; threads are capped unless the caller asks for
            # more.
            prepend_text='export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}',
            with_mpi=False,
            description='CP2K (Debian cp2k package), run without MPI',
        ),
        _qe_code('pw', 'Quantum ESPRESSO pw.x (Debian quantum-espresso package)'),
        _qe_code('pp', 'Quantum ESPRESSO pp.x post-processing (densities as cube files)'),
        _qe_code('projwfc', 'Quantum ESPRESSO projwfc.x (Löwdin populations and PDOS on the pseudo-atomic orbitals)'),
        CodeSpec(
            label='baderkit',
            executable=str(baderkit if baderkit.exists() else _which('baderkit', str(baderkit))),
            default_calc_job_plugin='core.shell',
            prepend_text='export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}',
            with_mpi=False,
            description='BaderKit command line (Python package in the project venv)',
        ),
        CodeSpec(
            label='dp-python',
            executable=str(venv_bin / 'python'),
            default_calc_job_plugin='qdtraps.deepmd.train',
            prepend_text=DP_THREADS,
            with_mpi=False,
            description='Project venv Python with deepmd-kit + ase: runs DeePMD training and the MLFF MD scripts',
        ),
    )


#: full labels, as in ``orm.load_code(...)``
CODES = ('cp2k@localhost', 'pw@localhost', 'pp@localhost', 'projwfc@localhost', 'baderkit@localhost')
CODES = (*CODES, 'dp-python@localhost')  # DeePMD training and MLFF MD (docs/mlff.md)


def activate() -> pathlib.Path:
    """Point aiida at the project configuration folder and return it.

    Sets ``os.environ['AIIDA_PATH']`` (inherited by ``verdi``, daemon workers and any subprocess). If aiida was already
    imported -- its settings module resolves ``AIIDA_PATH`` at import time -- the configuration folder is reset too, as
    long as no other profile is loaded.
    """
    path = aiida_path()
    os.environ['AIIDA_PATH'] = str(path)
    path.mkdir(parents=True, exist_ok=True)  # an existing folder also spares aiida's `Creating ... folder` warning

    if 'aiida.manage.configuration.settings' not in sys.modules:
        return path  # aiida will read the environment variable when it is first imported

    from aiida.manage import get_manager
    from aiida.manage.configuration import reset_config
    from aiida.manage.configuration.settings import AiiDAConfigDir

    if AiiDAConfigDir.get() != path:
        loaded = get_manager().get_profile()
        if loaded is not None:
            raise RuntimeError(
                f'Profile `{loaded.name}` from `{AiiDAConfigDir.get()}` is already loaded in this interpreter; '
                f'cannot switch to the project configuration folder `{path}`.'
            )
        reset_config()
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Creating AiiDA configuration folder')
            AiiDAConfigDir.set(path)
    return path


def _get_config(create: bool = False):
    path = activate()
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Creating AiiDA configuration folder')
        from aiida.common.exceptions import MissingConfigurationError
        from aiida.manage.configuration import get_config

        try:
            config = get_config(create=create)
        except MissingConfigurationError:
            return None
    if pathlib.Path(config.dirpath) != path:  # pragma: no cover - guards against a stale cached config
        raise RuntimeError(f'aiida loaded the configuration in `{config.dirpath}` instead of `{path}`.')
    return config


def profile_exists() -> bool:
    """Return whether the project profile exists in the project configuration folder (creates nothing)."""
    config = _get_config(create=False)
    return config is not None and PROFILE_NAME in config.profile_names


def _broker_config(backend: str | None) -> dict | None:
    """Connection settings of a broker; for RabbitMQ checks that it runs and has ``consumer_timeout`` disabled."""
    from aiida.plugins import BrokerFactory

    if backend != 'core.rabbitmq':
        return BrokerFactory(backend).get_default_config() if backend else None
    from aiida.brokers.rabbitmq.defaults import detect_rabbitmq_config

    from . import services

    problem = services.rabbitmq_problem()
    if problem:
        raise RuntimeError(problem)
    timeout = services.rabbitmq_consumer_timeout()
    if timeout != 'undefined':
        raise RuntimeError(
            f'RabbitMQ runs with consumer_timeout={timeout} ms: AiiDA processes that run longer would be cancelled. '
            f'Write `{services.RABBITMQ_ADVANCED_TEXT.strip()}` to {services.RABBITMQ_ADVANCED_CONFIG} and restart '
            'it (`service rabbitmq-server restart`), or run `make rabbitmq`.'
        )
    return detect_rabbitmq_config(host=services.RABBITMQ_HOST, port=services.RABBITMQ_PORT)


def _set_broker_options(config, backend: str | None) -> None:
    # A RabbitMQ >= 3.8.15 with consumer_timeout disabled (checked in _broker_config) is fine: silence aiida's warning.
    if backend == 'core.rabbitmq':
        config.set_option('warnings.rabbitmq_version', False, scope=PROFILE_NAME)


def ensure_profile(broker: str | None = None, storage: str | None = None) -> SetupStep:
    """Create the project profile unless it exists; validate it if it does.

    :param broker: ``zeromq``, ``rabbitmq`` or ``none``. A new profile gets ``zeromq`` when None; an existing profile
        keeps its broker when None and is switched to ``broker`` otherwise (with its daemon stopped).
    :param storage: ``sqlite`` or ``psql``, for a new profile (default ``sqlite``). Storage cannot be switched: an
        existing profile with other storage is an error.
    """
    from aiida.manage.configuration import create_profile

    if broker is not None and broker not in BROKERS:
        raise ValueError(f'unknown broker `{broker}`; choose from {sorted(BROKERS)}')
    if storage is not None and storage not in STORAGES:
        raise ValueError(f'unknown storage `{storage}`; choose from {sorted(STORAGES)}')

    config = _get_config(create=True)
    path = aiida_path()

    if PROFILE_NAME in config.profile_names:
        profile = config.get_profile(PROFILE_NAME)
        wanted = STORAGES[storage] if storage else None
        if profile.storage_backend not in STORAGES.values() or wanted not in (None, profile.storage_backend):
            raise RuntimeError(
                f'profile `{PROFILE_NAME}` in `{path}` uses storage `{profile.storage_backend}`, not '
                f'`{wanted or STORAGE_BACKEND}`; storage cannot be switched in place: export with `verdi archive '
                f'create`, then use a new QDTRAPS_AIIDA_PATH (or `make clean-profile`) and import it there.'
            )
        details = [f'AIIDA_PATH={path}']
        changed = False
        if profile.storage_backend == 'core.psql_dos':
            from .services import postgresql_problem

            problem = postgresql_problem()
            if problem:
                raise RuntimeError(f'profile `{PROFILE_NAME}` uses PostgreSQL storage: {problem}')
        elif not pathlib.Path(profile.storage_config['filepath']).is_dir():
            filepath = pathlib.Path(profile.storage_config['filepath'])
            if storage_path().is_dir():  # the repository was moved: the config still holds the old absolute path
                profile.set_storage(STORAGE_BACKEND, {**profile.storage_config, 'filepath': str(storage_path())})
                config.update_profile(profile)
                details.append(f'storage path updated to {storage_path()}')
                changed = True
            else:
                raise RuntimeError(
                    f'the storage of profile `{PROFILE_NAME}` is missing (`{filepath}`); remove `{path}` '
                    '(`make clean-profile`) and run the set-up again.'
                )
        if config.default_profile_name != PROFILE_NAME:
            config.set_default_profile(PROFILE_NAME, overwrite=True)
            details.append('made default profile')
            changed = True
        if broker is not None and BROKERS[broker] != profile.process_control_backend:
            from .services import daemon_state

            if daemon_state(profile)[0]:
                raise RuntimeError(f'the daemon of profile `{PROFILE_NAME}` is running; stop it with `verdi daemon '
                                   f'stop` (after `source env.sh`) before switching the broker to `{broker}`.')
            previous = profile.process_control_backend
            profile.set_process_controller(BROKERS[broker], _broker_config(BROKERS[broker]) or {})
            config.update_profile(profile)
            _set_broker_options(config, BROKERS[broker])
            details.append(f'broker {previous or "none"} -> {BROKERS[broker] or "none"}')
            changed = True
        elif profile.process_control_backend == 'core.rabbitmq':
            from .services import rabbitmq_problem

            problem = rabbitmq_problem()
            details.append(f'broker core.rabbitmq: {problem}' if problem else 'broker core.rabbitmq running')
        if changed:
            config.store()
        return SetupStep(f'profile {PROFILE_NAME}', 'updated' if changed else 'exists', ', '.join(details))

    repository = storage_path()
    if repository.exists() and any(repository.iterdir()):
        raise RuntimeError(
            f'`{repository}` holds storage of a profile that is no longer in `{config.filepath}`; remove `{path}` '
            '(`make clean-profile`) and run the set-up again.'
        )

    broker_backend = BROKERS[broker or 'zeromq']
    broker_config = _broker_config(broker_backend)  # before the database: a missing broker leaves nothing behind
    storage_backend = STORAGES[storage or 'sqlite']
    extra = ''
    if storage_backend == 'core.psql_dos':
        from .services import ensure_psql_storage

        role_status, storage_config = ensure_psql_storage(repository)
        extra = f' (database and role {storage_config["database_name"]}, role {role_status})'
    else:
        storage_config = {'filepath': str(repository)}
    create_profile(
        config,
        name=PROFILE_NAME,
        email=PROFILE_EMAIL,
        storage_backend=storage_backend,
        storage_config=storage_config,
        broker_backend=broker_backend,
        broker_config=broker_config,
    )
    # as `verdi presto` does: poll processes every second instead of every minute
    config.set_option('runner.poll.interval', 1, scope=PROFILE_NAME)
    _set_broker_options(config, broker_backend)
    config.set_default_profile(PROFILE_NAME, overwrite=True)
    config.store()
    return SetupStep(
        f'profile {PROFILE_NAME}',
        'created',
        f'AIIDA_PATH={path}, storage {storage_backend}{extra}, broker {broker_backend or "none"}',
    )


def load_project_profile() -> 'Profile':
    """Load the project profile (``qdtraps`` in ``<repo>/.aiida`` or ``$QDTRAPS_AIIDA_PATH``) and return it.

    Safe to call more than once. Raises ``aiida.common.exceptions.ProfileConfigurationError`` if it does not exist yet
    (run ``qdtraps setup`` or ``make setup``).
    """
    from aiida.common.exceptions import ProfileConfigurationError
    from aiida.manage import get_manager

    if _get_config(create=False) is None:
        raise ProfileConfigurationError(
            f'no AiiDA configuration in `{aiida_path()}`; run `qdtraps setup` (or `make setup`) first.'
        )
    loaded = get_manager().get_profile()
    if loaded is not None and loaded.name == PROFILE_NAME:
        return loaded

    import aiida

    return aiida.load_profile(PROFILE_NAME, allow_switch=True)


def _load_computer() -> 'Computer | None':
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_computer(COMPUTER_LABEL)
    except NotExistent:
        return None


def ensure_computer() -> SetupStep:
    """Create and configure the ``localhost`` computer unless it exists; repair its work dir and configuration."""
    from aiida import orm

    load_project_profile()
    workdir = str(scratch_path())
    computer = _load_computer()

    if computer is None:
        scratch_path().mkdir(parents=True, exist_ok=True)
        computer = orm.Computer(
            label=COMPUTER_LABEL,
            hostname='localhost',
            description='This machine, set up by `qdtraps setup`',
            transport_type='core.local',
            scheduler_type='core.direct',
            workdir=workdir,
        ).store()
        computer.set_default_mpiprocs_per_machine(1)
        computer.set_minimum_job_poll_interval(1)
        computer.configure(safe_interval=0)
        return SetupStep(f'computer {COMPUTER_LABEL}', 'created', f'core.local + core.direct, workdir {workdir}')

    if (computer.transport_type, computer.scheduler_type) != ('core.local', 'core.direct'):
        raise RuntimeError(
            f'computer `{COMPUTER_LABEL}` uses {computer.transport_type} + {computer.scheduler_type}, not '
            f'core.local + core.direct; remove `{aiida_path()}` (`make clean-profile`) and run the set-up again.'
        )
    fixes = []
    if computer.get_workdir() != workdir:
        computer.set_workdir(workdir)
        fixes.append(f'workdir -> {workdir}')
    if computer.get_default_mpiprocs_per_machine() != 1:
        computer.set_default_mpiprocs_per_machine(1)
        fixes.append('default mpiprocs -> 1')
    if not computer.is_configured:
        computer.configure(safe_interval=0)
        fixes.append('configured for the default user')
    scratch_path().mkdir(parents=True, exist_ok=True)
    if fixes:
        return SetupStep(f'computer {COMPUTER_LABEL}', 'updated', ', '.join(fixes))
    return SetupStep(f'computer {COMPUTER_LABEL}', 'exists')


def _matches(code, spec: CodeSpec) -> bool:
    return (
        str(code.filepath_executable) == spec.executable
        and code.default_calc_job_plugin == spec.default_calc_job_plugin
        and code.prepend_text == spec.prepend_text
        and code.with_mpi == spec.with_mpi
    )


def ensure_codes() -> list[SetupStep]:
    """Create the codes of :func:`code_specs` (``cp2k``, ``pw``, ``pp``, ``baderkit`` @localhost) unless they exist.

    Codes are immutable once stored. A code whose executable, plugin, prepend text or MPI setting no longer match (e.g.
    the binary moved) is kept for provenance but relabelled ``<label>-old-<pk>`` and hidden, and a new one is created.
    """
    from aiida import orm

    load_project_profile()
    computer = _load_computer()
    if computer is None:
        raise RuntimeError(f'computer `{COMPUTER_LABEL}` does not exist; call `ensure_computer()` first.')

    steps = []
    for spec in code_specs():
        missing = '' if os.access(spec.executable, os.X_OK) else f'; WARNING: {spec.executable} is not executable yet'
        existing = (
            orm.QueryBuilder()
            .append(orm.Computer, filters={'label': COMPUTER_LABEL}, tag='computer')
            .append(orm.InstalledCode, with_computer='computer', filters={'label': spec.label}, project='*')
            .all(flat=True)
        )
        if any(_matches(code, spec) for code in existing):
            steps.append(SetupStep(f'code {spec.full_label}', 'exists', f'{spec.executable}{missing}'))
            continue

        for code in existing:
            code.label = f'{spec.label}-old-{code.pk}'
            code.is_hidden = True

        orm.InstalledCode(
            computer=computer,
            filepath_executable=spec.executable,
            label=spec.label,
            description=spec.description,
            default_calc_job_plugin=spec.default_calc_job_plugin,
            prepend_text=spec.prepend_text,
            with_mpi=spec.with_mpi,
        ).store()
        status = 'updated' if existing else 'created'
        detail = f'{spec.executable}, plugin {spec.default_calc_job_plugin}'
        if existing:
            detail += f'; previous version relabelled {", ".join(c.label for c in existing)}'
        steps.append(SetupStep(f'code {spec.full_label}', status, detail + missing))
    return steps


def ensure_pseudo_family() -> SetupStep:
    """Install the GTH-PBE UPF pseudopotential family of the QE engine, made offline from CP2K's GTH_POTENTIALS."""
    load_project_profile()
    from .pseudo_family import PSEUDO_FAMILY_LABEL, ensure_upf_family

    status, detail = ensure_upf_family(PSEUDO_FAMILY_LABEL)
    return SetupStep(f'pseudos {PSEUDO_FAMILY_LABEL}', status, detail)


#: Processes whose results are reused when they are run again with identical inputs (AiiDA caching). All of them
#: are deterministic functions of their inputs: the engines run from fixed input files (CP2K, pw.x/pp.x, baderkit,
#: DeePMD with a fixed seed) and our calcfunctions are pure. Scheduler-dependent outputs such as wall times are the
#: only thing a cached copy repeats rather than re-measures.
CACHED_PROCESSES = ['aiida.calculations:cp2k', 'aiida.calculations:core.shell', 'aiida.calculations:quantumespresso.*',
                    'aiida.calculations:qdtraps.*']


def ensure_caching() -> SetupStep:
    """Enable AiiDA caching for :data:`CACHED_PROCESSES` in the project profile (re-running the demo is instant)."""
    config = _get_config()
    profile = config.get_profile(PROFILE_NAME)
    current = profile.get_option('caching.enabled_for', [])
    if sorted(current) == sorted(CACHED_PROCESSES):
        return SetupStep('caching', 'exists', ', '.join(CACHED_PROCESSES))
    config.set_option('caching.enabled_for', CACHED_PROCESSES, scope=PROFILE_NAME)
    config.store()
    return SetupStep('caching', 'created' if not current else 'updated', ', '.join(CACHED_PROCESSES))


def setup_project(broker: str | None = None, storage: str | None = None, daemon: bool = False,
                  workers: int = 1) -> list[SetupStep]:
    """Create or validate the profile, the computer, the codes, the UPF family and caching; return what was done.

    With ``daemon=True`` the daemon is started too (``workers`` workers) unless it runs (``aiida_qdtraps.services``).
    """
    steps = [ensure_profile(broker=broker, storage=storage)]
    steps.append(ensure_computer())
    steps.extend(ensure_codes())
    steps.append(ensure_pseudo_family())
    steps.append(ensure_caching())
    if daemon:
        from .services import ensure_daemon

        steps.append(ensure_daemon(load_project_profile(), workers=workers))
    return steps

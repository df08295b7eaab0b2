"""Shared fixtures: a temporary AiiDA profile (aiida.tools.pytest_fixtures) and the real CP2K code."""

from __future__ import annotations

import os
import pathlib
import shutil
import sys

import pytest
from aiida import orm
from aiida.common import LinkType

pytest_plugins = ['aiida.tools.pytest_fixtures']

DATA = pathlib.Path(__file__).parent / 'data'

#: The tiny QD of the real end-to-end runs: In4PF9 (14 atoms), the same recipe as the demo.
TINY_QD_RECIPE = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion',
                  'vacuum': 2.5, 'min_core_bonds': 1}

os.environ.setdefault('OMP_NUM_THREADS', '1')

#: Seconds between a runner's checks that a process it waits for has terminated. aiida-core uses 0 on test profiles:
#: an interpreter that waits for a CalcJob then re-reads its state from the database in a loop (~170 times a second,
#: 28,000 reads in one pipeline test), keeping a core busy while CP2K needs it. 0.1 s adds at most that to each wait.
RUNNER_POLL_INTERVAL = 0.1


def _runner_poll_interval() -> None:
    """Give the runners of this test session :data:`RUNNER_POLL_INTERVAL` (unless a caller sets one)."""
    from aiida.manage.manager import Manager

    create_runner = Manager.create_runner
    if getattr(create_runner, 'poll_interval', None) is not None:
        return

    def create_runner_with_poll_interval(self, with_persistence: bool = True, **kwargs):
        kwargs.setdefault('poll_interval', RUNNER_POLL_INTERVAL)
        return create_runner(self, with_persistence, **kwargs)

    create_runner_with_poll_interval.poll_interval = RUNNER_POLL_INTERVAL
    Manager.create_runner = create_runner_with_poll_interval


_runner_poll_interval()

#: Seconds between the job manager's ``ps`` calls for the test computer (the plugin's ``aiida_localhost`` sets 0: a
#: ``bash``/``ps`` pair 3 times a second while a CalcJob runs). Adds at most this to each CalcJob.
JOB_POLL_INTERVAL = 0.5


@pytest.fixture
def aiida_localhost(aiida_localhost):
    """The plugin's local computer, polled every :data:`JOB_POLL_INTERVAL` seconds."""
    aiida_localhost.set_minimum_job_poll_interval(JOB_POLL_INTERVAL)
    return aiida_localhost


def engine_missing(name: str) -> None:
    """Fail a test that needs an engine that is not installed, or skip it where ``QDTRAPS_NO_ENGINES=1`` says the
    machine has none on purpose (the parser and handler tests then run on recorded outputs alone)."""
    if os.environ.get('QDTRAPS_NO_ENGINES') == '1':
        pytest.skip(f'{name} is not installed (QDTRAPS_NO_ENGINES=1)')
    pytest.fail(f'{name} is not installed; run `make setup`')


@pytest.fixture
def find_engine():
    """Return ``find(name)``: the path of an engine's executable, or :func:`engine_missing` when it has none."""

    def find(name: str) -> str:
        executable = shutil.which(name)
        if executable is None:
            engine_missing(name)
        return executable

    return find


@pytest.fixture
def aiida_code():
    """aiida's ``aiida_code`` factory, but a code is reused only when it is on the requested computer: tests that import
    archives (the libraries, the report tests) bring codes with the same labels (``cp2k``, ``dp-python``) bound to an
    imported, unconfigured ``localhost (Imported #0)``, which aiida's factory would hand out by label alone."""

    def factory(entry_point: str, label: str | None = None, **kwargs):
        import uuid

        from aiida.plugins import DataFactory

        cls = DataFactory(entry_point)
        label = label or f'test-code-{uuid.uuid4().hex}'
        builder = orm.QueryBuilder().append(cls, filters={'label': label}, tag='code', project='*')
        computer = kwargs.get('computer')
        if computer is not None:
            builder.append(orm.Computer, with_node='code', filters={'id': computer.pk}, project=[])
        found = builder.first()
        return found[0] if found else cls(label=label, **kwargs).store()

    return factory


def calcjob_node(computer, process_type: str, code=None, inputs: dict | None = None,
                 options: dict | None = None) -> orm.CalcJobNode:
    """An unstored CalcJobNode of ``process_type`` on ``computer`` with its ``options`` (serial resources unless
    given) and input links: ``code`` and ``inputs`` (label -> node, stored here; ``a__b`` for a namespace)."""
    node = orm.CalcJobNode(computer=computer, process_type=process_type)
    for name, value in {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, **(options or {})}.items():
        node.set_option(name, value)
    if code is not None:
        node.base.links.add_incoming(code, LinkType.INPUT_CALC, 'code')
    for label, value in (inputs or {}).items():
        node.base.links.add_incoming(value.store(), LinkType.INPUT_CALC, label)
    return node


def finish_process(node: orm.ProcessNode, outputs: dict | None = None, exit_status: int | None = 0):
    """Store ``node`` and link its ``outputs`` (label -> node, stored here: created by a calculation, returned by a
    work chain); then, unless ``exit_status`` is None, leave it finished with that status and sealed, as the engine
    does. Returns ``node``."""
    node.store()
    returns = isinstance(node, orm.WorkflowNode)  # a work chain returns stored nodes, a calculation creates them
    for label, output in (outputs or {}).items():
        if returns:
            output.store()
        output.base.links.add_incoming(node, LinkType.RETURN if returns else LinkType.CREATE, label)
        output.store()
    if exit_status is not None:
        node.set_exit_status(exit_status)
        node.set_process_state('finished')
        node.seal()
    return node


@pytest.fixture(scope='session')
def process_nodes():
    """Stand-ins of processes as the engine leaves them, for the steps and parsers that read finished processes:
    ``process_nodes.calcjob(computer, process_type, code, inputs, options)`` (unstored, see :func:`calcjob_node`),
    ``process_nodes.finish(node, outputs, exit_status)`` (:func:`finish_process`) and
    ``process_nodes.workflow(entry_point, **outputs)`` (a work chain of that entry point that returned ``outputs``)."""
    from types import SimpleNamespace

    def workflow(entry_point: str, **outputs) -> orm.WorkflowNode:
        return finish_process(orm.WorkflowNode(process_type=f'aiida.workflows:{entry_point}'), outputs)

    return SimpleNamespace(calcjob=calcjob_node, finish=finish_process, workflow=workflow)


@pytest.fixture(scope='session')
def load_script():
    """``load_script('benchmarks/x.py')``: a fresh module of a project script that is not part of the package
    (benchmarks, examples), loaded from its file; each call loads it anew."""
    import importlib.util

    def load(relative_path: str):
        path = pathlib.Path(__file__).resolve().parents[1] / relative_path
        spec = importlib.util.spec_from_file_location(f'{path.parent.name}_{path.stem}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def data_dir() -> pathlib.Path:
    return DATA


@pytest.fixture
def folder_data():
    """``folder_data(directory)``: an unstored FolderData with the files (not subfolders) of a directory, as a
    CalcJob's ``retrieved`` folder holds them."""
    from aiida import orm

    def make(directory: pathlib.Path) -> orm.FolderData:
        folder = orm.FolderData()
        for path in sorted(pathlib.Path(directory).iterdir()):
            if path.is_file():
                folder.base.repository.put_object_from_file(str(path), path.name)
        return folder

    return make


@pytest.fixture
def cp2k_code(aiida_code_installed):
    """The Debian ``cp2k.psmp`` binary as an InstalledCode (serial, one OpenMP thread)."""
    executable = shutil.which('cp2k.psmp') or shutil.which('cp2k')
    if executable is None:
        engine_missing('cp2k')
    return aiida_code_installed(label='cp2k', default_calc_job_plugin='cp2k', filepath_executable=executable,
                                prepend_text='export OMP_NUM_THREADS=1')


@pytest.fixture
def baderkit_code(aiida_code_installed):
    """The PyPI ``baderkit`` CLI as an InstalledCode for aiida-shell (``core.shell``)."""
    # `make test` runs .venv/bin/python without activating the venv: look next to the interpreter too.
    executable = shutil.which('baderkit') or shutil.which('baderkit', path=str(pathlib.Path(sys.executable).parent))
    if executable is None:
        engine_missing('baderkit')
    return aiida_code_installed(label='baderkit', filepath_executable=executable, default_calc_job_plugin='core.shell',
                                prepend_text='export OMP_NUM_THREADS=1')


@pytest.fixture
def pyscf_code(aiida_code_installed):
    """This interpreter (which has pyscf) as the code of ``qdtraps.pyscf`` jobs, one OpenMP thread unless set."""
    return aiida_code_installed(label='pyscf-python', default_calc_job_plugin='qdtraps.pyscf',
                                filepath_executable=sys.executable,
                                prepend_text='export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}')


@pytest.fixture
def tiny_qd_recipe() -> dict:
    """The recipe of the tiny QD, for scripts that build it in another profile."""
    return dict(TINY_QD_RECIPE)


@pytest.fixture
def tiny_qd():
    """The 14-atom In4PF9 cluster as a stored StructureData built through the ``build_qd_structure`` calcfunction."""
    from aiida_qdtraps.workchains.build import build_qd_structure

    return build_qd_structure(orm.Dict(TINY_QD_RECIPE))



@pytest.fixture
def base_workchain(generate_workchain, recorded_cp2k_code, tiny_qd):
    """``base_workchain(scf, run_type='ENERGY')``: a set-up QdCp2kBaseWorkChain on the tiny QD with these SCF
    settings, never run, for calling its handlers on recorded calculations."""
    from aiida_qdtraps.workchains.cp2k_base import QdCp2kBaseWorkChain

    def factory(scf: dict, run_type: str = 'ENERGY'):
        parameters = {'GLOBAL': {'RUN_TYPE': run_type}, 'FORCE_EVAL': {'DFT': {'SCF': scf}}}
        inputs = {'cp2k': {'code': recorded_cp2k_code, 'structure': tiny_qd, 'parameters': orm.Dict(parameters),
                           'metadata': {'options': {'max_wallclock_seconds': 1000,
                                                    'resources': {'num_machines': 1}}}}}
        process = generate_workchain(QdCp2kBaseWorkChain, inputs)
        process.setup()
        return process
    return factory


@pytest.fixture
def recorded_cp2k_code(aiida_code_installed):
    """A CP2K code that is never run (``/bin/true``): the code input of recorded-output parser and handler tests, so
    they pass on a machine without CP2K (as aiida-quantumespresso's ``fixture_code``)."""
    return aiida_code_installed(label='cp2k-recorded', default_calc_job_plugin='cp2k', filepath_executable='/bin/true')


@pytest.fixture
def generate_cp2k_calc(aiida_localhost, recorded_cp2k_code, tmp_path):
    """Return a factory for a finished ``Cp2kCalculation`` node with recorded output files.

    :param files: mapping of retrieved file name → path of a recorded file (or its text).
    :param exit_code: name of the Cp2kCalculation exit code it finished with (``None``: success).
    :param structure: optional StructureData attached as ``output_structure``.
    :param parameters: the CP2K parameters input (default: an ENERGY run).
    :param input_structure: optional StructureData linked as the ``structure`` input.
    :param outputs: optional further outputs, link label -> unstored node (e.g. a parser's ``output_parameters``).
    :param monitors: optional ``monitors`` input, key -> Dict (e.g. ``aiida_qdtraps.monitors.default_cp2k_monitors()``).
    """
    from aiida.plugins import CalculationFactory

    calc_cls = CalculationFactory('cp2k')

    def factory(files: dict, exit_code: str | None = None, structure: orm.StructureData | None = None,
                parameters: dict | None = None, input_structure: orm.StructureData | None = None,
                outputs: dict | None = None, monitors: dict | None = None):
        inputs = {'parameters': orm.Dict(parameters or {'GLOBAL': {'RUN_TYPE': 'ENERGY'}})}
        if input_structure is not None:
            inputs['structure'] = input_structure
        inputs.update({f'monitors__{key}': monitor for key, monitor in (monitors or {}).items()})
        node = calcjob_node(aiida_localhost, 'aiida.calculations:cp2k', recorded_cp2k_code, inputs,
                            {'max_wallclock_seconds': 1800, 'output_filename': 'aiida.out'})
        retrieved = orm.FolderData()
        for name, content in files.items():
            path = pathlib.Path(content) if not isinstance(content, str) or '\n' not in content else None
            if path is not None and path.exists():
                retrieved.base.repository.put_object_from_file(str(path), name)
            else:
                retrieved.base.repository.put_object_from_bytes(str(content).encode(), name)
        created = {'retrieved': retrieved, 'remote_folder': orm.RemoteData(computer=aiida_localhost,
                                                                          remote_path=str(tmp_path))}
        if structure is not None:
            created['output_structure'] = structure.clone()
        created.update(outputs or {})
        status = 0 if exit_code is None else calc_cls.exit_codes[exit_code].status
        return finish_process(node, created, status)

    return factory


@pytest.fixture
def recorded_cp2k_output(data_dir):
    """Return a recorded failed CP2K output (``tests/data/cp2k/failed/NAME``), whole or as a running job showed it
    just after SCF step ``step`` of SCF cycle ``cycle`` (both 1-based)."""

    def factory(name: str, cycle: int | None = None, step: int | None = None) -> str:
        text = (data_dir / 'cp2k' / 'failed' / name).read_text()
        if cycle is None:
            return text
        position = 0
        for _ in range(cycle):
            position = text.index('Step     Update method', position) + 1
        for _ in range(step):
            position = text.index('/Diag.', position) + 1
        return text[:text.index('\n', position) + 1]

    return factory


@pytest.fixture
def generate_workchain():
    """Instantiate a work chain (not run) so its steps and handlers can be called directly."""
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    def factory(process_class, inputs):
        runner = get_manager().get_runner()
        return instantiate_process(runner, process_class, **inputs)

    return factory


#: The longest real-engine test modules, longest first (``--durations=0`` of ``make test``, 2-core machine, Dec 2026).
LONGEST_FIRST = ('test_pipeline_real', 'test_daemon_resume', 'test_pipeline_recovery_real', 'test_mlff_real',
                 'test_mlff_md_acetate', 'test_md_xtb_real', 'test_classifier_interpolation', 'test_deepmd',
                 'test_relax_xtb_real', 'test_engine_free', 'test_md_cli', 'test_classify_cli', 'test_md',
                 'test_deepmd_dipole', 'test_docs', 'test_md_gaps', 'test_hybrid_pyscf_real', 'test_qe_relax',
                 'test_hybrid_admm_real', 'test_deepmd_warm_start', 'test_daemon_setup', 'test_traps_cli')


def pytest_collection_modifyitems(items):
    """Run the longest real-engine test modules first, then the other slow ones, then the rest. ``make test``'s xdist
    workers (``--dist loadfile --no-loadscope-reorder``) take the next test module in this order whenever they are free:
    the long runs start at once on both workers, the quick modules fill the gaps, and a module's module-scoped fixtures
    (a trained classifier, a CLI profile, an imported library) are made once, not once per worker."""

    def rank(item) -> tuple[int, int]:
        module = item.path.stem
        if module in LONGEST_FIRST:
            return 0, LONGEST_FIRST.index(module)
        return (1, 0) if item.get_closest_marker('slow') is not None else (2, 0)

    items.sort(key=rank)


@pytest.fixture
def dp_python(aiida_code_installed):
    """This interpreter (which has deepmd-kit) as the ``dp-python`` code, with the project's thread settings."""
    from aiida_qdtraps.profile import DP_THREADS

    return aiida_code_installed(label='dp-python', default_calc_job_plugin='qdtraps.deepmd.train',
                                filepath_executable=sys.executable, prepend_text=DP_THREADS)

"""The import graph of ``aiida_qdtraps``: no cycles, pure kernels without AiiDA, the profile without work chains; no
long module that mixes calcfunctions with work chains; process entry points that name the module defining the process,
old module paths that only re-export; the CP2K kinds filled in one place.

The graph is read from the source with :mod:`ast`. Every ``import`` counts, at module level and inside functions
alike (a deferred import is still a dependency: it only moves the failure to run time); imports under
``if TYPE_CHECKING:`` do not, since they never run. ``from .pkg import name`` is an edge to the module
``pkg.name`` when that is a module, else to ``pkg``; importing a module is not counted as importing the packages
above it.
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'aiida_qdtraps'
#: Packages of pure kernels (numpy / scipy / ase): no aiida import in them or in anything they import.
PURE = ('aiida_qdtraps.builder', 'aiida_qdtraps.analysis', 'aiida_qdtraps.pseudos')
#: A module longer than this (lines) defines calcfunctions or work chains, not both.
MIXED_MODULE_LINES = 400


def _modules() -> dict[str, tuple[pathlib.Path, bool]]:
    modules = {}
    for path in PACKAGE.rglob('*.py'):
        parts = list(path.relative_to(ROOT).with_suffix('').parts)
        is_package = parts[-1] == '__init__'
        modules['.'.join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or \
        (isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


def _imports(tree: ast.AST):
    """Every Import / ImportFrom node that runs (not under ``if TYPE_CHECKING:``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


class ImportGraph:
    """Edges between ``aiida_qdtraps`` modules and, per module, the outside top-level packages it imports."""

    def __init__(self):
        self.modules = _modules()
        self.edges: dict[str, set[str]] = {name: set() for name in self.modules}
        self.external: dict[str, set[str]] = {name: set() for name in self.modules}
        for name, (path, is_package) in self.modules.items():
            here = name if is_package else name.rpartition('.')[0]
            for node in _imports(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        self._add(name, alias.name)
                    continue
                if node.level:
                    base = here.split('.')[:len(here.split('.')) - node.level + 1]
                    target = '.'.join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                for alias in node.names:
                    full = f'{target}.{alias.name}'
                    self._add(name, full if full in self.modules else target)

    def _add(self, name: str, target: str) -> None:
        if not target.startswith('aiida_qdtraps'):
            self.external[name].add(target.split('.')[0])
            return
        while target not in self.modules:
            target = target.rpartition('.')[0]
        if target != name:
            self.edges[name].add(target)

    def reachable(self, start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for target in self.edges[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    def cycles(self) -> list[list[str]]:
        """One cycle (as a path back to its start) per strongly connected component with more than one module."""
        found, done = [], set()
        for start in sorted(self.modules):
            if start in done:
                continue
            component = {m for m in self.reachable(start) if start in self.reachable(m)}
            done |= component
            if len(component) > 1:
                found.append(self._shortest_cycle(start, component))
        return found

    def _shortest_cycle(self, start: str, component: set[str]) -> list[str]:
        previous, todo = {}, [start]
        while todo:
            node = todo.pop(0)
            for target in sorted(self.edges[node] & component):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *path[::-1][1:], start]
                if target not in previous:
                    previous[target] = node
                    todo.append(target)
        raise AssertionError(f'{start} is in a component but on no cycle')


@pytest.fixture(scope='module')
def graph() -> ImportGraph:
    return ImportGraph()


def test_the_graph_is_read(graph):
    assert 'aiida_qdtraps.workchains.traps' in graph.modules
    assert 'aiida_qdtraps.provenance' in graph.edges['aiida_qdtraps.workchains.traps']
    assert 'aiida' in graph.external['aiida_qdtraps.provenance']


def test_no_import_cycle(graph):
    cycles = graph.cycles()
    assert not cycles, 'import cycles: ' + '; '.join(' -> '.join(cycle) for cycle in cycles)


@pytest.mark.parametrize('package', PURE)
def test_pure_kernels_import_no_aiida(graph, package):
    members = [name for name in graph.modules if name == package or name.startswith(package + '.')]
    assert members, f'no package {package}: PURE names a package that does not exist'
    offenders = {}
    for name in members:
        for module in sorted(graph.reachable(name)):
            if 'aiida' in graph.external[module]:
                offenders[name] = module
    assert not offenders, f'modules of {package} that import aiida (directly or through): {offenders}'


def test_pure_kernels_load_without_aiida():
    """Importing every module of the pure packages leaves ``aiida`` out of ``sys.modules``."""
    script = (
        'import importlib, pkgutil, sys\n'
        f'for name in {PURE!r}:\n'
        '    package = importlib.import_module(name)\n'
        '    for module in pkgutil.walk_packages(package.__path__, name + "."):\n'
        '        importlib.import_module(module.name)\n'
        'print(sorted(m for m in sys.modules if m == "aiida" or m.startswith("aiida.")))\n'
    )
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=120, check=True)
    assert result.stdout.strip() == '[]', result.stdout + result.stderr


def test_profile_imports_no_work_chain(graph):
    """The profile set-up is importable (and must run) before any work chain; it reaches none of them."""
    workchains = {m for m in graph.reachable('aiida_qdtraps.profile') if m.startswith('aiida_qdtraps.workchains')}
    assert not workchains


def _name(node: ast.expr) -> str:
    """``calcfunction`` for ``calcfunction``, ``engine.calcfunction`` and ``calcfunction(...)``; '' for others."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else ''


def process_kinds(tree: ast.AST) -> set[str]:
    """``'calcfunction'`` if the source defines a function decorated with ``@calcfunction``, ``'workchain'`` if it
    defines a class with a base whose name ends in ``WorkChain`` (``WorkChain``, ``BaseRestartWorkChain``, ...)."""
    kinds = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                any(_name(decorator) == 'calcfunction' for decorator in node.decorator_list):
            kinds.add('calcfunction')
        elif isinstance(node, ast.ClassDef) and any(_name(base).endswith('WorkChain') for base in node.bases):
            kinds.add('workchain')
    return kinds


def mixed_modules(package: pathlib.Path, max_lines: int = MIXED_MODULE_LINES) -> dict[str, int]:
    """Modules of ``package`` longer than ``max_lines`` that define both calcfunctions and work chains → lines."""
    found = {}
    for path in sorted(package.rglob('*.py')):
        text = path.read_text()
        n_lines = len(text.splitlines())
        if n_lines > max_lines and process_kinds(ast.parse(text, str(path))) == {'calcfunction', 'workchain'}:
            found[path.relative_to(package.parent).as_posix()] = n_lines
    return found


def test_no_long_module_mixes_calcfunctions_and_work_chains():
    """A long module holds either the thin calcfunctions or the work chain that orchestrates them (``mlff.py`` and
    ``mlff_functions.py``, ``classifier.py`` and ``classifier_functions.py``, ...)."""
    found = mixed_modules(PACKAGE)
    assert not found, (f'modules above {MIXED_MODULE_LINES} lines with both calcfunctions and work chains (move the '
                       f'calcfunctions to a <name>_functions module): {found}')


SCAN_CASES = {
    'calcfunction_and_workchain': ('from aiida.engine import WorkChain, calcfunction\n\n\n@calcfunction\n'
                                   'def f(x):\n    return x\n\n\nclass W(WorkChain):\n    pass\n'),
    'qualified_names': ('from aiida import engine\n\n\n@engine.calcfunction()\ndef f(x):\n    return x\n\n\n'
                        'class W(Mixin, engine.BaseRestartWorkChain):\n    pass\n'),
    'calcfunctions_only': 'from aiida.engine import calcfunction\n\n\n@calcfunction\ndef f(x):\n    return x\n',
    'workchain_only': 'from aiida.engine import WorkChain\n\n\nclass W(WorkChain):\n    pass\n',
}


@pytest.mark.parametrize('padding, expected', [(400, {'calcfunction_and_workchain', 'qualified_names'}), (0, set())])
def test_the_mixed_module_scan(tmp_path, padding, expected):
    """Both kinds in one module are found however they are spelled, and only above the line limit."""
    package = tmp_path / 'pkg'
    package.mkdir()
    for name, source in SCAN_CASES.items():
        (package / f'{name}.py').write_text(source + '\n' * padding)
    assert {pathlib.PurePath(path).stem for path in mixed_modules(package)} == expected


#: Entry-point groups whose objects are processes: a stored node's process type is ``<group>:<name>`` only while the
#: entry point names the module that defines the process, else the module path it was defined in.
PROCESS_GROUPS = ('aiida.calculations', 'aiida.workflows')
#: Modules kept importable after their contents moved, for nodes and scripts that name them: module -> its names.
COMPATIBILITY_ALIASES = {
    'aiida_qdtraps.workchains.functions': ('build_qd_structure', 'center_in_box', 'extract_mo_window',
                                           'update_cp2k_parameters'),
}


def process_entry_points() -> dict[str, str]:
    """``group:name`` -> ``module:attribute`` of the process entry points in ``pyproject.toml``."""
    import tomllib

    groups = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['entry-points']
    return {f'{group}:{name}': target for group in PROCESS_GROUPS for name, target in groups[group].items()}


def test_process_entry_points_name_the_defining_module():
    """Every process entry point names the module that defines the process, so that its nodes record the entry point
    as their process type and load again after a move (a moved process keeps its entry point name)."""
    import importlib

    entry_points = process_entry_points()
    assert 'aiida.calculations:qdtraps.center_in_box' in entry_points
    wrong = {}
    for name, target in entry_points.items():
        module, _, attribute = target.partition(':')
        defined_in = getattr(importlib.import_module(module), attribute).__module__
        if defined_in != module:
            wrong[name] = f'{target} is defined in {defined_in}'
    assert not wrong, wrong


@pytest.mark.parametrize('alias', sorted(COMPATIBILITY_ALIASES))
def test_compatibility_aliases_only_re_export(alias):
    """An old module path still gives the very objects of their new home, and defines nothing of its own."""
    import importlib

    module = importlib.import_module(alias)
    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    own = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert not own, f'{alias} defines {own}: a compatibility alias only re-exports'
    for name in COMPATIBILITY_ALIASES[alias]:
        obj = getattr(module, name)
        assert obj.__module__ != alias
        assert getattr(importlib.import_module(obj.__module__), name) is obj


def test_cp2k_kinds_are_filled_in_one_place(graph):
    """The CP2K ``&KIND`` sections of every stage come from ``QdCp2kBaseWorkChain.get_builder_from_protocol``: only
    ``workchains/cp2k_base.py`` calls ``kind_sections`` (the stage builders call that builder)."""
    callers = set()
    for name, (path, _) in graph.modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _name(node.func) == 'kind_sections':
                callers.add(name)
    assert callers == {'aiida_qdtraps.workchains.cp2k_base'}

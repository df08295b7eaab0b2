"""Shared set-up of the MLFF benchmarks: the project profile, its codes and a finished active-learning run."""

from __future__ import annotations

import os

os.environ.setdefault('OMP_NUM_THREADS', '1')


def load():
    """Load the project profile and return ``(cp2k_code, dp_python_code)``."""
    from aiida import orm

    from aiida_qdtraps.profile import load_project_profile

    load_project_profile()
    return orm.load_code('cp2k@localhost'), orm.load_code('dp-python@localhost')


def active_learning_run(protocol: str = 'fast', structure_file: str | None = None, overrides: dict | None = None,
                        new: bool = False):
    """The latest finished-ok ``MlffActiveLearningWorkChain`` of the profile, or a new one.

    A new run (``new``, or when the profile has none) uses ``protocol`` and ``overrides`` on the QD of
    ``structure_file`` (xyz), or on the built In4PF9 (the tiny QD of the tests) if none is given.
    """
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_qdtraps.workchains.build import build_qd_structure
    from aiida_qdtraps.workchains.mlff import MlffActiveLearningWorkChain

    query = orm.QueryBuilder().append(orm.WorkChainNode, filters={
        'attributes.process_label': 'MlffActiveLearningWorkChain', 'attributes.exit_status': 0},
        project='*').order_by({orm.WorkChainNode: {'ctime': 'desc'}}).limit(1)
    found = query.all(flat=True)
    if found and not new:
        return found[0]
    cp2k, dp_python = load()
    if structure_file:
        from ase.io import read

        structure = orm.StructureData(ase=read(structure_file))
        structure.pbc = (False, False, False)
    else:
        recipe = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion', 'vacuum': 2.5,
                  'min_core_bonds': 1}
        structure = build_qd_structure(orm.Dict(recipe))
    builder = MlffActiveLearningWorkChain.get_builder_from_protocol(cp2k, dp_python, dp_python, structure,
                                                                    protocol=protocol, overrides=overrides)
    print(f'running an MlffActiveLearningWorkChain (protocol {protocol}, overrides {overrides}) ...', flush=True)
    _, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise SystemExit(f'MlffActiveLearningWorkChain<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    print(f'MlffActiveLearningWorkChain<{node.pk}> finished', flush=True)
    return node

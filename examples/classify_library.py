"""Train the trap-centre classifier on the shipped labelled library and trace one sample back to its built QD.

    verdi run examples/classify_library.py            # every core atom (In, Ga, P of any coordination)
    verdi run examples/classify_library.py p4c        # the seed's task: 4-coordinate P (4 positives: see the docs)

The library (tests/data/library/library.aiida, 23 InP / GaP QDs, intact and with ligand, cation, anion and pair
vacancies, real CP2K PBE0 `fast` labels) is imported into the current profile the first time. The script then runs
TrapClassifierWorkChain (featurize -> build_dataset -> train_classifier -> cluster_traps, split by QD), prints the
metrics of the 42-feature model next to the geometry-only one, and walks from the stored model to the built
structure of one trapping sample with QueryBuilder only. Takes about 20 s. docs/classifier.md explains the
features, the metrics and what they do and do not show.
"""

import pathlib
import sys

import numpy as np
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.cli.cmd_classify import metrics_table
from aiida_qdtraps.workchains.classifier import TrapClassifierWorkChain

GROUP = 'qdtraps/library'
ARCHIVE = pathlib.Path(__file__).resolve().parent.parent / 'tests' / 'data' / 'library' / 'library.aiida'
TASKS = {
    'core': {'elements': ['In', 'Ga', 'P'], 'coordinations': None},
    'p4c': {'elements': ['P'], 'coordinations': [4]},
}


def library_group() -> orm.Group:
    """The library Group, imported from the shipped archive when this profile does not have it yet."""
    try:
        return orm.load_group(GROUP)
    except Exception:  # noqa: BLE001  (NotExistent: first run on this profile)
        from aiida.tools.archive import import_archive

        print(f'importing {ARCHIVE} ...', flush=True)
        import_archive(ARCHIVE)
        return orm.load_group(GROUP)


def trace(model: orm.SinglefileData) -> None:
    """Model -> dataset -> one trapping row's label node -> PBE0 CalcJob -> built structure, by QueryBuilder."""
    qb = orm.QueryBuilder().append(orm.SinglefileData, filters={'uuid': model.uuid}, tag='model')
    qb.append(orm.CalcFunctionNode, with_outgoing='model', tag='train')
    qb.append(orm.ArrayData, with_outgoing='train', edge_filters={'label': 'dataset'}, project='*')
    dataset = qb.one()[0]
    y = dataset.get_array('y')
    row = int(np.flatnonzero(y == 1)[0]) if y.any() else 0
    source, atom = str(dataset.get_array('source_uuid')[row]), int(dataset.get_array('atom_index')[row])

    qb = orm.QueryBuilder().append(orm.ArrayData, filters={'uuid': source}, tag='labels')
    qb.append(orm.CalcFunctionNode, with_outgoing='labels', filters={'attributes.process_label': 'label_traps'},
              tag='label', project='*')
    qb.append(orm.ArrayData, with_outgoing='label', edge_filters={'label': 'mo_window'}, tag='window')
    qb.append(orm.CalcFunctionNode, with_outgoing='window', tag='extract')
    qb.append(orm.FolderData, with_outgoing='extract', tag='retrieved')
    qb.append(orm.CalcJobNode, with_outgoing='retrieved', tag='pbe0', project='*')
    qb.append(orm.StructureData, with_outgoing='pbe0', edge_filters={'label': 'structure'}, tag='scf_structure')
    qb.append(orm.CalcFunctionNode, with_descendants='scf_structure',
              filters={'attributes.process_label': 'build_qd_structure'}, tag='build')
    qb.append(orm.Dict, with_outgoing='build', project='*')
    qb.append(orm.StructureData, with_incoming='build', project='*')
    label, pbe0, recipe, built = qb.one()
    symbol = built.get_ase().get_chemical_symbols()[atom]
    print(f'dataset row {row} (labelled trapping: {bool(y[row])}): atom {atom} ({symbol}) of label_traps<{label.pk}>')
    print(f'  <- PBE0 {pbe0.process_label}<{pbe0.pk}> (charge '
          f"{pbe0.inputs.parameters['FORCE_EVAL']['DFT'].get('CHARGE', 0)})")
    print(f'  <- built structure {built.get_formula()} <{built.pk}> from recipe {recipe.get_dict()}')


def main(task: str = 'core') -> None:
    if task not in TASKS:
        raise SystemExit(f'unknown task {task!r}; choose one of {list(TASKS)}')
    group = library_group()
    print(f'{GROUP}: {len(group.nodes)} labelled QDs; training on {task} ...', flush=True)
    results, node = run_get_node(TrapClassifierWorkChain, group=orm.Str(GROUP),
                                 featurize=orm.Dict(TASKS[task]), train=orm.Dict({'split': 'qd', 'seed': 0}),
                                 cluster=orm.Dict({'seed': 0}))
    if not node.is_finished_ok:
        raise SystemExit(f'TrapClassifierWorkChain<{node.pk}> failed: {node.exit_message}')
    print(metrics_table(results['metrics'].get_dict()))
    if 'clusters' in results:
        print(f"clusters of the trapping atoms: {results['clusters'].base.attributes.get('cluster_sizes')} "
              '(label -1 = noise)')
    print(f"model SinglefileData<{results['model'].pk}> (xgboost JSON); figures: "
          f"`qdtraps classify report {results['model'].pk}`")
    trace(results['model'])


if __name__ == '__main__':
    main(*sys.argv[1:2])

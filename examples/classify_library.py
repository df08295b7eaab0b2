"""Train the trap-centre classifier on the shipped labelled library and trace one sample back to its built QD.

    verdi run examples/classify_library.py            # every core atom (In, Ga, P of any coordination)
    verdi run examples/classify_library.py p4c        # Alexander et al.: 4-coordinate P (4 positives: see the docs)

The library (tests/data/library/library.aiida, 23 InP / GaP QDs, intact and with ligand, cation, anion and pair
vacancies, real CP2K PBE0 `fast` labels) is imported into the current profile the first time. The script then runs
TrapClassifierWorkChain (featurize -> build_dataset -> train_classifier -> cluster_traps, split by QD), prints the
metrics of the 42-feature model next to the geometry-only one, and walks from the stored model to the built
structure of one trapping sample with QueryBuilder only. Takes about 20 s. docs/classifier.md explains the
features, the metrics and what they do and do not show.
"""

import inspect
import pathlib
import sys

from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.cli.cmd_classify import metrics_table
from aiida_qdtraps.workchains.classifier import TrapClassifierWorkChain, trace_sample

GROUP = 'qdtraps/library'
#: ``verdi run`` sets ``__file__`` to the bare file name: the script is found by the path it was started with
ARCHIVE = (pathlib.Path(inspect.getfile(inspect.currentframe())).resolve().parent.parent / 'tests' / 'data' / 'library'
           / 'library.aiida')
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
    """Model -> dataset -> one trapping row's label node -> PBE0 CalcJob -> built structure (QueryBuilder only)."""
    t = trace_sample(model)
    built, pbe0, atom = t['built'], t['pbe0'], t['atom']
    symbol = built.get_ase().get_chemical_symbols()[atom]
    print(f"dataset row {t['row']} (labelled trapping: {bool(t['dataset'].get_array('y')[t['row']])}): atom {atom} "
          f"({symbol}) of label_traps<{t['label_traps'].pk}>")
    print(f'  <- PBE0 {pbe0.process_label}<{pbe0.pk}> (charge '
          f"{pbe0.inputs.parameters['FORCE_EVAL']['DFT'].get('CHARGE', 0)})")
    print(f"  <- built structure {built.get_formula()} <{built.pk}> from recipe {t['recipe'].get_dict()}")


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

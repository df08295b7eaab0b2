"""Same pipeline, another CP2K: does a CP2K build give the numbers of the reference one?

Runs the demo pipeline (In4PF9, relax → PBE0 → trap labels, protocol ``fast``) with ``--code`` and with the
reference code (``cp2k@localhost``, Debian's 2023.1; taken from the cache when it already ran), and prints one line
per quantity: the PBE relax energy and steps, the RMSD between the two relaxed geometries, the PBE0 HOMO / LUMO / gap,
the number of atoms whose trap label differs, and the wall time of each stage. Both runs are AiiDA nodes in the
project profile, so the comparison can be repeated from the graph.

    .venv/bin/python benchmarks/cp2k_version_check.py --code cp2k-2026.2@localhost \
        [--global PREFERRED_DIAG_LIBRARY=SCALAPACK]

``--global KEY=VALUE`` adds a keyword to the ``GLOBAL`` section of every CP2K input of the run under test, e.g.
``PREFERRED_DIAG_LIBRARY=SCALAPACK`` for Debian's 2026.2 package, whose ELPA stops CP2K with SIGFPE before its first
SCF step here (the work chains' ``handle_eigensolver_crash`` would retry so; the keyword saves the failed starts).
With ``--md`` both codes also run a short MD from the reference relaxed QD, compared frame by frame.
The output names each CP2K version as the parser read it (``output_parameters['cp2k_version']``).
"""

from __future__ import annotations

import argparse
import time


def add_global_keywords(namespaces, global_keywords: dict) -> None:
    """Merge ``global_keywords`` into the ``GLOBAL`` section of each ``cp2k`` builder namespace's parameters."""
    from aiida import orm

    for namespace in namespaces if global_keywords else ():
        parameters = namespace.parameters.get_dict()
        parameters.setdefault('GLOBAL', {}).update(global_keywords)
        namespace.parameters = orm.Dict(parameters)


def pipeline_builder(code, structure, protocol: str, global_keywords: dict):
    """The demo pipeline's builder for ``code``, with ``global_keywords`` merged into every CP2K input."""
    from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain

    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(code, structure, protocol=protocol)
    add_global_keywords((builder.relax.base.cp2k, builder.hybrid_scf.scf.cp2k), global_keywords)
    return builder


def md_builder(code, structure, protocol: str, global_keywords: dict):
    """A short ``QdMdWorkChain`` (two 2-fs CSVR segments, 4 fs NVE, every step stored) for ``code``."""
    from aiida_qdtraps.workchains.md import QdMdWorkChain

    builder = QdMdWorkChain.get_builder_from_protocol(code, structure, protocol=protocol, overrides={'md': SHORT_MD})
    add_global_keywords((builder.base.cp2k,), global_keywords)
    return builder


#: the MD both codes run with ``--md``: a few steps, so that the trajectories can be compared frame by frame
SHORT_MD = {'heatup_fs': 4.0, 'heatup_segments': 2, 'nve_fs': 4.0, 'stride': 1}


def run(builder) -> tuple:
    from aiida.engine import run_get_node

    start = time.perf_counter()
    _, node = run_get_node(builder)
    seconds = time.perf_counter() - start
    if not node.is_finished_ok:
        raise SystemExit(f'{node.process_label}<{node.pk}> failed: {node.exit_status} {node.exit_message}; '
                         f'verdi process report {node.pk}')
    return node, seconds


def summary(node) -> dict:
    """What the comparison reads from one finished pipeline (CP2K's own wall times, ``walltime_s``)."""
    relax = node.outputs.relax.output_parameters.get_dict()
    hybrid = node.outputs.hybrid_scf.output_parameters.get_dict()
    labels = node.outputs.labels.atom_labels
    return {
        'version': relax.get('cp2k_version'),
        'relax_energy_Ha': relax['energy'],
        'relax_steps': node.outputs.relax.output_trajectory.numsteps,
        'relax_seconds': relax.get('walltime_s'),
        'hybrid_seconds': hybrid.get('walltime_s'),
        'atoms': node.outputs.relax.relaxed_structure.get_ase(),
        'labels': labels.get_array('label'),
        'states': node.outputs.labels.summary['spins'],
        'homo': hybrid['homo_ev'], 'lumo': hybrid['lumo_ev'],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--code', required=True, help='the CP2K code to check, e.g. cp2k-2026.2@localhost')
    parser.add_argument('--reference', default='cp2k@localhost', help='the reference CP2K code')
    parser.add_argument('--protocol', default='fast')
    parser.add_argument('--global', dest='global_keywords', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--md', action='store_true', help='also run a short MD (8 steps) on the reference relaxed QD '
                        'with both codes and compare the trajectories frame by frame')
    args = parser.parse_args(argv)
    keywords = {}
    for item in args.global_keywords:
        key, sep, value = item.partition('=')
        if not sep or not key:
            parser.error(f'--global {item!r}: expected KEY=VALUE')
        keywords[key] = value

    from aiida_qdtraps.profile import load_project_profile

    load_project_profile()
    from aiida import orm

    from aiida_qdtraps.demo import DEMO_RECIPE
    from aiida_qdtraps.workchains.build import build_qd_structure

    structure = build_qd_structure(orm.Dict(DEMO_RECIPE))
    reference, reference_seconds = run(pipeline_builder(orm.load_code(args.reference), structure, args.protocol, {}))
    checked, checked_seconds = run(pipeline_builder(orm.load_code(args.code), structure, args.protocol, keywords))

    from aiida_qdtraps.analysis.cross_engine import aligned_rmsd

    ref, new = summary(reference), summary(checked)
    print(f'reference: QdTrapsPipelineWorkChain<{reference.pk}> CP2K {ref["version"]} ({reference_seconds:.0f} s here; '
          'a cached stage takes no time)')
    print(f'checked:   QdTrapsPipelineWorkChain<{checked.pk}> CP2K {new["version"]} ({checked_seconds:.0f} s)')
    print(f'relax: dE_Ha={new["relax_energy_Ha"] - ref["relax_energy_Ha"]:+.2e} steps={new["relax_steps"]} '
          f'reference_steps={ref["relax_steps"]} rmsd_A={aligned_rmsd(ref["atoms"], new["atoms"])[0]:.5f} '
          f'seconds={new["relax_seconds"]:.0f} reference_seconds={ref["relax_seconds"]:.0f}')
    print(f'pbe0: dhomo_meV={1000 * (new["homo"] - ref["homo"]):+.3f} '
          f'dlumo_meV={1000 * (new["lumo"] - ref["lumo"]):+.3f} '
          f'dgap_meV={1000 * ((new["lumo"] - new["homo"]) - (ref["lumo"] - ref["homo"])):+.3f} '
          f'gap_eV={new["lumo"] - new["homo"]:.4f} seconds={new["hybrid_seconds"]:.0f} '
          f'reference_seconds={ref["hybrid_seconds"]:.0f}')
    differing = [int(index) for index in (ref['labels'] != new['labels']).nonzero()[0]] \
        if len(ref['labels']) == len(new['labels']) else 'all'
    counts = [{key: spin[key] for key in ('n_hole_traps', 'n_electron_traps', 'n_shallow_traps')}
              for spin in new['states']]
    print(f'labels: atoms={len(ref["labels"])} differing={differing} trap_states={counts} '
          f'reference_trap_states_equal={counts == [{key: spin[key] for key in counts[0]} for spin in ref["states"]]}')
    if args.md:
        compare_md(reference, orm.load_code(args.reference), orm.load_code(args.code), args.protocol, keywords)
    return 0


def compare_md(reference_pipeline, reference_code, code, protocol: str, keywords: dict) -> None:
    """Run :data:`SHORT_MD` from the reference relaxed QD with both codes; print the largest position difference
    per stored frame and each run's NVE drift."""
    import numpy as np

    structure = reference_pipeline.outputs.relax.relaxed_structure
    runs = [run(md_builder(reference_code, structure, protocol, {})),
            run(md_builder(code, structure, protocol, keywords))]
    (ref, _), (new, seconds) = runs
    positions = [node.outputs.trajectory.get_positions() for node in (ref, new)]
    if positions[0].shape != positions[1].shape:
        print(f'md: frames differ: {positions[0].shape} vs {positions[1].shape}')
        return
    deviation = np.abs(positions[1] - positions[0]).max(axis=(1, 2))
    summaries = [node.outputs.md_summary.get_dict() for node in (ref, new)]
    drift = [summary.get('nve_drift_mev_per_atom_ps') for summary in summaries]
    print(f'md: QdMdWorkChain<{ref.pk}> vs <{new.pk}> frames={len(deviation)} '
          f'max_dpos_A_per_frame={" ".join(f"{value:.1e}" for value in deviation)} '
          f'nve_drift={drift[1]} reference_nve_drift={drift[0]} seconds={seconds:.0f}')


if __name__ == '__main__':
    raise SystemExit(main())

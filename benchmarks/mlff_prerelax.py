"""MLFF pre-relaxation + DFT polish against a DFT-only relaxation, through ``QdRelaxWorkChain`` (CP2K).

For every start geometry the same ``QdRelaxWorkChain`` (protocol ``--protocol``) runs twice, caching off: once
DFT-only, once with ``mlff_model`` (the DeePMD pre-relaxation, then the CP2K GEO_OPT from its geometry if the guard
accepts it; with ``--ensemble``, only where the ensemble agrees at its end geometry). Printed per start, one line::

    start=<name> dft_s=<s> mlff_s=<s> ratio=<mlff/dft> dft_steps=<GEO_OPT steps> polish_steps=<n> accepted=<bool>
    end_deviation=<eV/Å or None> prerelax_s=<s> rmsd_A=<after alignment, DFT-only vs polished>
    rmsd_start_A=<start vs DFT-only minimum>

``ratio`` is measured in the same run, on the same machine load (the two arms run one after the other). ``--rattle``
adds copies of each structure rattled by these amplitudes (Å, seed ``--seed``), e.g. to start near a known minimum.

Usage (project profile)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mlff_prerelax.py --model tests/data/mlff/in4pf9/model.pth \\
        --structure tests/data/cp2k/relaxed/in4pf9_fast.xyz --rattle 0.1 0.2 [--built]

``--built`` adds the QD the builder makes for the demo's recipe (In4PF9, the starting point of the demo pipeline).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')


def geo_opt_steps(node) -> int:
    """GEO_OPT steps of the relax's CP2K calculations (frames of their output trajectories, less the start of
    each)."""
    from aiida import orm

    steps = 0
    for calc in node.called_descendants:
        if isinstance(calc, orm.CalcJobNode) and 'output_trajectory' in calc.outputs:
            steps += max(calc.outputs.output_trajectory.numsteps - 1, 0)
    return steps


def relax(structure, protocol: str, model=None, ensemble=None):
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.manage.caching import disable_caching

    from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

    builder = QdRelaxWorkChain.get_builder_from_protocol(orm.load_code('cp2k@localhost'), structure,
                                                         protocol=protocol)
    if model is not None:
        builder.mlff_model = model
    if ensemble:
        builder.mlff_ensemble = ensemble
    start = time.perf_counter()
    with disable_caching():
        results, node = run_get_node(builder)
    seconds = time.perf_counter() - start
    if not node.is_finished_ok:
        raise SystemExit(f'{node.process_label}<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    return results, node, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True, help='frozen DeePMD model (.pth)')
    parser.add_argument('--ensemble', nargs='*', default=[],
                        help='further frozen models: the guard on their force deviation at the end geometry')
    parser.add_argument('--structure', nargs='*', default=[], help='start geometries (any ASE format)')
    parser.add_argument('--built', action='store_true', help='also start from the built tiny In4PF9')
    parser.add_argument('--rattle', type=float, nargs='*', default=[], help='also rattled copies (Å)')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--protocol', default='fast')
    parser.add_argument('--json', help='write the results here as well')
    args = parser.parse_args()

    import numpy as np
    from aiida import load_profile, orm
    from ase.io import read

    load_profile()
    from aiida_qdtraps.analysis.cross_engine import aligned_rmsd
    from aiida_qdtraps.builder.qd import build_qd
    from aiida_qdtraps.demo import DEMO_RECIPE

    starts = {}
    for path in args.structure:
        atoms = read(path)
        name = os.path.splitext(os.path.basename(path))[0]
        starts[name] = atoms
        for amplitude in args.rattle:
            rattled = atoms.copy()
            rattled.positions += np.random.default_rng(args.seed).normal(0, amplitude, atoms.positions.shape)
            starts[f'{name}+rattle{amplitude:g}'] = rattled
    if args.built:
        starts['built_in4pf9'] = build_qd(**DEMO_RECIPE)
    model = orm.SinglefileData(os.path.abspath(args.model))
    ensemble = {f'model_{n}': orm.SinglefileData(os.path.abspath(path)) for n, path in enumerate(args.ensemble)}
    rows = []
    for name, atoms in starts.items():
        structure = orm.StructureData(ase=atoms)
        structure.pbc = (False, False, False)
        dft, dft_node, dft_s = relax(structure, args.protocol)
        mlff, mlff_node, mlff_s = relax(structure, args.protocol, model, ensemble)
        prerelax = next(n for n in mlff_node.called_descendants if n.process_label == 'mlff_prerelax')
        verdict = prerelax.outputs.output_parameters.get_dict()
        reference, polished = dft['relaxed_structure'].get_ase(), mlff['relaxed_structure'].get_ase()
        rmsd = aligned_rmsd(reference, polished)[0]
        rmsd_start = aligned_rmsd(reference, atoms)[0]
        row = {'start': name, 'dft_s': round(dft_s, 1), 'mlff_s': round(mlff_s, 1), 'ratio': round(mlff_s / dft_s, 3),
               'dft_steps': geo_opt_steps(dft_node), 'polish_steps': geo_opt_steps(mlff_node),
               'accepted': verdict['accepted'], 'end_deviation': verdict.get('end_deviation'),
               'prerelax_s': round((prerelax.mtime - prerelax.ctime).total_seconds(), 1),
               'rmsd_A': round(rmsd, 4), 'rmsd_start_A': round(rmsd_start, 3),
               'dft_pk': dft_node.pk, 'mlff_pk': mlff_node.pk, 'load': round(os.getloadavg()[0], 1)}
        rows.append(row)
        print(' '.join(f'{key}={value}' for key, value in row.items()), flush=True)
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(rows, handle, indent=1)


if __name__ == '__main__':
    main()

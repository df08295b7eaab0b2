"""Submit the QD pipeline to a cluster set up with the YAML files of this folder (docs/hpc.md).

    source env.sh && verdi daemon start
    python examples/hpc/run_pipeline_hpc.py --cores-per-node 128 --memory-per-node-mb 250000 --queue normal \
        --account proj42 --protocol moderate --diameter 2.0

Resources come from ``aiida_qdtraps.resources.pipeline_overrides``: ranks from the QD's basis-function count, threads,
nodes and wall time per stage (relax, PBE0), HFX memory per rank from the node memory.
"""

from __future__ import annotations

import argparse

from aiida import orm
from aiida.engine import submit

from aiida_qdtraps.profile import load_project_profile


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--computer', default='cluster')
    parser.add_argument('--protocol', default='moderate', choices=('fast', 'moderate', 'precise'))
    parser.add_argument('--diameter', type=float, default=2.0, help='InP core diameter (nm)')
    parser.add_argument('--center', default='cation', choices=('anion', 'cation', 'interstitial'),
                        help='carve centre (not every centre gives a neutral F-passivated QD at every size)')
    parser.add_argument('--cores-per-node', type=int, required=True)
    parser.add_argument('--memory-per-node-mb', type=int)
    parser.add_argument('--max-nodes', type=int, default=16)
    parser.add_argument('--queue')
    parser.add_argument('--account')
    parser.add_argument('--dry-run', action='store_true', help='print the per-stage options and stop')
    args = parser.parse_args()

    load_project_profile()
    from aiida_qdtraps.resources import pipeline_overrides, scale_resources
    from aiida_qdtraps.workchains.build import build_qd_structure
    from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain

    extra = {key: value for key, value in (('queue_name', args.queue), ('account', args.account)) if value}
    recipe = {'material': 'InP', 'diameter': args.diameter * 10, 'ligand': 'F', 'charge': 0, 'center': args.center}
    structure = build_qd_structure(orm.Dict(recipe))
    overrides = pipeline_overrides(structure, args.protocol, cores_per_node=args.cores_per_node,
                                   memory_per_node_mb=args.memory_per_node_mb, max_nodes=args.max_nodes, **extra)
    bader_options = scale_resources(structure, 'bader', args.protocol, cores_per_node=args.cores_per_node, **extra)
    for stage, namespace in (('relax', 'base'), ('hybrid_scf', 'scf')):
        print(stage, overrides[stage][namespace]['cp2k']['metadata']['options'])
    print('bader', bader_options)
    if args.dry_run:
        return
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(
        orm.load_code(f'cp2k@{args.computer}'), structure, args.protocol, overrides=overrides,
        bader_code=orm.load_code(f'baderkit@{args.computer}'))
    builder.charge_flow.bader.options = orm.Dict(bader_options)
    node = submit(builder)
    print(f'submitted QdTrapsPipelineWorkChain<{node.pk}>; follow it with `verdi process status {node.pk}`')


if __name__ == '__main__':
    main()

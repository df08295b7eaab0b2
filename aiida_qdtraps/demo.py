"""The demo: build a tiny InP QD, run the pipeline with real CP2K, print the result table and pks."""

from __future__ import annotations

import time

#: In4PF9: a P-centred zincblende InP fragment, each In capped by F⁻ to neutrality (14 atoms, 120 valence e⁻).
DEMO_RECIPE = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion',
               'vacuum': 2.5, 'min_core_bonds': 1}


def run_demo(protocol: str = 'fast', code_label: str = 'cp2k@localhost') -> int:
    """Run the demo pipeline in the project profile; returns the pipeline's pk."""
    from aiida_qdtraps.profile import load_project_profile

    load_project_profile()

    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_qdtraps.query import trap_table
    from aiida_qdtraps.report import format_table, format_trap_table, pipeline_rows
    from aiida_qdtraps.workchains.build import build_qd_structure
    from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain

    code = orm.load_code(code_label)
    structure = build_qd_structure(orm.Dict(DEMO_RECIPE))
    print(f'Built {structure.get_formula()} (StructureData<{structure.pk}>); running relax → PBE0 → traps → Bader '
          f'with protocol {protocol!r} on {code.full_label} ...', flush=True)
    start = time.perf_counter()
    bader = orm.load_code('baderkit@localhost')
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(code, structure, protocol=protocol, bader_code=bader)
    _, node = run_get_node(builder)
    print(f'finished in {time.perf_counter() - start:.0f} s')
    if not node.is_finished_ok:
        print(f'QdTrapsPipelineWorkChain<{node.pk}> failed: exit status {node.exit_status}: {node.exit_message}')
        print(f'inspect it with: verdi process report {node.pk}')
        raise SystemExit(1)
    print(format_table(pipeline_rows(node)))
    traps = [record for _, record in sorted(node.outputs.labels.traps.items(), key=lambda kv: -kv[1]['depth'])] \
        if 'traps' in node.outputs.labels else []
    print(f'Trap states of {structure.get_formula()} (query them with `qdtraps traps`):')
    print(format_trap_table(trap_table(traps)))
    from aiida_qdtraps.html_report import write_demo_report

    write_demo_report(node)
    print(f'Inspect with (after `source env.sh`): verdi process status {node.pk}; verdi process report {node.pk}; '
          f'verdi node show {node.pk}')
    return node.pk

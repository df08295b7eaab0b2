"""The demos.

``run_demo`` (``qdtraps demo``, ``make demo``): a trap a scientist recognises, in minutes. A DFT-optimised,
trap-free CdSe QD of a public model library (Cd16Se13Cl6, shipped in ``aiida_qdtraps/demo_data``) and the same QD
with one Cl⁻ ligand removed get a CP2K single point with the ``fast`` protocol at the PBE level (``HybridScfWorkChain``
with ``functional='pbe'``: no exact exchange, so minutes instead of the PBE0's tens of minutes) and trap labels
(``TrapLabelingWorkChain``). The intact QD has shallow states only; the vacancy puts deep electron traps on the Cd that
lost the Cl. ``run_pipeline_demo`` (``qdtraps demo --pipeline``) runs the whole pipeline (relax → PBE0 → labels →
Bader) on a tiny InP QD instead (about 25 min on 2 cores).
"""

from __future__ import annotations

import time

#: the demo's QD, a file of aiida_qdtraps/demo_data (MIT, the nlesc-nano QD model library)
DEMO_QD = 'Cd16Se13Cl6_HLE17_12ang_opt.xyz'
#: Å: a Cd within this distance of the removed Cl was bonded to it (Cd–Cl 2.5–2.6 Å in the demo QD)
CD_CL_BOND = 3.0

#: In4PF9: a P-centred zincblende InP fragment, each In capped by F⁻ to neutrality (14 atoms, 120 valence e⁻).
DEMO_RECIPE = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion',
               'vacuum': 2.5, 'min_core_bonds': 1}


def run_demo(protocol: str = 'fast', code_label: str = 'cp2k@localhost', pipeline: bool = False) -> list[int]:
    """Run the trap demo (or, with ``pipeline``, the pipeline demo) in the project profile; returns the pks of the
    labelling work chains (of the pipeline)."""
    if pipeline:
        return [run_pipeline_demo(protocol, code_label)]
    return run_trap_demo(protocol, code_label)


def removed_atom_neighbours(intact, vacancy, cutoff: float = CD_CL_BOND) -> tuple[int, list[int]]:
    """``(index in intact, indices in vacancy of the atoms within cutoff Å of it)`` for the one atom of ``intact``
    (ase.Atoms) that ``vacancy`` lacks; both QDs in the same frame, the vacancy's atoms in the intact's order."""
    import numpy as np

    distances = np.linalg.norm(intact.positions[:, None] - vacancy.positions[None], axis=2)
    removed = [i for i in range(len(intact)) if distances[i].min() > 1e-3]
    if len(removed) != 1:
        raise ValueError(f'expected one removed atom, found {len(removed)}')
    return removed[0], [int(j) for j in np.flatnonzero(distances[removed[0]] < cutoff)]


def run_trap_demo(protocol: str = 'fast', code_label: str = 'cp2k@localhost') -> list[int]:
    """The intact library CdSe QD and its Cl⁻ vacancy: PBE single points, trap labels, the table, the reports."""
    from importlib.resources import files

    from aiida_qdtraps.profile import load_project_profile

    load_project_profile()

    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_qdtraps.html_report import write_demo_report
    from aiida_qdtraps.query import trap_table
    from aiida_qdtraps.report import format_trap_table
    from aiida_qdtraps.workchains.build import import_structure, make_vacancy
    from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
    from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain

    code = orm.load_code(code_label)
    path = files('aiida_qdtraps') / 'demo_data' / DEMO_QD
    intact = import_structure(orm.SinglefileData(str(path)), orm.Dict({'vacuum': 3.5}))
    vacancy = make_vacancy(intact, orm.Dict({'kind': 'ligand', 'site': 0}))
    charge = int(vacancy.base.attributes.get('qd_vacancy')['charge'])
    removed, bonded = removed_atom_neighbours(intact.get_ase(), vacancy.get_ase())
    symbols = vacancy.get_ase().get_chemical_symbols()
    lost = ', '.join(f'{symbols[j]}{j}' for j in bonded)
    print(f'Imported {intact.get_formula()} (StructureData<{intact.pk}>, {DEMO_QD}, a DFT-optimised trap-free QD of '
          f'the nlesc-nano model library) and made its Cl⁻ vacancy {vacancy.get_formula()} (charge {charge:+d}, '
          f'StructureData<{vacancy.pk}>: Cl{removed} removed, it was bonded to {lost}).', flush=True)
    print(f'Running a CP2K {protocol} single point at the PBE level and the trap labels on each '
          f'({code.full_label}) ...', flush=True)
    header = (f"{'QD':<25} {'charge':>6} {'PBE gap/eV':>10} {'hole':>5} {'electron':>8} {'shallow':>7}  "
              f"{'deepest trap':<24} {'time/s':>6}")
    lines, traps, labelings, deepest = [header, '-' * len(header)], [], [], []
    start = time.perf_counter()
    for name, structure, q in (('intact', intact, 0), ('Cl⁻ vacancy', vacancy, charge)):
        begin = time.perf_counter()
        builder = HybridScfWorkChain.get_builder_from_protocol(code, structure, protocol=protocol, charge=q,
                                                              functional='pbe')
        _, scf = run_get_node(builder)
        if not scf.is_finished_ok:
            print(f'HybridScfWorkChain<{scf.pk}> ({name}) failed: exit status {scf.exit_status}: {scf.exit_message}')
            print(f'inspect it with: verdi process report {scf.pk}')
            raise SystemExit(1)
        _, labeling = run_get_node(TrapLabelingWorkChain, structure=scf.outputs.structure,
                                   mo_window=scf.outputs.mo_window, protocol=orm.Str(f'{protocol}-pbe'))
        if not labeling.is_finished_ok:
            print(f'TrapLabelingWorkChain<{labeling.pk}> ({name}) failed: {labeling.exit_message}')
            raise SystemExit(1)
        labelings.append(labeling)
        spin = labeling.outputs.summary['spins'][0]
        records = sorted(labeling.outputs.traps.values(), key=lambda r: -r['depth']) \
            if 'traps' in labeling.outputs else []
        deep = [r for r in records if not r['shallow']]
        deepest.append(deep[0] if deep else None)
        where = (f"{deep[0]['depth']:.2f} eV on {deep[0]['center_element']}{deep[0]['center']} "
                 f"(CN {deep[0]['center_coordination']})") if deep else 'none'
        lines.append(f"{name + ' ' + structure.get_formula():<25} {q:>+6d} {spin['homo_lumo_gap_ev']:>10.2f} "
                     f"{spin['n_hole_traps']:>5} {spin['n_electron_traps']:>8} {spin.get('n_shallow_traps', 0):>7}  "
                     f"{where:<24} {time.perf_counter() - begin:>6.0f}")
        traps += records
    print(f'finished in {time.perf_counter() - start:.0f} s')
    print('\n'.join(lines))
    print('Trap states (query them with `qdtraps traps`):')
    print(format_trap_table(trap_table(traps)))
    print(f'shallow: less than {labelings[0].outputs.summary["parameters"]["shallow_depth"]:g} eV from its band edge.')
    if deepest[0] is None:
        print('The intact QD has shallow states only.')
    if deepest[1] is not None and deepest[1]['center'] in bonded:
        print(f"The vacancy's deepest trap sits on {deepest[1]['center_element']}{deepest[1]['center']}, one of the "
              f'atoms that lost the Cl⁻ ({lost}).')
    print('PBE level: gaps too small and states too delocalised for results; `qdtraps demo --pipeline` and the '
          'pipeline run PBE0.')
    for labeling in labelings:
        write_demo_report(labeling)
    print(f'Inspect with (after `source env.sh`): verdi process report {labelings[0].pk}; '
          f'verdi process report {labelings[1].pk}')
    return [node.pk for node in labelings]


def run_pipeline_demo(protocol: str = 'fast', code_label: str = 'cp2k@localhost') -> int:
    """Run the pipeline demo (relax → PBE0 → labels → Bader on In4PF9) in the project profile; returns the pipeline's
    pk."""
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

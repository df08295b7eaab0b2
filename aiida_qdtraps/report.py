"""Text summaries of finished pipeline runs (what ``qdtraps demo`` prints)."""

from __future__ import annotations

from aiida import orm

from .analysis.traps import shallow_note


def _calcjobs(workflow: orm.WorkflowNode) -> list[orm.CalcJobNode]:
    return sorted((n for n in workflow.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)


def _elapsed(node: orm.ProcessNode) -> float:
    return (node.mtime - node.ctime).total_seconds()


def pipeline_rows(pipeline: orm.WorkflowNode) -> list[tuple[str, str]]:
    """(label, value) rows describing a finished ``QdTrapsPipelineWorkChain``."""
    relax = pipeline.base.links.get_outgoing(link_label_filter='relax').one().node
    hybrid = pipeline.base.links.get_outgoing(link_label_filter='hybrid_scf').one().node
    structure = pipeline.inputs.structure
    params = hybrid.outputs.output_parameters
    rows = [
        ('QD', f'{structure.get_formula(mode="hill")} ({len(structure.sites)} atoms, '
               f'charge {pipeline.inputs.charge.value}, multiplicity {pipeline.inputs.multiplicity.value})'),
        ('pipeline', f'QdTrapsPipelineWorkChain<{pipeline.pk}>  exit status {pipeline.exit_status}'),
    ]
    for label, workflow in (('relax', relax), ('PBE0', hybrid)):
        for calc in _calcjobs(workflow):
            outputs = calc.outputs
            cp2k_time = outputs.output_parameters.get('walltime_s') if 'output_parameters' in outputs else None
            extra = f', CP2K {cp2k_time:.0f} s' if cp2k_time else ''
            rows.append((f'{label} calc',
                         f'CalcJob<{calc.pk}>  exit {calc.exit_status}, {_elapsed(calc):.0f} s wall{extra}'))
    relax_params = relax.outputs.output_parameters
    rows += [
        ('PBE energy (relaxed)', f"{relax_params['energy']:.6f} Ha"),
        ('PBE0 energy', f"{params.get('energy', params.get('energy_ha')):.6f} Ha"),  # CP2K / PySCF key
        ('HOMO (PBE0)', f"{params['homo_ev']:.3f} eV"),
        ('LUMO (PBE0)', f"{params['lumo_ev']:.3f} eV"),
        ('HOMO-LUMO gap (PBE0)', f"{params['gap_ev']:.3f} eV"),
    ]
    labeling = pipeline.base.links.get_outgoing(link_label_filter='labeling').all()
    if labeling:
        summary = labeling[0].node.outputs.summary
        for spin, edges in enumerate(summary['spins']):
            tag = '' if len(summary['spins']) == 1 else f' (spin {spin})'
            rows += [
                (f'VBM / CBM (PBE0){tag}', f"{edges['vbm_ev']:.3f} / {edges['cbm_ev']:.3f} eV "
                                          f"(band gap {edges['band_gap_ev']:.3f} eV)"),
                (f'trap states{tag}', f"{edges['n_hole_traps']} hole, {edges['n_electron_traps']} electron, "
                                      f"{edges['n_quantum_confined']} quantum-confined"
                                      f"{shallow_note(edges, summary['parameters'])}"),
            ]
        rows.append(('atom labels', ', '.join(f'{k} {v}' for k, v in summary['atom_label_counts'].items() if v)))
    flow = pipeline.base.links.get_outgoing(link_label_filter='charge_flow').all()
    if flow and flow[0].node.is_finished_ok:
        summary = flow[0].node.outputs.summary
        rows.append(('Bader electrons', f"{summary['electrons_in_basins']:.3f} in basins + "
                                        f"{summary['vacuum_charge']:.3f} vacuum"))
        rows.append(('Bader Δq per element', ', '.join(f"{el} {v['dq_mean']:+.3f} e"
                                                        for el, v in summary['per_element'].items())))
    rows += [
        ('relax time', f'{_elapsed(relax):.0f} s'),
        ('PBE0 time', f'{_elapsed(hybrid):.0f} s'),
        ('total time', f'{_elapsed(pipeline):.0f} s'),
    ]
    return rows


def format_trap_table(rows: list[dict]) -> str:
    """The trap table: one line per trap record (rows of :func:`aiida_qdtraps.query.trap_table`)."""
    if not rows:
        return 'no trap states'
    header = f"{'pk':>6}  {'QD':<12} {'carrier':<8} {'depth/eV':>8} {'E/eV':>8}  {'centre':<7} {'CN':>2}  " \
             f"{'kind':<17} {'PR':>5}  protocol"
    lines = [header, '-' * len(header)]
    for row in rows:
        lines.append(f"{row['pk']:>6}  {row['formula'] or '':<12} {row['carrier']:<8} {row['depth']:>8.3f} "
                     f"{row['energy']:>8.3f}  {row['center_element'] + str(row['center']):<7} "
                     f"{row['center_coordination']:>2}  {row['kind']:<17} {row['participation_ratio']:>5.2f}  "
                     f"{row['protocol'] or ''}")
    return '\n'.join(lines)


def format_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    line = '-' * (width + 3 + max(len(value) for _, value in rows))
    return '\n'.join([line] + [f'{label:<{width}} | {value}' for label, value in rows] + [line])

"""What a QD report shows, read from the provenance graph (the data :func:`~.page.report_page` turns into HTML).

A report starts from a trap labelling, the ``label_traps`` calcfunction, found from any of:

* a ``QdTrapsPipelineWorkChain`` or ``TrapLabelingWorkChain`` (the last labelling it called);
* ``label_traps`` itself, one of its outputs (``atom_labels``, ``states``, a ``TrapRecord``);
* a StructureData: the latest labelling of this structure, else of a structure made from it (boxed, relaxed).

From there it walks to the SCF CalcJob (:func:`~aiida_qdtraps.provenance.scf_calcjob`), the relax CalcJob
(:func:`~aiida_qdtraps.provenance.geometry_origin`), the build recipe (:func:`~aiida_qdtraps.provenance.build_of`),
the stored plots of the labelling work chain, a Bader charge flow of the same structure (``compute_charge_flow`` and
the plots made from it) and MLFF parity plots of work chains run on the structure or its ancestors. Nothing is stored:
figures that were not stored are drawn in memory by the same functions the work chains use.
"""

from __future__ import annotations

import numpy as np
from aiida import orm

from .. import provenance
from ..data import TrapRecord

#: Engines by CalcJob entry point (process type).
ENGINES = {'aiida.calculations:cp2k': 'CP2K', 'aiida.calculations:quantumespresso.pw': 'Quantum ESPRESSO (pw.x)'}
#: Arrows of the longest charge-flow vector are this long (Å); vectors under ARROW_MIN of the longest are not drawn.
ARROW_LENGTH, ARROW_MIN = 1.6, 0.05


class ReportError(ValueError):
    """A node a report cannot be written for, with what is missing."""


def _name(node: orm.Node) -> str:
    return getattr(node, 'process_label', None) or type(node).__name__


def _describe(node: orm.Node) -> str:
    return f'{_name(node)}<{node.pk}>'


def _latest(nodes):
    nodes = list(nodes)
    return max(nodes, key=lambda n: n.ctime) if nodes else None


def _labelings_of(structure: orm.StructureData, descendants: bool) -> list[orm.CalcFunctionNode]:
    qb = orm.QueryBuilder().append(orm.StructureData, filters={'id': structure.pk}, tag='structure')
    relation = {'with_ancestors': 'structure'} if descendants else \
        {'with_incoming': 'structure', 'edge_filters': {'label': 'structure'}}
    qb.append(orm.CalcFunctionNode, project='*', **relation,
              filters={'attributes.process_label': provenance.LABELING_FUNCTION,
                       'attributes.exit_status': 0})
    return qb.all(flat=True)


def find_labeling(node: orm.Node) -> orm.CalcFunctionNode:
    """The ``label_traps`` calcfunction a report of ``node`` shows (see the module docstring).

    :raises ReportError: naming what ``node`` lacks.
    """
    if isinstance(node, TrapRecord):
        node = node.creator
    if isinstance(node, orm.StructureData):
        found = _latest(_labelings_of(node, descendants=False)) or _latest(_labelings_of(node, descendants=True))
        if found is None:
            raise ReportError(f'StructureData<{node.pk}> ({node.get_formula(mode="hill")}) has no trap labelling: no '
                              f'finished label_traps used it or a structure made from it; run the pipeline or '
                              f'TrapLabelingWorkChain on it first')
        return found
    try:
        labeling = provenance.labeling(node)
    except ValueError as exc:
        if isinstance(node, orm.ProcessNode):
            state = node.process_state.value if node.process_state else 'unknown'
            status = f', exit status {node.exit_status}' if node.exit_status else ''
            raise ReportError(f'{_describe(node)} ({state}{status}) has no results to report: it is not and did not '
                              f'call a finished trap labelling (label_traps)') from exc
        raise ReportError(f'{_describe(node)} has no results to report: give a pipeline run, a '
                          f'TrapLabelingWorkChain, label_traps, one of its outputs or a labelled structure') from exc
    if not labeling.is_finished_ok:
        raise ReportError(f'{_describe(labeling)} did not finish ok (exit status {labeling.exit_status}: '
                          f'{labeling.exit_message}): it has no trap labels')
    return labeling


def _callers(node: orm.ProcessNode) -> list[orm.ProcessNode]:
    chain, caller = [], node.caller
    while caller is not None:
        chain.append(caller)
        caller = caller.caller
    return chain


def _outgoing(node: orm.Node, label: str):
    found = node.base.links.get_outgoing(link_label_filter=label).all_nodes()
    return found[0] if found else None


def _row(step: str, node: orm.Node | None) -> dict | None:
    if node is None:
        return None
    return {'step': step, 'node': _name(node), 'pk': node.pk, 'uuid': node.uuid}


def _charge_multiplicity(pipeline, scf) -> tuple[int | None, int | None, str]:
    if pipeline is not None:
        return pipeline.inputs.charge.value, pipeline.inputs.multiplicity.value, 'pipeline inputs'
    if scf is not None and 'parameters' in scf.inputs and scf.process_type == 'aiida.calculations:quantumespresso.pw':
        return int(scf.inputs.parameters.get_dict().get('SYSTEM', {}).get('tot_charge', 0)), None, 'SCF input'
    if scf is not None and 'parameters' in scf.inputs:
        dft = scf.inputs.parameters.get_dict().get('FORCE_EVAL', {}).get('DFT', {})
        return int(dft.get('CHARGE', 0)), int(dft.get('MULTIPLICITY', 1)), 'SCF input'
    return None, None, 'not recorded'


def _charge_flow(structure: orm.StructureData):
    """The latest finished ``compute_charge_flow`` of ``structure`` (None without one)."""
    qb = orm.QueryBuilder().append(orm.StructureData, filters={'id': structure.pk}, tag='structure')
    qb.append(orm.CalcFunctionNode, with_incoming='structure', edge_filters={'label': 'structure'}, project='*',
              filters={'attributes.process_label': 'compute_charge_flow', 'attributes.exit_status': 0})
    return _latest(qb.all(flat=True))


def _made_from(node: orm.Node, function: str, output: str):
    """The ``output`` of the latest finished calcfunction ``function`` that took ``node`` as an input."""
    qb = orm.QueryBuilder().append(orm.Node, filters={'id': node.pk}, tag='input')
    qb.append(orm.CalcFunctionNode, with_incoming='input', tag='function',
              filters={'attributes.process_label': function, 'attributes.exit_status': 0})
    qb.append(orm.Node, with_incoming='function', edge_filters={'label': output}, project='*')
    return _latest(qb.all(flat=True))


def _parity_plots(structure: orm.StructureData) -> list[orm.SinglefileData]:
    """``parity_plot`` outputs of work chains (MLFF training) that took the structure or one of its ancestors."""
    ids = [s.pk for s in provenance.ancestor_structures(structure)]
    qb = orm.QueryBuilder().append(orm.StructureData, filters={'id': {'in': ids}}, tag='structure')
    qb.append(orm.WorkflowNode, with_incoming='structure', tag='workflow')
    qb.append(orm.SinglefileData, with_incoming='workflow', edge_filters={'label': 'parity_plot'}, project='*')
    return sorted({n.uuid: n for n in qb.all(flat=True)}.values(), key=lambda n: n.ctime)


def _png(node: orm.SinglefileData) -> bytes:
    with node.open(mode='rb') as handle:
        return handle.read()


def _trap_rows(labeling: orm.CalcFunctionNode) -> list[dict]:
    traps = labeling.base.links.get_outgoing(node_class=TrapRecord).all()
    traps = sorted(traps, key=lambda link: int(link.link_label.rsplit('_', 1)[-1]))
    keys = ('carrier', 'depth', 'energy', 'center_element', 'center', 'center_coordination', 'kind',
            'participation_ratio', 'spin')
    return [{key: link.node.get(key) for key in keys} for link in traps]


def _highlights(traps: list[dict]) -> list[dict]:
    by_atom: dict[int, dict] = {}
    for trap in traps:
        entry = by_atom.setdefault(trap['center'], {
            'index': int(trap['center']), 'carrier': trap['carrier'], 'names': [],
            'label': f"{trap['center_element']}{trap['center']} ({trap['center_coordination']}c)"})
        entry['names'].append(f"{trap['carrier']} {trap['depth']:.2f} eV")
    return [{'index': e['index'], 'carrier': e['carrier'], 'label': f"{e['label']}: {', '.join(e['names'])}"}
            for e in sorted(by_atom.values(), key=lambda e: e['index'])]


def _arrows(positions: np.ndarray, vectors: np.ndarray) -> tuple[list[dict], float]:
    magnitudes = np.linalg.norm(vectors, axis=1)
    largest = float(magnitudes.max(initial=0.0))
    if largest <= 0:
        return [], 0.0
    scale = ARROW_LENGTH / largest
    return [{'start': [round(float(x), 4) for x in positions[i]],
             'end': [round(float(x), 4) for x in positions[i] + vectors[i] * scale]}
            for i in np.flatnonzero(magnitudes >= ARROW_MIN * largest)], largest


def _recipe_text(recipe: dict) -> str:
    return ', '.join(f'{key} {value}' for key, value in recipe.items())


def collect(node: orm.Node) -> dict:
    """The data of a report on ``node`` (the input of :func:`~.page.report_page`).

    :raises ReportError: for a node without a finished trap labelling.
    """
    from ..workchains.traps import plot_trap_labels

    labeling = find_labeling(node)
    outputs = labeling.outputs
    structure, mo_window = labeling.inputs.structure, labeling.inputs.mo_window
    missing = [name for name in ('states', 'atom_labels', 'summary') if name not in outputs]
    if missing:
        raise ReportError(f'{_describe(labeling)} has no {", ".join(missing)} output(s)')
    summary = outputs.summary.get_dict()
    callers = _callers(labeling)
    labeling_chain = next((c for c in callers if c.process_label == 'TrapLabelingWorkChain'), None)
    pipeline = next((c for c in callers if c.process_label == 'QdTrapsPipelineWorkChain'), None)
    scf = provenance.scf_calcjob(mo_window)
    origin = provenance.geometry_origin(structure)
    relax = origin if isinstance(origin, orm.CalcJobNode) else None
    build = provenance.build_of(structure)
    formula = structure.get_formula(mode='hill')

    charge, multiplicity, source = _charge_multiplicity(pipeline, scf)
    protocol = summary.get('protocol') or (pipeline.inputs.protocol.value
                                           if pipeline is not None and 'protocol' in pipeline.inputs else None)
    engines = [f'{ENGINES.get(calc.process_type, _name(calc))} ({step})'
               for step, calc in (('relax', relax), ('SCF', scf)) if calc is not None]
    spins = summary['spins']
    facts = [('formula', f'{formula} ({len(structure.sites)} atoms)'),
             ('charge', 'not recorded' if charge is None else f'{charge:+d} e ({source})'),
             ('multiplicity', 'not recorded' if multiplicity is None else str(multiplicity)),
             ('protocol', protocol or 'not recorded'),
             ('engine', ', '.join(engines) or 'not recorded (MO window not cut from a CalcJob)'),
             ('recipe', _recipe_text(build.recipe.get_dict()) if build is not None else 'not built from a recipe')]
    for s, edges in enumerate(spins):
        tag = '' if len(spins) == 1 else f' (spin {s})'
        facts += [(f'VBM / CBM{tag}', f"{edges['vbm_ev']:.3f} / {edges['cbm_ev']:.3f} eV"),
                  (f'band gap{tag}', f"{edges['band_gap_ev']:.3f} eV (HOMO-LUMO {edges['homo_lumo_gap_ev']:.3f} eV)"),
                  (f'trap states{tag}', f"{edges['n_hole_traps']} hole, {edges['n_electron_traps']} electron, "
                                       f"{edges['n_quantum_confined']} quantum-confined")]
    facts.append(('atom labels', ', '.join(f'{k} {v}' for k, v in summary.get('atom_label_counts', {}).items() if v)))

    flow_function = _charge_flow(structure)
    notes = []
    provenance_rows = [
        _row('build', build.calcfunction if build else None),
        _row('built structure', build.structure if build else None),
        _row('relax', relax), _row('SCF (MO window)', scf), _row('labelled structure', structure),
        _row('trap labelling', labeling), _row('trap labelling work chain', labeling_chain),
        _row('charge flow (Bader)', flow_function), _row('pipeline', pipeline)]
    provenance_rows = [row for row in provenance_rows if row is not None]

    traps = _trap_rows(labeling)
    atoms = structure.get_ase()
    report = {'title': f'{formula}: trap states', 'formula': formula, 'facts': facts,
              'provenance': provenance_rows,
              'structure': {'symbols': atoms.get_chemical_symbols(), 'positions': atoms.positions.round(5).tolist()},
              'highlights': _highlights(traps), 'arrows': [], 'figures': [], 'traps': traps, 'bader': None,
              'notes': notes}

    stored = {name: _outgoing(labeling_chain, name) if labeling_chain is not None else None
              for name in ('participation_plot', 'pdos_plot')}
    if not all(stored.values()):
        drawn = plot_trap_labels.__wrapped__(outputs.states, outputs.atom_labels, outputs.summary)
    for name, title in (('participation_plot', 'Participation ratio vs energy'),
                        ('pdos_plot', 'PDOS by element and coordination')):
        node_ = stored[name]
        if node_ is not None:
            report['figures'].append({'title': title, 'png': _png(node_),
                                      'caption': f'Stored plot SinglefileData {node_.uuid} of the labelling.'})
        else:
            report['figures'].append({'title': title, 'png': _png(drawn[name]),
                                      'caption': f'Drawn for this report from the labelling outputs (states '
                                                 f'{outputs.states.uuid}) by plot_trap_labels.'})

    if flow_function is None:
        notes.append('Bader charges and charge flow: no compute_charge_flow on the labelled structure (the pipeline '
                      'runs it when given a Bader code).')
    else:
        flow = flow_function.outputs.charge_flow
        flow_summary = flow_function.outputs.summary.get_dict()
        report['bader'] = [{'element': element, 'n_atoms': values['n_atoms'], 'dq_mean': values['dq_mean']}
                           for element, values in flow_summary['per_element'].items()]
        report['arrows'], largest = _arrows(atoms.positions, flow.get_array('atom_vectors'))
        report['arrow_caption'] = f'(longest {largest:.3f} e = {ARROW_LENGTH} Å)'
        flow_map = _made_from(flow, 'plot_charge_flow_map', 'charge_flow_map')
        domain_plot = _made_from(flow, 'compute_domain_pdos', 'domain_pdos_plot')
        for title, node_ in (('Charge-flow map', flow_map), ('Domain PDOS', domain_plot)):
            if node_ is not None:
                report['figures'].append({'title': title, 'png': _png(node_),
                                          'caption': f'Stored plot SinglefileData {node_.uuid}.'})
            else:
                notes.append(f'{title}: not computed for this charge flow.')
    parity = _parity_plots(structure)
    for node_ in parity:
        report['figures'].append({'title': 'MLFF parity (held-out frames)', 'png': _png(node_),
                                  'caption': f'Stored plot SinglefileData {node_.uuid} of {_name(node_.creator)} '
                                             f'{node_.creator.uuid}.'})
    if not parity:
        notes.append('MLFF parity: no MLFF was trained on this structure or its ancestors.')
    return report


def index_row(report: dict, labeling: orm.CalcFunctionNode, href: str) -> dict:
    """The row of a report in a group index."""
    summary = labeling.outputs.summary
    edges = summary['spins'][0]
    return {'formula': report['formula'], 'material': summary.get('material'), 'protocol': summary.get('protocol'),
            'n_atoms': len(report['structure']['symbols']), 'band_gap': edges['band_gap_ev'],
            'n_hole_traps': sum(t['carrier'] == 'hole' for t in report['traps']),
            'n_electron_traps': sum(t['carrier'] == 'electron' for t in report['traps']),
            'href': href, 'pk': labeling.pk,
            'recipe': _recipe_text({k: v for k, v in (summary.get('recipe') or {}).items() if k != 'material'})}

"""Trap labeling in the provenance graph: the ``label_traps`` and ``plot_trap_labels`` calcfunctions and
``TrapLabelingWorkChain`` (``qdtraps.traps``).

``label_traps`` is a thin bridge to :func:`aiida_qdtraps.analysis.traps.label_traps`: it unpacks the hybrid SCF's
``mo_window`` and the structure, labels every spin channel and returns

* ``states`` (ArrayData): per state of the (localization-refined) spectrum, shape (nspin, ns[, ...]);
* ``atom_labels`` (ArrayData): per atom — label, coordination, role, assigned state and spin (the classifier's rows);
* ``summary`` (Dict): band edges, gap, counts, parameters, context;
* ``traps.trap_<k>`` (:class:`~aiida_qdtraps.data.TrapRecord`): one small queryable node per trap state.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from aiida import orm
from aiida.engine import ExitCode, WorkChain, calcfunction

from .. import provenance
from ..analysis import plots
from ..analysis import traps as kernel
from ..builder.roles import ROLES
from ..data import TrapRecord

STATE_KINDS = ('valence', 'conduction', 'hole-trap', 'electron-trap', 'quantum-confined')
#: Column names of the ``class_populations`` array of ``states``.
POPULATION_CLASSES = ('cation-uc', 'cation-fc', 'anion-uc', 'anion-fc', 'ligand')
#: Exit status of ``label_traps`` when the window holds no band-like state on one side of the gap.
NO_EDGE_STATUS = {'valence': 303, 'conduction': 304}


def _parameters(node: orm.Dict | None) -> kernel.LabelingParameters:
    values = node.get_dict() if node is not None else {}
    unknown = set(values) - set(kernel.LabelingParameters.__dataclass_fields__)
    if unknown:
        raise ValueError(f'unknown trap-labeling parameters {sorted(unknown)}; '
                         f'allowed: {sorted(kernel.LabelingParameters.__dataclass_fields__)}')
    return kernel.LabelingParameters(**values)


def _class_populations(result: kernel.TrapLabels, params) -> np.ndarray:
    roles, uc = result.roles, result.coordination < params.full_coordination
    masks = [(roles == 'cation') & uc, (roles == 'cation') & ~uc, (roles == 'anion') & uc, (roles == 'anion') & ~uc,
             roles == 'ligand']
    return np.stack([result.states.populations[:, m].sum(axis=1) for m in masks], axis=1)


@calcfunction
def label_traps(structure: orm.StructureData, mo_window: orm.ArrayData, parameters: orm.Dict | None = None,
                context: orm.Dict | None = None) -> dict:
    """Band edges, trap states and per-atom labels of a QD from its hybrid-SCF MO window.

    :param structure: the structure the SCF ran on (atom order of the MO window's ``ao_atom``). Its roles are the
        builder's ``qd_roles`` tags, found through the provenance (:func:`~aiida_qdtraps.provenance.roles`: boxing,
        a relax) when the structure itself carries none, else inferred from the elements.
    :param mo_window: the hybrid SCF's ``mo_window`` output.
    :param parameters: overrides of :class:`aiida_qdtraps.analysis.traps.LabelingParameters`.
    :param context: QD context copied onto every trap record for queries (``material``, ``recipe``, ``protocol``).
    :returns: the outputs above, or exit code 300 (inputs refused by the kernel: window without HOMO/LUMO, overlap
        not positive definite, sizes that disagree), 301 (MO window of another structure), 302 (bad parameters),
        303 / 304 (no band-like valence / conduction state in the window; the message says which criterion failed).
    """
    atoms = structure.get_ase()
    symbols = atoms.get_chemical_symbols()
    site_roles = provenance.roles(structure)  # the builder's tags, of this structure or of the one a relax started from
    energies = mo_window.get_array('energies')
    occupations = mo_window.get_array('occupations')
    coefficients = mo_window.get_array('coefficients')
    overlap = mo_window.get_array('overlap')
    ao_atom = mo_window.get_array('ao_atom')
    window_symbols = mo_window.base.attributes.get('symbols', None)
    if window_symbols is not None and list(window_symbols) != symbols:
        return ExitCode(301, f'the MO window belongs to {len(window_symbols)} atoms {window_symbols[:6]}... but the '
                             f'structure has {len(symbols)} atoms {symbols[:6]}...')
    try:
        params = _parameters(parameters)
    except (TypeError, ValueError) as exc:
        return ExitCode(302, f'invalid trap-labeling parameters: {exc}')
    if parameters is None or 'full_coordination' not in parameters.get_dict():  # the lattice's own: 6 in rock salt
        material = context.get('material') if context is not None else None
        params = dataclasses.replace(params, full_coordination=kernel.full_coordination_of(material, symbols))
    nspin = energies.shape[0]
    try:
        results = [kernel.label_traps(symbols, atoms.positions, energies[s], occupations[s], coefficients[s], overlap,
                                      ao_atom, params, site_roles) for s in range(nspin)]
    except kernel.BandEdgeNotFound as exc:
        return ExitCode(NO_EDGE_STATUS[exc.side], str(exc))
    except ValueError as exc:
        return ExitCode(300, f'trap labeling refused its inputs: {exc}')
    ctx = context.get_dict() if context is not None else {}
    ctx.setdefault('formula', structure.get_formula(mode='hill'))

    states = orm.ArrayData()
    for name, getter in (('energies', lambda r: r.states.energies), ('participation', lambda r: r.states.participation),
                         ('occupied', lambda r: r.states.occupied), ('localized', lambda r: r.states.localized),
                         ('band_like', lambda r: r.band_like), ('populations', lambda r: r.states.populations),
                         ('class_populations', lambda r: _class_populations(r, params)),
                         ('kind', lambda r: np.array([STATE_KINDS.index(k) for k in r.state_kind]))):
        states.set_array(name, np.array([getter(r) for r in results]))
    states.base.attributes.set_many({'kind_names': list(STATE_KINDS), 'class_names': list(POPULATION_CLASSES),
                                     'units': 'eV', 'participation_ratio': '1 / (N sum_A p_A^2) over non-ligand atoms'})

    labels, state, spin = kernel.merge_spin_labels([r.atom_label for r in results], [r.atom_state for r in results])
    atom_labels = orm.ArrayData()
    atom_labels.set_array('label', np.array([kernel.ATOM_LABELS.index(x) for x in labels]))
    atom_labels.set_array('coordination', results[0].coordination)
    atom_labels.set_array('role', np.array([ROLES.index(x) for x in results[0].roles]))
    atom_labels.set_array('state', state)
    atom_labels.set_array('spin', spin)
    atom_labels.set_array('bonds', results[0].bonds)
    atom_labels.base.attributes.set_many({
        'label_names': list(kernel.ATOM_LABELS), 'role_names': list(ROLES), 'symbols': symbols,
        'counts': {name: int(np.sum(labels == name)) for name in kernel.ATOM_LABELS}})

    outputs: dict = {'states': states, 'atom_labels': atom_labels}
    records: dict[str, TrapRecord] = {}
    counts: dict[str, int] = {}
    for s, result in enumerate(results):
        for trap in result.traps:
            key = f"{trap['carrier']}-{trap['kind']}"
            counts[key] = counts.get(key, 0) + 1
            record = {k: v for k, v in trap.items() if k != 'mo_indices'}
            record.update(ctx, spin=s, mo_indices=trap['mo_indices'])
            records[f'trap_{len(records)}'] = TrapRecord(record)
    if records:
        outputs['traps'] = records
    outputs['summary'] = orm.Dict({
        **ctx,
        'spins': [{'vbm_ev': r.vbm, 'cbm_ev': r.cbm, 'homo_ev': r.homo, 'lumo_ev': r.lumo,
                   'band_gap_ev': r.cbm - r.vbm, 'homo_lumo_gap_ev': r.lumo - r.homo,
                   'n_hole_traps': sum(t['carrier'] == 'hole' for t in r.traps),
                   'n_electron_traps': sum(t['carrier'] == 'electron' for t in r.traps),
                   'n_shallow_traps': sum(t['shallow'] for t in r.traps),
                   'n_quantum_confined': int(np.sum(r.state_kind == 'quantum-confined')),
                   'n_localized_clusters': r.n_localized_clusters} for r in results],
        'trap_counts': counts, 'atom_label_counts': atom_labels.base.attributes.get('counts'),
        'parameters': params.__dict__,
    })
    return outputs


@calcfunction
def plot_trap_labels(states: orm.ArrayData, atom_labels: orm.ArrayData, summary: orm.Dict) -> dict:
    """PNG figures of a labelling: participation ratio vs energy (band edges, labelled traps) and the PDOS of the
    MO window split by element and coordination class (spin channel 0)."""
    energies = states.get_array('energies')[0]
    kinds = np.array(states.base.attributes.get('kind_names'))[states.get_array('kind')[0]]
    edges = summary['spins'][0]
    symbols = np.array(atom_labels.base.attributes.get('symbols'))
    trap_list = []
    coordination = atom_labels.get_array('coordination')
    populations = states.get_array('populations')[0]
    shares_core = atom_labels.get_array('role') != atom_labels.base.attributes.get('role_names').index('ligand')
    core_index = np.flatnonzero(shares_core)
    for s in np.flatnonzero(np.isin(kinds, ('hole-trap', 'electron-trap'))):
        centre = int(core_index[np.argmax(populations[s, core_index])])
        trap_list.append({'center': centre, 'center_element': symbols[centre],
                          'center_coordination': int(coordination[centre]), 'energy': float(energies[s]),
                          'participation_ratio': float(states.get_array('participation')[0][s])})
    title = f"{summary.get('formula', '')}  {summary.get('protocol', '') or ''}".strip()
    pr_png = plots.participation_plot(energies, states.get_array('participation')[0], kinds, edges['vbm_ev'],
                                      edges['cbm_ev'], trap_list, title=title)
    full = int(summary['parameters']['full_coordination'])
    groups = {}
    for element in dict.fromkeys(symbols):
        mask = symbols == element
        if not shares_core[mask].any():
            groups[element] = mask
            continue
        for name, sub in ((f'{element} (<{full}c)', coordination < full),
                          (f'{element} (≥{full}c)', coordination >= full)):
            if (mask & sub).any():
                groups[name] = mask & sub
    pdos_png = plots.pdos_plot(energies, populations, groups, edges['vbm_ev'], edges['cbm_ev'], title=title)
    import io

    return {'participation_plot': orm.SinglefileData(io.BytesIO(pr_png), filename='participation_ratio.png'),
            'pdos_plot': orm.SinglefileData(io.BytesIO(pdos_png), filename='pdos.png')}


class TrapLabelingWorkChain(WorkChain):
    """Label the trap states of a QD from a finished hybrid SCF: ``label_traps`` then ``plot_trap_labels``.

    The QD context on every trap record (material, recipe, protocol) is taken from the provenance of ``structure``
    (the build recipe it descends from) and from the optional ``protocol`` input.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The structure the hybrid SCF ran on.')
        spec.input('mo_window', valid_type=orm.ArrayData, help='The hybrid SCF `mo_window` output.')
        spec.input('parameters', valid_type=orm.Dict, required=False,
                   help='Overrides of the labeling thresholds (aiida_qdtraps.analysis.traps.LabelingParameters).')
        spec.input('protocol', valid_type=orm.Str, required=False,
                   help='Name of the protocol of the SCF, recorded on the trap records for queries.')
        spec.input('plots', valid_type=orm.Bool, default=lambda: orm.Bool(True), help='Also make the PNG figures.')
        spec.outline(cls.label, cls.plot, cls.results)
        spec.output('states', valid_type=orm.ArrayData)
        spec.output('atom_labels', valid_type=orm.ArrayData)
        spec.output('summary', valid_type=orm.Dict)
        spec.output_namespace('traps', valid_type=TrapRecord, dynamic=True, help='One record per trap state.')
        spec.output('participation_plot', valid_type=orm.SinglefileData, required=False)
        spec.output('pdos_plot', valid_type=orm.SinglefileData, required=False)
        spec.exit_code(300, 'ERROR_LABELING_FAILED', message='Trap labeling failed: {message}')
        spec.exit_code(301, 'ERROR_NO_VALENCE_EDGE', message='Trap labeling failed: {message}')
        spec.exit_code(302, 'ERROR_NO_CONDUCTION_EDGE', message='Trap labeling failed: {message}')

    def label(self):
        build = provenance.build_of(self.inputs.structure)
        recipe = build.recipe if build is not None else None
        context = {'material': None, 'recipe': None, 'recipe_uuid': None,
                   'protocol': self.inputs.protocol.value if 'protocol' in self.inputs else None}
        if recipe is not None:
            context.update(material=recipe.get('material'), recipe=recipe.get_dict(), recipe_uuid=recipe.uuid)
        inputs = {'structure': self.inputs.structure, 'mo_window': self.inputs.mo_window,
                  'context': orm.Dict(context), 'metadata': {'call_link_label': 'label_traps'}}
        if 'parameters' in self.inputs:
            inputs['parameters'] = self.inputs.parameters
        self.ctx.labels, node = label_traps.run_get_node(**inputs)
        if not node.is_finished_ok:
            self.report(f'label_traps<{node.pk}> failed: {node.exit_message}')
            exit_code = {NO_EDGE_STATUS['valence']: self.exit_codes.ERROR_NO_VALENCE_EDGE,
                         NO_EDGE_STATUS['conduction']: self.exit_codes.ERROR_NO_CONDUCTION_EDGE}.get(
                node.exit_status, self.exit_codes.ERROR_LABELING_FAILED)
            return exit_code.format(message=node.exit_message)
        summary = self.ctx.labels['summary']
        for s, spin in enumerate(summary['spins']):
            self.report(f"spin {s}: VBM {spin['vbm_ev']:.3f} eV, CBM {spin['cbm_ev']:.3f} eV, "
                        f"{spin['n_hole_traps']} hole traps, {spin['n_electron_traps']} electron traps"
                        f"{kernel.shallow_note(spin, summary['parameters'])}")
        return None

    def plot(self):
        if self.inputs.plots.value:
            labels = self.ctx.labels
            self.ctx.plots = plot_trap_labels(labels['states'], labels['atom_labels'], labels['summary'],
                                              metadata={'call_link_label': 'plot_trap_labels'})

    def results(self):
        self.out_many(self.ctx.labels)
        self.out_many(self.ctx.get('plots', {}))

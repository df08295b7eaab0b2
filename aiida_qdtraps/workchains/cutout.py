"""``CutoutInterpolationWorkChain`` (``qdtraps.cutout``): PLi4+ cutouts of structural hole-trap centres, interpolated
from an ideal tetrahedron and computed with PySCF frame by frame (Alexander et al.; docs/cutouts.md).

Thin wrappers of :mod:`aiida_qdtraps.analysis.cutout`: ``make_cutout_path`` (cutout, reference, frames) and
``analyse_cutout_path`` (levels, splitting, orbital-ligand overlaps, orientation cosine, figure) are calcfunctions, the
single points are :class:`~aiida_qdtraps.calculations.pyscf.PyscfCalculation` jobs.
"""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction
from ase import Atoms

from .. import provenance
from ..analysis import cutout as kernel
from ..calculations.pyscf import PyscfCalculation

DEFAULT_FRAMES = 20


def _atoms(structure: orm.StructureData) -> Atoms:
    atoms = structure.get_ase()
    atoms.pbc = False
    return atoms


def _structure(atoms: Atoms) -> orm.StructureData:
    node = orm.StructureData(ase=Atoms(atoms.get_chemical_symbols(), positions=atoms.positions))
    node.pbc = (False, False, False)
    return node


@calcfunction
def make_cutout_path(structure: orm.StructureData, centre: orm.Int, frames: orm.Int, distance: orm.Float,
                     replacement: orm.Str) -> dict:
    """Cutout of atom ``centre`` (neighbours → ``replacement`` at ``distance`` Å, angles kept), the Kabsch-aligned
    ideal tetrahedron and the geodesic path of ``frames`` frames between them (``frame_000`` = reference)."""
    piece = kernel.make_cutout(_atoms(structure), centre.value, replacement.value, distance.value)
    reference = kernel.aligned_reference(piece)
    path = kernel.interpolate(reference, piece, frames.value)
    outputs = {'cutout': _structure(piece), 'reference': _structure(reference),
               'neighbours': orm.List([int(n) for n in piece.info['neighbours']])}
    outputs.update({f'frame_{k:03d}': _structure(frame) for k, frame in enumerate(path)})
    return outputs


@calcfunction
def analyse_cutout_path(settings: orm.Dict, **nodes) -> dict:
    """Levels, splitting, orbital-ligand overlap and orientation cosine along a path.

    :param settings: ``basis``, ``centre`` (QD atom), ``neighbours`` (QD atoms, cutout order), optional ``trap``
        (``spin``, ``mo_indices`` of the QD window) and ``source_uuid`` (the labelling's ``atom_labels``, recorded
        with ``centre`` as attributes of ``path`` so that a classifier dataset row finds its cutout).
    :param nodes: ``frame_<k>`` StructureData and ``window_<k>`` MO windows of the frames; optional ``qd_structure``
        and ``qd_window`` for the orientation cosine.
    """
    config = settings.get_dict()
    keys = sorted(k[6:] for k in nodes if k.startswith('frame_'))
    levels, overlaps, orientations = [], [], []
    for key in keys:
        frame, window = _atoms(nodes[f'frame_{key}']), nodes[f'window_{key}']
        energies, occupations = window.get_array('energies')[0], window.get_array('occupations')[0]
        occupied = np.flatnonzero(occupations > 1e-3)
        top = occupied[np.argsort(energies[occupied])[::-1][:3]]
        levels.append(energies[top])
        coefficients = window.get_array('coefficients')[0]
        overlaps.append(kernel.orbital_sphere_overlaps(frame.get_chemical_symbols(), frame.positions, config['basis'],
                                                       coefficients[:, top], [1, 2, 3, 4]))
        axes = kernel.internal_frame(frame.positions[0], frame.positions[1:])
        orientations.append(kernel.p_orientation(coefficients[:, top[0]], window.get_array('ao_atom'),
                                                 window.base.attributes.get('ao_labels'), 0,
                                                 window.get_array('overlap'), frame=axes))
    levels = np.array(levels)
    result = orm.ArrayData()
    result.set_array('levels', levels)
    result.set_array('splitting', levels[:, 0] - levels[:, 1:3].mean(axis=1))
    result.set_array('ligand_overlap', np.array(overlaps))
    result.set_array('homo_orientation', np.array(orientations))
    attributes = {'units': 'eV', 'columns': ['HOMO', 'HOMO-1', 'HOMO-2'],
                  'ligand_overlap': 'fraction of the MO density inside the covalent sphere of each replacement atom, '
                                    '(frame, MO, ligand)',
                  'homo_orientation': "HOMO p axis on the centre in the centre's internal frame",
                  'rise_ev': float(levels[-1, 0] - levels[0, 0]), 'final_splitting_ev':
                      float(levels[-1, 0] - levels[-1, 1:3].mean()),
                  'centre': int(config['centre']), 'source_uuid': config.get('source_uuid')}
    if 'qd_window' in nodes and config.get('trap'):
        qd, window, trap = _atoms(nodes['qd_structure']), nodes['qd_window'], config['trap']
        centre, neighbours = config['centre'], config['neighbours']
        spin = int(trap.get('spin', 0))
        coefficients = window.get_array('coefficients')[spin][:, int(trap['mo_indices'][0])]
        axes = kernel.internal_frame(qd.positions[centre], qd.positions[neighbours])
        qd_axis = kernel.p_orientation(coefficients, window.get_array('ao_atom'),
                                       window.base.attributes.get('ao_labels'), centre, window.get_array('overlap'),
                                       frame=axes)
        cosines = np.array([kernel.orientation_cosine(axis, qd_axis) for axis in orientations])
        result.set_array('orientation_cosine', cosines)
        result.set_array('qd_orientation', qd_axis)
        defined, note = kernel.orientation_defined(levels[-1], len(trap['mo_indices']))
        attributes.update(final_orientation_cosine=float(cosines[-1]), orientation_defined=defined,
                          orientation_note=note)
    result.base.attributes.set_many(attributes)
    title = f"{config.get('label', '')} {config['basis']}".strip()
    png = kernel.path_levels_plot(levels, title=title)
    return {'path': result, 'plot': orm.SinglefileData(io.BytesIO(png), filename='cutout_levels.png')}


def validate_inputs(inputs, _):
    frames = inputs.get('frames')
    if frames is not None and frames.value < 2:
        return f'frames must be >= 2 (both end points), got {frames.value}'
    return None


class CutoutInterpolationWorkChain(WorkChain):
    """Interpolate the cutout of structural hole-trap centres of a labelled QD and compute the P 3p levels."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The QD the labelling ran on.')
        spec.input_namespace('traps', valid_type=orm.Dict, dynamic=True, required=False,
                             help='The `traps` records of label_traps (TrapRecord).')
        spec.input('mo_window', valid_type=orm.ArrayData, required=False,
                   help="The QD's MO window (for the orientation cosine of the trap orbital).")
        spec.input('atom', valid_type=orm.Int, required=False,
                   help='Centre atom index (default: every P-4c structural hole-trap centre of `traps`).')
        spec.input('frames', valid_type=orm.Int, default=lambda: orm.Int(DEFAULT_FRAMES))
        spec.input('distance', valid_type=orm.Float, default=lambda: orm.Float(kernel.PLI4_DISTANCE),
                   help='Centre-replacement distance (Å); default the PBE0/def2-SVP P-Li length of ideal PLi4+.')
        spec.input('replacement', valid_type=orm.Str, default=lambda: orm.Str('Li'))
        spec.expose_inputs(PyscfCalculation, namespace='pyscf', exclude=('structure',))
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.make_paths, cls.run_frames, cls.analyse)
        spec.output_namespace('centres', dynamic=True, help='Per centre `atom_<i>`: path, plot, cutout, reference.')
        spec.exit_code(300, 'ERROR_NO_TRAP', message='The labelling has no P-4c structural hole trap to cut out.')
        spec.exit_code(301, 'ERROR_NO_TRAP_ON_ATOM', message='No hole trap is centred on atom {atom}.')
        spec.exit_code(302, 'ERROR_NOT_FOUR_COORDINATE', message='{message}')
        spec.exit_code(310, 'ERROR_FRAME_FAILED', message='PySCF failed on frame {frame} of centre {atom}.')

    def setup(self):
        traps = {key: node.get_dict() for key, node in self.inputs.get('traps', {}).items()}
        holes = {int(t['center']): t for t in traps.values() if t.get('carrier') == 'hole'}
        if 'atom' in self.inputs:
            atom = self.inputs.atom.value
            try:
                kernel.centre_neighbours(_atoms(self.inputs.structure), atom)
            except ValueError as exc:
                return self.exit_codes.ERROR_NOT_FOUR_COORDINATE.format(message=str(exc))
            if traps and atom not in holes:
                return self.exit_codes.ERROR_NO_TRAP_ON_ATOM.format(atom=atom)
            self.ctx.centres = [atom]
        else:
            self.ctx.centres = sorted(a for a, t in holes.items() if t.get('kind') == 'structural'
                                      and t.get('center_element') == 'P' and int(t.get('center_coordination', 0)) == 4)
            if not self.ctx.centres:
                return self.exit_codes.ERROR_NO_TRAP
        self.ctx.traps = {a: holes.get(a) for a in self.ctx.centres}
        self.ctx.source_uuid = None
        for node in self.inputs.get('traps', {}).values():
            try:
                self.ctx.source_uuid = provenance.labeling(node).outputs.atom_labels.uuid
                break
            except ValueError:  # a hand-made record: no labelling to point back to
                continue
        self.report(f'cutout interpolation of centre(s) {self.ctx.centres}, {self.inputs.frames.value} frames')
        return None

    def make_paths(self):
        self.ctx.paths = {}
        for atom in self.ctx.centres:
            self.ctx.paths[atom] = make_cutout_path(self.inputs.structure, orm.Int(atom), self.inputs.frames,
                                                    self.inputs.distance, self.inputs.replacement,
                                                    metadata={'call_link_label': f'cutout_atom_{atom}'})

    def run_frames(self):
        inputs = self.exposed_inputs(PyscfCalculation, namespace='pyscf')
        parameters = inputs['parameters'].get_dict() if 'parameters' in inputs else {}
        parameters.setdefault('charge', 1)
        parameters.setdefault('mo_window', {'occupied': 6, 'virtual': 2})
        inputs['parameters'] = orm.Dict(parameters)
        self.ctx.basis = parameters.get('basis', 'def2-svp')
        jobs = {}
        for atom, path in self.ctx.paths.items():
            for key in sorted(k for k in path if k.startswith('frame_')):
                jobs[f'atom_{atom}_{key}'] = self.submit(PyscfCalculation, structure=path[key], **inputs)
        return ToContext(**jobs)

    def analyse(self):
        for atom, path in self.ctx.paths.items():
            nodes = {}
            for key in sorted(k for k in path if k.startswith('frame_')):
                job = self.ctx[f'atom_{atom}_{key}']
                if not job.is_finished_ok:
                    return self.exit_codes.ERROR_FRAME_FAILED.format(frame=key, atom=atom)
                nodes[key] = path[key]
                nodes[f'window_{key[6:]}'] = job.outputs.mo_window
            settings = {'basis': self.ctx.basis, 'centre': atom, 'neighbours': path['neighbours'].get_list(),
                        'label': f"{self.inputs.structure.get_formula()} atom {atom}"}
            if self.ctx.source_uuid is not None:
                settings['source_uuid'] = self.ctx.source_uuid
            trap = self.ctx.traps.get(atom)
            if trap is not None and 'mo_window' in self.inputs:
                settings['trap'] = {'spin': int(trap.get('spin', 0)), 'mo_indices': list(trap['mo_indices'])}
                nodes.update(qd_structure=self.inputs.structure, qd_window=self.inputs.mo_window)
            result = analyse_cutout_path(orm.Dict(settings), **nodes,
                                         metadata={'call_link_label': f'analyse_atom_{atom}'})
            attrs = result['path'].base.attributes
            line = (f"atom {atom}: HOMO rise {attrs.get('rise_ev'):.3f} eV, final splitting "
                    f"{attrs.get('final_splitting_ev'):.3f} eV")
            if attrs.get('final_orientation_cosine', None) is not None:
                line += f", orientation cosine {attrs.get('final_orientation_cosine'):.3f}"
                if not attrs.get('orientation_defined'):
                    line += f" (not defined: {attrs.get('orientation_note')})"
            self.report(line)
            for name, node in (('path', result['path']), ('plot', result['plot']), ('cutout', path['cutout']),
                               ('reference', path['reference'])):
                self.out(f'centres.atom_{atom}.{name}', node)
        return None

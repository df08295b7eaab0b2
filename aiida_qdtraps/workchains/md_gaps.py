"""``MdGapsWorkChain``: HOMO, LUMO and gap along an MD trajectory, with their statistics, dephasing and NAC.

Bhati et al. (Cd17Se28 at 300 K) follow the frontier orbitals along an NVE trajectory: the HOMO/LUMO/gap series, its
histogram, the pure-dephasing time of the gap (second-order cumulant) and the HOMO–LUMO non-adiabatic couplings from
MO overlaps of consecutive frames. This work chain runs the protocol-driven ``HybridScfWorkChain`` single point on
every ``every``-th frame of any trajectory in the shared layout (CP2K or MLFF MD), all frames in one box (one grid),
each SCF starting from the previous frame's wavefunction, and feeds the series to the dynamics calcfunctions.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, while_
from ase import Atoms

from ..analysis.md_frames import common_box_length, frame_indices, gap_series_from_frames
from .dynamics import compute_dephasing, compute_gap_statistics, compute_nac, node_to_trajectory
from .hybrid_scf import HybridScfWorkChain

#: keys of the ``frames`` input and their defaults
FRAME_DEFAULTS = {'start': 0, 'every': 1, 'max_frames': None}
#: the dephasing needs at least this many frames (two lags)
MIN_DEPHASING_FRAMES = 3


def frame_settings(frames: dict, n_frames: int) -> tuple[dict, np.ndarray]:
    """``frames`` with defaults filled and the selected indices (ValueError naming a bad key or value)."""
    unknown = sorted(set(frames) - set(FRAME_DEFAULTS))
    if unknown:
        raise ValueError(f'unknown frames key(s) {unknown}; accepted: {sorted(FRAME_DEFAULTS)}')
    settings = {**FRAME_DEFAULTS, **frames}
    return settings, frame_indices(n_frames, settings['start'], settings['every'], settings['max_frames'])


def validate_inputs(inputs, _):
    trajectory = inputs.get('trajectory')
    frames = inputs.get('frames')
    if trajectory is None:
        return None
    try:
        node_to_trajectory(trajectory)
        frame_settings(frames.get_dict() if frames is not None else {}, trajectory.numsteps)
    except ValueError as exc:
        return str(exc)
    if 'box_vacuum' in inputs and not inputs['box_vacuum'].value > 0:
        return f"box_vacuum must be positive, got {inputs['box_vacuum'].value}"
    return None


@calcfunction
def select_md_frames(trajectory: orm.TrajectoryData, frames: orm.Dict, box_vacuum: orm.Float) -> dict:
    """The selected frames as StructureData, all centred in one cubic non-periodic box, and a ``selection`` Dict
    (frame indices, MD steps, times in fs, box edge in Å)."""
    md = node_to_trajectory(trajectory)
    _, indices = frame_settings(frames.get_dict(), md.n_frames)
    positions = md.positions[indices]
    length = common_box_length(positions, box_vacuum.value)
    outputs = {}
    for k, frame in enumerate(positions):
        atoms = Atoms(list(md.symbols), positions=frame, cell=[length] * 3, pbc=False)
        atoms.translate(0.5 * length - 0.5 * (frame.max(0) + frame.min(0)))
        structure = orm.StructureData(ase=atoms)
        structure.pbc = (False, False, False)
        outputs[f'frame_{k:04d}'] = structure
    steps = trajectory.get_stepids()[indices]
    outputs['selection'] = orm.Dict({'indices': indices.tolist(), 'steps': [int(s) for s in steps],
                                     'times_fs': md.times_fs[indices].tolist(), 'box_length': length,
                                     'units': {'times_fs': 'fs', 'box_length': 'angstrom'}})
    return outputs


@calcfunction
def collect_md_gaps(selection: orm.Dict, **scf_outputs) -> dict:
    """HOMO, LUMO and gap series (ArrayData ``homo``, ``lumo``, ``gaps`` in eV, ``times`` in fs, ``steps``; attribute
    ``timestep_fs``) from the ``output_parameters`` of the frames' single points (keyword ``params_<k>``, spin 0), and
    ``mo_frames`` (ArrayData ``coefficients`` (F, n_ao, n_mo) and ``ao_overlap`` (F, n_ao, n_ao) of spin 0, attributes
    ``timestep_fs``, ``homo_column``, ``lumo_column``) from their MO windows (keyword ``window_<k>``)."""
    count = len(selection['indices'])
    params = [scf_outputs[f'params_{k:04d}'] for k in range(count)]
    series = gap_series_from_frames(selection['times_fs'], [p['homo_ev'] for p in params],
                                    [p['lumo_ev'] for p in params])
    gaps = orm.ArrayData()
    gaps.set_array('times', series['times_fs'])
    gaps.set_array('steps', np.asarray(selection['steps'], dtype=int))
    gaps.set_array('homo', series['homo_ev'])
    gaps.set_array('lumo', series['lumo_ev'])
    gaps.set_array('gaps', series['gap_ev'])
    gaps.base.attributes.set_many({'timestep_fs': series['timestep_fs'],
                                   'units': {'homo': 'eV', 'lumo': 'eV', 'gaps': 'eV', 'times': 'fs'}})
    outputs = {'gaps': gaps}
    windows = [scf_outputs.get(f'window_{k:04d}') for k in range(count)]
    if all(window is not None for window in windows):
        occupations = [w.get_array('occupations')[0] for w in windows]
        homo_columns = {int(np.flatnonzero(occ > 0.5).max()) for occ in occupations}
        shapes = {w.get_array('coefficients')[0].shape for w in windows}
        if len(homo_columns) == 1 and len(shapes) == 1:
            mo_frames = orm.ArrayData()
            mo_frames.set_array('coefficients', np.array([w.get_array('coefficients')[0] for w in windows]))
            mo_frames.set_array('ao_overlap', np.array([w.get_array('overlap') for w in windows]))
            homo = homo_columns.pop()
            mo_frames.base.attributes.set_many({'timestep_fs': series['timestep_fs'], 'homo_column': homo,
                                                'lumo_column': homo + 1})
            outputs['mo_frames'] = mo_frames
    return outputs


class MdGapsWorkChain(WorkChain):
    """Frontier orbitals along an MD trajectory: one PBE0 single point per selected frame, then the gap statistics,
    the pure-dephasing function and the HOMO–LUMO non-adiabatic couplings."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('trajectory', valid_type=orm.TrajectoryData,
                   help='An MD trajectory in the shared layout (QdMdWorkChain, MlffMdCalculation).')
        spec.input('frames', valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   help='Which frames: start (index, default 0), every (stride, default 1), max_frames (cap).')
        spec.input('box_vacuum', valid_type=orm.Float, default=lambda: orm.Float(3.5),
                   help='Vacuum (Å) around the largest frame; every frame gets the same cubic box.')
        spec.input('restart_from_previous', valid_type=orm.Bool, default=lambda: orm.Bool(True),
                   help="Start each frame's SCF from the previous frame's wavefunction.")
        # CP2K only: the frames chain their wavefunctions through parent folders
        spec.expose_inputs(HybridScfWorkChain, namespace='scf_frame',
                           exclude=('structure', 'parent_calc_folder', 'box_vacuum', 'engine', 'pyscf'))
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.select_frames,
            while_(cls.has_frame)(cls.run_frame, cls.inspect_frame),
            cls.collect,
            cls.analyse,
        )
        spec.output('selection', valid_type=orm.Dict, help='Frame indices, MD steps, times (fs), box edge (Å).')
        spec.output('gaps', valid_type=orm.ArrayData, help='HOMO, LUMO and gap (eV) per frame, times (fs).')
        spec.output('statistics', valid_type=orm.Dict, help='Mean, standard deviation of the gap (eV).')
        spec.output('histogram', valid_type=orm.ArrayData, help='Histogram of the gap.')
        spec.output('dephasing', valid_type=orm.XyData, required=False, help='Pure-dephasing function D(t).')
        spec.output('dephasing_summary', valid_type=orm.Dict, required=False, help='Gaussian dephasing time (fs).')
        spec.output('nac', valid_type=orm.XyData, required=False, help='HOMO–LUMO non-adiabatic coupling per step.')
        spec.output('nac_summary', valid_type=orm.Dict, required=False, help='Mean coupling (meV) and histogram.')
        spec.exit_code(401, 'ERROR_FRAME_FAILED', message='The single point of frame {frame} failed: {message}')
        spec.exit_code(402, 'ERROR_GAP_SERIES', message='The gap series cannot be built: {message}')

    @classmethod
    def get_builder_from_protocol(cls, code: orm.Code, trajectory: orm.TrajectoryData, protocol: str | None = None,
                                  overrides: dict | None = None, charge: int = 0, multiplicity: int = 1,
                                  frames: dict | None = None, options: dict | None = None,
                                  functional: str = 'pbe0'):
        """Builder whose frames run ``HybridScfWorkChain`` with the hybrid protocol ``protocol`` (``overrides`` go
        to that protocol, as for the hybrid stage); the box vacuum is the protocol's. ``functional='pbe'`` runs the
        frames at the PBE level (``HybridScfWorkChain.get_builder_from_protocol``): tens of times cheaper, with the
        PBE's smaller gaps."""
        first = orm.StructureData(ase=Atoms(list(trajectory.symbols), positions=trajectory.get_positions()[0]))
        hybrid = HybridScfWorkChain.get_builder_from_protocol(code, first, protocol, overrides, charge, multiplicity,
                                                              options, functional=functional)
        builder = cls.get_builder()
        builder.trajectory = trajectory
        builder.frames = orm.Dict(dict(frames or {}))
        if 'box_vacuum' in hybrid:
            builder.box_vacuum = hybrid.box_vacuum
        for key in ('charge', 'multiplicity', 'clean_workdir', 'mo_window'):
            if key in hybrid:
                builder.scf_frame[key] = hybrid[key]
        builder.scf_frame.scf = hybrid.scf
        return builder

    def select_frames(self):
        outputs = select_md_frames(self.inputs.trajectory, self.inputs.frames, self.inputs.box_vacuum)
        self.ctx.selection = outputs.pop('selection')
        self.ctx.frames = [outputs[key] for key in sorted(outputs)]
        self.ctx.done = []
        self.out('selection', self.ctx.selection)
        self.report(f"{len(self.ctx.frames)} frames (MD steps {self.ctx.selection['steps'][0]}…"
                    f"{self.ctx.selection['steps'][-1]}) in one {self.ctx.selection['box_length']:g} Å box")

    def has_frame(self):
        return len(self.ctx.done) < len(self.ctx.frames)

    def run_frame(self):
        k = len(self.ctx.done)
        inputs = AttributeDict(self.exposed_inputs(HybridScfWorkChain, namespace='scf_frame'))
        inputs.structure = self.ctx.frames[k]
        if self.inputs.restart_from_previous.value and self.ctx.done:
            inputs.parent_calc_folder = self.ctx.done[-1].outputs.remote_folder
        inputs.metadata = {'call_link_label': f'frame_{k:04d}'}
        node = self.submit(HybridScfWorkChain, **inputs)
        self.report(f"frame {k} (MD step {self.ctx.selection['steps'][k]}): launched HybridScfWorkChain<{node.pk}>")
        return ToContext(frame=node)

    def inspect_frame(self):
        node = self.ctx.frame
        k = len(self.ctx.done)
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_FRAME_FAILED.format(
                frame=k, message=f'{node.process_label}<{node.pk}> exit status {node.exit_status}: {node.exit_message}')
        self.ctx.done.append(node)
        return None

    def collect(self):
        outputs = {}
        for k, node in enumerate(self.ctx.done):
            outputs[f'params_{k:04d}'] = node.outputs.output_parameters
            if 'mo_window' in node.outputs:
                outputs[f'window_{k:04d}'] = node.outputs.mo_window
        params = [node.outputs.output_parameters for node in self.ctx.done]
        try:  # checked before the calcfunction runs, so a bad series stores nothing
            gap_series_from_frames(self.ctx.selection['times_fs'], [p.get('homo_ev') for p in params],
                                   [p.get('lumo_ev') for p in params])
        except (TypeError, ValueError) as exc:
            return self.exit_codes.ERROR_GAP_SERIES.format(message=str(exc))
        collected = collect_md_gaps(self.ctx.selection, **outputs)
        self.ctx.gaps = collected['gaps']
        self.ctx.mo_frames = collected.get('mo_frames')
        self.out('gaps', self.ctx.gaps)
        gaps = self.ctx.gaps.get_array('gaps')
        self.report(f'gap {gaps.mean():.3f} ± {gaps.std():.3f} eV over {gaps.size} frames '
                    f"({self.ctx.gaps.base.attributes.get('timestep_fs'):g} fs apart)")
        return None

    def analyse(self):
        statistics = compute_gap_statistics(self.ctx.gaps)
        self.out('statistics', statistics['statistics'])
        self.out('histogram', statistics['histogram'])
        n = self.ctx.gaps.get_array('gaps').size
        dt = self.ctx.gaps.base.attributes.get('timestep_fs')
        if n >= MIN_DEPHASING_FRAMES and np.ptp(self.ctx.gaps.get_array('gaps')) > 0:
            # a quarter of the series as lags (compute_dephasing's default), at least two
            options = orm.Dict({'max_time_fs': max(n // 4, 2) * dt})
            dephasing, node = compute_dephasing.run_get_node(self.ctx.gaps, options)
            if node.is_finished_ok:
                self.out('dephasing', dephasing['dephasing'])
                self.out('dephasing_summary', dephasing['summary'])
                summary = dephasing['summary']
                self.report(f"dephasing time {summary['tau_fs']:.1f} fs (resolved: {summary['resolved']})")
            else:
                self.report(f'no dephasing: {node.exit_message}')
        else:
            self.report(f'no dephasing: {n} frames (needs {MIN_DEPHASING_FRAMES}) or a constant gap')
        if self.ctx.mo_frames is not None:
            attributes = self.ctx.mo_frames.base.attributes
            options = orm.Dict({'i': attributes.get('homo_column'), 'j': attributes.get('lumo_column')})
            nac, node = compute_nac.run_get_node(self.ctx.mo_frames, options)
            if node.is_finished_ok:
                self.out('nac', nac['nac'])
                self.out('nac_summary', nac['summary'])
                self.report(f"HOMO–LUMO NAC: mean {nac['summary']['mean_mev']:.3f} meV")
            else:
                self.report(f'no NAC: {node.exit_message}')
        else:
            self.report('no NAC: the frames have no common MO window (different HOMO column or basis)')

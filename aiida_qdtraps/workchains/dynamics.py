"""Trajectory analyses in the provenance graph: the shared ``TrajectoryData`` layout and one calcfunction per analysis.

The layout every MD engine of the project writes (docs/dynamics.md) — a :class:`~aiida.orm.TrajectoryData` with

* ``set_trajectory(symbols, positions (F, N, 3) Å, stepids, cells None or (F, 3, 3), times (F,) fs,
  velocities (F, N, 3) Å/fs optional)``;
* arrays ``potential_energy``, ``kinetic_energy``, ``conserved_energy`` (F,) eV, ``temperature`` (F,) K and
  ``dipole`` (F, 3) e·Å, each optional;
* attributes ``timestep_fs`` (time between stored frames), ``md_timestep_fs`` (integrator step), ``engine``
  (``cp2k`` or ``mlff``) and ``units`` (:data:`UNITS`).

:func:`trajectory_to_node` and :func:`node_to_trajectory` convert between it and the pure
:class:`~aiida_qdtraps.analysis.trajectory.MdTrajectory`. The calcfunctions are thin: they read the node, call the
kernel of :mod:`aiida_qdtraps.analysis` and return ArrayData / XyData / Dict nodes with their units in attributes.
Inputs the kernel refuses give exit code 300 (with the kernel's message, e.g. a VDOS of a trajectory without
velocities) and bad options 302; no output node is made then.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ExitCode, calcfunction

from ..analysis import binding_modes as modes_kernel
from ..analysis import gap_dynamics, spectra
from ..analysis import md_structure as structure_kernel
from ..analysis.trajectory import MdTrajectory

UNITS = {'positions': 'angstrom', 'velocities': 'angstrom/fs', 'times': 'fs', 'energy': 'eV', 'temperature': 'K',
         'dipole': 'e*angstrom'}
ENGINES = ('cp2k', 'mlff')
#: The optional per-frame arrays of the layout (attribute names of MdTrajectory).
FRAME_ARRAYS = ('potential_energy', 'kinetic_energy', 'conserved_energy', 'temperature', 'dipole')

#: Options each calcfunction accepts (with their defaults).
RDF_OPTIONS = {'pairs': None, 'r_max': 8.0, 'dr': 0.02, 'start_frame': 0}
RMSF_OPTIONS = {'labels': None, 'mass_weighted': False, 'start_frame': 0}
VDOS_OPTIONS = {'window': 'hann', 'start_frame': 0}
IR_OPTIONS = {'window': 'hann', 'correction': 'harmonic', 'temperature_k': None, 'start_frame': 0}
BINDING_OPTIONS = {'metal': 'Pb', 'carboxylates': None, 'bond_cutoff': modes_kernel.BOND_CUTOFF, 'bins': 60,
                   'r_range': [2.0, 5.0], 'seed': 0, 'start_frame': 0}
GAP_OPTIONS = {'bins': 30, 'start_frame': 0}
DEPHASING_OPTIONS = {'dt_fs': None, 'max_time_fs': None, 'start_frame': 0}
NAC_OPTIONS = {'dt_fs': None, 'i': None, 'j': None, 'bins': 40}


class _Refused(Exception):
    """Inputs or options a calcfunction refuses; carries its exit code."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.exit_code = ExitCode(status, message)


def trajectory_to_node(trajectory: MdTrajectory, engine: str, md_timestep_fs: float) -> orm.TrajectoryData:
    """An unstored TrajectoryData in the shared layout of an :class:`MdTrajectory`."""
    if engine not in ENGINES:
        raise ValueError(f'engine {engine!r} is not one of {ENGINES}')
    if md_timestep_fs is None or not md_timestep_fs > 0:
        raise ValueError(f'md_timestep_fs must be a positive number of fs, got {md_timestep_fs}')
    node = orm.TrajectoryData()
    node.set_trajectory(symbols=list(trajectory.symbols), positions=trajectory.positions,
                        stepids=np.arange(trajectory.n_frames), cells=trajectory.cell, times=trajectory.times_fs,
                        velocities=trajectory.velocities)
    for name in FRAME_ARRAYS:
        value = getattr(trajectory, name)
        if value is not None:
            node.set_array(name, np.asarray(value, dtype=float))
    timestep = trajectory.timestep_fs if trajectory.n_frames > 1 else float(md_timestep_fs)
    node.base.attributes.set_many({'timestep_fs': timestep, 'md_timestep_fs': float(md_timestep_fs),
                                   'engine': engine, 'units': dict(UNITS)})
    return node


def node_to_trajectory(node: orm.TrajectoryData) -> MdTrajectory:
    """The :class:`MdTrajectory` of a TrajectoryData in the shared layout (ValueError naming what is missing)."""
    names = set(node.get_arraynames())
    units = node.base.attributes.get('units', None)
    if units is not None and any(units.get(key, unit) != unit for key, unit in UNITS.items()):
        raise ValueError(f'trajectory units {units} differ from the layout {UNITS}')
    if 'times' in names:
        times = node.get_array('times')
    elif node.base.attributes.get('timestep_fs', None) is not None:
        times = np.arange(node.numsteps) * float(node.base.attributes.get('timestep_fs'))
    else:
        raise ValueError(f'TrajectoryData<{node.pk}> has neither a times array nor a timestep_fs attribute')
    extra = {name: node.get_array(name) for name in FRAME_ARRAYS if name in names}
    return MdTrajectory(symbols=list(node.symbols), positions=node.get_positions(), times_fs=times,
                        velocities=node.get_array('velocities') if 'velocities' in names else None,
                        cell=node.get_cells(), **extra)


def _options(options: orm.Dict | None, defaults: dict) -> dict:
    values = dict(defaults)
    given = {} if options is None else options.get_dict()
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise _Refused(302, f'unknown option(s) {unknown}; accepted: {sorted(defaults)}')
    values.update(given)
    start = values.get('start_frame', 0)
    if not isinstance(start, int) or start < 0:
        raise _Refused(302, f'start_frame must be a non-negative integer, got {start!r}')
    return values


def _trajectory(node: orm.TrajectoryData, start_frame: int = 0) -> MdTrajectory:
    try:
        trajectory = node_to_trajectory(node)
    except ValueError as exc:
        raise _Refused(300, f'the trajectory is not in the shared layout: {exc}') from None
    if start_frame >= trajectory.n_frames:
        raise _Refused(302, f'start_frame {start_frame} is beyond the {trajectory.n_frames} frames')
    if start_frame:
        trajectory = MdTrajectory(**{field: (value[start_frame:] if isinstance(value, np.ndarray) else value)
                                     for field, value in vars(trajectory).items()})
    return trajectory


def _run(function, *args, **kwargs):
    """Call a kernel; its ValueError becomes exit code 300 with the message."""
    try:
        return function(*args, **kwargs)
    except ValueError as exc:
        raise _Refused(300, str(exc)) from None


def _guarded(body):
    """Run a calcfunction body; a :class:`_Refused` becomes its exit code (and nothing is returned)."""
    try:
        return body()
    except _Refused as refused:
        return refused.exit_code


def pair_key(pair: str) -> str:
    """Array-name form of an element pair: ``'Pb-O'`` → ``'Pb_O'``."""
    return pair.replace('-', '_')


@calcfunction
def compute_rdf(trajectory: orm.TrajectoryData, options: orm.Dict | None = None) -> dict:
    """RDFs of element pairs of a finite cluster (:func:`aiida_qdtraps.analysis.md_structure.rdf`).

    Options: ``pairs`` (e.g. ``['Pb-O', 'Pb-S']``, default every pair of elements), ``r_max``, ``dr`` (Å),
    ``start_frame``. Output ``rdf`` (ArrayData): ``r`` (Å) and per pair ``g_<A>_<B>`` (dimensionless),
    ``n_<A>_<B>`` (Å⁻¹), ``coordination_<A>_<B>``.
    """
    def body():
        values = _options(options, RDF_OPTIONS)
        traj = _trajectory(trajectory, values['start_frame'])
        elements = sorted(set(traj.symbols))
        pairs = values['pairs'] or [f'{a}-{b}' for k, a in enumerate(elements) for b in elements[k:]]
        result = _run(structure_kernel.rdf, traj.symbols, traj.positions, pairs, r_max=values['r_max'],
                      dr=values['dr'])
        node = orm.ArrayData()
        node.set_array('r', result['r'])
        for pair, data in result['pairs'].items():
            for name in ('g', 'n', 'coordination'):
                node.set_array(f'{name}_{pair_key(pair)}', data[name])
        node.base.attributes.set_many({
            'pairs': list(result['pairs']), 'n_frames': result['n_frames'],
            'dr': result['dr'], 'units': {'r': 'angstrom', 'g': 'dimensionless', 'n': '1/angstrom',
                                          'coordination': 'atoms', 'volume': 'angstrom^3'},
            'normalisation': 'n(r) = counts/(N_A frames dr); g(r) = n(r)/(4 pi r^2 N_B/V), V = convex hull volume',
            # A flat or linear cluster has no volume (None; its g arrays are NaN).
            'volume': result['volume'] if np.isfinite(result['volume']) else None})
        return {'rdf': node}
    return _guarded(body)


@calcfunction
def compute_rmsf(trajectory: orm.TrajectoryData, options: orm.Dict | None = None) -> dict:
    """RMSF per atom after Kabsch alignment, averaged per element and per class
    (:func:`aiida_qdtraps.analysis.md_structure.rmsf`).

    Options: ``labels`` (one class name per atom, e.g. core / surface / ligand, or ``'sites'``: core / surface /
    ligand from the bonds of the first analysed frame, :func:`~aiida_qdtraps.analysis.md_structure.site_classes`,
    so the classes trace to the trajectory), ``mass_weighted``, ``start_frame``. Outputs ``rmsf`` (ArrayData:
    ``rmsf`` (N,) Å, ``mean_positions`` (N, 3) Å, ``labels`` (N,) when classes were given) and ``summary`` (Dict).
    """
    def body():
        values = _options(options, RMSF_OPTIONS)
        traj = _trajectory(trajectory, values['start_frame'])
        masses = _run(traj.masses) if values['mass_weighted'] else None
        labels = values['labels']
        if isinstance(labels, str):
            if labels != 'sites':
                raise _Refused(302, f"labels must be one class name per atom or 'sites', got {labels!r}")
            labels = _run(structure_kernel.site_classes, traj.symbols, traj.positions[0])
        result = _run(structure_kernel.rmsf, traj.positions, masses=masses, labels=labels, symbols=traj.symbols)
        node = orm.ArrayData()
        node.set_array('rmsf', result['rmsf'])
        node.set_array('mean_positions', result['mean_positions'])
        if labels is not None:
            node.set_array('labels', np.asarray(labels, dtype=str))
        node.base.attributes.set_many({'units': {'rmsf': 'angstrom', 'mean_positions': 'angstrom'},
                                       'symbols': list(traj.symbols)})
        summary = orm.Dict({'per_element': result['per_element'], 'per_label': result['per_label'],
                            'mean': float(result['rmsf'].mean()), 'n_frames': traj.n_frames,
                            'mass_weighted': bool(values['mass_weighted']), 'units': 'angstrom'})
        return {'rmsf': node, 'summary': summary}
    return _guarded(body)


def _spectrum_node(x, x_name, ys: dict, y_units: str, attributes: dict) -> orm.XyData:
    node = orm.XyData()
    node.set_x(np.asarray(x, dtype=float), x_name, 'cm^-1')
    names = list(ys)
    node.set_y([np.asarray(ys[name], dtype=float) for name in names], names, [y_units] * len(names))
    node.base.attributes.set_many(attributes)
    return node


@calcfunction
def compute_vdos(trajectory: orm.TrajectoryData, options: orm.Dict | None = None) -> dict:
    """Vibrational density of states from the mass-weighted velocity autocorrelation
    (:func:`aiida_qdtraps.analysis.spectra.vdos`); needs the ``velocities`` array.

    Options: ``window`` (hann, blackman, none), ``start_frame``. Output ``vdos`` (XyData): x ``wavenumber`` (cm⁻¹),
    y ``total`` and one per element (states per cm⁻¹; ∫ total = 3N).
    """
    def body():
        values = _options(options, VDOS_OPTIONS)
        traj = _trajectory(trajectory, values['start_frame'])
        velocities = _run(traj.require, 'velocities', 'the vibrational density of states')
        result = _run(spectra.vdos, velocities, _run(traj.masses), _run(lambda: traj.timestep_fs),
                      symbols=traj.symbols, window=values['window'])
        node = _spectrum_node(result['wavenumber'], 'wavenumber', {'total': result['total'], **result['per_element']},
                              'states/cm^-1', {'window': values['window'], 'n_frames': traj.n_frames,
                                               'timestep_fs': traj.timestep_fs, 'normalisation': 'integral = 3N'})
        return {'vdos': node}
    return _guarded(body)


@calcfunction
def compute_ir(trajectory: orm.TrajectoryData, options: orm.Dict | None = None) -> dict:
    """IR spectrum from the autocorrelation of the dipole's time derivative with the harmonic quantum correction
    (:func:`aiida_qdtraps.analysis.spectra.ir_spectrum`); needs the ``dipole`` array.

    Options: ``window``, ``correction`` (harmonic or none), ``temperature_k`` (for ``none``; default the mean of the
    ``temperature`` array), ``start_frame``. Output ``ir`` (XyData): x ``wavenumber`` (cm⁻¹), y ``intensity``.
    """
    def body():
        values = _options(options, IR_OPTIONS)
        traj = _trajectory(trajectory, values['start_frame'])
        dipole = _run(traj.require, 'dipole', 'the IR spectrum')
        temperature = values['temperature_k']
        if temperature is None and traj.temperature is not None:
            temperature = float(np.mean(traj.temperature))
        result = _run(spectra.ir_spectrum, dipole, _run(lambda: traj.timestep_fs), temperature_k=temperature,
                      correction=values['correction'], window=values['window'])
        node = _spectrum_node(result['wavenumber'], 'wavenumber', {'intensity': result['intensity']},
                              '(e*angstrom/fs)^2/cm^-1',
                              {'correction': values['correction'], 'temperature_k': temperature,
                               'window': values['window'], 'n_frames': traj.n_frames})
        return {'ir': node}
    return _guarded(body)


@calcfunction
def compute_binding_modes(trajectory: orm.TrajectoryData, options: orm.Dict | None = None) -> dict:
    """Carboxylate r1, r2, r3 per ligand and frame, modes and (r1, r3), (r2, r3) histograms (Sowa et al.)
    (:func:`aiida_qdtraps.analysis.binding_modes.binding_modes`).

    Options: ``metal`` (default Pb), ``carboxylates`` ((C, O, O) index triples; default found on the first frame),
    ``bond_cutoff`` (Å), ``bins``, ``r_range``, ``seed``, ``start_frame``. Outputs ``distances`` (ArrayData: ``r1``,
    ``r2``, ``r3`` (F, L) Å, ``mode`` (F, L) index into the ``modes`` attribute, ``primary_metal``, ``carboxylates``,
    ``hist_r1_r3``, ``hist_r2_r3``, ``edges``) and ``fractions`` (Dict).
    """
    def body():
        values = _options(options, BINDING_OPTIONS)
        traj = _trajectory(trajectory, values['start_frame'])
        result = _run(modes_kernel.binding_modes, traj.symbols, traj.positions, carboxylates=values['carboxylates'],
                      metal=values['metal'], bond_cutoff=values['bond_cutoff'], bins=values['bins'],
                      r_range=tuple(values['r_range']), seed=values['seed'])
        node = orm.ArrayData()
        for name in ('r1', 'r2', 'r3', 'primary_metal', 'carboxylates', 'hist_r1_r3', 'hist_r2_r3', 'edges'):
            node.set_array(name, np.asarray(result[name]))
        node.set_array('mode', np.array([[modes_kernel.MODES.index(m) for m in row] for row in result['modes']]))
        node.base.attributes.set_many({'modes': list(modes_kernel.MODES), 'metal': values['metal'],
                                       'units': {'r1': 'angstrom', 'r2': 'angstrom', 'r3': 'angstrom',
                                                 'edges': 'angstrom', 'hist_r1_r3': 'ligand-frames',
                                                 'hist_r2_r3': 'ligand-frames'}})
        fractions = orm.Dict({'fractions': result['fractions'], 'n_ligands': int(result['r1'].shape[1]),
                              'n_frames': int(result['r1'].shape[0]), 'metal': values['metal'],
                              'bond_cutoff_angstrom': float(values['bond_cutoff'])})
        return {'distances': node, 'fractions': fractions}
    return _guarded(body)


def gap_series(gaps: orm.Data, start_frame: int = 0) -> tuple[np.ndarray, float | None]:
    """Gap values (eV) from ``start_frame`` on and time step (fs, or None) of a TrajectoryData (array ``gap``, as
    ``QdMdWorkChain`` prints with ``orbital_energies``), an ArrayData (array ``gaps``), both with attribute
    ``timestep_fs``, an XyData (x time fs, first y the gap) or a Dict (``gaps`` list, optional ``dt_fs``)."""
    if isinstance(gaps, orm.XyData):
        x = gaps.get_x()[1]
        values, dt = np.asarray(gaps.get_y()[0][1], dtype=float), (float(x[1] - x[0]) if len(x) > 1 else None)
    elif isinstance(gaps, orm.ArrayData):
        name = 'gap' if isinstance(gaps, orm.TrajectoryData) else 'gaps'
        if name not in gaps.get_arraynames():
            what = ('(an MD run without orbital_energies, or an open-shell/OT one)'
                    if name == 'gap' else f'(it has {gaps.get_arraynames()})')
            raise ValueError(f'{type(gaps).__name__}<{gaps.pk}> has no array named {name} {what}')
        values, dt = gaps.get_array(name), gaps.base.attributes.get('timestep_fs', None)
    elif isinstance(gaps, orm.Dict):
        if 'gaps' not in gaps.get_dict():
            raise ValueError(f'Dict<{gaps.pk}> has no key gaps (it has {sorted(gaps.get_dict())})')
        values, dt = np.asarray(gaps['gaps'], dtype=float), gaps.get_dict().get('dt_fs')
    else:
        raise ValueError(f'gaps must be a TrajectoryData, ArrayData, XyData or Dict, got {type(gaps).__name__}')
    if not isinstance(start_frame, int) or not 0 <= start_frame < len(values) - 1:
        raise ValueError(f'start_frame {start_frame!r} leaves fewer than 2 of the {len(values)} gaps')
    return values[start_frame:], dt


@calcfunction
def compute_gap_statistics(gaps: orm.Data, options: orm.Dict | None = None) -> dict:
    """Mean, standard deviation and histogram of a HOMO–LUMO gap series (eV) (Bhati et al. Fig. 3a), and of the
    HOMO and LUMO energies when the input holds them (an ArrayData with ``homo`` and ``lumo`` arrays, as
    ``MdGapsWorkChain``'s ``gaps`` or the trajectory of a ``QdMdWorkChain`` with ``orbital_energies``; Bhati et al.
    Fig. 3 compares the three).

    Options: ``bins``, ``start_frame`` (e.g. the first NVE frame). Outputs ``statistics`` (Dict, eV; ``homo`` /
    ``lumo`` sub-dicts with the same keys) and ``histogram`` (ArrayData ``counts``, ``edges`` eV, and
    ``homo_counts``, ``homo_edges``, ``lumo_...``).
    """
    def body():
        values = _options(options, GAP_OPTIONS)
        series, _ = _run(gap_series, gaps, values['start_frame'])
        stats = _run(gap_dynamics.gap_statistics, series, bins=values['bins'])
        histogram = orm.ArrayData()
        histogram.set_array('counts', stats.pop('hist_counts'))
        histogram.set_array('edges', stats.pop('hist_edges'))
        units = {'edges': 'eV', 'counts': 'frames'}
        levels = {}
        names = gaps.get_arraynames() if isinstance(gaps, orm.ArrayData) and not isinstance(gaps, orm.XyData) else []
        for level in ('homo', 'lumo'):
            if level in names:
                try:
                    level_stats = gap_dynamics.gap_statistics(gaps.get_array(level)[values['start_frame']:],
                                                              bins=values['bins'])
                except ValueError as exc:
                    raise _Refused(300, f'{level}: {exc}') from None
                histogram.set_array(f'{level}_counts', level_stats.pop('hist_counts'))
                histogram.set_array(f'{level}_edges', level_stats.pop('hist_edges'))
                units.update({f'{level}_edges': 'eV', f'{level}_counts': 'frames'})
                levels[level] = level_stats
        histogram.base.attributes.set('units', units)
        return {'statistics': orm.Dict({**stats, **levels, 'units': 'eV'}), 'histogram': histogram}
    return _guarded(body)


@calcfunction
def compute_dephasing(gaps: orm.Data, options: orm.Dict | None = None) -> dict:
    """Pure-dephasing function by the second-order cumulant and its Gaussian time (Bhati et al. Fig. 5b)
    (:func:`aiida_qdtraps.analysis.gap_dynamics.dephasing`).

    Options: ``dt_fs`` (time between gaps, default the input's), ``max_time_fs``, ``start_frame``. Outputs
    ``dephasing`` (XyData: x ``time`` fs, y ``dephasing`` D(t) and ``g``) and ``summary`` (Dict: ``tau_fs``,
    ``tau_static_fs``, ``std``).
    """
    def body():
        values = _options(options, DEPHASING_OPTIONS)
        series, dt = _run(gap_series, gaps, values['start_frame'])
        dt = values['dt_fs'] if values['dt_fs'] is not None else dt
        if dt is None:
            raise _Refused(302, 'the gap series has no time step: give options dt_fs')
        result = _run(gap_dynamics.dephasing, series, dt, max_time_fs=values['max_time_fs'])
        node = orm.XyData()
        node.set_x(result['time'], 'time', 'fs')
        node.set_y([result['dephasing'], result['g']], ['dephasing', 'g'], ['dimensionless', 'dimensionless'])
        summary = orm.Dict({'tau_fs': result['tau_fs'], 'tau_static_fs': result['tau_static_fs'],
                            'std_ev': result['std'], 'resolved': result['resolved'], 'dt_fs': float(dt),
                            'fit': 'D(t) = exp(-(t/tau)^2/2)'})
        return {'dephasing': node, 'summary': summary}
    return _guarded(body)



@calcfunction
def compute_nac(mo_frames: orm.ArrayData, options: orm.Dict) -> dict:
    """Non-adiabatic coupling between two MOs along a trajectory (Hammes-Schiffer–Tully, signs aligned frame to
    frame; :func:`aiida_qdtraps.analysis.gap_dynamics.nac`) (Bhati et al. Fig. 5c).

    ``mo_frames`` holds ``coefficients`` (F, n_ao, n_mo) and either ``cross_overlap`` (F−1, n_ao, n_ao) or
    ``ao_overlap`` (F, n_ao, n_ao) (neither: orthonormal AOs); attribute ``timestep_fs`` unless options give ``dt_fs``.
    Options: ``i``, ``j`` (MO columns, e.g. HOMO and LUMO of the window), ``dt_fs``, ``bins``. Outputs ``nac``
    (XyData: x ``time`` fs at the midpoints, y ``nac`` in fs⁻¹ and ``nac_mev`` = ħ|d| in meV) and ``summary`` (Dict:
    mean ħ|d| and the histogram).
    """
    def body():
        values = _options(options, NAC_OPTIONS)
        names = set(mo_frames.get_arraynames())
        if 'coefficients' not in names:
            raise _Refused(300, f'ArrayData<{mo_frames.pk}> has no coefficients array (it has {sorted(names)})')
        dt = values['dt_fs'] if values['dt_fs'] is not None else mo_frames.base.attributes.get('timestep_fs', None)
        if dt is None or values['i'] is None or values['j'] is None:
            raise _Refused(302, 'options need i and j (MO columns) and dt_fs unless the input has timestep_fs')
        result = _run(gap_dynamics.nac, mo_frames.get_array('coefficients'), dt, int(values['i']), int(values['j']),
                      ao_overlap=mo_frames.get_array('ao_overlap') if 'ao_overlap' in names else None,
                      cross_overlap=mo_frames.get_array('cross_overlap') if 'cross_overlap' in names else None)
        counts, edges = gap_dynamics.nac_histogram(result['nac_mev'], bins=values['bins'])
        node = orm.XyData()
        node.set_x(result['time'], 'time', 'fs')
        node.set_y([result['nac_per_fs'], result['nac_mev']], ['nac', 'nac_mev'], ['1/fs', 'meV'])
        summary = orm.Dict({'mean_mev': result['mean_mev'], 'i': int(values['i']), 'j': int(values['j']),
                            'dt_fs': float(dt), 'histogram_counts': counts.tolist(),
                            'histogram_edges_mev': edges.tolist()})
        return {'nac': node, 'summary': summary}
    return _guarded(body)


@calcfunction
def join_trajectories(**pieces: orm.TrajectoryData) -> dict:
    """One trajectory of the pieces of a continued MD (``MlffMdCalculation`` with ``parent_trajectory``), taken in
    the order of their names (``piece_1``, ``piece_2``, ..., ``piece_10``: by length, then alphabetically).

    Every array the pieces share is joined (:func:`aiida_qdtraps.analysis.trajectory.join_frames`: each piece must
    continue the one before; a repeated start frame is dropped); the layout attributes are the first piece's. Exit
    code 300 (nothing stored) names a piece that does not continue the one before, has other atoms or another time
    step. Output ``trajectory``.
    """
    def body():
        from ..analysis.trajectory import join_frames

        names = sorted(pieces, key=lambda name: (len(name), name))
        if not names:
            raise _Refused(300, 'no trajectory to join')
        first = pieces[names[0]]
        for name in names[1:]:
            piece = pieces[name]
            if list(piece.symbols) != list(first.symbols):
                raise _Refused(300, f'{name} has the atoms {"".join(piece.symbols)}, {names[0]} '
                                    f'{"".join(first.symbols)}')
            steps = [p.base.attributes.get('md_timestep_fs', None) for p in (first, piece)]
            if steps[0] != steps[1]:
                raise _Refused(300, f'{name} ran with md_timestep_fs {steps[1]}, {names[0]} with {steps[0]}')
        chunks = [{array: pieces[name].get_array(array) for array in pieces[name].get_arraynames()}
                  for name in names]
        joined = _run(join_frames, chunks, 'steps')
        node = orm.TrajectoryData()
        node.set_trajectory(symbols=list(first.symbols), positions=joined['positions'], stepids=joined['steps'],
                            cells=joined.get('cells'), times=joined.get('times'),
                            velocities=joined.get('velocities'), pbc=first.pbc)
        for array, value in joined.items():
            if array not in node.get_arraynames():
                node.set_array(array, value)
        for key in ('timestep_fs', 'md_timestep_fs', 'engine', 'mode', 'units'):
            value = first.base.attributes.get(key, None)
            if value is not None:
                node.base.attributes.set(key, value)
        node.base.attributes.set('pieces', len(names))
        return {'trajectory': node}

    return _guarded(body)

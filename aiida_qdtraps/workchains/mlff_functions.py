"""Calcfunctions of the MLFF active learning (:mod:`.mlff`): the initial rattled frames, the trust levels and the
candidate selection, the calibration of the deviation, the growing deepmd/npy dataset, the dataset of a dipole model,
the per-iteration table and the parity plot.

Each one unpacks its nodes, calls the pure kernels of :mod:`aiida_qdtraps.analysis.mlff` (and
:func:`aiida_qdtraps.analysis.plots.parity_plot`) and stores the result with its units.
"""

from __future__ import annotations

import io
import pathlib
import tempfile

import numpy as np
from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.engine import calcfunction

from ..analysis import mlff, mlff_selection
from ..calculations.deepmd import TRAINING_DIR, VALIDATION_DIR
from ..provenance import exploration_kind
from .mlff_settings import MD_FILES, calibrate_settings, check_selection, is_converged


@calcfunction
def rattle_structure(structure: orm.StructureData, parameters: orm.Dict) -> dict:
    """Initial frames: ``structure`` (frame 0) and rattled copies (Gaussian, ``rattle_stdev`` Å per coordinate).

    :param parameters: ``{'n_frames': int, 'rattle_stdev': Å, 'seed': int}``.
    :returns: ``frame_000``, ``frame_001``, ... StructureData.
    """
    settings = parameters.get_dict()
    atoms = structure.get_ase()
    frames = mlff.rattled_positions(atoms.get_positions(), float(settings['rattle_stdev']), int(settings['n_frames']),
                                    int(settings.get('seed', 0)))
    outputs = {}
    for i, positions in enumerate(frames):
        frame = atoms.copy()
        frame.set_positions(positions)
        outputs[f'frame_{i:03d}'] = orm.StructureData(ase=frame)
    return outputs


@calcfunction
def calibrate_trust_levels(selection: orm.Dict, **calibrations) -> orm.Dict:
    """Trust levels of the next selection from the calibration records of the labelled batches so far.

    All frames of all ``calibrations`` are pooled (deviation and true force error each) and passed to
    :func:`~aiida_qdtraps.analysis.mlff_selection.next_trust_levels` with the settings of ``selection.calibrate``:
    with at least ``min_points`` frames the levels are calibrated against ``target_error``, else the given
    ``trust_lo`` / ``trust_hi`` are kept, and the output says which and why.

    :param selection: the work chain's ``selection`` settings (``trust_lo``, ``trust_hi``, ``calibrate``).
    :param calibrations: ``calibration_iter_<n>``, the ``calibrate_deviation`` output of the batch labelled in
        iteration ``n`` (``max_devi_f`` and ``true_error`` per frame, eV/Å).
    :returns: ``trust_lo``, ``trust_hi`` (eV/Å), ``source`` (``calibrated`` / ``given``), ``reason``, ``n_points``,
        ``iterations`` (the batches used) and, when calibrated, ``n_below``, ``fraction_within_target``,
        ``trust_lo_from_ratio``.
    """
    settings = selection.get_dict()
    problem = check_selection(settings)
    if problem:
        raise ValueError(problem)
    calibrate = calibrate_settings(settings)
    if calibrate is None:
        raise ValueError('selection has no calibrate settings (selection.calibrate: {target_error: ...})')
    keys = sorted(calibrations, key=lambda key: int(key.rsplit('_', 1)[-1]))
    devi = [value for key in keys for value in calibrations[key]['max_devi_f']]
    true = [value for key in keys for value in calibrations[key]['true_error']]
    levels = mlff_selection.next_trust_levels(devi, true, float(settings['trust_lo']), float(settings['trust_hi']),
                                              **calibrate)
    levels['iterations'] = [int(key.rsplit('_', 1)[-1]) for key in keys]
    levels['units'] = 'eV/Å'
    return orm.Dict(levels)


@calcfunction
def exploration_start(trajectory: orm.TrajectoryData, parameters: orm.Dict) -> orm.StructureData:
    """The start of the next exploration MD: the last frame of ``trajectory`` before its ensemble force deviation
    first exceeds ``parameters['max_devi_f']`` (eV/Å; :func:`~aiida_qdtraps.analysis.mlff_selection.last_agreed_frame`),
    with the trajectory's cell; attributes ``frame`` and ``step`` say which."""
    index = mlff_selection.last_agreed_frame(trajectory.get_array('max_devi_f'), float(parameters['max_devi_f']))
    structure = trajectory.get_step_structure(index)
    structure.base.attributes.set('frame', index)
    structure.base.attributes.set('step', int(trajectory.get_stepids()[index]))
    return structure


@calcfunction
def select_candidates(reference: orm.StructureData, parameters: orm.Dict, trust_levels: orm.Dict | None = None,
                      **trajectories) -> dict:
    """Pick MD frames to label from the ensemble's maximum force deviation (``max_devi_f`` arrays, eV/Å).

    Frames between the trust levels first pass the pre-label filter (no atom pair closer than ``min_distance_scale``
    × the sum of covalent radii, finite positions; :func:`~aiida_qdtraps.analysis.mlff_selection.prelabel_filter`):
    a frame it rejects is never labelled and counts as failed. With ``adaptive_lo`` the lower trust level is
    dpgen2's adaptive one (:func:`~aiida_qdtraps.analysis.mlff_selection.adaptive_trust_lo`) instead of ``trust_lo``.
    With ``trust_levels`` (the output of :func:`calibrate_trust_levels`) both levels are taken from it.

    :param reference: structure whose cell the picked frames are re-centred in (the CP2K box).
    :param parameters: ``trust_lo``, ``trust_hi`` (eV/Å), ``max_candidates`` (over all trajectories), ``stride``,
        optional ``balance`` (share ``max_candidates`` round-robin between the MD and the relaxation trajectories
        instead of a uniform random choice over all frames), ``min_distance_scale`` (default 0.7; ``None`` switches
        the filter off), ``adaptive_lo`` (``{'numb_candi': int, 'rate_candi': float}``) and ``seed``.
    :param trust_levels: optional ``trust_lo``, ``trust_hi`` (eV/Å) and ``source`` that replace the given levels.
    :param trajectories: TrajectoryData from ``MlffMdCalculation`` with a ``max_devi_f`` array.
    :returns: ``statistics`` Dict (frame counts and accurate/candidate/failed fractions per trajectory and overall,
        the trust levels used and their ``trust_source`` (``given``, ``adaptive`` or that of ``trust_levels``), the
        filtered frames, and per selected frame its trajectory, frame index and deviation) and ``candidate_000``,
        ... StructureData.
    """
    settings = parameters.get_dict()
    problem = check_selection(settings)
    if problem:
        raise ValueError(problem)
    names = sorted(trajectories)
    devi = np.concatenate([trajectories[name].get_array('max_devi_f') for name in names])
    owner = np.concatenate([[i] * trajectories[name].numsteps for i, name in enumerate(names)])
    local = np.concatenate([np.arange(trajectories[name].numsteps) for name in names])
    kinds = np.array([exploration_kind(trajectories[name]) for name in names])
    trust_lo, trust_hi = float(settings['trust_lo']), float(settings['trust_hi'])
    source = 'given'
    adaptive = settings.get('adaptive_lo')
    if trust_levels is not None:
        trust_lo, trust_hi = float(trust_levels['trust_lo']), float(trust_levels['trust_hi'])
        source = trust_levels.get('source', 'given')
        if not 0 <= trust_lo < trust_hi:
            raise ValueError(f'trust_levels must satisfy 0 <= trust_lo < trust_hi (eV/Å), got {trust_lo}, {trust_hi}')
    elif adaptive is not None:
        trust_lo = mlff_selection.adaptive_trust_lo(devi, trust_hi, **adaptive).trust_lo
        source = 'adaptive'

    def frame(index: int):
        return trajectories[names[owner[index]]].get_step_structure(int(local[index])).get_ase()

    screened = devi.copy()
    filtered = None
    scale = settings.get('min_distance_scale', mlff_selection.DEFAULT_DISTANCE_SCALE)
    candidates = np.flatnonzero((devi >= trust_lo) & (devi < trust_hi))
    if scale is not None and candidates.size:
        frames = [frame(index) for index in candidates]
        table = mlff_selection.min_distance_table(sorted(set(frames[0].get_chemical_symbols())), scale=scale)
        filtered = mlff_selection.prelabel_filter(frames, table)
        screened[candidates[filtered.rejected_indices]] = trust_hi  # never labelled: counted as failed
    selection = mlff.select_by_deviation(screened, trust_lo, trust_hi, int(settings['max_candidates']),
                                         int(settings.get('stride', 1)), int(settings.get('seed', 0)),
                                         groups=kinds[owner] if settings.get('balance') else None)
    statistics = {'n_frames': selection.n_frames, 'n_selected': len(selection.selected),
                  **selection.fractions(), 'max_devi_f_max': float(devi.max()), 'max_devi_f_mean': float(devi.mean()),
                  'trust_lo': trust_lo, 'trust_hi': trust_hi, 'trust_source': source,
                  'adaptive_lo': source == 'adaptive',
                  'n_filtered': 0 if filtered is None else len(filtered.rejected),
                  'filter': None if filtered is None else filtered.summary(max_listed=5),
                  'selected': [{'trajectory': names[owner[i]], 'frame': int(local[i]), 'max_devi_f': float(devi[i])}
                               for i in selection.selected],
                  'per_trajectory': {}, 'units': 'eV/Å'}
    for i, name in enumerate(names):
        mask = owner == i
        part = mlff.select_by_deviation(screened[mask], trust_lo, trust_hi, 0)
        statistics['per_trajectory'][name] = {'n_frames': part.n_frames, **part.fractions()}
    outputs = {'statistics': orm.Dict(statistics)}
    cell = reference.get_ase().cell.array
    for n, index in enumerate(selection.selected):
        structure = orm.StructureData(ase=mlff.recenter_in_cell(frame(index), cell))
        structure.pbc = (False, False, False)
        outputs[f'candidate_{n:03d}'] = structure
    return outputs


@calcfunction
def calibrate_deviation(statistics: orm.Dict, **nodes) -> orm.Dict:
    """The ensemble deviation of the labelled frames next to their true force error.

    :param statistics: the ``select_candidates`` statistics of the batch (``selected``: trajectory, frame, deviation
        per candidate, in candidate order; ``trust_lo``, ``trust_hi``).
    :param nodes: ``trajectory_<name>`` (the MD TrajectoryData, with the driving model's ``forces`` in eV/Å) and
        ``retrieved_<n>`` (the CP2K label of candidate ``n``).
    :returns: per frame ``max_devi_f`` and ``true_error`` (max over atoms of |F_model − F_DFT|, eV/Å) and the relation
        of :func:`~aiida_qdtraps.analysis.mlff_selection.deviation_error_relation` at the batch's trust levels.
    """
    selected = statistics['selected']
    devi, true, frames = [], [], []
    for n, row in enumerate(selected):
        retrieved = nodes.get(f'retrieved_{n:03d}')
        if retrieved is None:
            continue
        text = retrieved.base.repository.get_object_content(
            retrieved.creator.base.attributes.get('output_filename', 'aiida.out'))
        try:
            dft = mlff.read_cp2k_atomic_forces(text)
        except ValueError:
            continue  # no complete forces table: nothing to compare (grow_dataset refuses such a label too)
        model = nodes[f"trajectory_{row['trajectory']}"].get_array('forces')[row['frame']]
        true.append(float(mlff_selection.max_force_error(model[None], dft[None])[0]))
        devi.append(float(row['max_devi_f']))
        frames.append(n)
    relation = mlff_selection.deviation_error_relation(devi, true, statistics['trust_lo'], statistics['trust_hi']) \
        if frames else {'n_frames': 0}
    return orm.Dict({'candidates': frames, 'max_devi_f': devi, 'true_error': true, 'relation': relation,
                     'model_forces': 'forces of the model that drove the MD', 'units': 'eV/Å'})


def label_source(calc: orm.CalcJobNode) -> str:
    """uuid of the CalcJob that computed a label: ``calc`` itself, or, for a CalcJob taken from the AiiDA cache, the
    CalcJob it was copied from (followed back to the one that ran). A relaunch whose labels come from the cache thus
    records the same ``frame_sources``, stores a dataset with the same hash, and its trainings come from the cache too.
    """
    node, seen = calc, {calc.uuid}
    while (source := node.base.caching.get_cache_source()) is not None and source not in seen:
        seen.add(source)
        try:
            node = orm.load_node(source)
        except NotExistent:  # the original was deleted: its uuid still names the computation
            return source
    return node.uuid


def _load_systems(dataset: orm.FolderData | None, workdir: pathlib.Path) -> dict:
    import dpdata

    systems = {}
    if dataset is None:
        return systems
    dataset.base.repository.copy_tree(workdir / 'old')
    for subset in (TRAINING_DIR, VALIDATION_DIR):
        root = workdir / 'old' / subset
        for path in sorted(root.glob('*/type.raw')) if root.exists() else []:
            systems[f'{subset}/{path.parent.name}'] = dpdata.LabeledSystem(str(path.parent), fmt='deepmd/npy')
    return systems


def _md_frames(retrieved: orm.FolderData, stride: int) -> list[mlff.LabelledFrame]:
    """Every ``stride``-th frame (from step 0) of a CP2K MD CalcJob's retrieved trajectory files, checked.

    The CalcJob must be ``RUN_TYPE MD`` with forces printed in Hartree/Bohr; the atoms must be those of its input
    structure, in its order; each frame passes :func:`mlff.cp2k_label`'s force checks. The cell is the input cell.
    """
    calc = retrieved.creator
    parameters = calc.inputs.parameters.get_dict()
    if parameters.get('GLOBAL', {}).get('RUN_TYPE', '').upper() != 'MD':
        raise ValueError(f"{calc.process_label}<{calc.pk}> is not a CP2K MD (RUN_TYPE "
                         f"{parameters.get('GLOBAL', {}).get('RUN_TYPE')!r})")
    unit = parameters.get('MOTION', {}).get('PRINT', {}).get('FORCES', {}).get('UNIT', 'hartree*bohr^-1')
    if unit.lower().replace(' ', '') != 'hartree*bohr^-1':
        raise ValueError(f'CP2K MD forces were written in {unit!r}; expected hartree*bohr^-1')
    names = retrieved.base.repository.list_object_names()
    missing = [name for name in MD_FILES[:2] if name not in names]
    if missing:
        raise ValueError(f'{calc.process_label}<{calc.pk}> retrieved no {missing}: was MOTION/PRINT/TRAJECTORY and '
                         'FORCES set?')
    content = retrieved.base.repository.get_object_content
    data = mlff.read_cp2k_md_frames(content(MD_FILES[0]), content(MD_FILES[1]),
                                    content(MD_FILES[2]) if MD_FILES[2] in names else None)
    start = calc.inputs.structure.get_ase()
    if data['symbols'] != start.get_chemical_symbols():
        raise ValueError(f'the MD frames hold atoms {data["symbols"]} but the input structure of '
                         f'{calc.process_label}<{calc.pk}> {start.get_chemical_symbols()}')
    frames = []
    for index in range(0, len(data['steps']), stride):
        atoms = start.copy()
        atoms.set_positions(data['positions'][index])
        energy, forces = mlff.cp2k_label(data['energies'][index] / mlff.HARTREE_EV, 'a.u.', data['forces'][index],
                                         len(atoms))
        frames.append(mlff.LabelledFrame(atoms, energy, forces, label_source(calc), int(data['steps'][index])))
    return frames


@calcfunction
def grow_dataset(parameters: orm.Dict, dataset: orm.FolderData | None = None, **labels) -> dict:
    """Add CP2K ENERGY_FORCE labels to a deepmd/npy dataset (dpdata), holding every n-th frame out for validation.

    :param parameters: ``{'type_map': [...], 'validation_every': n}`` (``n = 0``: no validation frames).
    :param dataset: the previous dataset (absent for the first call).
    :param labels: per frame ``structure_<i>`` (the labelled StructureData), ``output_parameters_<i>`` (CP2K energy
        in Hartree) and ``retrieved_<i>`` (the CP2K CalcJob's retrieved folder, whose output holds the
        forces table: ``ATOMIC FORCES in [a.u.]`` up to CP2K 2024, ``FORCES| Atomic forces [hartree/bohr]`` from
        2025.1). Units are checked and converted to eV and eV/Å. And/or ``md_retrieved_<i>``:
        the retrieved folder of a CP2K MD CalcJob, every ``md_stride``-th frame of whose ``aiida-pos-1.xyz`` /
        ``aiida-frc-1.xyz`` (energies cross-checked with ``aiida-1.ener``) is added.
    :returns: ``dataset`` FolderData: ``training/<system>/`` and ``validation/<system>/`` deepmd/npy systems;
        attribute ``frame_sources`` maps each system to the uuids of the labelling CalcJobs, frame by frame (for a
        label from the cache, the CalcJob that ran it: :func:`label_source`), and
        ``frame_md_steps`` to the MD step of each frame (``None`` for single-point labels).
    """
    settings = parameters.get_dict()
    type_map = list(settings['type_map'])
    frames = []
    for key in sorted(key.split('_', 1)[1] for key in labels if key.startswith('structure_')):
        atoms = labels[f'structure_{key}'].get_ase()
        output = labels[f'output_parameters_{key}'].get_dict()
        retrieved = labels[f'retrieved_{key}']
        text = retrieved.base.repository.get_object_content(retrieved.creator.base.attributes.get(
            'output_filename', 'aiida.out'))
        energy, forces = mlff.cp2k_label(output['energy'], output.get('energy_units', 'a.u.'),
                                         mlff.read_cp2k_atomic_forces(text), len(atoms))
        frames.append(mlff.LabelledFrame(atoms, energy, forces, label_source(retrieved.creator)))
    for key in sorted(key for key in labels if key.startswith('md_retrieved_')):
        frames.extend(_md_frames(labels[key], int(settings.get('md_stride', 1))))
    sources = dataset.base.attributes.get('frame_sources', {}) if dataset is not None else {}
    steps = dataset.base.attributes.get('frame_md_steps', {}) if dataset is not None else {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        systems, sources, steps = mlff.assemble_dataset(
            frames, type_map, int(settings.get('validation_every', 0)), _load_systems(dataset, workdir),
            sources, steps, subsets=(TRAINING_DIR, VALIDATION_DIR))
        result = orm.FolderData()
        for name, system in systems.items():
            target = workdir / 'new' / name
            system.to('deepmd/npy', str(target), set_size=max(len(system), 1))
            result.base.repository.put_object_from_tree(str(target), name)
    result.base.attributes.set('frame_sources', sources)
    result.base.attributes.set('frame_md_steps', steps)
    result.base.attributes.set('type_map', type_map)
    result.base.attributes.set('units', {'energy': 'eV', 'force': 'eV/Å', 'length': 'Å'})
    return {'dataset': result}



@calcfunction
def dipole_dataset(parameters: orm.Dict, **trajectories) -> dict:
    """The frames of MD trajectories with their dipoles (CP2K `&MOMENTS`, the `dipole` array of the trajectory
    layout, e·Å) as a deepmd/npy dataset for a DeePMD dipole model (``DeepmdTrainCalculation`` with kind
    ``dipole``), holding every n-th frame of each trajectory out for validation.

    :param parameters: ``{'type_map': [...], 'validation_every': n, 'stride': s}`` (every ``s``-th frame, default 1;
        ``n = 0``: no validation frames).
    :param trajectories: TrajectoryData with a ``dipole`` array (frames, 3), e.g. ``QdMdWorkChain``'s.
    :returns: ``dataset`` FolderData with one system per trajectory and subset (``training/traj<k>_<composition>/``,
        ``validation/traj<k>_<composition>/``, ``k`` counting the trajectories in the order of their keywords) and
        attributes ``type_map``, ``frames`` (per system, the trajectory uuid and frame indices) and ``units``.
    """
    settings = parameters.get_dict()
    type_map = list(settings['type_map'])
    stride = int(settings.get('stride', 1))
    if stride < 1:
        raise ValueError(f'stride must be >= 1, got {stride}')
    if not trajectories:
        raise ValueError('give at least one trajectory')
    frames = {}
    result = orm.FolderData()
    with tempfile.TemporaryDirectory() as tmp:
        for k, key in enumerate(sorted(trajectories)):
            trajectory = trajectories[key]
            if 'dipole' not in trajectory.get_arraynames():
                raise ValueError(f'trajectory {key!r} (TrajectoryData<{trajectory.pk}>) has no `dipole` array: run '
                                 'the MD with the dipole printed (QdMdWorkChain md.dipole)')
            indices = np.arange(0, trajectory.numsteps, stride)
            target = pathlib.Path(tmp) / f'traj{k}'
            written = mlff.write_dipole_systems(target, trajectory.symbols, trajectory.get_positions()[indices],
                                                trajectory.get_array('dipole')[indices], type_map,
                                                int(settings.get('validation_every', 0)),
                                                subsets=(TRAINING_DIR, VALIDATION_DIR))
            for name, selected in written.items():
                subset, composition = name.split('/')
                frames[f'{subset}/traj{k}_{composition}'] = {'trajectory': trajectory.uuid,
                                                             'frames': indices[selected].tolist()}
                result.base.repository.put_object_from_tree(str(target / name), f'{subset}/traj{k}_{composition}')
    result.base.attributes.set('type_map', type_map)
    result.base.attributes.set('frames', frames)
    result.base.attributes.set('units', {'dipole': 'e*angstrom', 'length': 'angstrom'})
    return {'dataset': result}


@calcfunction
def collect_iterations(convergence: orm.Dict, **statistics) -> orm.Dict:
    """Per-iteration table from the ``select_candidates`` statistics and validation errors.

    :param statistics: ``selection_iter_<n>`` (select_candidates statistics), ``validation_iter_<n>`` (the
        ``output_parameters`` of model 1's training) and ``calibration_iter_<n>`` (calibrate_deviation) Dicts.
    :returns: ``iterations`` rows (accurate/candidate/failed fractions, validation MAEs in eV/atom and eV/Å,
        ``converged``) and ``converged`` (of the last iteration).
    """
    table = {}
    for key, node in sorted(statistics.items()):
        kind, iteration = key.rsplit('_iter_', 1)
        table.setdefault(int(iteration), {})[kind] = node.get_dict()
    rows = []
    for iteration in sorted(table):
        selection = table[iteration].get('selection', {})
        validation = table[iteration].get('validation', {})
        relation = table[iteration].get('calibration', {}).get('relation', {})
        rows.append({'iteration': iteration, **{k: selection.get(k) for k in ('accurate', 'candidate', 'failed',
                                                                                'n_frames', 'n_selected',
                                                                                'n_filtered', 'trust_lo', 'trust_hi',
                                                                                'trust_source')},
                     'energy_mae_per_atom': validation.get('energy_mae_per_atom'),
                     'force_mae': validation.get('force_mae'), 'force_rmse': validation.get('force_rmse'),
                     'energy_rmse_per_atom': validation.get('energy_rmse_per_atom'),
                     'labelled_error_over_deviation_p50': relation.get('ratio_p50'),
                     'labelled_spearman_rho': relation.get('spearman_rho'),
                     'converged': is_converged(selection, validation, convergence.get_dict())})
    return orm.Dict({'iterations': rows, 'converged': bool(rows and rows[-1]['converged']),
                     'units': {'energy_mae_per_atom': 'eV/atom', 'force': 'eV/Å'}})


@calcfunction
def plot_parity(parity: orm.ArrayData) -> orm.SinglefileData:
    """PNG parity plot of MLFF vs DFT energies (eV/atom) and force components (eV/Å) on held-out frames."""
    png = mlff.parity_plot(parity.get_array('energy_per_atom_dft'), parity.get_array('energy_per_atom_mlff'),
                           parity.get_array('forces_dft'), parity.get_array('forces_mlff'))
    return orm.SinglefileData(io.BytesIO(png), filename='parity.png')

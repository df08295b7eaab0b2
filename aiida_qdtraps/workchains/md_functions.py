"""The calcfunction of :mod:`.md`: one ``TrajectoryData`` from the retrieved folders of a chain of CP2K MD runs."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from ..analysis import trajectory as trajectory_kernels
from ..parsers.cp2k_md_files import (
    frontier_levels,
    join_by_step,
    md_evaluations,
    occupied_orbitals,
    read_dipoles,
    read_ener,
    read_mo_energies,
    read_xyz_frames,
    velocity_factor,
)

#: the project name aiida-cp2k gives every run (GLOBAL/PROJECT), which names the files CP2K writes
PROJECT = 'aiida'
VELOCITY_UNIT = 'angstrom*fs^-1'
MOMENTS_FILE = f'{PROJECT}-moments.dat'
MO_FILE = f'{PROJECT}-mo.MOLog'
OUTPUT_FILE = 'aiida.out'


def _aligned_blocks(count: int, steps: np.ndarray, computed: list[int]) -> slice | None:
    """The blocks of a per-frame file (dipoles, MO energies) that belong to the printed frames ``steps`` of one run,
    or None when they cannot be told apart.

    Besides one block per frame, a run that continues another one first evaluates its start (the previous run's last
    frame, not printed again) and prints a block for it; with a print stride only when the start is a multiple of it
    (the start is the step before the first of ``computed``, the MD steps of :func:`md_evaluations` of the run's
    output). At most one block may follow the last frame: the forces a continued run evaluates after its last step
    when it ends at its ``MAX_STEPS`` cap, or a step whose frame a killed run did not get to print.
    """
    leading = 0
    if len(steps) and steps[0] > 0:
        leading = 1
        if computed and len(steps) > 1:
            leading = int((computed[0] - 1) % int(np.diff(steps).min()) == 0)
    if count - leading - len(steps) not in (0, 1):
        return None
    return slice(leading, leading + len(steps))


def _frontier(folder: orm.FolderData, names: set[str], steps: np.ndarray, output: str,
              computed: list[int]) -> tuple[dict, str | None]:
    """``({'homo', 'lumo', 'gap'}, None)`` of each printed frame of one run from its ``&MO`` file, or ``({}, why)``."""
    if MO_FILE not in names:
        return {}, None
    homo = occupied_orbitals(output)
    if homo is None:
        return {}, f'{OUTPUT_FILE} names no number of occupied orbitals'
    try:
        indices, energies, _ = read_mo_energies(folder.base.repository.get_object_content(MO_FILE))
        frames = _aligned_blocks(len(energies), steps, computed)
        if frames is None:
            return {}, f'{len(energies)} MO blocks for {len(steps)} frames'
        homo_ev, lumo_ev = frontier_levels(indices, energies[frames], homo)
    except ValueError as exception:
        return {}, str(exception)
    return {'homo': homo_ev, 'lumo': lumo_ev, 'gap': lumo_ev - homo_ev}, None


def _nve_drift(times_fs: np.ndarray, conserved_ev: np.ndarray, n_atoms: int) -> float | None:
    """Slope of a straight-line fit to the conserved energy, meV/atom/ps (:func:`analysis.trajectory.drift`; None
    for fewer than 3 frames)."""
    if len(times_fs) < 3:
        return None
    return trajectory_kernels.drift(times_fs, conserved_ev, n_atoms)


@calcfunction
def cp2k_md_trajectory(settings: orm.Dict, **runs: orm.FolderData) -> dict:
    """One trajectory from the retrieved folders of a chain of CP2K MD runs (``run_000``, ``run_001``, … in order).

    :param settings: ``{'md_timestep_fs', 'nve_first_step' (the step the NVE run starts from; None without NVE),
        'velocity_unit'}``.
    :returns: ``trajectory`` (TrajectoryData: positions Å, velocities Å/fs, times fs; arrays ``potential_energy``,
        ``kinetic_energy``, ``conserved_energy`` eV, ``temperature`` K, ``step``, ``dipole`` e·Å and ``homo``,
        ``lumo``, ``gap`` eV when printed (a run whose values cannot be aligned with its frames leaves them out of the
        whole trajectory, and ``md_summary`` says why under ``left_out``);
        attributes ``timestep_fs``, ``md_timestep_fs``, ``engine``, ``units``) and ``md_summary`` (Dict).
    """
    options = settings.get_dict()
    factor = velocity_factor(options['velocity_unit'])
    pieces, symbols, left_out = [], None, {}
    for label in sorted(runs):
        folder = runs[label]
        names = set(folder.base.repository.list_object_names())
        if f'{PROJECT}-pos-1.xyz' not in names or f'{PROJECT}-1.ener' not in names:
            continue  # a run stopped before its first frame
        run_symbols, steps, times, positions = read_xyz_frames(
            folder.base.repository.get_object_content(f'{PROJECT}-pos-1.xyz'))
        symbols = symbols or run_symbols
        if run_symbols != symbols:
            raise ValueError(f'{label}: other atoms than the first run')
        arrays = {'positions': positions, 'times': times}
        if f'{PROJECT}-vel-1.xyz' in names:
            velocity_text = folder.base.repository.get_object_content(f'{PROJECT}-vel-1.xyz')
            _, vsteps, _, velocities = read_xyz_frames(velocity_text)
            by_step = dict(zip(vsteps.tolist(), velocities * factor))
            arrays['velocities'] = np.array([by_step.get(int(s), np.full(positions.shape[1:], np.nan)) for s in steps])
        ener = read_ener(folder.base.repository.get_object_content(f'{PROJECT}-1.ener'))
        rows = {int(s): i for i, s in enumerate(ener['step'])}
        for name in ('potential_energy', 'kinetic_energy', 'conserved_energy', 'temperature'):
            arrays[name] = np.array([ener[name][rows[int(s)]] if int(s) in rows else np.nan for s in steps])
        output = folder.base.repository.get_object_content(OUTPUT_FILE) if OUTPUT_FILE in names else ''
        computed, _ = md_evaluations(output)
        if MOMENTS_FILE in names:
            # one block per printed frame, plus the start of a continued run and one evaluation after the last frame
            # of a capped or killed one (_aligned_blocks). Any other count cannot be aligned with the frames, and the
            # run's dipoles are left out (so the trajectory has none).
            dipoles = read_dipoles(folder.base.repository.get_object_content(MOMENTS_FILE))
            frames = _aligned_blocks(len(dipoles), steps, computed)
            if frames is not None:
                arrays['dipole'] = dipoles[frames]
            else:
                left_out[f'{label} dipole'] = f'{len(dipoles)} dipole blocks for {len(steps)} frames'
        levels, why = _frontier(folder, names, steps, output, computed)
        arrays.update(levels)
        if why:
            left_out[f'{label} orbital energies'] = why
        pieces.append((steps, arrays))
    if not pieces:
        raise ValueError('no MD run wrote a frame')
    common = set.intersection(*(set(a) for _, a in pieces))
    steps, joined = join_by_step([(s, {k: v for k, v in a.items() if k in common}) for s, a in pieces])

    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(symbols, joined['positions'], stepids=steps, times=joined['times'],
                              velocities=joined.get('velocities'))
    for name in ('potential_energy', 'kinetic_energy', 'conserved_energy', 'temperature', 'dipole', 'homo', 'lumo',
                 'gap'):
        if name in joined:
            trajectory.set_array(name, joined[name])
    stored_dt = np.diff(joined['times'])
    trajectory.base.attributes.set_many({
        'timestep_fs': float(np.median(stored_dt)) if len(stored_dt) else 0.0,
        'md_timestep_fs': float(options['md_timestep_fs']), 'engine': 'cp2k',
        'units': {'positions': 'angstrom', 'velocities': 'angstrom/fs', 'times': 'fs', 'energy': 'eV',
                  'temperature': 'K', 'dipole': 'e*angstrom', 'homo': 'eV', 'lumo': 'eV', 'gap': 'eV'}})

    summary = {'frames': int(len(steps)), 'last_step': int(steps[-1]), 'time_fs': float(joined['times'][-1]),
               'runs': len(pieces), 'n_atoms': len(symbols)}
    if left_out:
        summary['left_out'] = left_out
    nve_first = options.get('nve_first_step')
    if nve_first is not None:
        # the frames the NVE run printed: the one at nve_first_step comes from the heat-up run, whose conserved
        # quantity includes the thermostat's energy
        nve = steps > nve_first
        summary['nve_frames'] = int(nve.sum())
        if nve.any():
            temperature = joined['temperature'][nve]
            summary['nve_mean_temperature_k'] = float(np.nanmean(temperature))
            summary['nve_std_temperature_k'] = float(np.nanstd(temperature))
            summary['nve_drift_mev_per_atom_ps'] = _nve_drift(joined['times'][nve], joined['conserved_energy'][nve],
                                                              len(symbols))
            if 'gap' in joined:
                summary['nve_gap_mean_ev'] = float(np.mean(joined['gap'][nve]))
                summary['nve_gap_std_ev'] = float(np.std(joined['gap'][nve]))
    return {'trajectory': trajectory, 'md_summary': orm.Dict(summary)}

"""MLFF molecular dynamics with ASE and DeePMD-kit models: the script ``MlffMdCalculation`` copies and runs.

Usage: ``python mlff_md_script.py input.json``. Reads ``structure.xyz`` (extended XYZ) and the frozen models
``model_<i>.pth`` named in ``input.json``; drives ASE MD with model ``driver`` (default the first; ``mean``: the
committee mean of all models' energies and forces; Langevin BAOAB or velocity-Verlet NVE), optionally with frozen
atoms; every ``save_interval`` steps stores the frame and evaluates all models on it (and a dipole model, if given,
for the frame's global dipole). With ``stop_devi_f`` (eV/Å) the MD ends at the first saved frame whose largest force
deviation exceeds it: frames after that one teach a model nothing.
With ``mode: relax`` a BFGS relaxation of the (``rattle_stdev``-rattled) structure replaces the MD and every
``save_interval``-th step of its path is a frame. With ``compress`` the models evaluated at every step (the driver;
every member for ``mean``) are compressed first (``dp --pt compress``: the embedding net tabulated, about a third
less time per step) and checked against the uncompressed model on the start geometry. With ``continue_from`` (a
``.npz`` with ``positions``, ``velocities`` in Å/fs and ``step``) the MD starts from that state and counts steps on
from ``step`` (its start frame, the end of the MD it continues, is not saved again); the Langevin noise is then seeded
by ``seed`` and ``step``.
Writes ``md.npz`` (Å, eV, eV/Å, fs, K, e·Å) and ``md.json`` (timings). Every ``checkpoint_interval`` steps
(at a saved frame) it writes the frames saved since the last one as ``checkpoint_<n>.npz``, in ``md.npz``'s layout,
so a job killed in the middle leaves them (removed at a normal end); with ``walltime_s`` the MD stops at the first
saved frame after that many seconds of the job and says so in ``md.json`` (``stopped_at_walltime``): either way the
MD can be continued from its last saved frame. Needs only numpy, ase and deepmd-kit, so it
runs with any Python that has them (a cluster's, too); only ``compress`` of a DP/ZBL model also imports
``aiida_qdtraps`` (the pair table its definition names is rewritten from :mod:`aiida_qdtraps.analysis.zbl`).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from ase.calculators.calculator import Calculator, all_changes


def main(path: str) -> None:
    job_start = time.perf_counter()  # walltime_s counts from here: imports and compression are part of the job
    from ase.constraints import FixAtoms
    from ase.io import read
    from ase.md.langevinbaoab import LangevinBAOAB
    from ase.md.velocitydistribution import (
        MaxwellBoltzmannDistribution,
        Stationary,
        ZeroRotation,
    )
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import BFGS
    from ase.units import fs
    from deepmd.calculator import DP
    from deepmd.infer import DeepPot
    from deepmd.infer.model_devi import calc_model_devi_e, calc_model_devi_f

    with open(path) as handle:
        params = json.load(handle)
    atoms = read(params['structure_file'])
    atoms.pbc = False
    start_step, start_velocities = 0, None
    if params.get('continue_from'):
        with np.load(params['continue_from']) as start:
            atoms.positions = start['positions']
            start_velocities, start_step = start['velocities'], int(start['step'])
    if params.get('frozen_indices'):
        atoms.set_constraint(FixAtoms(indices=params['frozen_indices']))
    models = params['models']
    types = [params['type_map'].index(s) for s in atoms.get_chemical_symbols()]
    driver = params.get('driver', 0)
    compression = {}
    if params.get('compress'):
        for index in range(len(models)) if driver == 'mean' else [int(driver)]:
            compressed = f'compressed_{index}.pth'
            compression[models[index].rsplit('.', 1)[0]] = compress(models[index], compressed, atoms.get_positions(),
                                                                    types)  # keyed without a period (AiiDA keys)
            models[index] = compressed
    ensemble = [DeepPot(m) for m in models]
    if driver == 'mean':
        atoms.calc = CommitteeMean(ensemble, types)
    else:
        atoms.calc = DP(model=models[int(driver)], type_dict={el: i for i, el in enumerate(params['type_map'])})
    stop_devi_f = params.get('stop_devi_f') if len(ensemble) > 1 else None

    rng = np.random.default_rng([params['seed'], start_step] if start_step else params['seed'])
    relax = params.get('mode', 'md') == 'relax'
    if relax:  # the path of a BFGS relaxation from a rattled start; no velocities
        atoms.positions += rng.normal(scale=params.get('rattle_stdev', 0.0), size=atoms.positions.shape)
        dyn = BFGS(atoms, maxstep=params['maxstep'], logfile=None)
    else:
        if start_velocities is not None:
            atoms.set_velocities(start_velocities / fs)  # Å/fs -> ASE units
        else:
            MaxwellBoltzmannDistribution(atoms, temperature_K=params['temperature_K'], rng=rng)
            Stationary(atoms)
            ZeroRotation(atoms)
        if params['thermostat'] == 'langevin':
            dyn = LangevinBAOAB(atoms, params['timestep_fs'] * fs, temperature_K=params['temperature_K'],
                                T_tau=params['thermostat_tau_fs'] * fs, rng=rng)
        else:
            dyn = VelocityVerlet(atoms, params['timestep_fs'] * fs)

    frames = {'positions': [], 'energies': [], 'forces': [], 'temperatures': [], 'steps': [], 'velocities': [],
              'kinetic_energies': []}
    evaluated = {'energies': [], 'forces': [], 'dipoles': []}  # per saved frame, filled as far as evaluate_frames got
    stopped = {'step': None, 'max_devi_f': None, 'walltime': False}
    checkpoint = {'step': start_step, 'frames': 0, 'chunks': [], 'seconds': 0.0}
    watched = {'frames': 0}  # saved frames whose deviation was compared with stop_devi_f

    def evaluate_frames() -> None:
        """The ensemble (and the dipole model) on the saved frames not evaluated yet, in one batch per model."""
        new = np.array(frames['positions'][len(evaluated['forces']):])
        if len(ensemble) > 1 and len(new):
            energies, forces = evaluate(ensemble, new, types)
            evaluated['energies'].extend(energies.T)
            evaluated['forces'].extend(np.moveaxis(forces, 1, 0))
        elif len(new):
            evaluated['energies'].extend([None] * len(new))
            evaluated['forces'].extend([None] * len(new))
        new = np.array(frames['positions'][len(evaluated['dipoles']):])
        if params.get('dipole_model') and len(new):
            evaluated['dipoles'].extend(global_dipoles(params['dipole_model'], atoms.get_chemical_symbols(), new))

    def watch_frames() -> None:
        """Evaluate the saved frames not evaluated yet; with ``stop_devi_f``, the first of them whose deviation
        exceeds it is where the MD stopped: the frames after it are dropped (the MD ran at most a batch further)."""
        evaluate_frames()
        if stop_devi_f is None or stopped['step'] is not None:
            return
        for index in range(watched['frames'], len(evaluated['forces'])):
            deviation = float(calc_model_devi_f(evaluated['forces'][index][:, None])[0][0])
            if deviation > stop_devi_f:
                stopped.update(step=int(frames['steps'][index]), max_devi_f=deviation)
                for store in (frames, evaluated):
                    for values in store.values():
                        del values[index + 1:]
                break
        watched['frames'] = len(evaluated['forces'])

    def arrays(first: int = 0) -> dict:
        """Saved frames ``first``... with the ensemble's deviation and the dipoles, in md.npz's layout."""
        watch_frames()
        result = {key: np.array(value[first:]) for key, value in frames.items()}
        if len(ensemble) > 1:
            energies = np.array(evaluated['energies'][first:]).T
            forces = np.stack(evaluated['forces'][first:], axis=1)
            max_f, min_f, avg_f = calc_model_devi_f(forces)
            result.update(max_devi_f=max_f, min_devi_f=min_f, avg_devi_f=avg_f,
                          devi_e=calc_model_devi_e(energies[..., None] / atoms.positions.shape[0]))
        if params.get('dipole_model'):
            result['dipoles'] = np.array(evaluated['dipoles'][first:])
        result['cell'] = atoms.cell.array
        return result

    def write_checkpoint() -> None:
        """The frames saved since the last checkpoint, as the next ``checkpoint_<n>.npz`` (a chunk each: the cost
        stays linear in the length of the MD)."""
        start = time.perf_counter()
        name = f"{CHECKPOINT_PREFIX}{len(checkpoint['chunks']) + 1:05d}.npz"
        np.savez('checkpoint.tmp.npz', **arrays(checkpoint['frames']))
        os.replace('checkpoint.tmp.npz', name)  # a kill during the write leaves no half chunk
        checkpoint['chunks'].append(name)
        checkpoint.update(step=int(dyn.nsteps), frames=len(frames['positions']))
        checkpoint['seconds'] += time.perf_counter() - start

    def record():
        frames['positions'].append(atoms.get_positions())
        frames['energies'].append(atoms.get_potential_energy())
        frames['forces'].append(atoms.get_forces(apply_constraint=False))
        frames['temperatures'].append(atoms.get_temperature())
        frames['steps'].append(dyn.nsteps)
        frames['velocities'].append(atoms.get_velocities() * fs)  # ASE velocity unit -> Å/fs
        frames['kinetic_energies'].append(atoms.get_kinetic_energy())
        if stop_devi_f is not None:
            if isinstance(atoms.calc, CommitteeMean):  # every member was just evaluated on this geometry
                energies, forces = atoms.calc.members
                evaluated['energies'].append(energies[:, 0])
                evaluated['forces'].append(forces[:, 0])
                watch_frames()
            elif len(frames['positions']) - len(evaluated['forces']) >= DEVIATION_BATCH:
                watch_frames()  # a batch per model: a tenth of the calls of one per frame
        if relax or stopped['step'] is not None:
            return
        if walltime_s is not None and start_step < dyn.nsteps < start_step + params['steps'] \
                and time.perf_counter() - job_start > walltime_s:
            stopped['walltime'] = True  # at a saved frame past the start, with steps left: the next job goes on
        elif checkpoint_interval and dyn.nsteps - checkpoint['step'] >= checkpoint_interval:
            write_checkpoint()

    walltime_s = params.get('walltime_s')
    checkpoint_interval = int(params.get('checkpoint_interval') or 0)
    dyn.nsteps = start_step  # a continuation counts on (ASE saves no start frame when nsteps > 0)
    dyn.attach(record, interval=params['save_interval'])
    start = time.perf_counter()
    if relax:
        converged = bool(dyn.run(fmax=params['fmax'], steps=params['steps']))
        if dyn.nsteps % params['save_interval']:
            record()  # the last geometry of the path, too
    else:
        for _ in dyn.irun(params['steps']):
            if stopped['step'] is not None or stopped['walltime']:
                break
    md_seconds = time.perf_counter() - start

    start = time.perf_counter()
    result = arrays()
    devi_seconds = time.perf_counter() - start
    if stopped['step'] is not None:
        stopped['walltime'] = False  # where the ensemble disagreed the MD ends: nothing to continue
    np.savez('md.npz', **result)
    for name in checkpoint['chunks']:
        os.remove(name)  # md.npz holds every frame
    with open('md.json', 'w') as handle:
        steps_run = int(dyn.nsteps) - start_step
        timings = {'md_seconds': md_seconds, 'md_ms_per_step': 1e3 * md_seconds / max(steps_run, 1),
                   'steps_run': steps_run, 'start_step': start_step,
                   'deviation_seconds': devi_seconds, 'n_frames': len(result['positions']),
                   'n_models': len(ensemble)}
        if checkpoint_interval and not relax:
            timings.update(checkpoint_interval=checkpoint_interval, checkpoint_seconds=checkpoint['seconds'])
        if stopped['walltime']:
            timings.update(stopped_at_walltime=True, walltime_s=walltime_s)
        if compression:
            timings['compressed'] = compression
        if stopped['step'] is not None:
            timings.update(stopped_at_step=stopped['step'], stop_max_devi_f=stopped['max_devi_f'])
        if relax:
            timings.update(mode='relax', bfgs_steps=int(dyn.nsteps), converged=converged,
                           final_fmax_eV_A=float(np.linalg.norm(frames['forces'][-1], axis=1).max()))
        json.dump(timings, handle)


#: saved frames evaluated together by each ensemble member while the MD watches its deviation (``stop_devi_f``):
#: the MD runs at most this many saved frames past the frame where it stops, which it then drops
DEVIATION_BATCH = 10

#: name of the checkpoint chunks, numbered from 1: ``checkpoint_00001.npz``, ...
CHECKPOINT_PREFIX = 'checkpoint_'

#: largest force difference (eV/Å) between a compressed model and its original on the start geometry; the tabulation
#: (stride 0.01) reproduces the embedding net to ~1e-6 eV/Å, so anything above this is a broken compression
COMPRESSION_TOLERANCE = 1.0e-3


def compress(model: str, output: str, positions: np.ndarray, types: list[int]) -> dict:
    """``dp --pt compress`` ``model`` into ``output`` and compare both on ``positions``; return the seconds taken
    and the largest force difference (eV/Å).

    A DP/ZBL model is rebuilt from its definition, which names its pair table file (``zbl_table.txt``): the script
    writes the table the project's training writes (:func:`aiida_qdtraps.analysis.zbl.zbl_table`); the model's own
    stored table then replaces it.

    :raises RuntimeError: naming the model when the compressed forces differ by more than ``COMPRESSION_TOLERANCE``.
    """
    import os

    import torch
    from deepmd.infer import DeepPot
    from deepmd.pt.entrypoints.compress import enable_compression

    start = time.perf_counter()
    definition = json.loads(torch.jit.load(model, map_location='cpu').model_def_script)
    table = definition.get('use_srtab')
    if table and not os.path.exists(table):
        from aiida_qdtraps.analysis.zbl import zbl_table

        np.savetxt(table, zbl_table(definition['type_map'], r_max=float(definition['descriptor']['rcut'])))
    enable_compression(model, output)
    forces = [DeepPot(name).eval(positions.reshape(1, -1), None, types)[1].reshape(positions.shape)
              for name in (model, output)]
    difference = float(np.abs(forces[1] - forces[0]).max())
    if not difference <= COMPRESSION_TOLERANCE:
        raise RuntimeError(f'the compressed {model} differs from it by {difference:.2e} eV/Å on the start geometry '
                           f'(more than {COMPRESSION_TOLERANCE}): run without `compress`')
    return {'seconds': time.perf_counter() - start, 'max_force_difference_eV_A': difference}


class CommitteeMean(Calculator):
    """ASE calculator: the mean energy and forces of a DeePMD ensemble; ``members`` holds every model's energies
    (models, 1) and forces (models, 1, atoms, 3) of the last geometry, for the deviation at no extra cost."""

    implemented_properties = ['energy', 'free_energy', 'forces']

    def __init__(self, ensemble: list, types: list[int]):
        super().__init__()
        self.ensemble, self.types = ensemble, types
        self.members = None

    def calculate(self, atoms=None, properties=('energy',), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energies, forces = evaluate(self.ensemble, self.atoms.get_positions()[None], self.types)
        self.members = (energies, forces)
        energy = float(energies[:, 0].mean())
        self.results = {'energy': energy, 'free_energy': energy, 'forces': forces[:, 0].mean(axis=0)}


def evaluate(ensemble: list, positions: np.ndarray, types: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV, shape (models, frames)) and forces (eV/Å, (models, frames, atoms, 3)) of every model."""
    energies, forces = [], []
    for model in ensemble:
        e, f, _ = model.eval(positions.reshape(len(positions), -1), None, types)
        energies.append(np.asarray(e).reshape(len(positions)))
        forces.append(np.asarray(f).reshape(positions.shape))
    return np.array(energies), np.array(forces)


def global_dipoles(model_file: str, symbols: list[str], positions: np.ndarray) -> np.ndarray:
    """The global dipole (e·Å, shape (frames, 3)) of each frame by a DeePMD dipole model, with its own type map."""
    from deepmd.infer.deep_dipole import DeepDipole

    model = DeepDipole(model_file)
    type_map = list(model.get_type_map())
    unknown = sorted(set(symbols) - set(type_map))
    if unknown:
        raise ValueError(f'the dipole model knows the elements {type_map}, not {unknown}')
    types = [type_map.index(symbol) for symbol in symbols]
    dipoles = model.eval(positions.reshape(len(positions), -1), None, types, atomic=False)
    return np.asarray(dipoles, dtype=float).reshape(len(positions), 3)


if __name__ == '__main__':
    main(sys.argv[1])

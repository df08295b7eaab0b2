"""How accurate is a frozen DeePMD model on labelled frames: force RMSE (eV/Å) and energy RMSE (meV/atom).

Pure functions (numpy, ase, deepmd-kit; no AiiDA), used by ``qdtraps mlff test``. The energies are compared after
removing the mean offset per atom between model and reference: a model trained on one DFT setup reproduces energy
differences, while its absolute zero depends on the reference energies it was fitted with (``dp test`` reports
the raw difference; the offset is printed next to the RMSE so nothing is hidden).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

__all__ = ['frame_labels', 'model_errors', 'predict']


def frame_labels(frames: list[Atoms]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Reference energies (eV) and forces (eV/Å) of labelled frames, read from their calculator results (an extended
    xyz that ASE wrote with energy and forces) or from ``info['energy']`` / ``arrays['forces']``.

    :raises ValueError: naming the first frame without an energy or forces, or with non-finite ones.
    """
    if not frames:
        raise ValueError('no frames')
    energies, forces = [], []
    for index, atoms in enumerate(frames):
        results = atoms.calc.results if atoms.calc is not None else {}
        energy = results.get('energy', atoms.info.get('energy'))
        force = results.get('forces', atoms.arrays.get('forces'))
        if energy is None or force is None:
            missing = ' and '.join(name for name, value in (('energy', energy), ('forces', force)) if value is None)
            raise ValueError(f'frame {index} has no {missing} (an extended xyz with the DFT energy and forces is '
                             'needed)')
        force = np.asarray(force, dtype=float)
        if force.shape != (len(atoms), 3) or not np.isfinite(force).all() or not np.isfinite(float(energy)):
            raise ValueError(f'frame {index}: forces of shape {force.shape} for {len(atoms)} atoms, or non-finite '
                             'energy/forces')
        energies.append(float(energy))
        forces.append(force)
    return np.array(energies), forces


def predict(model_path: str, frames: list[Atoms]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (eV) and forces (eV/Å) of a frozen DeePMD model on each frame (non-periodic unless the frame has a
    cell and pbc).

    :raises ValueError: for an element the model's type map lacks, naming it.
    """
    from deepmd.infer import DeepPot

    model = DeepPot(model_path)
    type_map = list(model.get_type_map())
    energies, forces = [], []
    for index, atoms in enumerate(frames):
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(type_map))
        if unknown:
            raise ValueError(f'frame {index} has element(s) {unknown} that the model does not know (type map '
                             f'{type_map})')
        types = [type_map.index(symbol) for symbol in atoms.get_chemical_symbols()]
        cell = atoms.cell.array.reshape(1, 9) if atoms.pbc.all() else None
        energy, force, _ = model.eval(atoms.positions.reshape(1, -1), cell, types)
        energies.append(float(np.asarray(energy).ravel()[0]))
        forces.append(np.asarray(force, dtype=float).reshape(len(atoms), 3))
    return np.array(energies), forces


def model_errors(model_energies, model_forces, reference_energies, reference_forces, n_atoms) -> dict:
    """Force RMSE over all components (eV/Å), energy RMSE per atom after removing the mean per-atom offset
    (meV/atom), the offset itself (meV/atom) and the number of frames.

    :param n_atoms: atoms per frame (the per-atom energies divide by it).
    """
    n_atoms = np.asarray(n_atoms, dtype=float)
    model_e, reference_e = np.asarray(model_energies, float), np.asarray(reference_energies, float)
    if not model_e.shape == reference_e.shape == n_atoms.shape or model_e.ndim != 1 or model_e.size == 0:
        raise ValueError(f'energies {model_e.shape} / {reference_e.shape} and atom counts {n_atoms.shape} must be '
                         'one non-empty value per frame')
    if len(model_forces) != model_e.size or len(reference_forces) != model_e.size:
        raise ValueError('one force array per frame is needed for model and reference')
    difference = np.concatenate([(np.asarray(m, float) - np.asarray(r, float)).ravel()
                                 for m, r in zip(model_forces, reference_forces)])
    per_atom = (model_e - reference_e) / n_atoms
    offset = float(per_atom.mean())
    return {'force_rmse_eV_A': float(np.sqrt(np.mean(difference ** 2))),
            'energy_rmse_meV_atom': 1e3 * float(np.sqrt(np.mean((per_atom - offset) ** 2))),
            'energy_offset_meV_atom': 1e3 * offset, 'frames': int(model_e.size)}

"""Geometry optimisation of a cluster with a frozen DeePMD model (ASE BFGS + the DeePMD-kit ASE calculator).

Plain functions, no AiiDA: :func:`aiida_qdtraps.workchains.mlff_prerelax.mlff_prerelax` wraps them as a calcfunction.
Units: Å, eV, eV/Å.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms


def relax_with_model(atoms: Atoms, model_path: str, fmax: float = 0.05, steps: int = 200,
                     maxstep: float = 0.1) -> dict:
    """Relax ``atoms`` (non-periodic) with the frozen model at ``model_path`` until max |F| < ``fmax`` or ``steps``.

    :param maxstep: largest BFGS step per atom (Å); small, because a poor model can push atoms far.
    :returns: ``positions`` (Å), ``energies`` and ``fmax`` per BFGS step (eV, eV/Å), ``n_steps``, ``converged``,
        ``max_displacement`` (Å, largest move of an atom from the start).
    """
    from ase.optimize import BFGS
    from deepmd.calculator import DP

    if fmax <= 0 or steps < 1 or maxstep <= 0:
        raise ValueError(f'need fmax > 0, steps >= 1 and maxstep > 0; got {fmax}, {steps}, {maxstep}')
    work = atoms.copy()
    work.pbc = False
    work.calc = DP(model=model_path)
    start = work.get_positions()
    energies, largest = [], []

    def record():
        energies.append(float(work.get_potential_energy()))
        largest.append(float(np.linalg.norm(work.get_forces(), axis=1).max()))

    optimizer = BFGS(work, maxstep=maxstep, logfile=None)
    optimizer.attach(record, interval=1)
    converged = bool(optimizer.run(fmax=fmax, steps=steps))
    positions = work.get_positions()
    return {'positions': positions, 'energies': energies, 'fmax': largest, 'n_steps': int(optimizer.nsteps),
            'converged': converged,
            'max_displacement': float(np.linalg.norm(positions - start, axis=1).max())}


def ensemble_deviation(atoms: Atoms, model_paths: list[str]) -> float:
    """The largest force deviation over atoms of an ensemble of frozen models at ``atoms`` (eV/Å), ``max_devi_f`` of
    :func:`~aiida_qdtraps.analysis.mlff.model_deviation` (DeePMD-kit's ``model_devi``).

    :raises ValueError: for fewer than two models, or an element a model does not know (named).
    """
    from .mlff import model_deviation
    from .mlff_test import predict

    if len(model_paths) < 2:
        raise ValueError(f'an ensemble deviation needs at least two models, got {len(model_paths)}')
    forces = np.array([predict(path, [atoms])[1] for path in model_paths])  # (models, 1 frame, atoms, 3)
    return float(model_deviation(forces)['max_devi_f'][0])


def prerelax_verdict(result: dict, max_move: float, deviation: float | None = None,
                     max_deviation: float | None = None) -> tuple[bool, str]:
    """Whether to start the DFT relaxation from a model-relaxed geometry, and why.

    Only a converged model relaxation that moved no atom by more than ``max_move`` Å is used, and, when the ensemble's
    force ``deviation`` at its end geometry is given (:func:`ensemble_deviation`), only if it is at most
    ``max_deviation`` eV/Å. A model that is poor near the DFT minimum slides downhill into unphysical geometries (seen
    here: from the CP2K-relaxed In4PF9, the CI-sized model lowered its energy by 14.8 eV in 60 BFGS steps while its
    largest force rose from 0.24 to as much as 20 eV/Å, docs/mlff.md); the DFT relaxation should then start from the
    input geometry. The ensemble often knows where it has no data: at most end points of such slides the reference
    model's ensembles disagree by 0.3–4 eV/Å, at the DFT minimum by 0.04 eV/Å; at 6 of 43 they agreed to 0.07–0.16
    eV/Å, so the deviation lowers the risk but does not remove it (docs/mlff.md).
    """
    if not result['converged']:
        return False, f"not converged in {result['n_steps']} BFGS steps (max |F| {result['fmax'][-1]:.3g} eV/Å)"
    if result['max_displacement'] > max_move:
        return False, f"an atom moved {result['max_displacement']:.3g} Å > max_move {max_move} Å"
    if deviation is not None and max_deviation is not None and deviation > max_deviation:
        return False, (f'the ensemble force deviation at the end, {deviation:.3g} eV/Å, is above max_deviation '
                       f'{max_deviation} eV/Å')
    return True, f"converged in {result['n_steps']} BFGS steps, largest move {result['max_displacement']:.3g} Å" + (
        f', ensemble force deviation {deviation:.3g} eV/Å' if deviation is not None else '')

"""``mlff_prerelax`` calcfunction: a cheap pre-relaxation of a QD with a frozen DeePMD model before the DFT GEO_OPT.

Runs in the AiiDA process, which must have deepmd-kit (the project venv has; see docs/mlff.md). The numerics are in
:func:`aiida_qdtraps.analysis.mlff_relax.relax_with_model`.
"""

from __future__ import annotations

import pathlib
import tempfile

from aiida import orm
from aiida.engine import calcfunction

from ..analysis.mlff_relax import ensemble_deviation, prerelax_verdict, relax_with_model
from .build import copy_qd_tags

#: Defaults of the ``parameters`` input: force threshold (eV/Å), BFGS step cap, largest BFGS step per atom (Å), the
#: largest move of an atom (Å) and, with an ensemble, the largest force deviation at the end geometry (eV/Å) for which
#: the model-relaxed geometry is used.
PRERELAX_DEFAULTS = {'fmax': 0.05, 'steps': 200, 'maxstep': 0.1, 'max_move': 1.0, 'max_deviation': 0.2}


def prerelax_settings(parameters: dict) -> dict:
    """``parameters`` with defaults; raises ValueError naming an unknown key."""
    unknown = set(parameters) - set(PRERELAX_DEFAULTS)
    if unknown:
        raise ValueError(f'unknown MLFF pre-relaxation parameter(s) {sorted(unknown)}; allowed '
                         f'{sorted(PRERELAX_DEFAULTS)}')
    return {**PRERELAX_DEFAULTS, **parameters}


@calcfunction
def mlff_prerelax(structure: orm.StructureData, model: orm.SinglefileData, parameters: orm.Dict,
                  **ensemble: orm.SinglefileData) -> dict:
    """Relax ``structure`` with the frozen DeePMD ``model`` (ASE BFGS); same cell, kinds and QD tags.

    The model-relaxed geometry is used only if the relaxation converged, no atom moved more than ``max_move`` and,
    with an ``ensemble`` (further frozen models of the same type map, e.g. the other members of an active-learning
    ensemble), the force deviation of ``model`` and the ensemble at the end geometry is at most ``max_deviation``
    (:func:`~aiida_qdtraps.analysis.mlff_relax.prerelax_verdict`); otherwise ``structure`` is the input geometry.

    :returns: ``structure`` (StructureData) and ``output_parameters`` (Dict: ``accepted``, ``reason``, BFGS steps,
        converged, energies in eV, max |F| per step in eV/Å, largest displacement in Å, ``end_deviation`` in eV/Å
        with an ensemble).
    """
    settings = prerelax_settings(parameters.get_dict())
    atoms = structure.get_ase()
    members = [node for _, node in sorted(ensemble.items()) if node.uuid != model.uuid]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n, node in enumerate([model, *members]):
            paths.append(str(pathlib.Path(tmp) / f'model_{n}.pth'))
            pathlib.Path(paths[-1]).write_bytes(node.get_content('rb'))
        result = relax_with_model(atoms, paths[0], float(settings['fmax']), int(settings['steps']),
                                  float(settings['maxstep']))
        deviation = None
        if members:
            end = atoms.copy()
            end.positions = result['positions']
            deviation = ensemble_deviation(end, paths)
    accepted, reason = prerelax_verdict(result, float(settings['max_move']), deviation,
                                        float(settings['max_deviation']))
    relaxed = structure.clone()
    if accepted:
        relaxed.reset_sites_positions([tuple(p) for p in result['positions']])
    copy_qd_tags(structure, relaxed)
    summary = {key: result[key] for key in ('n_steps', 'converged', 'max_displacement', 'energies', 'fmax')}
    summary.update(accepted=accepted, reason=reason)
    if deviation is not None:
        summary.update(end_deviation=deviation, n_ensemble=len(members) + 1)
    summary.update(settings=settings, units={'energy': 'eV', 'force': 'eV/Å', 'length': 'Å'})
    return {'structure': relaxed, 'output_parameters': orm.Dict(summary)}

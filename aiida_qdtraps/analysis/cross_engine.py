"""Compare two relaxed geometries of one QD (same atom order) and their Bader charges: pure numpy/ase, no AiiDA.

- :func:`aligned_rmsd`: RMSD after the optimal rotation and translation (ase's Kabsch/quaternion fit,
  :func:`ase.build.minimize_rotation_and_translation`), plus the largest per-atom deviation.
- :func:`bond_lengths_by_pair`: mean/min/max length per element pair over the bonds of
  :func:`aiida_qdtraps.analysis.bonds.bond_pairs`, bonds taken from the *first* geometry for both, so the same bonds
  are compared.
- :func:`mean_by_element`: mean of a per-atom quantity (Bader Δq) per element.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import minimize_rotation_and_translation

from .bonds import bond_pairs
from .traps import CATION_ELEMENTS


def aligned_rmsd(reference: Atoms, other: Atoms) -> tuple[float, float, np.ndarray]:
    """``(rmsd, max_deviation, per_atom)`` in Å of ``other`` fitted onto ``reference`` (same atoms, same order).

    :raises ValueError: different numbers or order of elements.
    """
    if reference.get_chemical_symbols() != other.get_chemical_symbols():
        raise ValueError('the two geometries must hold the same atoms in the same order')
    fitted = other.copy()
    fitted.pbc = False
    target = reference.copy()
    target.pbc = False
    minimize_rotation_and_translation(target, fitted)
    per_atom = np.linalg.norm(fitted.positions - target.positions, axis=1)
    return float(np.sqrt(np.mean(per_atom**2))), float(per_atom.max()), per_atom


def bond_lengths_by_pair(geometries: Sequence[Atoms], scale: float = 1.25) -> dict[str, list[dict]]:
    """Per element pair ``'In-P'``: one ``{'mean', 'min', 'max', 'n'}`` (Å) per geometry, bonds of ``geometries[0]``."""
    first = geometries[0]
    symbols = first.get_chemical_symbols()
    pairs = bond_pairs(first.positions, symbols, scale=scale)
    groups: dict[str, list[tuple[int, int]]] = {}
    for i, j in pairs:
        key = '-'.join(sorted((symbols[i], symbols[j]), key=lambda s: (s not in CATION_ELEMENTS, s)))
        groups.setdefault(key, []).append((i, j))
    result = {}
    for key, bonds in sorted(groups.items()):
        index = np.array(bonds)
        rows = []
        for atoms in geometries:
            lengths = np.linalg.norm(atoms.positions[index[:, 0]] - atoms.positions[index[:, 1]], axis=1)
            rows.append({'mean': float(lengths.mean()), 'min': float(lengths.min()), 'max': float(lengths.max()),
                         'n': int(len(lengths))})
        result[key] = rows
    return result


def mean_by_element(symbols: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    """Mean of ``values`` per element symbol."""
    values = np.asarray(values, dtype=float)
    symbols = np.asarray(symbols)
    if len(symbols) != len(values):
        raise ValueError(f'{len(symbols)} symbols for {len(values)} values')
    return {el: float(values[symbols == el].mean()) for el in sorted(set(symbols.tolist()))}

"""Compare two relaxed geometries of one QD (same atom order) and their Bader charges: pure numpy/ase, no AiiDA.

- :func:`aligned_rmsd`: RMSD after the optimal rotation and translation (ase's Kabsch/quaternion fit,
  :func:`ase.build.minimize_rotation_and_translation`), plus the largest per-atom deviation.
- :func:`bond_lengths_by_pair`: mean/min/max length per element pair over the bonds of
  :func:`aiida_qdtraps.analysis.bonds.bond_pairs`, bonds taken from the *first* geometry for both, so the same bonds
  are compared.
- :func:`mean_by_element`: mean of a per-atom quantity (Bader Δq) per element.
- :func:`parse_projwfc_lowdin`: per-atom Löwdin populations (and per l) and the spilling parameter from projwfc.x's
  output, to set QE's Löwdin charges beside CP2K's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import minimize_rotation_and_translation

from ..builder.roles import CATION_ELEMENTS
from .bonds import bond_pairs


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


_LOWDIN_LINE = re.compile(r'Atom #\s*(\d+): total charge =\s*([-\d.]+),\s*([a-z]+)\s*=\s*([-\d.]+)')
_SPILLING = re.compile(r'Spilling Parameter:\s*([-\d.]+)')


def parse_projwfc_lowdin(stdout: str) -> dict:
    """Löwdin populations from projwfc.x's standard output (the block after ``Lowdin Charges:``).

    projwfc.x prints one line per atom and angular momentum (``Atom #   1: total charge =  12.2918, p =  1.3610,
    pz= ...``); the atom's total repeats on each. For a spin-polarised run only the first value per atom and l is kept.

    :returns: ``{'populations': [e per atom, in atom order], 'by_l': [{'s': .., 'p': .., 'd': ..} per atom],
        'spilling': float or None}``.
    :raises ValueError: if the output has no ``Lowdin Charges`` block (projwfc.x stopped early or it is not its
        output) or the atoms in it are not 1..N.
    """
    if 'Lowdin Charges' not in stdout:
        raise ValueError('no "Lowdin Charges" block in the projwfc.x output')
    block = stdout.split('Lowdin Charges', 1)[1]
    populations: dict[int, float] = {}
    by_l: dict[int, dict[str, float]] = {}
    for match in _LOWDIN_LINE.finditer(block):
        index = int(match.group(1)) - 1
        populations.setdefault(index, float(match.group(2)))
        by_l.setdefault(index, {}).setdefault(match.group(3), float(match.group(4)))
    if not populations or sorted(populations) != list(range(len(populations))):
        raise ValueError(f'incomplete Löwdin block in the projwfc.x output: atoms {sorted(i + 1 for i in populations)}')
    spilling = _SPILLING.search(block)
    return {'populations': [populations[i] for i in range(len(populations))],
            'by_l': [by_l[i] for i in range(len(by_l))],
            'spilling': float(spilling.group(1)) if spilling else None}


def atom_band_weights(orbital_positions: Sequence[Sequence[float]], orbital_weights: Sequence[Sequence[float]],
                      atom_positions: np.ndarray, tolerance: float = 0.01) -> np.ndarray:
    """Per-band, per-atom weights (bands × atoms) from per-orbital projections |<φ|ψ_n>|² (one k-point).

    Each orbital belongs to the atom at its ``position`` (Å, as projwfc.x reports the atomic positions).

    :raises ValueError: an orbital not sitting on an atom (within ``tolerance`` Å, modulo nothing: same cell).
    """
    atom_positions = np.asarray(atom_positions, dtype=float)
    weights = np.asarray(orbital_weights, dtype=float)  # orbitals × bands
    result = np.zeros((weights.shape[1], len(atom_positions)))
    for position, weight in zip(np.asarray(orbital_positions, dtype=float), weights):
        distance = np.linalg.norm(atom_positions - position, axis=1)
        atom = int(distance.argmin())
        if distance[atom] > tolerance:
            raise ValueError(f'orbital at {position.tolist()} Å is {distance[atom]:.3f} Å from the nearest atom')
        result[:, atom] += weight
    return result

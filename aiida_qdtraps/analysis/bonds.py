"""Bond graph and coordination of a QD from covalent radii (pure; no AiiDA).

Two atoms ``i``, ``j`` are bonded when ``d_ij < s_ij · (r_i + r_j)`` with ``r`` the covalent radii of Cordero et al.
(Dalton Trans. 2008, 2832; the table in :data:`ase.data.covalent_radii`) and ``s_ij`` a scale factor:

* trap labeling (Alexander et al.'s public script; docs/references.md, docs/traps.md): ``s = 1.25`` for
  hetero-element pairs and ``1.1`` for same-element pairs;
* charge flow (Llusar et al.'s reference code; docs/charge_flow.md): ``s = 1.2`` for every pair.

Per-pair overrides (``{('In', 'P'): 1.3}``, order-insensitive) win over both. Neighbour search uses a KD-tree, so
the cost is O(N log N) and a 100k-atom cluster takes well under a second. Lengths in Å.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from ase.data import atomic_numbers, covalent_radii
from scipy import sparse
from scipy.spatial import cKDTree

#: Scale factors of the trap-labeling bond rule (Alexander et al.'s code): hetero pairs, same-element pairs.
LABELING_SCALE = 1.25
LABELING_SAME_ELEMENT_SCALE = 1.1
#: Scale factor of the charge-flow bond rule (Llusar et al.'s reference).
CHARGE_FLOW_SCALE = 1.2


def _numbers(symbols: Sequence[str]) -> np.ndarray:
    try:
        return np.array([atomic_numbers[s] for s in symbols], dtype=int)
    except KeyError as exc:
        raise ValueError(f'unknown element symbol {exc.args[0]!r}') from None


def bond_pairs(positions: np.ndarray, symbols: Sequence[str], scale: float = LABELING_SCALE,
               same_element_scale: float | None = LABELING_SAME_ELEMENT_SCALE,
               pair_scale: Mapping[tuple[str, str], float] | None = None) -> np.ndarray:
    """Bonded atom pairs ``(n_bonds, 2)`` with ``i < j``, sorted lexicographically.

    :param positions: Cartesian coordinates (N, 3) in Å (a finite cluster; no periodic images).
    :param symbols: element symbol per atom.
    :param scale: scale factor ``s`` for pairs of different elements.
    :param same_element_scale: scale factor for same-element pairs (``None``: use ``scale``).
    :param pair_scale: per element-pair overrides, e.g. ``{('In', 'F'): 1.3}``.
    """
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f'positions must have shape (N, 3), got {positions.shape}')
    if len(symbols) != len(positions):
        raise ValueError(f'{len(symbols)} symbols for {len(positions)} positions')
    for name, value in (('scale', scale), ('same_element_scale', same_element_scale)):
        if value is not None and not value > 0:
            raise ValueError(f'{name} must be positive, got {value}')
    if len(positions) < 2:
        return np.zeros((0, 2), dtype=int)
    numbers = _numbers(symbols)
    radii = covalent_radii[numbers]
    overrides = {}
    for (a, b), value in (pair_scale or {}).items():
        if not value > 0:
            raise ValueError(f'pair_scale for {a}-{b} must be positive, got {value}')
        za, zb = _numbers([a, b])
        overrides[(min(za, zb), max(za, zb))] = float(value)
    max_scale = max([scale, same_element_scale or scale, *overrides.values()])
    pairs = cKDTree(positions).query_pairs(2 * radii.max() * max_scale, output_type='ndarray')
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=int)
    i, j = pairs[:, 0], pairs[:, 1]
    factor = np.full(len(pairs), float(scale))
    if same_element_scale is not None:
        factor[numbers[i] == numbers[j]] = same_element_scale
    for (za, zb), value in overrides.items():
        lo, hi = np.minimum(numbers[i], numbers[j]), np.maximum(numbers[i], numbers[j])
        factor[(lo == za) & (hi == zb)] = value
    distance = np.linalg.norm(positions[i] - positions[j], axis=1)
    bonded = pairs[distance < factor * (radii[i] + radii[j])]
    bonded = np.sort(bonded, axis=1)
    return bonded[np.lexsort((bonded[:, 1], bonded[:, 0]))]


def coordination_numbers(pairs: np.ndarray, n_atoms: int) -> np.ndarray:
    """Number of bonds per atom from a pair list."""
    return np.bincount(np.asarray(pairs, dtype=int).ravel(), minlength=n_atoms)


def adjacency(pairs: np.ndarray, n_atoms: int) -> sparse.csr_matrix:
    """Symmetric sparse adjacency matrix (CSR, int8) of the bond graph."""
    pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
    data = np.ones(2 * len(pairs), dtype=np.int8)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return sparse.csr_matrix((data, (rows, cols)), shape=(n_atoms, n_atoms))


def neighbour_lists(pairs: np.ndarray, n_atoms: int) -> list[np.ndarray]:
    """Sorted neighbour indices of every atom."""
    adj = adjacency(pairs, n_atoms)
    adj.sort_indices()
    return [adj.indices[adj.indptr[a]:adj.indptr[a + 1]].copy() for a in range(n_atoms)]

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


#: Bond rule of :func:`like_charge_bonds`: tighter than the labeling rule, so that the close cation–cation contacts of
#: a relaxed surface (Cd–Cd 3.31 Å in the GFN1-xTB-relaxed Cd16Se13Cl6, 1.15 × the covalent sum) or Cs–Pb in a
#: perovskite are not read as bonds, while a P–F bond (1.62 Å, 0.99 ×) is.
LIKE_CHARGE_SCALE = 1.1


def like_charge_bonds(before: np.ndarray, after: np.ndarray, symbols: Sequence[str],
                      formal_charges: Mapping[str, int], scale: float = LIKE_CHARGE_SCALE) -> np.ndarray:
    """Bonds that ``after`` has and ``before`` has not, between two atoms whose formal charges have the same sign:
    pairs ``(n, 2)`` with ``i < j``.

    Such a bond is a change of chemistry rather than a relaxation: an F⁻ that moved from In³⁺ onto P³⁻, or two
    anions that fused. Elements without a formal charge in ``formal_charges`` (C, N, ... of organic ligands) are
    never counted. Both geometries are bonded with one rule, ``d < scale · (r_i + r_j)`` (:func:`bond_pairs`).

    :param before: positions (N, 3) in Å of the start geometry.
    :param after: positions (N, 3) in Å of the same atoms after the change.
    :param formal_charges: element → formal oxidation state, e.g. ``{'In': 3, 'P': -3, 'F': -1}``.
    """
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if before.shape != after.shape:
        raise ValueError(f'the two geometries differ in shape: {before.shape} and {after.shape}')
    sign = np.array([np.sign(formal_charges.get(s, 0)) for s in symbols], dtype=int)
    old = {tuple(p) for p in bond_pairs(before, symbols, scale, None)}
    new = [p for p in bond_pairs(after, symbols, scale, None)
           if tuple(p) not in old and sign[p[0]] != 0 and sign[p[0]] == sign[p[1]]]
    return np.array(new, dtype=int).reshape(-1, 2)


def rearrangement(before: np.ndarray, after: np.ndarray, symbols: Sequence[str],
                  formal_charges: Mapping[str, int]) -> dict:
    """How far a geometry moved from ``before`` to ``after`` (same atoms, same frame): ``rmsd`` and
    ``max_displacement`` (Å, no alignment: the two come from one optimisation in one box), the bonds made and broken
    (labeling bond rule) and the new bonds between like formal charges (:func:`like_charge_bonds`, as
    ``'P1-F5'`` strings with 0-based atom indices)."""
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    displacement = np.linalg.norm(after - before, axis=1)
    old = {tuple(p) for p in bond_pairs(before, symbols)}
    new = {tuple(p) for p in bond_pairs(after, symbols)}
    like = like_charge_bonds(before, after, symbols, formal_charges)
    return {'rmsd': float(np.sqrt(np.mean(displacement ** 2))), 'max_displacement': float(displacement.max()),
            'bonds_made': len(new - old), 'bonds_broken': len(old - new),
            'like_charge_bonds': [f'{symbols[i]}{i}-{symbols[j]}{j}' for i, j in like]}

"""Per-atom roles (cation / anion / ligand) and domains (core / interlayer / shell / ligand) of a QD.

The one authority on roles, domains and the element tables behind them: the builder, the trap labels
(:mod:`aiida_qdtraps.analysis.traps`) and the charge flow (:mod:`aiida_qdtraps.analysis.charge_flow`) all use it.
Pure functions on :class:`ase.Atoms` (or, where only elements matter, a sequence of element symbols); no AiiDA
import. The builder stores roles and domains as ``atoms.arrays['qd_role']`` and ``atoms.arrays['qd_domain']`` (numpy
str arrays); for structures from elsewhere :func:`infer_roles` and :func:`infer_domains` derive them from the
elements and the bond graph.

Element tables (used when a structure carries no tags):

* :data:`CATION_ELEMENTS`: the lattice cations of :data:`~.crystal.MATERIALS` (In, Ga, Cd, Zn, Pb), the
  perovskite A-site Cs, and Al, Hg, Cu, Ag, Li, Na, K;
* :data:`ANION_ELEMENTS`: the lattice anions of :data:`~.crystal.MATERIALS` (P, As, S, Se) and Sb, Te;
* :data:`LIGAND_ELEMENTS`: H, C, N, O, F, Cl, Br, I: the builder's ligands (X-type halides and H, acetate CH3COO⁻)
  and the amines of imported structures. Every element in neither ion table is a ligand, these included; a halide
  that is a lattice anion (Br in CsPbBr3) needs the builder's tags or ``anions=``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .crystal import ANIONS, CATIONS, MATERIALS

ROLES = ('cation', 'anion', 'ligand')
DOMAINS = ('core', 'interlayer', 'shell', 'ligand')
ROLE_DTYPE, DOMAIN_DTYPE = '<U8', '<U10'

#: Elements that are cations when a structure has no role tags.
CATION_ELEMENTS = frozenset(CATIONS | {'Cs', 'Al', 'Hg', 'Cu', 'Ag', 'Li', 'Na', 'K'})
#: Elements that are (lattice) anions when a structure has no role tags.
ANION_ELEMENTS = frozenset(ANIONS | {'Sb', 'Te'})
#: The elements of the ligands: halides and H (X-type), C and O of carboxylates, N of amines.
LIGAND_ELEMENTS = frozenset({'H', 'C', 'N', 'O', 'F', 'Cl', 'Br', 'I'})


def _symbols(atoms: Atoms | Sequence[str]) -> np.ndarray:
    return np.array(atoms.get_chemical_symbols() if isinstance(atoms, Atoms) else list(atoms), dtype=str)


def infer_roles(atoms: Atoms | Sequence[str], cations: Iterable[str] | None = None,
                anions: Iterable[str] | None = None) -> np.ndarray:
    """Role of every atom from its element: ``'cation'``, ``'anion'`` or ``'ligand'`` (everything else).

    :param atoms: the structure, or its element symbols.
    :param cations: elements counted as cations (default: :data:`CATION_ELEMENTS`).
    :param anions: elements counted as anions (default: :data:`ANION_ELEMENTS`). Pass e.g. ``anions={'Se'}`` when S
        is a thiolate ligand rather than a lattice anion.
    """
    cations = set(CATION_ELEMENTS if cations is None else cations)
    anions = set(ANION_ELEMENTS if anions is None else anions)
    if cations & anions:
        raise ValueError(f'elements cannot be both cation and anion: {sorted(cations & anions)}')
    symbols = _symbols(atoms)
    roles = np.full(len(symbols), 'ligand', dtype=ROLE_DTYPE)
    roles[np.isin(symbols, list(cations))] = 'cation'
    roles[np.isin(symbols, list(anions))] = 'anion'
    return roles


def roles_of(atoms: Atoms) -> np.ndarray:
    """The ``qd_role`` array when the atoms carry one, else :func:`infer_roles`."""
    if 'qd_role' in atoms.arrays:
        return np.asarray(atoms.arrays['qd_role']).astype(ROLE_DTYPE)
    return infer_roles(atoms)


def bonded_pairs(atoms: Atoms, scale: float = 1.25) -> np.ndarray:
    """Pairs ``(i, j)``, i < j, closer than ``scale`` × the sum of covalent radii (Cordero), by KD-tree."""
    if len(atoms) < 2:
        return np.zeros((0, 2), dtype=int)
    radii = covalent_radii[atoms.numbers]
    pairs = cKDTree(atoms.positions).query_pairs(2 * radii.max() * scale, output_type='ndarray')
    d = np.linalg.norm(atoms.positions[pairs[:, 0]] - atoms.positions[pairs[:, 1]], axis=1)
    return pairs[d < scale * (radii[pairs[:, 0]] + radii[pairs[:, 1]])]


def ligand_units(atoms: Atoms, roles: np.ndarray | None = None) -> list[np.ndarray]:
    """Indices of each ligand molecule/ion (connected ligand atoms), ordered by their first atom index."""
    roles = roles_of(atoms) if roles is None else roles
    ligand = np.where(roles == 'ligand')[0]
    if len(ligand) == 0:
        return []
    pairs = bonded_pairs(atoms[ligand]) if len(ligand) > 1 else np.zeros((0, 2), int)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(ligand), len(ligand)))
    _, labels = connected_components(graph, directed=False)
    order = {}
    for position, label in enumerate(labels):
        order.setdefault(label, []).append(ligand[position])
    return [np.array(indices) for indices in order.values()]


def infer_domains(atoms: Atoms | Sequence[str], roles: np.ndarray | None = None,
                  core_elements: Iterable[str] | None = None) -> np.ndarray:
    """Domain of every atom: ligands → ``'ligand'``; inorganic atoms → ``'core'``, ``'shell'`` or ``'interlayer'``.

    :param atoms: the structure; its element symbols are enough without ``core_elements``.
    :param roles: the roles (default: :func:`roles_of` the structure, :func:`infer_roles` of bare symbols).
    :param core_elements: elements of the core material (e.g. ``{'In', 'As'}`` for InAs@CdSe). When omitted, all
        inorganic atoms are core (a core-only QD). Otherwise atoms of other elements are shell, and shell atoms
        bonded to a core-element atom, or core-element atoms bonded to a shell atom, are interlayer.
    """
    if roles is None:
        roles = roles_of(atoms) if isinstance(atoms, Atoms) else infer_roles(atoms)
    roles = np.asarray(roles)
    domains = np.where(roles == 'ligand', 'ligand', 'core').astype(DOMAIN_DTYPE)
    if core_elements is None:
        return domains
    if not isinstance(atoms, Atoms):
        raise TypeError('core_elements needs the structure (ase Atoms): shell and interlayer come from its bonds')
    symbols = np.array(atoms.get_chemical_symbols())
    inorganic = roles != 'ligand'
    is_core = inorganic & np.isin(symbols, list(core_elements))
    domains[inorganic & ~is_core] = 'shell'
    pairs = bonded_pairs(atoms)
    pairs = pairs[inorganic[pairs[:, 0]] & inorganic[pairs[:, 1]]]
    mixed = pairs[is_core[pairs[:, 0]] != is_core[pairs[:, 1]]]
    touches_other = np.zeros(len(atoms), bool)
    touches_other[mixed.ravel()] = True
    # a shell atom next to the core is interlayer; a core-element atom among shell atoms only is interlayer too
    core_neighbours = np.bincount(pairs[is_core[pairs[:, 1]], 0], minlength=len(atoms)) + \
        np.bincount(pairs[is_core[pairs[:, 0]], 1], minlength=len(atoms))
    domains[inorganic & ~is_core & touches_other] = 'interlayer'
    domains[is_core & touches_other & (core_neighbours == 0)] = 'interlayer'
    return domains


def material_of(symbols: Iterable[str]) -> str | None:
    """The key of :data:`MATERIALS` whose cation and anion are both among ``symbols`` (first match), else None."""
    present = set(symbols)
    for name, (_, cation, anion, _) in MATERIALS.items():
        if cation in present and anion in present:
            return name
    return None


def read_structure(path: str, format: str | None = None, cations: Iterable[str] | None = None,
                   anions: Iterable[str] | None = None, core_elements: Iterable[str] | None = None,
                   index: int | str = -1) -> Atoms:
    """Read a QD from any ASE format (xyz, extxyz, cif, ...) and attach ``qd_role`` and ``qd_domain``.

    Roles and domains already in the file (an extxyz written by the builder) are kept; otherwise they are inferred
    with :func:`infer_roles` / :func:`infer_domains` (see there for ``cations``, ``anions``, ``core_elements``).
    """
    from ase.io import read

    atoms = read(path, format=format, index=index)
    if not len(atoms):
        raise ValueError(f'{path!s} holds no atoms')
    if 'qd_role' not in atoms.arrays:
        atoms.arrays['qd_role'] = infer_roles(atoms, cations, anions)
    if 'qd_domain' not in atoms.arrays:
        atoms.arrays['qd_domain'] = infer_domains(atoms, atoms.arrays['qd_role'], core_elements)
    return atoms

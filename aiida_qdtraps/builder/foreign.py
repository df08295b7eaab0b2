"""QDs from outside the builder: cluster check, per-atom roles, ligand groups, formal charge and multiplicity.

Pure functions on :class:`ase.Atoms`; no AiiDA import. A structure read from an xyz, extended xyz or CIF file is

1. checked to be a finite cluster (:func:`as_cluster`): with periodic boundaries, a bond network that reaches its
   own periodic image is a crystal and refused (``not a cluster``), as is a cluster closer to its images than
   :data:`CONTACT_SCALE` × the sum of covalent radii (no vacuum); a cluster that was merely wrapped into its cell
   is made whole again;
2. split into roles (:func:`classify_qd`): core cations and anions from the element tables of :mod:`.roles` (or
   the ``cations``/``anions`` given), except that an anion-table element bonded to carbon is a ligand atom (the S
   of a thiolate on CdS); every other atom belongs to a ligand unit (atoms connected by ligand–ligand bonds, bonds
   from :func:`.roles.bonded_pairs`), recognised by connectivity as one of :data:`LIGAND_GROUPS`;
3. given a formal charge: the sum of the formal oxidation states of the core ions (:data:`FORMAL_CHARGES`) and of
   the ligand units' charges, and a multiplicity guess: 1 for an even electron count (sum of atomic numbers minus
   the charge), 2 for an odd one.

Atoms that fit nowhere (a lone C, a hydrocarbon without a binding group, an O outside a carboxyl group, an element
in no table) are refused with a :class:`ValueError` that names every one of them by index and element.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .crystal import FORMAL_CHARGES as LATTICE_FORMAL_CHARGES
from .roles import ANION_ELEMENTS, CATION_ELEMENTS, DOMAIN_DTYPE, ROLE_DTYPE, bonded_pairs, infer_domains

#: Bond rule: closer than this × the sum of covalent radii (as :func:`.roles.bonded_pairs`).
BOND_SCALE = 1.25
#: A periodic cluster must keep its images farther than this × the sum of covalent radii (its vacuum).
CONTACT_SCALE = 1.6
#: Formal oxidation states of core ions: the builder's (:data:`.crystal.FORMAL_CHARGES`) and those of the other
#: elements of the ion tables of :mod:`.roles`, plus O (an oxide, when given as an anion).
FORMAL_CHARGES: dict[str, int] = {
    **LATTICE_FORMAL_CHARGES,
    'Al': 3, 'Hg': 2, 'Cu': 1, 'Ag': 1, 'Li': 1, 'Na': 1, 'K': 1, 'Sb': -3, 'Te': -2, 'O': -2,
}
HALIDES = frozenset({'F', 'Cl', 'Br', 'I'})
#: Elements a ligand unit of more than one atom may hold.
ORGANIC_ELEMENTS = frozenset({'H', 'C', 'N', 'O', 'S'})
#: Recognised ligand groups → formal charge (e) of one group.
LIGAND_GROUPS: dict[str, int] = {
    'halide': -1,            # a lone F, Cl, Br or I (X-type)
    'proton': 1,             # a lone H bonded to a core anion (the builder's H on Se/P)
    'hydride': -1,           # a lone H bonded to core cations only
    'carboxylate': -1,       # R-COO⁻: a C with two O whose only other neighbours are metals
    'carboxylic_acid': 0,    # R-COOH
    'amine': 0,              # N with three C/H neighbours (L-type)
    'ammonium': 1,           # N with four C/H neighbours
    'thiolate': -1,          # S with one C neighbour
    'thiol': 0,              # S with one C and one H neighbour
}
GROUP_DTYPE = '<U32'


class ForeignQd(NamedTuple):
    """What :func:`classify_qd` found.

    ``roles``: per atom ``'cation'``, ``'anion'`` or ``'ligand'``; ``groups``: per atom its ligand group
    (``'carboxylate'``, ``'amine+thiolate'`` for a unit with both, ...) or its role for core atoms; ``units``: per
    ligand unit ``(atom indices, group, charge)``; ``charge`` in e; ``electrons``: sum of atomic numbers minus
    the charge; ``multiplicity``: 1 (even) or 2 (odd electron count).
    """

    roles: np.ndarray
    groups: np.ndarray
    units: list[tuple[np.ndarray, str, int]]
    charge: int
    electrons: int
    multiplicity: int

    def ligand_counts(self) -> dict[str, int]:
        """Number of ligand units per group."""
        counts: dict[str, int] = {}
        for _, group, _ in self.units:
            counts[group] = counts.get(group, 0) + 1
        return dict(sorted(counts.items()))


def _name(atoms: Atoms, indices: Iterable[int], limit: int = 30) -> str:
    symbols = atoms.get_chemical_symbols()
    indices = [int(i) for i in indices]
    text = ', '.join(f'{i} {symbols[i]}' for i in indices[:limit])
    return text + (f' and {len(indices) - limit} more' if len(indices) > limit else '')


def _periodic_neighbours(atoms: Atoms, scale: float):
    cutoffs = covalent_radii[atoms.numbers] * scale
    return neighbor_list('ijS', atoms, cutoffs, self_interaction=False)


def as_cluster(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` as a finite cluster with ``pbc`` False (the cell kept), or ValueError ``not a cluster``.

    Without periodic boundaries (or without a cell) the atoms are returned as they are. With them, every bond
    (:data:`BOND_SCALE`) is followed through the periodic images: a bond network that closes on a shifted copy of
    itself is a crystal and refused, naming the bond; a bonded group split by the cell boundary is made whole and,
    with the other groups brought next to it, centred in the cell. A cluster whose atoms come closer to a periodic
    image than :data:`CONTACT_SCALE` × the sum of covalent radii fills its cell without vacuum and is refused too.
    """
    atoms = atoms.copy()
    periodic = np.asarray(atoms.pbc, bool) & (atoms.cell.lengths() > 0)
    if not periodic.any():
        atoms.pbc = False
        return atoms
    atoms.pbc = periodic
    n = len(atoms)
    first, second, shift = _periodic_neighbours(atoms, BOND_SCALE)
    image = np.zeros((n, 3), int)
    seen = np.zeros(n, bool)
    order = np.argsort(first, kind='stable')
    first, second, shift = first[order], second[order], shift[order]
    starts = np.searchsorted(first, np.arange(n + 1))
    labels = np.full(n, -1)
    for root in range(n):
        if seen[root]:
            continue
        seen[root], labels[root], todo = True, root, [root]
        while todo:
            a = todo.pop()
            for k in range(starts[a], starts[a + 1]):
                b, expected = second[k], image[a] + shift[k]
                if not seen[b]:
                    seen[b], labels[b], image[b] = True, root, expected
                    todo.append(b)
                elif not np.array_equal(image[b], expected):
                    raise ValueError(
                        f'not a cluster: the bonds form a periodic crystal (the bond from atom {a} {atoms[a].symbol} '
                        f'to atom {b} {atoms[b].symbol} leads into the periodic image of the bond network shifted '
                        f'by {(expected - image[b]).tolist()} cells); import a finite QD (a cluster in a cell with '
                        'vacuum, or an xyz file)')
    moved = bool(image.any())
    positions = atoms.positions + image @ atoms.cell.array
    # bring every other bonded group next to the largest one (a ligand wrapped to the far side of the cell)
    sizes = np.bincount(labels, minlength=n)
    main = int(np.argmax(sizes))
    centre = positions[labels == main].mean(axis=0)
    inverse = np.linalg.pinv(atoms.cell.array)
    for label in np.unique(labels):
        if label == main:
            continue
        members = labels == label
        fractional = (centre - positions[members].mean(axis=0)) @ inverse
        lattice_shift = np.where(periodic, np.round(fractional), 0.0)
        if lattice_shift.any():
            positions[members] += lattice_shift @ atoms.cell.array
            moved = True
    atoms.positions = positions
    first, second, shift = _periodic_neighbours(atoms, CONTACT_SCALE)
    across = np.flatnonzero(shift.any(axis=1))
    if len(across):
        a, b = first[across[0]], second[across[0]]
        distance = np.linalg.norm(atoms.positions[b] + shift[across[0]] @ atoms.cell.array - atoms.positions[a])
        raise ValueError(
            f'not a cluster: the cell is filled without vacuum (atom {a} {atoms[a].symbol} is {distance:.2f} Å from '
            f'a periodic image of atom {b} {atoms[b].symbol}); import a finite QD in a cell with vacuum around it')
    if moved:
        atoms.translate(atoms.cell.array.sum(axis=0) / 2 - atoms.positions.mean(axis=0))
    atoms.pbc = False
    return atoms


def _check_tables(cations, anions) -> tuple[set[str], set[str]]:
    cations = set(CATION_ELEMENTS if cations is None else cations)
    anions = set(ANION_ELEMENTS if anions is None else anions)
    if cations & anions:
        raise ValueError(f'elements cannot be both cation and anion: {sorted(cations & anions)}')
    return cations, anions


def classify_qd(atoms: Atoms, cations: Iterable[str] | None = None, anions: Iterable[str] | None = None,
                formal_charges: Mapping[str, int] | None = None, roles: Iterable[str] | None = None) -> ForeignQd:
    """Roles, ligand groups, formal charge and multiplicity of a finite QD (see the module docstring for the rules).

    :param atoms: a finite cluster (see :func:`as_cluster`); bonds are taken without periodic images.
    :param cations: elements of the core cations (default :data:`.roles.CATION_ELEMENTS`).
    :param anions: elements of the core anions (default :data:`.roles.ANION_ELEMENTS`); one bonded to C is a ligand.
    :param formal_charges: formal oxidation states of core elements, overriding :data:`FORMAL_CHARGES`.
    :param roles: per-atom roles to keep (e.g. the ``qd_role`` column of the builder's extended xyz); only the
        ligand atoms are then classified, and a core atom's charge is still that of its element.
    :raises ValueError: naming every atom (index and element) that is no core ion and in no recognised ligand, or
        a core element without a formal charge.
    """
    cations, anions = _check_tables(cations, anions)
    charges = {**FORMAL_CHARGES, **dict(formal_charges or {})}
    symbols = np.array(atoms.get_chemical_symbols())
    n = len(atoms)
    if not n:
        raise ValueError('the structure holds no atoms')
    pairs = bonded_pairs(atoms, BOND_SCALE)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in pairs:
        neighbours[i].append(int(j))
        neighbours[j].append(int(i))
    if roles is not None:
        role = np.asarray(list(roles)).astype(ROLE_DTYPE)
        if len(role) != n:
            raise ValueError(f'{len(role)} roles for {n} atoms')
        is_cation, is_anion = role == 'cation', role == 'anion'
    else:
        bonded_to_carbon = np.array([any(symbols[k] == 'C' for k in neighbours[i]) for i in range(n)], bool)
        is_cation = np.isin(symbols, list(cations))
        is_anion = np.isin(symbols, list(anions)) & ~bonded_to_carbon
    role = np.where(is_cation, 'cation', np.where(is_anion, 'anion', 'ligand')).astype(ROLE_DTYPE)
    groups = role.astype(GROUP_DTYPE)

    core = np.flatnonzero(role != 'ligand')
    no_charge = [i for i in core if symbols[i] not in charges]
    if no_charge:
        raise ValueError(f'no formal charge for core element(s) {sorted(set(symbols[no_charge]))} (atoms '
                         f'{_name(atoms, no_charge)}); give formal_charges, e.g. {{"{symbols[no_charge[0]]}": 2}}')
    charge = int(sum(charges[s] for s in symbols[core]))

    ligand = np.flatnonzero(role == 'ligand')
    inner = pairs[(role[pairs[:, 0]] == 'ligand') & (role[pairs[:, 1]] == 'ligand')]
    graph = coo_matrix((np.ones(len(inner)), (inner[:, 0], inner[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    units, problems = [], []
    for label in dict.fromkeys(labels[ligand]):
        unit = np.flatnonzero((labels == label) & (role == 'ligand'))
        found = _ligand_group(unit, symbols, neighbours, role)
        if isinstance(found, str):
            problems.append(f'{_name(atoms, unit)} ({atoms[unit].get_chemical_formula()}: {found})')
            continue
        group, unit_charge = found
        units.append((unit, group, unit_charge))
        groups[unit] = group
        charge += unit_charge
    if problems:
        raise ValueError(
            'cannot classify these atoms as core ions or a recognised ligand: ' + '; '.join(problems) +
            f'. Core cations: {sorted(cations)}, core anions: {sorted(anions)} (give cations/anions for others); '
            f'ligands: lone halides F/Cl/Br/I, lone H on a core atom, carboxylates, amines, thiolates')
    electrons = int(atoms.numbers.sum()) - charge
    return ForeignQd(role, groups, units, charge, electrons, 1 if electrons % 2 == 0 else 2)


def _ligand_group(unit, symbols, neighbours, role) -> tuple[str, int] | str:
    """``(group, charge)`` of one ligand unit, or the reason it is no recognised ligand."""
    elements = symbols[unit]
    if len(unit) == 1:
        atom, element = int(unit[0]), elements[0]
        if element in HALIDES:
            return 'halide', LIGAND_GROUPS['halide']
        if element == 'H':
            if any(role[k] == 'anion' for k in neighbours[atom]):
                return 'proton', LIGAND_GROUPS['proton']
            if any(role[k] == 'cation' for k in neighbours[atom]):
                return 'hydride', LIGAND_GROUPS['hydride']
            return 'an H bonded to no core atom'
        return f'a lone {element} in no recognised ligand'
    strangers = sorted(set(elements) - ORGANIC_ELEMENTS)
    if strangers:
        return f'{strangers} in a molecular ligand'
    members = set(int(i) for i in unit)
    inside = {int(i): [k for k in neighbours[i] if k in members] for i in unit}

    def count(atom, element):
        return sum(symbols[k] == element for k in inside[atom])

    found: list[str] = []
    claimed: set[int] = set()
    for atom in unit:
        element, degree = symbols[atom], len(inside[atom])
        if element == 'H' and degree != 1:
            return f'H {atom} with {degree} bonds in the ligand'
        if element == 'C' and not 2 <= degree <= 4:
            return f'C {atom} with {degree} bonds in the ligand'
        if element == 'N':
            if count(atom, 'C') + count(atom, 'H') != degree or degree not in (3, 4) or not count(atom, 'C'):
                return f'N {atom} is no amine N (three or four C/H neighbours, one C at least)'
            found.append('amine' if degree == 3 else 'ammonium')
        if element == 'S':
            if count(atom, 'C') != 1 or count(atom, 'H') != degree - 1 or degree > 2:
                return f'S {atom} is no thiolate S (one C neighbour)'
            found.append('thiolate' if degree == 1 else 'thiol')
        if element == 'C':
            oxygens = [k for k in inside[atom] if symbols[k] == 'O']
            if len(oxygens) == 2 and all(set(inside[o]) - {atom} <= {k for k in inside[o] if symbols[k] == 'H'}
                                         for o in oxygens):
                protons = sum(count(o, 'H') for o in oxygens)
                if protons > 1:
                    return f'C {atom} carries two OH groups'
                found.append('carboxylate' if protons == 0 else 'carboxylic_acid')
                claimed.update(oxygens)
    loose = [int(a) for a in unit if symbols[a] == 'O' and a not in claimed]
    if loose:
        return f'O {loose[0]} outside a carboxyl group'
    if not found:
        return 'no carboxylate, amine or thiolate group'
    return '+'.join(sorted(set(found))), int(sum(LIGAND_GROUPS[g] for g in found))


def label_qd(atoms: Atoms, cations: Iterable[str] | None = None, anions: Iterable[str] | None = None,
             core_elements: Iterable[str] | None = None, formal_charges: Mapping[str, int] | None = None,
             keep_roles: bool = True) -> tuple[Atoms, ForeignQd]:
    """A foreign QD made a cluster (:func:`as_cluster`) and classified (:func:`classify_qd`).

    Returns the cluster with the arrays ``qd_role``, ``qd_domain`` (:func:`.roles.infer_domains` with
    ``core_elements``) and ``qd_group``, and the classification. With ``keep_roles``, ``qd_role``/``qd_domain``
    arrays already on ``atoms`` (the builder's extended xyz) are kept.
    """
    cluster = as_cluster(atoms)
    given = cluster.arrays.get('qd_role') if keep_roles else None
    found = classify_qd(cluster, cations, anions, formal_charges, roles=given)
    cluster.arrays['qd_role'] = found.roles
    if not (keep_roles and 'qd_domain' in cluster.arrays):
        cluster.arrays['qd_domain'] = np.asarray(infer_domains(cluster, found.roles, core_elements), DOMAIN_DTYPE)
    cluster.arrays['qd_group'] = found.groups
    return cluster, found

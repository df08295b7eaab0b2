"""Surface vacancies of a passivated QD (Alexander et al.: F⁻, P³⁻, InFₓ and InP vacancies; nano-CAT's MXₙ removal).

Pure functions on :class:`ase.Atoms`; no AiiDA import. Lengths in Å, charges in e.

Vacancy kinds:

* ``'ligand'``: one ligand unit (X⁻, H⁺ or an acetate);
* ``'anion'``: one surface anion (core coordination below bulk) with the ligands bound to it;
* ``'cation'``: one surface cation with its ligands (MXₙ, e.g. InF₂ or InF₃);
* ``'pair'``: a bonded surface cation–anion pair with the ligands of both (e.g. InP).

A removal that would leave a neighbouring atom with fewer than ``min_bonds`` (default 2) inorganic bonds is not a
candidate. ``min_bonds=1`` also accepts a neighbour left with one core bond plus its ligands, like the corner cations
that carving with ``min_core_bonds=1`` keeps anyway; it is what gives the small QDs anion and pair sites (the 16-atom
X₆P₄F₆ cage: 4 equivalent P³⁻ and 12 FXP sites at 1, none at 2; the 44-atom cation-centred InP sphere: P³⁻ sites at
1, pair sites only at 2).

Symmetry-distinct sites: two candidate removals (of the same atoms' elements) are equivalent when the multiset of
distances, element by element, from the centroid of the removed atoms to every inorganic atom of the QD agrees to
0.01 Å (a removal and its image under any point-group operation of the core always agree; the converse is a
fingerprint, exact for the QDs tested). This is a KD-tree-free but vectorised O(sites × atoms) pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from .crystal import bulk_coordination
from .passivation import adjust_charge, core_bond_length, net_charge, remove_atoms
from .roles import ligand_units, roles_of

VACANCY_KINDS = ('ligand', 'anion', 'cation', 'pair')


@dataclass(frozen=True)
class VacancySite:
    """One symmetry-distinct vacancy: the atoms a removal takes (a representative) and how many equivalent ones exist.

    :param charge_change: change of the QD's net charge (e) when these atoms are removed.
    """

    kind: str
    atoms: tuple[int, ...]
    formula: str
    charge_change: int
    multiplicity: int


def _ligand_owner(qd: Atoms, roles: np.ndarray, units: list[np.ndarray]) -> np.ndarray:
    """Index of the inorganic atom nearest each ligand unit (the atom it is bound to)."""
    inorganic = np.where(roles != 'ligand')[0]
    if not units:
        return np.zeros(0, dtype=int)
    tree = cKDTree(qd.positions[inorganic])
    owners = []
    for unit in units:
        d, j = tree.query(qd.positions[unit])
        owners.append(inorganic[j[np.argmin(d)]])
    return np.array(owners)


def _check_min_bonds(min_bonds) -> None:
    if isinstance(min_bonds, bool) or not isinstance(min_bonds, (int, np.integer)) or min_bonds < 1:
        raise ValueError(f'min_bonds must be an integer >= 1 (inorganic bonds a neighbour of the vacancy keeps), '
                         f'got {min_bonds!r}')


def candidate_removals(qd: Atoms, kind: str, min_bonds: int = 2) -> list[np.ndarray]:
    """Every removal of ``kind`` (sorted atom indices), before symmetry reduction, in order of their first atom.

    :param min_bonds: the fewest inorganic bonds a neighbour of the removed atoms may keep.
    """
    if kind not in VACANCY_KINDS:
        raise ValueError(f'unknown vacancy kind {kind!r}; choose one of {list(VACANCY_KINDS)}')
    _check_min_bonds(min_bonds)
    roles = roles_of(qd)
    units = ligand_units(qd, roles)
    if kind == 'ligand':
        return [np.sort(u) for u in units]
    bond = core_bond_length(qd, roles)
    inorganic = np.where(roles != 'ligand')[0]
    pairs = cKDTree(qd.positions[inorganic]).query_pairs(1.15 * bond, output_type='ndarray')
    pairs = inorganic[pairs]
    pairs = pairs[roles[pairs[:, 0]] != roles[pairs[:, 1]]]
    cn = np.bincount(pairs.ravel(), minlength=len(qd))
    rocksalt = bool(np.any(np.abs(qd.positions[pairs[:, 0]] - qd.positions[pairs[:, 1]]) > 0.95 * bond))
    surface = (roles != 'ligand') & (cn < bulk_coordination('rocksalt' if rocksalt else 'zincblende'))
    owner = _ligand_owner(qd, roles, units)
    ligands_of: dict[int, list[int]] = {}
    for unit, o in zip(units, owner):
        ligands_of.setdefault(int(o), []).extend(int(i) for i in unit)
    removals = []
    if kind in ('anion', 'cation'):
        for i in np.where(surface & (roles == kind))[0]:
            removals.append(np.sort([i, *ligands_of.get(int(i), [])]))
    else:
        for a, b in pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]:
            if surface[a] and surface[b]:
                removals.append(np.sort([a, b, *ligands_of.get(int(a), []), *ligands_of.get(int(b), [])]))
    # a removal may not leave a neighbour with fewer than min_bonds inorganic bonds (at 2: it would hang by one bond)
    neighbours: dict[int, list[int]] = {}
    for a, b in pairs:
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    kept = []
    for removal in removals:
        gone = set(removal.tolist())
        lost: dict[int, int] = {}
        for i in gone:
            for j in neighbours.get(i, []):
                if j not in gone:
                    lost[j] = lost.get(j, 0) + 1
        if all(cn[j] - k >= min_bonds for j, k in lost.items()):
            kept.append(removal)
    return kept


def _fingerprint(qd: Atoms, removal: np.ndarray, symbols: np.ndarray, reference: np.ndarray) -> tuple:
    centre = qd.positions[removal].mean(0)
    d = np.linalg.norm(qd.positions[reference] - centre, axis=1)
    key = [tuple(sorted(symbols[removal]))]
    for element in np.unique(symbols[reference]):
        key.append((element, tuple(np.round(np.sort(d[symbols[reference] == element]), 2))))
    return tuple(key)


def distinct_vacancies(qd: Atoms, kind: str, max_sites: int | None = None, seed: int = 0,
                       with_ligands: bool = False, min_bonds: int = 2) -> list[VacancySite]:
    """Symmetry-distinct vacancy sites of ``kind``, in order of their representative's first atom.

    :param max_sites: when there are more distinct sites, a random sample of this many (``seed``), order kept.
    :param with_ligands: judge equivalence on the whole QD; by default on the inorganic atoms only (the symmetry
        of the core, which an even ligand spread generally breaks), so removals of the same kind on equivalent core
        sites count once. The representative is the first removal of each class.
    :param min_bonds: the fewest inorganic bonds a neighbour of the removed atoms may keep (see the module doc).
    """
    removals = candidate_removals(qd, kind, min_bonds=min_bonds)
    if not removals:
        raise ValueError(f'the QD {qd.get_chemical_formula()} has no {kind} vacancy site that leaves every neighbour '
                         f'>= {min_bonds} inorganic bonds')
    symbols = np.array(qd.get_chemical_symbols())
    reference = np.arange(len(qd)) if with_ligands else np.where(roles_of(qd) != 'ligand')[0]
    q0 = net_charge(qd)
    classes: dict[tuple, list[np.ndarray]] = {}
    for removal in removals:
        classes.setdefault(_fingerprint(qd, removal, symbols, reference), []).append(removal)
    sites = []
    for members in classes.values():
        rep = members[0]
        sites.append(VacancySite(kind, tuple(int(i) for i in rep), qd[rep].get_chemical_formula(),
                                 net_charge(remove_atoms(qd, rep)) - q0, len(members)))
    if max_sites is not None and len(sites) > max_sites:
        picked = np.sort(np.random.default_rng(seed).choice(len(sites), size=max_sites, replace=False))
        sites = [sites[i] for i in picked]
    return sites


def make_vacancy(qd: Atoms, kind: str, site: int | None = None, seed: int | None = None,
                 neutralize: bool = False, charge: int = 0, ligand: str | None = None, min_bonds: int = 2) -> Atoms:
    """Remove one surface unit of ``kind`` from a passivated, builder-made QD.

    :param site: index into :func:`distinct_vacancies` (``None``: a random distinct site drawn with ``seed``, or
        the first when ``seed`` is None too).
    :param neutralize: restore net ``charge`` afterwards by adding ligands on free sites (never on the vacancy) or
        removing the ligands nearest the vacancy.
    :param ligand: ligand used to restore the charge (default: the QD's predominant one).
    :param min_bonds: the fewest inorganic bonds a neighbour of the removed atoms may keep (see the module doc).
    :returns: the QD with the vacancy; ``info['qd_vacancy']`` describes it (kind, site, removed formula, net charge
        before any neutralisation).
    """
    sites = distinct_vacancies(qd, kind, min_bonds=min_bonds)
    if site is None:
        site = 0 if seed is None else int(np.random.default_rng(seed).integers(len(sites)))
    if not 0 <= site < len(sites):
        raise ValueError(f'vacancy site {site!r} is out of range: the QD has {len(sites)} distinct {kind} sites '
                         f'(0 to {len(sites) - 1})')
    chosen = sites[site]
    removed = qd.positions[list(chosen.atoms)]
    result = remove_atoms(qd, chosen.atoms)
    info = {'kind': kind, 'site': int(site), 'removed': chosen.formula, 'multiplicity': chosen.multiplicity,
            'charge': net_charge(result)}
    if neutralize and info['charge'] != charge:
        result = adjust_charge(result, charge, ligand=ligand, near=removed.mean(0), exclude=removed)
    result.info = {**qd.info, 'qd_vacancy': info}
    return result

"""Named literature clusters: the Cd17Se28 capped supertetrahedral cluster, Se-rich with H and Cd-rich with Cl;
the octahedral Pb19S6 cluster with 26 acetates.

Pure functions on :class:`ase.Atoms`; no AiiDA import. Lengths in Å, charges in e.

Bhati et al. (non-stoichiometric CdSe QDs; docs/references.md) start their Se-rich QD from the experimentally
characterised Cd17Se28 cluster, i.e. the inorganic frame of Cd17Se4(SePh)24 (Soloviev et al., JACS 2000/2001),
passivated with H⁺ on Se (Cd17Se28H22), and obtain their Cd-rich QD "by switching Se/Cd atom placement",
passivated with Cl⁻ on Cd.
The paper labels the Cd-rich one "Cd17Se28Cl22", but the switched cluster is Cd28Se17 and only Cd28Se17Cl22 is
neutral (Cd17Se28Cl22 would carry 34 − 56 − 22 = −44 e); the builder names it ``Cd28Se17Cl22``. In both, 22 of the
24 two-coordinate surface atoms carry a ligand and two stay bare ("two surface atoms are not bonded to ligands as a
result of charge neutrality"), which gives several ligand arrangements on one cluster (``arrangement``).

The frame is built geometrically from the zincblende lattice (cation at the origin, cubic axes):

* the central cation and its four anions (the μ4-Se of Cd17Se4(SePh)24);
* the twelve cations bonded to those anions (the cation fcc shell at a/√2): Cd13Se4;
* the 24 anions completing those twelve tetrahedra: 12 bridge two of the twelve cations (at a√11/4), 12 bind one
  of them (at a√19/4) — the 24 μ2-SePh Se;
* four corner cations, off the zincblende lattice, at (2/3)·a·(±1, ±1, ±1) along the four cation → anion bond
  directions: each bonds (at the lattice bond length) to the three a√19/4 anions around its corner, in the
  hexagonal (wurtzite-like, eclipsed) position a zincblende lattice has no site for. They keep one dangling bond
  (the PPh3 / terminal SePh site of the molecular clusters), left empty as in Bhati et al.

Each ligand binds a two-coordinate atom of the species it binds (Se for H, Cd for Cl in the swapped cluster) along
one of the atom's two remaining tetrahedral (sp³) directions: the one whose ligand site is farther from the other
frame atoms (for the a√11/4 atoms the other one points at an empty lattice site shared with a neighbour), either
when both are equally clear (the a√19/4 atoms). Farthest-point selection picks the atoms and directions (one
ligand per atom) as in :func:`~aiida_qdtraps.builder.passivation.passivate`.

Sowa et al. (PbS with acetate; docs/references.md) study the Pb19S6 nanocrystal postulated by Choi et al.: 1.2 nm,
rock salt, octahedral with eight (111) facets, lead-rich, passivated by 26 carboxylates, neutral
(19·2 − 6·2 − 26 = 0); the paper replaces oleate with acetate. On the rock-salt lattice (cation at the origin,
positions in units of a/2) the cation-centred octahedron |x| + |y| + |z| ≤ 2 is exactly Pb19S6: the central Pb
(6 S neighbours), the six S at distance 1 (six-coordinate), the 12 Pb at (±1, ±1, 0) (two S each) and the six Pb
vertices at (±2, 0, 0) (one S each); each (111) facet is a triangle of six Pb. The 26 acetates bridge (Sowa et al.
find bridge and tilted-bridge geometries only, no chelates or unidentate ones) two neighbouring surface Pb
(a/√2 = 4.20 Å apart) over an empty S site: 32 such sites exist (24 over the octahedron edges, between a vertex and
an edge Pb; 8 over the facet centres), 26 are taken by the farthest-point spread
(:func:`~aiida_qdtraps.builder.passivation.passivate` with ``binding='bridging'``), each O 2.40 Å from its Pb.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from .crystal import TETRAHEDRAL, bond_length, check_material, lattice_constant_of, nearest_neighbour_distance
from .passivation import append_atoms, check_ligand, farthest_point_order, net_charge, passivate
from .roles import DOMAIN_DTYPE, ROLE_DTYPE


@dataclass(frozen=True)
class NamedModel:
    """A named cluster: ``material``, the core frame, whether the sublattices are swapped, and its ligand."""

    material: str
    frame: str
    swapped: bool
    ligand: str
    description: str
    binding: str = 'monodentate'


#: The named models; ``build_qd(material, model=NAME)`` builds them (neutral with the default ``charge=0``).
NAMED_MODELS: dict[str, NamedModel] = {
    'Cd17Se28H22': NamedModel('CdSe', 'M17X28', False, 'H',
                              'Se-rich Cd17Se28 (the Cd17Se4(SePh)24 frame), H+ on 22 of the 24 two-coordinate Se'),
    'Cd28Se17Cl22': NamedModel('CdSe', 'M17X28', True, 'Cl',
                               'Cd-rich Cd28Se17 (Cd and Se of Cd17Se28 switched), Cl- on 22 of the 24 '
                               'two-coordinate Cd'),
    'Pb19S6(OAc)26': NamedModel('PbS', 'M19X6', False, 'OAc',
                                'Pb-rich octahedral Pb19S6 with eight Pb-terminated (111) facets (Choi et al.; '
                                'Sowa et al.), 26 acetates bridging neighbouring surface Pb', 'bridging'),
}
#: Names that are not neutral models, with the one meant.
MISNAMED_MODELS: dict[str, str] = {
    'Cd17Se28Cl22': 'Cd28Se17Cl22 (Cd17Se28Cl22 is not neutral: 34 - 56 - 22 = -44 e; the Cd-rich cluster of '
                    'switched Cd/Se is Cd28Se17)',
}


def check_model(model: str) -> NamedModel:
    """The :class:`NamedModel` of ``model``; ValueError naming the value and the known models."""
    if model in MISNAMED_MODELS:
        raise ValueError(f'model {model!r} is not a neutral cluster; use {MISNAMED_MODELS[model]}')
    if model not in NAMED_MODELS:
        raise ValueError(f'unknown model {model!r}; known: {sorted(NAMED_MODELS)}')
    return NAMED_MODELS[model]


def _unique(points: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Rows of ``points`` not within 0.01 Å of ``known`` or of an earlier row (order kept)."""
    kept: list[np.ndarray] = []
    for p in points:
        pool = [*known, *kept]
        if not pool or np.min(np.linalg.norm(np.asarray(pool) - p, axis=1)) > 0.01:
            kept.append(p)
    return np.asarray(kept).reshape(-1, 3)


def supertetrahedral_frame(material: str, lattice_constant: float | None = None) -> Atoms:
    """The M17X28 frame of ``material`` (a zincblende MX): cation-centred M13X28 fragment plus four corner cations.

    Atom order: the central cation, the 4 inner anions, the 12 shell cations, the 24 outer anions (by distance from
    the centre, then by coordinates), the 4 corner cations. ``qd_role`` and ``qd_domain`` (all core) are set.
    """
    kind, cation, anion, _ = check_material(material)
    if kind != 'zincblende':
        raise ValueError(f'the M17X28 cluster needs a zincblende material, got {material!r} ({kind})')
    a = lattice_constant_of(material, lattice_constant)
    bonds = TETRAHEDRAL * np.sqrt(3) * a / 4  # cation -> anion bond vectors
    centre = np.zeros((1, 3))
    inner = bonds.copy()
    shell = _unique((inner[:, None] - bonds[None]).reshape(-1, 3), centre)
    outer = _unique((shell[:, None] + bonds[None]).reshape(-1, 3), inner)
    order = np.lexsort((outer[:, 2], outer[:, 1], outer[:, 0], np.round(np.linalg.norm(outer, axis=1), 4)))
    outer = outer[order]
    corners = TETRAHEDRAL * np.sqrt(3) * 2 * a / 3
    positions = np.vstack([centre, inner, shell, outer, corners])
    symbols = [cation] + [anion] * len(inner) + [cation] * len(shell) + [anion] * len(outer) + [cation] * 4
    frame = Atoms(symbols, positions=positions)
    if (symbols.count(cation), symbols.count(anion)) != (17, 28):
        raise AssertionError(f'M17X28 construction gave {frame.get_chemical_formula()}')  # pragma: no cover
    frame.arrays['qd_role'] = np.where(np.array(symbols) == cation, 'cation', 'anion').astype(ROLE_DTYPE)
    frame.arrays['qd_domain'] = np.full(len(frame), 'core', dtype=DOMAIN_DTYPE)
    return frame


def octahedral_frame(material: str, lattice_constant: float | None = None, layers: int = 2) -> Atoms:
    """The cation-centred rock-salt octahedron |x| + |y| + |z| ≤ ``layers`` (units of a/2): M19X6 for 2 layers.

    Atom order: by distance from the centre, then by coordinates. ``qd_role`` and ``qd_domain`` (all core) are set.
    """
    kind, cation, anion, _ = check_material(material)
    if kind != 'rocksalt':
        raise ValueError(f'the octahedral M19X6 cluster needs a rock-salt material, got {material!r} ({kind})')
    a = lattice_constant_of(material, lattice_constant)
    grid = np.arange(-layers, layers + 1)
    points = np.stack(np.meshgrid(grid, grid, grid, indexing='ij'), axis=-1).reshape(-1, 3)
    points = points[np.abs(points).sum(1) <= layers]
    points = points[np.lexsort((points[:, 2], points[:, 1], points[:, 0], (points ** 2).sum(1)))]
    symbols = np.where(points.sum(1) % 2 == 0, cation, anion)
    frame = Atoms(list(symbols), positions=points * a / 2)
    frame.arrays['qd_role'] = np.where(symbols == cation, 'cation', 'anion').astype(ROLE_DTYPE)
    frame.arrays['qd_domain'] = np.full(len(frame), 'core', dtype=DOMAIN_DTYPE)
    return frame


def sp3_free_directions(atoms: Atoms, index: int, bond: float) -> np.ndarray:
    """The two tetrahedral directions (unit rows) left free on a two-coordinate atom (neighbours within 1.15 bond)."""
    d = atoms.positions - atoms.positions[index]
    r = np.linalg.norm(d, axis=1)
    neighbours = np.where((r > 0.1) & (r < 1.15 * bond))[0]
    if len(neighbours) != 2:
        raise ValueError(f'atom {index} has {len(neighbours)} neighbours, not 2')
    u1, u2 = d[neighbours] / r[neighbours, None]
    bisector = -(u1 + u2) / np.linalg.norm(u1 + u2)
    normal = np.cross(u1, u2) / np.linalg.norm(np.cross(u1, u2))
    half = np.arccos(-1 / 3) / 2
    return np.array([np.cos(half) * bisector + np.sin(half) * normal, np.cos(half) * bisector - np.sin(half) * normal])


def build_model(model: str, charge: int = 0, arrangement: int = 0, lattice_constant: float | None = None,
                binding: str | None = None, seed: int = 0) -> Atoms:
    """The named cluster ``model`` (a key of :data:`NAMED_MODELS`) with its ligands, net ``charge`` (e), unboxed.

    The ligand count follows from ``charge`` (22 for charge 0); every two-coordinate atom of the species the ligand
    binds takes at most one. ``arrangement`` 0 is the standard farthest-point spread, 1, 2, … other spreads (other
    pairs of bare atoms and ligand directions) on the same frame.
    """
    spec = check_model(model)
    if spec.frame == 'M19X6':
        # binding: the model's own (bridging) unless another carboxylate binding is asked for
        return passivate(octahedral_frame(spec.material, lattice_constant), spec.ligand, charge,
                         arrangement=arrangement, binding=spec.binding if binding is None else binding, seed=seed)
    if binding not in (None, spec.binding):
        raise ValueError(f'model {model!r} takes no binding (its ligand {spec.ligand!r} binds monodentate); '
                         f'got binding {binding!r}')
    frame = supertetrahedral_frame(spec.material, lattice_constant)
    if spec.swapped:
        from .shell import swap_sublattices

        frame = swap_sublattices(frame)
        frame.arrays['qd_domain'] = np.full(len(frame), 'core', dtype=DOMAIN_DTYPE)
    z, binder, species = check_ligand(spec.ligand)
    bond = nearest_neighbour_distance(spec.material, lattice_constant)
    pairs = cKDTree(frame.positions).query_pairs(1.15 * bond, output_type='ndarray')
    coordination = np.bincount(pairs.ravel(), minlength=len(frame))
    roles = frame.arrays['qd_role']
    hosts = np.where((roles == species) & (coordination == 2))[0]
    owners = np.repeat(hosts, 2)
    directions = np.vstack([sp3_free_directions(frame, i, bond) for i in hosts])
    symbols = np.array(frame.get_chemical_symbols())
    lengths = np.array([bond_length(s, binder) for s in symbols[owners]])
    sites = frame.positions[owners] + lengths[:, None] * directions
    # of a host's two directions keep the one(s) clearest of the other frame atoms (within 0.05 Å): the other
    # direction of an a√11/4 atom points at an empty lattice site next to a neighbour's dangling bond
    clearance = np.sort(cKDTree(frame.positions).query(sites, k=2)[0], axis=1)[:, 1]
    best = np.maximum.reduceat(clearance, np.arange(0, len(owners), 2))
    keep = clearance >= np.repeat(best, 2) - 0.05
    owners, directions, sites = owners[keep], directions[keep], sites[keep]
    q0 = net_charge(frame)
    needed = (charge - q0) * z
    if needed < 0 or needed > len(hosts):
        reachable = sorted((q0, q0 + z * len(hosts)))
        raise ValueError(f'cannot reach charge {charge} on {model}: needs {needed} {spec.ligand} but {len(hosts)} '
                         f'two-coordinate {species} sites are free; charges reachable: {reachable[0]} to '
                         f'{reachable[1]}')
    chosen = sorted(farthest_point_order(sites, needed, groups=owners, start=arrangement, exclusive=owners))
    placed = Atoms([spec.ligand] * len(chosen), positions=sites[chosen])
    placed.arrays['qd_role'] = np.full(len(placed), 'ligand', dtype=ROLE_DTYPE)
    placed.arrays['qd_domain'] = np.full(len(placed), 'ligand', dtype=DOMAIN_DTYPE)
    return append_atoms(frame, placed)

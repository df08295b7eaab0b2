"""Cores carved from a bulk crystal by shape and size.

Pure functions on :class:`ase.Atoms`; no AiiDA import. Lengths in Å.

A polyhedron is the set ``{x : n_k · (x - centre) <= s h_k}`` for its facet normals ``n_k`` and facet distances
``h_k``; the scale ``s`` is set so that the polyhedron's circumscribed sphere has the requested diameter (for the
sphere: the sphere itself). Facets are the low-index ones of the cubic crystal: {111} (cation-bond directions of
zincblende for the tetrahedron, so its four facets are cation-terminated; the truncated tetrahedron adds the four
anion-terminated {-1-1-1} facets), {100} and {111} for the cuboctahedron, {100} for the cube.

The Wulff shape (:func:`wulff_shape`) is the polyhedron of the {100}, {110} and {111} facet families at distances
proportional to their surface energies; on zincblende the polar (111) (cation-terminated, the cation-bond
directions) and (-1-1-1) (anion-terminated) facets may have different energies.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from scipy.spatial import HalfspaceIntersection, cKDTree

from .crystal import (
    MATERIALS,
    TETRAHEDRAL,
    bulk_coordination,
    bulk_crystal,
    check_material,
    lattice_constant_of,
    nearest_neighbour_distance,
)

_CUBE = np.vstack([np.eye(3), -np.eye(3)])
_OCTA = np.vstack([TETRAHEDRAL, -TETRAHEDRAL])

#: Facet normals and distances (arbitrary unit) of each polyhedral shape.
SHAPE_FACETS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    'tetrahedron': (TETRAHEDRAL, np.ones(4)),
    'truncated_tetrahedron': (_OCTA, np.r_[np.ones(4), np.full(4, 5 / 3)]),
    'octahedron': (_OCTA, np.ones(8)),
    'cuboctahedron': (np.vstack([_CUBE, _OCTA]), np.r_[np.ones(6), np.full(8, 2 / np.sqrt(3))]),
    'cube': (_CUBE, np.ones(6)),
}
SHAPES: tuple[str, ...] = ('sphere', *SHAPE_FACETS)
#: The shape given by facet energies (:func:`wulff_shape`), besides :data:`SHAPES`.
WULFF = 'wulff'
CENTERS: tuple[str, ...] = ('anion', 'cation', 'interstitial', 'interstitial2')
#: The species ``trim`` may act on (the one that takes no ligand).
TRIM_SPECIES: tuple[str, ...] = ('anion', 'cation')


_DODECA = np.array([(1, 1, 0), (1, -1, 0), (-1, 1, 0), (-1, -1, 0), (1, 0, 1), (1, 0, -1), (-1, 0, 1), (-1, 0, -1),
                    (0, 1, 1), (0, 1, -1), (0, -1, 1), (0, -1, -1)]) / np.sqrt(2)
#: The facet families of the Wulff construction and their unit normals (``'111'``: the cation-terminated facets
#: of zincblende, along the cation-bond directions :data:`~.crystal.TETRAHEDRAL`; ``'-1-1-1'``: the anion-terminated
#: ones).
WULFF_FAMILIES: dict[str, np.ndarray] = {'100': _CUBE, '110': _DODECA, '111': TETRAHEDRAL, '-1-1-1': -TETRAHEDRAL}
#: Default facet energies (J/m²) per material: rock salt from the DFT surface energies of uncapped PbSe of Fang,
#: van Huis, Vanmaekelbergh and Zandbergen (ACS Nano 2010, 4, 211): {100} 0.184, {110} 0.318, reconstructed
#: {111} 0.328 J/m², used for PbS too; zincblende: equal energies (the shape of the facet geometry alone), no
#: sourced values (give ``facets``).
DEFAULT_FACETS: dict[str, dict[str, float]] = {
    'rocksalt': {'100': 0.184, '110': 0.318, '111': 0.328},
    'zincblende': {'100': 1.0, '110': 1.0, '111': 1.0},
}


def check_facets(facets, kind: str = 'zincblende') -> dict[str, float]:
    """The facet energies as ``{family: float}``; ValueError naming a bad family or energy.

    ``'-1-1-1'`` (zincblende only) defaults to the ``'111'`` energy; a family left out is not in the construction.
    """
    if not isinstance(facets, dict) or not facets:
        raise ValueError(f'facets must be a non-empty mapping of facet families {list(WULFF_FAMILIES)} to surface '
                         f'energies, got {facets!r}')
    clean = {}
    for family, energy in facets.items():
        family = str(family).replace(' ', '').replace('(', '').replace(')', '')
        if family not in WULFF_FAMILIES:
            raise ValueError(f'unknown facet family {family!r}; choose from {list(WULFF_FAMILIES)}')
        if family == '-1-1-1' and kind != 'zincblende':
            raise ValueError(f'facet family -1-1-1 is distinct from 111 on zincblende only, not on {kind}')
        if isinstance(energy, bool) or not isinstance(energy, (int, float, np.integer, np.floating)) \
                or not np.isfinite(energy) or not energy > 0:
            raise ValueError(f'the surface energy of facet {family} must be a positive number, got {energy!r}')
        clean[family] = float(energy)
    if '111' in clean and '-1-1-1' not in clean and kind == 'zincblende':
        clean['-1-1-1'] = clean['111']
    if kind != 'zincblende' and '111' in clean:  # rock salt: both {111} orientations alike
        clean['-1-1-1'] = clean['111']
    return {family: clean[family] for family in WULFF_FAMILIES if family in clean}


def wulff_shape(facets, kind: str = 'zincblende') -> str:
    """Register the Wulff polyhedron of the facet energies ``facets`` (see :func:`check_facets`) and return its
    shape name, usable wherever a shape is (``inside_shape``, ``carve_core``, ``center='auto'``).

    Facet k lies at a distance proportional to its energy (Wulff); a family whose planes lie outside the others'
    polyhedron simply does not appear (:func:`wulff_present`). The name holds the energies, so equal energies give
    the same shape.
    """
    energies = check_facets(facets, kind)
    name = 'wulff(' + ','.join(f'{family}={energy!r}' for family, energy in energies.items()) + ')'
    if name not in SHAPE_FACETS:
        normals = np.vstack([WULFF_FAMILIES[family] for family in energies])
        distances = np.concatenate([np.full(len(WULFF_FAMILIES[family]), energy) for family, energy in
                                    energies.items()])
        SHAPE_FACETS[name] = (normals, distances / distances.min())
    return name


def wulff_present(shape: str, tolerance: float = 1e-6) -> np.ndarray:
    """Mask of the facets of a registered polyhedron that are faces of it (three or more vertices on the plane)."""
    normals, distances = SHAPE_FACETS[shape]
    vertices = HalfspaceIntersection(np.hstack([normals, -distances[:, None]]), np.zeros(3)).intersections
    vertices = np.unique(np.round(vertices, 9), axis=0)
    on_plane = np.abs(vertices @ normals.T - distances) < tolerance
    return on_plane.sum(axis=0) >= 3


def resolve_shape(shape: str, facets=None, material: str | None = None) -> str:
    """The shape name to carve: ``shape`` itself, or for ``'wulff'`` the registered Wulff polyhedron of ``facets``
    (default :data:`DEFAULT_FACETS` of the material's structure); ValueError for ``facets`` with another shape."""
    if shape == WULFF:
        kind = check_material(material)[0] if material is not None else 'zincblende'
        return wulff_shape(DEFAULT_FACETS[kind] if facets is None else facets, kind)
    if facets is not None:
        raise ValueError(f"facets apply to shape 'wulff' only, got shape {shape!r}")
    return shape


@cache
def _circumradius(shape: str) -> float:
    """Circumscribed-sphere radius of the unit polyhedron of ``shape`` (vertices: scipy's half-space intersection)."""
    normals, distances = SHAPE_FACETS[shape]
    vertices = HalfspaceIntersection(np.hstack([normals, -distances[:, None]]), np.zeros(3)).intersections
    return float(np.linalg.norm(vertices, axis=1).max())


def shape_diameter(points: np.ndarray, shape: str) -> np.ndarray:
    """Circumscribed diameter (Å) of the smallest ``shape`` about the origin that holds each of ``points`` (Å)."""
    if shape == 'sphere':
        return 2 * np.linalg.norm(points, axis=1)
    normals, distances = SHAPE_FACETS[shape]
    return 2 * _circumradius(shape) * np.max(points @ normals.T / distances, axis=1)


def inside_shape(points: np.ndarray, shape: str, diameter: float) -> np.ndarray:
    """Boolean mask of ``points`` (Å, relative to the centre) inside ``shape`` of circumscribed ``diameter`` (Å)."""
    if shape == 'sphere':
        return np.linalg.norm(points, axis=1) <= diameter / 2 + 1e-6
    normals, distances = SHAPE_FACETS[shape]
    scale = diameter / 2 / _circumradius(shape)
    return np.all(points @ normals.T <= scale * distances + 1e-6, axis=1)


def check_shape(shape: str) -> None:
    if shape == WULFF:
        raise ValueError("shape 'wulff' needs facet energies: resolve it with resolve_shape(shape, facets) first")
    if shape not in SHAPES and shape not in SHAPE_FACETS:
        raise ValueError(f'unsupported shape {shape!r}; choose one of {[*SHAPES, WULFF]}')


def crystal_origin(crystal: Atoms, material: str, center: str, lattice_constant: float) -> np.ndarray:
    """Cartesian centre (Å) of the carve in ``crystal``: the anion or cation nearest the origin (first in array
    order among equally near ones), or an empty interstitial site. ``'interstitial'``: the empty tetrahedral site of
    zincblende inside a tetrahedron of anions, (a/2, a/2, a/2), or the cube centre between atoms of rock salt,
    (a/4, a/4, a/4); ``'interstitial2'``: the other empty tetrahedral site of zincblende, inside a tetrahedron of
    cations, (3a/4, 3a/4, 3a/4), or the rock-salt cube centre (3a/4, 3a/4, 3a/4), whose cation and anion
    tetrahedra point the other way. Every centre has tetrahedral site symmetry.
    """
    kind, cation, anion, _ = check_material(material)
    if center in ('anion', 'cation'):
        candidates = np.where(crystal.numbers == atomic_numbers[anion if center == 'anion' else cation])[0]
        return crystal.positions[candidates[np.argmin(np.linalg.norm(crystal.positions[candidates], axis=1))]]
    if center == 'interstitial':
        return np.full(3, 0.5 if kind == 'zincblende' else 0.25) * lattice_constant
    if center == 'interstitial2':
        return np.full(3, 0.75) * lattice_constant
    raise ValueError(f'center must be one of {list(CENTERS)}, got {center!r}')


def crystal_block(material: str, radius: float, lattice_constant: float | None = None) -> Atoms:
    """A block of bulk crystal covering a sphere of ``radius`` (Å) around the origin (cation at the origin).

    Same atoms, in the same order, as ``bulk_crystal(...).repeat(2 n)`` translated by ``-n a``, built with numpy.
    """
    cell = bulk_crystal(material, lattice_constant)
    a = cell.cell[0, 0]
    reps = int(np.ceil(radius / a)) + 2
    grid = np.arange(2 * reps)
    translations = a * np.stack(np.meshgrid(grid, grid, grid, indexing='ij'), axis=-1).reshape(-1, 3)
    positions = (translations[:, None, :] + cell.positions[None]).reshape(-1, 3) - reps * a
    numbers = np.tile(cell.numbers, len(translations))
    return Atoms(numbers=numbers, positions=positions, cell=2 * reps * cell.cell.array, pbc=True)


def bond_counts(positions: np.ndarray, cutoff: float) -> np.ndarray:
    """Number of neighbours of each position closer than ``cutoff`` (Å), by KD-tree."""
    pairs = cKDTree(positions).query_pairs(cutoff, output_type='ndarray')
    return np.bincount(pairs.ravel(), minlength=len(positions))


def prune(atoms: Atoms, bond: float, min_bonds, fixed: np.ndarray | None = None) -> Atoms:
    """Remove atoms with fewer than ``min_bonds`` neighbours within 1.1 ``bond`` (Å), repeatedly, until none is left.

    :param min_bonds: one number, or one per atom.

    :param fixed: optional mask of atoms that are never removed.
    """
    keep_always = np.zeros(len(atoms), bool) if fixed is None else np.asarray(fixed, bool)
    while len(atoms):
        keep = (bond_counts(atoms.positions, 1.1 * bond) >= min_bonds) | keep_always
        if keep.all():
            break
        atoms, keep_always = atoms[keep], keep_always[keep]
        if np.ndim(min_bonds):
            min_bonds = np.asarray(min_bonds)[keep]
    return atoms


def carve_core(material: str, diameter: float, shape: str = 'sphere', center: str = 'anion',
               lattice_constant: float | None = None, min_core_bonds: int = 2, trim: int | None = None,
               trim_species: str = 'anion', facets=None) -> Atoms:
    """Carve a core of ``shape`` whose circumscribed sphere has ``diameter`` (Å) from the bulk crystal.

    :param center: ``'anion'`` or ``'cation'`` (centred on an atom) or ``'interstitial'`` / ``'interstitial2'``
        (the two empty lattice sites of tetrahedral symmetry, see :func:`crystal_origin`).
    :param min_core_bonds: atoms with fewer core bonds are pruned iteratively (use 1 for the smallest molecular
        clusters, where every cation has a single bond to the central anion).
    :param trim: the fewest core bonds an atom of ``trim_species`` keeps (default ``min_core_bonds``), pruned
        together with the others; e.g. ``trim=3`` removes the anions with two core bonds, which makes the core more
        cation-rich for X-type ligands on the cations (with ``min_core_bonds=1``, ``trim=4`` leaves every anion of a
        zincblende core four-coordinate, cations may then keep a single core bond).
    :param facets: facet energies of ``shape='wulff'`` (see :func:`resolve_shape`).
    :returns: the core centred on the carve centre, non-periodic, cubic axes kept, with ``qd_role`` and
        ``qd_domain`` arrays.
    """
    cation = check_material(material)[1]
    shape = resolve_shape(shape, facets, material)
    check_shape(shape)
    if not diameter > 0:
        raise ValueError(f'diameter must be positive, got {diameter!r}')
    if min_core_bonds not in (1, 2, 3):
        raise ValueError(f'min_core_bonds must be 1, 2 or 3, got {min_core_bonds!r}')
    check_trim(material, trim, trim_species)
    crystal = crystal_block(material, diameter / 2, lattice_constant)
    origin = crystal_origin(crystal, material, center, lattice_constant_of(material, lattice_constant))
    core = crystal[inside_shape(crystal.positions - origin, shape, diameter)]
    core.translate(-origin)
    core.pbc = False
    core.set_cell(np.zeros((3, 3)))
    core = prune(core, nearest_neighbour_distance(material, lattice_constant),
                 trim_minima(core.numbers, material, min_core_bonds, trim, trim_species))
    if len(core) == 0:
        raise ValueError(f'diameter {diameter} Å is too small to hold a {material} {shape} core centred on an '
                         f'{center} (nothing is left after pruning atoms with < {min_core_bonds} bonds); use at least '
                         f'{smallest_diameter(material, shape, center, lattice_constant, min_core_bonds):.1f} Å')
    symbols = np.array(core.get_chemical_symbols())
    core.arrays['qd_role'] = np.where(symbols == cation, 'cation', 'anion').astype('<U8')
    core.arrays['qd_domain'] = np.full(len(core), 'core', dtype='<U10')
    return core


def check_trim(material: str, trim, trim_species: str = 'anion') -> None:
    """ValueError naming ``trim`` unless it is None or a number of core bonds from 1 to the bulk coordination."""
    top = bulk_coordination(check_material(material)[0])
    if trim is not None and (isinstance(trim, bool) or not isinstance(trim, (int, np.integer)) or not 1 <= trim <= top):
        raise ValueError(f'trim must be a number of core bonds from 1 to {top} (the fewest an atom of the species '
                         f'the ligand does not bind keeps), got {trim!r}')
    if trim_species not in TRIM_SPECIES:
        raise ValueError(f'trim_species must be one of {list(TRIM_SPECIES)}, got {trim_species!r}')


def trim_minima(numbers: np.ndarray, material: str, min_core_bonds: int, trim: int | None = None,
                trim_species: str = 'anion'):
    """Core bonds each atom needs: ``trim`` for the atoms of ``trim_species``, ``min_core_bonds`` for the others;
    a plain number when ``trim`` is None or equal to ``min_core_bonds``."""
    if trim is None or trim == min_core_bonds:
        return min_core_bonds
    cation, anion = check_material(material)[1:3]
    element = atomic_numbers[anion if trim_species == 'anion' else cation]
    return np.where(np.asarray(numbers) == element, int(trim), min_core_bonds)


def smallest_diameter(material: str, shape: str, center: str, lattice_constant: float | None = None,
                      min_core_bonds: int = 2) -> float:
    """The smallest diameter (Å, on a 0.1 Å grid) that leaves a non-empty core."""
    a = lattice_constant_of(material, lattice_constant)
    bond = nearest_neighbour_distance(material, lattice_constant)
    crystal = crystal_block(material, 5 * a, lattice_constant)
    positions = crystal.positions - crystal_origin(crystal, material, center, a)
    last = 0
    for diameter in np.arange(0.1, 10 * a, 0.1):
        inside = inside_shape(positions, shape, diameter)
        if inside.sum() > last and len(prune(crystal[inside], bond, min_core_bonds)):
            return float(round(diameter, 1))
        last = inside.sum()
    return float('nan')


__all__ = ('CENTERS', 'MATERIALS', 'SHAPES', 'carve_core', 'inside_shape', 'prune', 'shape_diameter',
           'smallest_diameter')

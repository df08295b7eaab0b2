"""Cutouts of four-coordinate trap centres and their geodesic interpolation (pure; no AiiDA).

Alexander et al. (structural hole traps in III-V QDs; docs/references.md, docs/cutouts.md) explain P-4c structural
traps with PLi4+ cutouts: the trap centre and its four bonded cations, the cations replaced by Li with the bond angles
kept and the bond lengths set for Li, interpolated along a geodesic path from an ideal tetrahedron to the cutout.
Along the path the three highest occupied MOs are the P 3p levels; the HOMO's rise above HOMO-1 and HOMO-2 measures
the trap depth. This module holds the geometry (:func:`make_cutout`, :func:`ideal_tetrahedron`,
:func:`aligned_reference`, :func:`interpolate`) and the orbital measures (:func:`homo_splitting`,
:func:`p_orientation`, :func:`orientation_cosine`, :func:`sphere_fractions`). Lengths in Å, energies in eV.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from . import bonds

#: P-Li distance (Å) of the ideal tetrahedral PLi4+ minimised at PBE0/def2-SVP (PySCF 2.14, grid level 3; a scan of
#: the symmetric stretch, minimum of a quartic fit): the default bond length of a cutout.
PLI4_DISTANCE = 2.261
#: Smallest HOMO − HOMO-1 gap (eV) at which the HOMO's p orientation is defined; below it the top p levels are
#: (near-)degenerate and any mixture of them is an equally good HOMO, e.g. in an undistorted tetrahedron.
ORIENTATION_GAP_EV = 0.01
#: Unit vectors of a regular tetrahedron (the vertex order of :func:`ideal_tetrahedron`).
TETRAHEDRON = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]) / np.sqrt(3.0)


def centre_neighbours(atoms: Atoms, centre: int, scale: float = bonds.LABELING_SCALE,
                      same_element_scale: float | None = bonds.LABELING_SAME_ELEMENT_SCALE) -> np.ndarray:
    """The four bonded neighbours of atom ``centre`` (the bond rule of trap labeling, :mod:`.bonds`), nearest first.

    :raises ValueError: if ``centre`` is no atom index or the atom is not four-coordinate (naming its coordination).
    """
    if not 0 <= int(centre) < len(atoms):
        raise ValueError(f'centre {centre} is not an atom index of a structure of {len(atoms)} atoms')
    pairs = bonds.bond_pairs(atoms.positions, atoms.get_chemical_symbols(), scale, same_element_scale)
    neighbours = bonds.neighbour_lists(pairs, len(atoms))[int(centre)]
    if len(neighbours) != 4:
        raise ValueError(f'atom {centre} ({atoms[int(centre)].symbol}) is {len(neighbours)}-coordinate, not '
                         '4-coordinate: a tetrahedral cutout needs exactly four bonded neighbours')
    distances = np.linalg.norm(atoms.positions[neighbours] - atoms.positions[int(centre)], axis=1)
    return neighbours[np.argsort(distances, kind='stable')]


def make_cutout(atoms: Atoms, centre: int, replacement: str = 'Li', distance: float = PLI4_DISTANCE,
                reference_length: float | None = None, charge: int = 1) -> Atoms:
    """The cutout of a four-coordinate centre: the centre at the origin and its four neighbours replaced.

    :param replacement: element put on the neighbour sites (Li for the PLi4+ model).
    :param distance: centre-replacement distance (Å) along each original bond direction (bond angles kept).
    :param reference_length: if given, bond stretches are kept: bond ``i`` gets ``distance * d_i / reference_length``
        (e.g. the bulk In-P bond length); else every bond gets ``distance``.
    :param charge: total charge recorded in ``info['charge']`` (+1 for PLi4+).
    :returns: Atoms ``[centre, 4 x replacement]`` with ``info`` holding ``centre``, ``neighbours`` (original
        indices), ``charge``.
    """
    if replacement not in atomic_numbers:
        raise ValueError(f'replacement {replacement!r} is not an element symbol')
    if not distance > 0 or (reference_length is not None and not reference_length > 0):
        raise ValueError(f'distance and reference_length must be positive, got {distance}, {reference_length}')
    neighbours = centre_neighbours(atoms, centre)
    vectors = atoms.positions[neighbours] - atoms.positions[int(centre)]
    lengths = np.linalg.norm(vectors, axis=1)
    scaled = distance * (lengths / reference_length if reference_length else np.ones(4))
    positions = np.vstack([np.zeros(3), vectors / lengths[:, None] * scaled[:, None]])
    cutout = Atoms([atoms[int(centre)].symbol] + [replacement] * 4, positions=positions)
    cutout.info.update(centre=int(centre), neighbours=[int(n) for n in neighbours], charge=int(charge))
    return cutout


def ideal_tetrahedron(centre: str = 'P', replacement: str = 'Li', distance: float = PLI4_DISTANCE) -> Atoms:
    """A regular tetrahedron ``[centre, 4 x replacement]`` with the centre at the origin."""
    return Atoms([centre] + [replacement] * 4, positions=np.vstack([np.zeros(3), distance * TETRAHEDRON]))


def kabsch(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The proper rotation ``R`` minimising ``|mobile @ R.T - target|`` (both (n, 3), already centred)."""
    u, _, vt = np.linalg.svd(np.asarray(mobile).T @ np.asarray(target))
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    return (u @ np.diag([1.0, 1.0, sign]) @ vt).T


def aligned_reference(cutout: Atoms, distance: float | None = None) -> Atoms:
    """The ideal tetrahedron of ``cutout``'s elements rotated (Kabsch, best of the 24 vertex assignments) onto it.

    Atom ``i`` of the result corresponds to atom ``i`` of the cutout, so a path between them is atom-by-atom.

    :param distance: bond length of the ideal tetrahedron (default: the cutout's mean bond length).
    """
    if len(cutout) != 5:
        raise ValueError(f'a tetrahedral cutout has 5 atoms (centre + 4), got {len(cutout)}')
    ligands = cutout.positions[1:] - cutout.positions[0]
    if distance is None:
        distance = float(np.linalg.norm(ligands, axis=1).mean())
    best = None
    for order in itertools.permutations(range(4)):
        vertices = distance * TETRAHEDRON[list(order)]
        rotation = kabsch(vertices, ligands)
        error = float(np.sum((vertices @ rotation.T - ligands) ** 2))
        if best is None or error < best[0]:
            best = (error, vertices @ rotation.T)
    reference = Atoms(cutout.get_chemical_symbols(), positions=np.vstack([np.zeros(3), best[1]]) + cutout.positions[0])
    reference.info.update(cutout.info)
    return reference


def interpolate(start: Atoms, end: Atoms, n_frames: int = 100, tol: float = 2e-3, max_iter: int = 50) -> list[Atoms]:
    """Geodesic interpolation (Zhu, Thompson and Martínez; package ``geodesic-interpolate``) from ``start`` to ``end``.

    The path is rigidly moved so that its last frame lies on ``end``; first and last frames are the two end points
    (up to that rigid motion for ``start``).

    :param n_frames: number of frames including both end points (>= 2).
    :raises ValueError: for ``n_frames < 2`` or end points with different elements.
    """
    from geodesic_interpolate.geodesic import Geodesic
    from geodesic_interpolate.interpolation import redistribute

    if int(n_frames) < 2:
        raise ValueError(f'an interpolation needs at least 2 frames (both end points), got n_frames={n_frames}')
    symbols = start.get_chemical_symbols()
    if symbols != end.get_chemical_symbols():
        raise ValueError(f'end points have different atoms: {start.get_chemical_formula()} vs '
                         f'{end.get_chemical_formula()}')
    level = logging.getLogger('geodesic_interpolate').level
    logging.getLogger('geodesic_interpolate').setLevel(logging.WARNING)
    try:
        raw = redistribute(symbols, [start.positions, end.positions], int(n_frames), tol=tol * 5)
        if int(n_frames) > 2:
            smoother = Geodesic(symbols, raw, 1.7, threshold=3.0, log_level=logging.DEBUG)
            smoother.smooth(tol=tol, max_iter=max_iter, log_level=logging.DEBUG)
            raw = smoother.path
    finally:
        logging.getLogger('geodesic_interpolate').setLevel(level)
    path = np.asarray(raw, dtype=float).reshape(int(n_frames), len(symbols), 3)
    last = path[-1] - path[-1].mean(axis=0)
    rotation = kabsch(last, end.positions - end.positions.mean(axis=0))
    path = (path - path[-1].mean(axis=0)) @ rotation.T + end.positions.mean(axis=0)
    frames = []
    for k, positions in enumerate(path):
        frame = Atoms(symbols, positions=positions)
        frame.info.update(end.info, frame=k)
        frames.append(frame)
    return frames


def homo_splitting(occupied_energies: Sequence[float]) -> float:
    """HOMO − mean(HOMO-1, HOMO-2) (eV) from the occupied MO energies (any order; at least three)."""
    energies = np.sort(np.asarray(occupied_energies, dtype=float))
    if energies.size < 3:
        raise ValueError(f'need at least three occupied MO energies, got {energies.size}')
    return float(energies[-1] - 0.5 * (energies[-2] + energies[-3]))


def internal_frame(centre: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Rows: the axes of a centre's internal frame, the rotation that best maps the regular tetrahedron's vertices
    (in neighbour order) onto the unit bond directions (Kabsch). Same bond directions, same frame."""
    directions = np.asarray(neighbours, dtype=float) - np.asarray(centre, dtype=float)
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    return kabsch(TETRAHEDRON, directions).T


def p_orientation(coefficients: np.ndarray, ao_atom: np.ndarray, ao_labels: Sequence[str], atom: int,
                  overlap: np.ndarray | None = None, frame: np.ndarray | None = None) -> np.ndarray:
    """Unit axis of the p part of an MO on ``atom``: the principal axis of its p-population tensor.

    With ``c_k`` the (x, y, z) coefficients of p shell ``k`` on the atom and ``s_kl`` the overlap of the shells' x
    functions, ``T = sum_kl s_kl c_k c_l^T`` (``s`` the identity without ``overlap``); for a pure p orbital along
    ``n`` every ``c_k`` is parallel to ``n`` and so is ``T``'s top eigenvector. The sign is arbitrary.

    :param ao_labels: AO labels ending in ``px``/``py``/``pz`` for p functions (PySCF's ``mol.ao_labels()``; CP2K
        MOLDEN labels of the project's reader likewise).
    :param frame: rows = internal axes (:func:`internal_frame`) to express the axis in; default Cartesian.
    """
    coefficients = np.asarray(coefficients, dtype=float)
    ao_atom = np.asarray(ao_atom, dtype=int)
    on_atom = np.flatnonzero(ao_atom == int(atom))
    axes = {}
    for axis in 'xyz':
        axes[axis] = [int(i) for i in on_atom if str(ao_labels[i]).strip().lower().endswith(f'p{axis}')]
    if not axes['x'] or not len(axes['x']) == len(axes['y']) == len(axes['z']):
        raise ValueError(f'atom {atom} has no complete p shells among its AO labels')
    shells = np.array([axes['x'], axes['y'], axes['z']]).T  # (nshell, 3) AO indices
    c = coefficients[shells]  # (nshell, 3)
    s = np.eye(len(shells)) if overlap is None else np.asarray(overlap)[np.ix_(shells[:, 0], shells[:, 0])]
    tensor = c.T @ s @ c
    values, vectors = np.linalg.eigh(0.5 * (tensor + tensor.T))
    axis = vectors[:, -1]
    return axis if frame is None else np.asarray(frame) @ axis


def orientation_defined(levels: np.ndarray, trap_mos: int = 1) -> tuple[bool, str]:
    """Whether the orientation cosine of a cutout means anything (Alexander et al. leave out the traps where "multiple
    states have become highly mixed"): the cutout HOMO must stand at least :data:`ORIENTATION_GAP_EV` above HOMO-1,
    and the QD trap state must be a single MO.

    :param levels: the cutout's [HOMO, HOMO-1, HOMO-2] energies (eV).
    :param trap_mos: how many window MOs make the QD trap state.
    :returns: (defined, the reason when not).
    """
    gap = float(levels[0] - levels[1])
    if gap < ORIENTATION_GAP_EV:
        return False, (f'the cutout HOMO is degenerate with HOMO-1 ({1000 * gap:.1f} meV apart, < '
                       f'{1000 * ORIENTATION_GAP_EV:.0f} meV): an undistorted centre has no preferred p orbital')
    if trap_mos > 1:
        return False, f'the QD trap state is a mixture of {trap_mos} MOs'
    return True, ''


def orientation_cosine(u: np.ndarray, v: np.ndarray) -> float:
    """|cos| of the angle between two orientation axes (sign-invariant, as p orbitals have no sign)."""
    u, v = np.asarray(u, dtype=float), np.asarray(v, dtype=float)
    return float(abs(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def sphere_fractions(points: np.ndarray, weights: np.ndarray, density: np.ndarray, centres: np.ndarray,
                     radii: np.ndarray) -> np.ndarray:
    """Fraction of an orbital density inside spheres: ``∫_{|r - R_a| < r_a} ρ / ∫ ρ`` per centre ``a``.

    :param points: integration grid (n, 3) Å; :param weights: its weights (n,); :param density: ρ at the points.
    """
    points, weights, density = np.asarray(points), np.asarray(weights), np.asarray(density)
    total = float(np.sum(weights * density))
    inside = np.linalg.norm(points[:, None, :] - np.asarray(centres)[None], axis=2) < np.asarray(radii)[None]
    return (weights * density) @ inside / total


def covalent_radius(symbol: str) -> float:
    """Covalent radius (Å, Cordero et al., as in :mod:`.bonds`)."""
    return float(covalent_radii[atomic_numbers[symbol]])


def orbital_sphere_overlaps(symbols: Sequence[str], positions: np.ndarray, basis: str, coefficients: np.ndarray,
                            atoms: Sequence[int], grid_level: int = 3) -> np.ndarray:
    """Fraction of each MO's density inside the covalent sphere of each of ``atoms`` (Alexander et al.'s orbital-atom
    overlap), on a PySCF Becke grid.

    :param coefficients: MO coefficients (nao, nmo) in the AO order of PySCF's ``basis`` for this molecule.
    :returns: (nmo, len(atoms)) fractions.
    """
    from pyscf import dft, gto

    mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(symbols, positions)], basis=basis, unit='Angstrom', verbose=0,
                spin=None)
    grids = dft.gen_grid.Grids(mol)
    grids.level = grid_level
    grids.build()
    orbitals = dft.numint.eval_ao(mol, grids.coords) @ np.asarray(coefficients).reshape(mol.nao, -1)
    bohr = 0.52917721092
    centres = np.asarray(positions)[list(atoms)] / bohr
    radii = np.array([covalent_radius(symbols[a]) for a in atoms]) / bohr
    return np.array([sphere_fractions(grids.coords, grids.weights, orbitals[:, k] ** 2, centres, radii)
                     for k in range(orbitals.shape[1])])


def path_levels_plot(levels: np.ndarray, title: str = '') -> bytes:
    """PNG of the three highest occupied MO energies (eV, columns HOMO, HOMO-1, HOMO-2) along a path, with the
    HOMO splitting on a second axis."""
    import io

    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    levels = np.asarray(levels, dtype=float)
    frames = np.arange(len(levels))
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for k, (name, colour) in enumerate((('HOMO', 'tab:red'), ('HOMO-1', 'tab:blue'), ('HOMO-2', 'tab:green'))):
        ax.plot(frames, levels[:, k], 'o-', ms=3, color=colour, label=name)
    ax.set_xlabel('frame (ideal tetrahedron → cutout)')
    ax.set_ylabel('orbital energy (eV)')
    twin = ax.twinx()
    twin.plot(frames, levels[:, 0] - levels[:, 1:3].mean(axis=1), 'k--', lw=1, label='HOMO − ⟨HOMO-1, HOMO-2⟩')
    twin.set_ylabel('HOMO splitting (eV)')
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc='lower left', framealpha=0.9)
    if title:
        ax.set_title(title, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=120, bbox_inches='tight', metadata={'Software': None})
    plt.close(fig)
    return buffer.getvalue()

"""Charge flow in a QD from Bader charges (Llusar et al., docs/references.md; pure, no AiiDA).

Conventions (docs/charge_flow.md), charges in e, lengths in Å:

* ``Δq_a = Z_val,a − N_Bader,a``: positive for an atom that lost electrons (cation), negative for one that gained.
* Bonds ``b = (i, j)`` with ``i < j`` from covalent radii (:func:`aiida_qdtraps.analysis.bonds.bond_pairs`, scale 1.2).
* ``x_b`` = electrons flowing from ``i`` to ``j`` along bond ``b``. The incidence matrix ``A`` (atoms × bonds) has
  ``A[i, b] = +1`` and ``A[j, b] = −1``, so ``(A x)_a`` is the net electron outflow of atom ``a`` and the flows
  solve ``A x ≈ Δq``.
* Minimum-norm least squares: ``x = Aᵀ φ`` with ``L φ = Δq`` and ``L = A Aᵀ`` the graph Laplacian, i.e.
  ``x_ij = φ_i − φ_j``. ``L`` is singular once per connected component; the net charge of a component cannot flow
  anywhere and stays as a residual spread evenly over its atoms. With a Tikhonov regulariser ``λ > 0``,
  ``x = argmin ‖A x − Δq‖² + λ ‖x‖² = Aᵀ (L + λ I)⁻¹ Δq``. Both are sparse solves: O(N) memory.
* Atom vector ``v_a = Σ_j x_{a→j} û_{a→j}`` (arrows point along the electron flow: towards acceptors), magnitude
  ``|v_a|`` in e.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.sparse.linalg import LinearOperator, cg, splu

# Domains of a core/shell QD (Llusar et al.'s order) and, for a structure without tags, domains from the elements (the
# ligand elements are ligand, cations and anions core): the builder's, the one table of roles and domains.
from ..builder.roles import DOMAINS, LIGAND_ELEMENTS, infer_domains  # noqa: F401
from .bonds import CHARGE_FLOW_SCALE, bond_pairs


@dataclasses.dataclass
class ChargeFlow:
    """Result of :func:`solve_charge_flow`.

    :ivar bonds: bonded pairs (n_bonds, 2), ``i < j``.
    :ivar flows: electrons flowing from ``bonds[:, 0]`` to ``bonds[:, 1]`` (n_bonds,), e.
    :ivar potential: node potential ``φ`` with ``x_ij = φ_i − φ_j`` (n_atoms,), e.
    :ivar residual: ``Δq − A x`` per atom (n_atoms,), e.
    :ivar component: connected-component index per atom (n_atoms,).
    :ivar component_charge: net ``Σ Δq`` of each component (n_components,), e.
    :ivar component_residual: ``‖Δq − A x‖₂`` over each component (n_components,), e.
    :ivar regularization: the Tikhonov λ used (0 = minimum norm).
    """

    bonds: np.ndarray
    flows: np.ndarray
    potential: np.ndarray
    residual: np.ndarray
    component: np.ndarray
    component_charge: np.ndarray
    component_residual: np.ndarray
    regularization: float

    @property
    def net_charge(self) -> float:
        """Global neutrality: ``Σ_a Δq_a`` (e); 0 for a neutral QD with conserved electrons."""
        return float(self.component_charge.sum())


def charge_transfer(valence: np.ndarray, populations: np.ndarray) -> np.ndarray:
    """``Δq = Z_val − N_Bader`` per atom (e)."""
    valence, populations = np.asarray(valence, float), np.asarray(populations, float)
    if valence.shape != populations.shape:
        raise ValueError(f'{len(valence)} valence charges for {len(populations)} Bader populations')
    return valence - populations


def incidence_matrix(bonds: np.ndarray, n_atoms: int) -> sparse.csr_matrix:
    """Signed incidence matrix ``A`` (n_atoms, n_bonds): +1 at the first atom of each bond, −1 at the second."""
    bonds = np.asarray(bonds, dtype=int).reshape(-1, 2)
    if bonds.size and (bonds.min() < 0 or bonds.max() >= n_atoms):
        raise ValueError(f'bond atom index {int(bonds.max())} out of range for {n_atoms} atoms')
    if np.any(bonds[:, 0] == bonds[:, 1]):
        raise ValueError('a bond joins an atom to itself')
    n_bonds = len(bonds)
    rows = np.concatenate([bonds[:, 0], bonds[:, 1]])
    cols = np.concatenate([np.arange(n_bonds), np.arange(n_bonds)])
    data = np.concatenate([np.ones(n_bonds), -np.ones(n_bonds)])
    return sparse.csr_matrix((data, (rows, cols)), shape=(n_atoms, n_bonds))


def graph_laplacian(bonds: np.ndarray, n_atoms: int) -> sparse.csc_matrix:
    """Graph Laplacian ``L = A Aᵀ`` (degree on the diagonal, −1 per bond) as a sparse CSC matrix."""
    incidence = incidence_matrix(bonds, n_atoms)
    return (incidence @ incidence.T).tocsc()


#: Up to this many unknowns the Laplacian system is factorised (SuperLU); above it, preconditioned CG is used
#: (a 3-D bond graph fills in badly: a 100k-atom cluster does not factorise in minutes).
DIRECT_SOLVER_LIMIT = 1000
#: Relative residual at which CG stops (keeps the flows equal to the dense solution to ~1e-10 e).
CG_RTOL = 1e-12


def _solve_spd(matrix: sparse.csc_matrix, rhs: np.ndarray, method: str) -> np.ndarray:
    """Solve a sparse symmetric positive-definite system by SuperLU (``'direct'``) or Jacobi-preconditioned CG."""
    if method not in ('auto', 'direct', 'cg'):
        raise ValueError(f"solver method must be 'auto', 'direct' or 'cg', got {method!r}")
    if method == 'direct' or (method == 'auto' and matrix.shape[0] <= DIRECT_SOLVER_LIMIT):
        return splu(matrix, permc_spec='MMD_AT_PLUS_A').solve(rhs)
    inverse_diagonal = 1.0 / matrix.diagonal()
    preconditioner = LinearOperator(matrix.shape, matvec=lambda x: inverse_diagonal * x)
    scale = np.linalg.norm(rhs)
    if scale == 0:
        return np.zeros_like(rhs)
    solution, info = cg(matrix.tocsr(), rhs / scale, rtol=CG_RTOL, atol=0.0, maxiter=20 * matrix.shape[0],
                        M=preconditioner)
    if info != 0:
        raise RuntimeError(f'conjugate gradients did not reach rtol {CG_RTOL} in {info} iterations')
    return solution * scale


def solve_charge_flow(dq: np.ndarray, bonds: np.ndarray, regularization: float = 0.0,
                      method: str = 'auto') -> ChargeFlow:
    """Per-bond flows ``x`` with ``A x ≈ Δq`` through a sparse graph-Laplacian solve.

    :param dq: ``Δq`` per atom (n_atoms,), e.
    :param bonds: bonded pairs (n_bonds, 2).
    :param regularization: Tikhonov ``λ ≥ 0`` (dimensionless; 0 = minimum-norm least squares). A larger λ shrinks
        all flows; it trades the residual ``‖A x − Δq‖`` for a smaller ``‖x‖``.
    :param method: ``'direct'`` (SuperLU), ``'cg'`` (Jacobi-preconditioned conjugate gradients, rtol 1e-12) or
        ``'auto'`` (direct up to :data:`DIRECT_SOLVER_LIMIT` unknowns).
    """
    dq = np.asarray(dq, dtype=float)
    if dq.ndim != 1:
        raise ValueError(f'dq must be a vector, got shape {dq.shape}')
    if not np.all(np.isfinite(dq)):
        raise ValueError('dq holds non-finite values')
    if not regularization >= 0 or not np.isfinite(regularization):
        raise ValueError(f'regularization λ must be a finite number ≥ 0, got {regularization}')
    n_atoms = len(dq)
    bonds = np.asarray(bonds, dtype=int).reshape(-1, 2)
    incidence = incidence_matrix(bonds, n_atoms)
    laplacian = (incidence @ incidence.T).tocsc()
    n_comp, component = csgraph.connected_components(laplacian, directed=False)
    component_charge = np.bincount(component, weights=dq, minlength=n_comp)
    if regularization > 0:
        system = (laplacian + regularization * sparse.identity(n_atoms, format='csc')).tocsc()
        potential = _solve_spd(system, dq, method)
    else:
        # Project Δq onto the range of L (remove each component's mean), then ground one atom per component:
        # the reduced Laplacian is symmetric positive definite.
        counts = np.bincount(component, minlength=n_comp)
        rhs = dq - (component_charge / counts)[component]
        grounded = np.zeros(n_atoms, dtype=bool)
        grounded[np.unique(component, return_index=True)[1]] = True
        free = np.flatnonzero(~grounded)
        potential = np.zeros(n_atoms)
        if free.size:
            potential[free] = _solve_spd(laplacian[free][:, free].tocsc(), rhs[free], method)
    flows = potential[bonds[:, 0]] - potential[bonds[:, 1]] if len(bonds) else np.zeros(0)
    residual = dq - incidence @ flows
    component_residual = np.sqrt(np.bincount(component, weights=residual ** 2, minlength=n_comp))
    return ChargeFlow(bonds=bonds, flows=flows, potential=potential, residual=residual, component=component,
                      component_charge=component_charge, component_residual=component_residual,
                      regularization=float(regularization))


def atom_vectors(positions: np.ndarray, bonds: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """Charge-flow vector per atom ``v_a = Σ_j x_{a→j} û_{a→j}`` (n_atoms, 3), e (pointing along the electron flow)."""
    positions = np.asarray(positions, dtype=float)
    bonds = np.asarray(bonds, dtype=int).reshape(-1, 2)
    vectors = np.zeros_like(positions)
    if not len(bonds):
        return vectors
    delta = positions[bonds[:, 1]] - positions[bonds[:, 0]]
    unit = delta / np.linalg.norm(delta, axis=1)[:, None]
    contribution = np.asarray(flows, float)[:, None] * unit  # flow i→j along û_{i→j}; for j: (−x)(−û) is the same
    np.add.at(vectors, bonds[:, 0], contribution)
    np.add.at(vectors, bonds[:, 1], contribution)
    return vectors


def domain_summary(domains: Sequence[str], dq: np.ndarray, magnitudes: np.ndarray, bonds: np.ndarray,
                   flows: np.ndarray) -> dict:
    """Per-domain totals and averages, and the net electron flow between domains.

    :returns: ``{'domains': [...], 'per_domain': {name: {'n_atoms', 'dq_total', 'dq_mean', 'magnitude_mean',
        'magnitude_max'}}, 'inter_domain_flow': {"A->B": electrons from A to B}}`` (e). Domains are listed in
        Llusar et al.'s order (core, interlayer, shell, ligand), then any others alphabetically.
    """
    domains = np.asarray(domains, dtype=str)
    dq, magnitudes = np.asarray(dq, float), np.asarray(magnitudes, float)
    if not len(domains) == len(dq) == len(magnitudes):
        raise ValueError(f'{len(domains)} domain tags for {len(dq)} atoms')
    present = set(domains.tolist())
    names = [d for d in DOMAINS if d in present] + sorted(present - set(DOMAINS))
    per_domain = {}
    for name in names:
        mask = domains == name
        per_domain[name] = {'n_atoms': int(mask.sum()), 'dq_total': float(dq[mask].sum()),
                            'dq_mean': float(dq[mask].mean()), 'magnitude_mean': float(magnitudes[mask].mean()),
                            'magnitude_max': float(magnitudes[mask].max())}
    inter = {}
    bonds = np.asarray(bonds, dtype=int).reshape(-1, 2)
    if len(bonds):
        di, dj = domains[bonds[:, 0]], domains[bonds[:, 1]]
        for a in names:
            for b in names:
                if a >= b:
                    continue
                forward = float(flows[(di == a) & (dj == b)].sum() - flows[(di == b) & (dj == a)].sum())
                if np.any(((di == a) & (dj == b)) | ((di == b) & (dj == a))):
                    inter[f'{a}->{b}'] = forward
    return {'domains': names, 'per_domain': per_domain, 'inter_domain_flow': inter}


def charge_flow_summary(symbols: Sequence[str], valence: np.ndarray, populations: np.ndarray, flow: ChargeFlow,
                        domains: Sequence[str], magnitudes: np.ndarray, vacuum_charge: float = 0.0,
                        net_charge: float = 0, bond_scale: float | None = None) -> dict:
    """The numbers of a charge-flow analysis (e; JSON-ready): electron bookkeeping, the solve, per element and per
    domain (:func:`domain_summary`).

    ``valence_electrons`` = Σ Z_val − net charge; ``electron_difference`` = Σ N_Bader + vacuum charge − Σ Z_val +
    net charge (0 when the Bader basins and the vacuum hold every valence electron); ``sum_dq`` = Σ Δq (0 for a
    neutral QD); ``per_element``: atoms and mean Δq of each element; ``max_magnitude``: the largest ``|v_a|``.
    """
    symbols = np.asarray(symbols, dtype=str)
    valence, populations = np.asarray(valence, float), np.asarray(populations, float)
    magnitudes = np.asarray(magnitudes, float)
    dq = charge_transfer(valence, populations)
    per_element = {el: {'n_atoms': int(np.sum(symbols == el)), 'dq_mean': float(dq[symbols == el].mean())}
                   for el in sorted(set(symbols.tolist()))}
    return {
        'valence_electrons': float(valence.sum() - net_charge),
        'electrons_in_basins': float(populations.sum()), 'vacuum_charge': float(vacuum_charge),
        'electron_difference': float(populations.sum() + vacuum_charge - valence.sum() + net_charge),
        'sum_dq': flow.net_charge, 'net_charge': net_charge,
        'n_bonds': len(flow.bonds), 'n_components': len(flow.component_charge),
        'component_charge': flow.component_charge.tolist(), 'component_residual': flow.component_residual.tolist(),
        'residual_norm': float(np.linalg.norm(flow.residual)), 'regularization': flow.regularization,
        'bond_scale': bond_scale, 'per_element': per_element,
        **domain_summary(domains, dq, magnitudes, flow.bonds, flow.flows),
        'max_magnitude': float(magnitudes.max(initial=0.0)),
    }


@dataclasses.dataclass
class ChargeFlowAnalysis:
    """Result of :func:`analyse_charge_flow` (charges in e).

    :ivar dq: ``Δq`` per atom; :ivar flow: the :class:`ChargeFlow` over the bonds; :ivar vectors: atom vectors
        (n_atoms, 3); :ivar magnitudes: ``|v_a|``; :ivar summary: :func:`charge_flow_summary`.
    """

    dq: np.ndarray
    flow: ChargeFlow
    vectors: np.ndarray
    magnitudes: np.ndarray
    summary: dict


def analyse_charge_flow(symbols: Sequence[str], positions: np.ndarray, valence: np.ndarray, populations: np.ndarray,
                        domains: Sequence[str], vacuum_charge: float = 0.0, net_charge: float = 0,
                        bond_scale: float = CHARGE_FLOW_SCALE,
                        pair_scale: Mapping[tuple[str, str], float] | None = None,
                        regularization: float = 0.0) -> ChargeFlowAnalysis:
    """Bader populations → Δq, bonds (:func:`~aiida_qdtraps.analysis.bonds.bond_pairs`: covalent radii ×
    ``bond_scale``, the same for same-element pairs; ``pair_scale`` overrides per element pair), bond flows, atom
    vectors and the summary.

    :param valence: Z_val per atom (e); ``populations``: Bader electrons per atom; ``domains``: a tag per atom.
    :raises ValueError: for domain tags, valences or populations that do not cover the atoms.
    """
    positions = np.asarray(positions, float)
    if len(domains) != len(symbols):
        raise ValueError(f'{len(domains)} domain tags for {len(symbols)} atoms')
    if len(valence) != len(symbols):
        raise ValueError(f'{len(valence)} valence charges for {len(symbols)} atoms')
    dq = charge_transfer(valence, populations)
    bonds = bond_pairs(positions, symbols, scale=bond_scale, same_element_scale=None, pair_scale=pair_scale)
    flow = solve_charge_flow(dq, bonds, regularization)
    vectors = atom_vectors(positions, bonds, flow.flows)
    magnitudes = np.linalg.norm(vectors, axis=1)
    summary = charge_flow_summary(symbols, valence, populations, flow, domains, magnitudes, vacuum_charge,
                                  net_charge, bond_scale)
    return ChargeFlowAnalysis(dq, flow, vectors, magnitudes, summary)


def plane_normal(miller: Sequence[float] | None = None, lattice: np.ndarray | None = None,
                 normal: Sequence[float] | None = None) -> np.ndarray:
    """Unit normal of a plane given by Miller indices (with the lattice of the core, rows a1, a2, a3 in Å) or by a
    Cartesian normal. Without a lattice the Miller indices are taken in a cubic lattice."""
    if (miller is None) == (normal is None):
        raise ValueError('give exactly one of miller indices or a Cartesian normal')
    if normal is not None:
        vec = np.asarray(normal, dtype=float)
    else:
        hkl = np.asarray(miller, dtype=float)
        if hkl.shape != (3,):
            raise ValueError(f'Miller indices must be three numbers, got {miller}')
        lattice = np.eye(3) if lattice is None else np.asarray(lattice, dtype=float)
        vec = hkl @ np.linalg.inv(lattice).T  # h b1 + k b2 + l b3 (reciprocal vectors, without 2π)
    norm = np.linalg.norm(vec)
    if vec.shape != (3,) or not norm > 0:
        raise ValueError(f'the plane normal must be a non-zero 3-vector, got {vec.tolist()}')
    return vec / norm


def plane_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal in-plane axes ``(e1, e2)`` for a unit normal (right-handed with the normal)."""
    trial = np.eye(3)[int(np.argmin(np.abs(normal)))]
    e1 = np.cross(normal, trial)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(normal, e1)


@dataclasses.dataclass
class PlanarMap:
    """Atoms of a slab projected on a plane.

    :ivar indices: atom indices in the slab.
    :ivar xy: in-plane coordinates (n, 2), Å, relative to ``center``.
    :ivar vectors: in-plane components of the atom vectors (n, 2), e.
    :ivar magnitudes: full 3-D magnitudes ``|v_a|`` (n,), e.
    :ivar outline: in-plane coordinates of the convex hull of all atoms within the slab (m, 2), Å.
    """

    indices: np.ndarray
    xy: np.ndarray
    vectors: np.ndarray
    magnitudes: np.ndarray
    outline: np.ndarray
    normal: np.ndarray
    axes: tuple[np.ndarray, np.ndarray]
    center: np.ndarray


def planar_map(positions: np.ndarray, vectors: np.ndarray, normal: np.ndarray, thickness: float = 2.0,
               center: np.ndarray | None = None, select: np.ndarray | None = None) -> PlanarMap:
    """Project the atoms within ``|(r − c)·n| ≤ thickness/2`` (Å) and their vectors on the plane through ``c``.

    :param center: a point on the plane (Å); default the centroid of the QD.
    :param select: boolean mask of atoms to show (e.g. the anions, as in Llusar et al.'s maps); all if ``None``.
    """
    from scipy.spatial import ConvexHull, QhullError

    if not thickness > 0:
        raise ValueError(f'slab thickness must be > 0 Å, got {thickness}')
    positions, vectors = np.asarray(positions, float), np.asarray(vectors, float)
    center = positions.mean(axis=0) if center is None else np.asarray(center, float)
    e1, e2 = plane_basis(normal)
    rel = positions - center
    in_slab = np.abs(rel @ normal) <= thickness / 2
    xy_all = np.stack([rel @ e1, rel @ e2], axis=1)
    outline = np.zeros((0, 2))
    if in_slab.sum() >= 3:
        try:
            hull = ConvexHull(xy_all[in_slab])
            outline = xy_all[in_slab][hull.vertices]
        except QhullError:
            pass
    shown = in_slab if select is None else in_slab & np.asarray(select, dtype=bool)
    indices = np.flatnonzero(shown)
    return PlanarMap(indices=indices, xy=xy_all[indices],
                     vectors=np.stack([vectors[indices] @ e1, vectors[indices] @ e2], axis=1),
                     magnitudes=np.linalg.norm(vectors[indices], axis=1), outline=outline, normal=normal,
                     axes=(e1, e2), center=center)


def facet_label_positions(pmap: PlanarMap, facets: Mapping[str, Sequence[float]], lattice: np.ndarray | None = None,
                          max_angle: float = 35.0) -> list[tuple[str, np.ndarray]]:
    """Where to write facet labels on a planar map: for each facet (label → Miller indices) whose normal lies within
    ``max_angle`` degrees of the plane, a point just outside the outline along its projected direction (Å)."""
    labels = []
    extent = np.abs(pmap.outline).max() if len(pmap.outline) else np.abs(pmap.xy).max(initial=1.0)
    for label, miller in facets.items():
        direction = plane_normal(miller=miller, lattice=lattice)
        in_plane = np.array([direction @ pmap.axes[0], direction @ pmap.axes[1]])
        if np.linalg.norm(in_plane) < np.cos(np.radians(90 - max_angle)):
            continue
        labels.append((label, 1.12 * extent * in_plane / np.linalg.norm(in_plane)))
    return labels


def plot_planar_map(pmap: PlanarMap, path, title: str = '', facets: list[tuple[str, np.ndarray]] | None = None,
                    resolution: int = 200) -> None:
    """Llusar et al.-style map: interpolated magnitude background, white arrows, dashed QD outline; PNG at ``path``."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from scipy.interpolate import griddata

    fig, ax = plt.subplots(figsize=(5.5, 5))
    if len(pmap.xy):
        span = np.abs(np.concatenate([pmap.xy, pmap.outline])).max() + 1.0
        grid = np.linspace(-span, span, resolution)
        gx, gy = np.meshgrid(grid, grid)
        background = None
        if len(pmap.xy) >= 3:
            try:
                background = griddata(pmap.xy, pmap.magnitudes, (gx, gy), method='linear')
            except Exception:  # noqa: BLE001 - collinear points: fall back to nearest
                background = None
        if background is None or np.all(np.isnan(background)):
            background = griddata(pmap.xy, pmap.magnitudes, (gx, gy), method='nearest')
        image = ax.contourf(gx, gy, background, levels=20, cmap='viridis')
        fig.colorbar(image, ax=ax, label='charge-flow magnitude |v| (e)')
        ax.quiver(pmap.xy[:, 0], pmap.xy[:, 1], pmap.vectors[:, 0], pmap.vectors[:, 1], color='white',
                  edgecolor='black', linewidth=0.5, angles='xy', scale_units='xy',
                  scale=max(pmap.magnitudes.max(), 1e-12) / 1.5, width=0.006, zorder=4)
        ax.scatter(pmap.xy[:, 0], pmap.xy[:, 1], s=12, c='red', zorder=3)
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    if len(pmap.outline) >= 3:
        closed = np.vstack([pmap.outline, pmap.outline[:1]])
        ax.plot(closed[:, 0], closed[:, 1], 'k--', lw=1)
    for label, point in facets or []:
        ax.text(point[0], point[1], label, ha='center', va='center', fontsize=9)
    ax.set_aspect('equal')
    ax.set_xlabel('in-plane x (Å)')
    ax.set_ylabel('in-plane y (Å)')
    ax.set_title(title or f'charge flow, plane normal {np.round(pmap.normal, 3).tolist()}')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def domain_populations(atom_populations: np.ndarray, domains: Sequence[str],
                       names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Summed population of every MO on each domain: ``(names, (nmo, n_domains))``.

    :param atom_populations: (nmo, n_atoms) populations (e.g. Löwdin, each row summing to 1).
    """
    domains = np.asarray(domains, dtype=str)
    atom_populations = np.asarray(atom_populations, float)
    if atom_populations.shape[1] != len(domains):
        raise ValueError(f'populations cover {atom_populations.shape[1]} atoms but {len(domains)} domain tags given')
    present = set(domains.tolist())
    names = list(names) if names is not None else [d for d in DOMAINS if d in present] + sorted(present - set(DOMAINS))
    return names, np.stack([atom_populations[:, domains == n].sum(axis=1) for n in names], axis=1)


def broadened_pdos(energies: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float = 0.1) -> np.ndarray:
    """Gaussian-broadened PDOS ``Σ_i w_id g(E − ε_i)`` on ``grid`` (states/eV), shape (len(grid), n_domains).

    :param energies: MO energies (nmo,), eV. :param weights: (nmo, n_domains). :param sigma: Gaussian width, eV.
    """
    if not sigma > 0:
        raise ValueError(f'broadening sigma must be > 0 eV, got {sigma}')
    shape = np.exp(-0.5 * ((np.asarray(grid)[:, None] - np.asarray(energies)[None, :]) / sigma) ** 2)
    return shape / (sigma * np.sqrt(2 * np.pi)) @ np.asarray(weights, float)


def frontier_composition(energies: np.ndarray, occupations: np.ndarray, weights: np.ndarray) -> dict:
    """Domain shares of the HOMO and LUMO (Llusar et al. Fig. 2c): ``{'homo': row, 'lumo': row, 'homo_index',
    'lumo_index'}`` with rows (n_domains,) summing to the MO's total population.

    :raises ValueError: if the window holds no occupied or no empty MO.
    """
    occupations = np.asarray(occupations, float)
    occupied = np.flatnonzero(occupations > 0.5 * occupations.max(initial=0))
    empty = np.flatnonzero(occupations <= 0.5 * occupations.max(initial=0))
    if not occupied.size or not empty.size:
        raise ValueError('the MO window must hold both occupied and empty orbitals')
    energies = np.asarray(energies, float)
    homo = int(occupied[np.argmax(energies[occupied])])
    lumo = int(empty[np.argmin(energies[empty])])
    return {'homo_index': homo, 'lumo_index': lumo, 'homo': np.asarray(weights)[homo],
            'lumo': np.asarray(weights)[lumo]}


def plot_domain_pdos(energies: np.ndarray, weights: np.ndarray, names: Sequence[str], composition: dict, path,
                     sigma: float = 0.1) -> None:
    """Domain-resolved PDOS (left) and HOMO/LUMO domain composition bars (right); PNG at ``path``. Energies in eV."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    colors = {'core': 'tab:blue', 'interlayer': 'tab:orange', 'shell': 'tab:red', 'ligand': 'tab:green'}
    energies = np.asarray(energies, float)
    grid = np.linspace(energies.min() - 1.0, energies.max() + 1.0, 600)
    pdos = broadened_pdos(energies, weights, grid, sigma)
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(8, 4), gridspec_kw={'width_ratios': [3, 1]})
    for k, name in enumerate(names):
        ax.plot(grid, pdos[:, k], label=name, color=colors.get(name))
    homo, lumo = energies[composition['homo_index']], energies[composition['lumo_index']]
    ax.axvline(homo, color='k', ls='--', lw=0.8)
    ax.axvline(lumo, color='k', ls=':', lw=0.8)
    ax.set_xlabel('MO energy (eV)')
    ax.set_ylabel(f'PDOS (states/eV, σ = {sigma} eV)')
    ax.set_title(f'domain PDOS; gap {lumo - homo:.2f} eV')
    ax.legend()
    bottom = np.zeros(2)
    for k, name in enumerate(names):
        share = 100 * np.array([composition['homo'][k], composition['lumo'][k]])
        bar.bar(['HOMO', 'LUMO'], share, bottom=bottom, label=name, color=colors.get(name))
        bottom += share
    bar.set_ylabel('composition (%)')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def charge_flow_table(symbols: Sequence[str], dq: np.ndarray, vectors: np.ndarray) -> list[dict]:
    """One row per atom: index, element, dq, vx, vy, vz, magnitude (e) — the CLI's CSV."""
    magnitudes = np.linalg.norm(vectors, axis=1)
    return [{'index': a, 'element': s, 'dq': float(dq[a]), 'vx': float(vectors[a, 0]), 'vy': float(vectors[a, 1]),
             'vz': float(vectors[a, 2]), 'magnitude': float(magnitudes[a])} for a, s in enumerate(symbols)]

"""Per-MO atomic populations and participation ratios (pure; no AiiDA).

Conventions (Alexander et al., docs/references.md; docs/traps.md):

* **Löwdin** population of MO ``i`` on atom ``A``: ``p_iA = Σ_{μ∈A} |(S^{1/2} C)_{μi}|²``. For an MO normalised in the
  overlap metric (``Cᵀ S C = 1``) the populations are non-negative and sum to 1 over all atoms.
* **Mulliken** (option): ``p_iA = Σ_{μ∈A} C_{μi} (S C)_{μi}``; can be negative for diffuse bases.
* **Participation ratio** (the authors' definition): ``PR_i = 1 / (N · Σ_A p̃_iA²)`` where ``p̃`` are the populations
  renormalised over the ``N`` atoms considered (the non-ligand atoms by default). PR is 1/N for an MO on one atom and
  1 for an MO spread evenly over all N atoms. Its reciprocal-like cousin, the **inverse participation ratio**
  ``IPR_i = Σ_A p̃_iA²`` (1 on one atom, 1/N uniform), is also provided under that name.

Arrays: ``coefficients`` (nao, nmo), ``overlap`` (nao, nao), ``ao_atom`` (nao,) → populations (nmo, n_atoms).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy import sparse

POPULATION_METHODS = ('lowdin', 'mulliken')


def check_overlap(overlap: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Eigen-decomposition ``(w, v)`` of the AO overlap after checking that it is symmetric positive definite.

    :raises ValueError: naming the smallest eigenvalue when the matrix is not positive definite, or the largest
        asymmetry when it is not symmetric.
    """
    overlap = np.asarray(overlap, dtype=float)
    if overlap.ndim != 2 or overlap.shape[0] != overlap.shape[1]:
        raise ValueError(f'the AO overlap must be a square matrix, got shape {overlap.shape}')
    asymmetry = float(np.abs(overlap - overlap.T).max()) if overlap.size else 0.0
    if asymmetry > 1e-6:
        raise ValueError(f'the AO overlap is not symmetric: max |S - Sᵀ| = {asymmetry:.3g}')
    w, v = scipy.linalg.eigh(overlap, driver='evd')
    if w.size and w[0] <= tol:
        raise ValueError(f'the AO overlap is not positive definite: smallest eigenvalue {w[0]:.3g} (must be > {tol})')
    return w, v


def overlap_sqrt(overlap: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """``S^{1/2}`` of a symmetric positive-definite overlap matrix (raises ``ValueError`` otherwise)."""
    w, v = check_overlap(overlap, tol)
    return (v * np.sqrt(w)) @ v.T


#: Above this many AOs, ``S^{1/2} C`` is evaluated by a Chebyshev expansion instead of diagonalising S.
EXACT_SQRT_MAX_AO = 3000

#: Target number of AOs per spatial block of the tiled overlap (see :class:`TiledOverlap`).
TILE_AOS = 128


def _bisect(indices: np.ndarray, positions: np.ndarray, leaf: int) -> list[np.ndarray]:
    """Recursive coordinate bisection: split ``indices`` at the median of their longest extent until ≤ ``leaf``."""
    if len(indices) <= leaf:
        return [indices]
    axis = int(np.argmax(np.ptp(positions[indices], axis=0)))
    ordered = indices[np.argsort(positions[indices, axis], kind='stable')]
    half = len(ordered) // 2
    return _bisect(ordered[:half], positions, leaf) + _bisect(ordered[half:], positions, leaf)


class TiledOverlap:
    """The AO overlap as a block-sparse operator, for products ``S @ V`` with a block of vectors.

    An AO basis on a cluster is local: ``S_μν`` vanishes (CP2K filters it to exactly 0) between AOs on atoms further
    apart than a few Å. The AOs are grouped by recursive coordinate bisection of their atoms' positions into spatially
    compact blocks of about :data:`TILE_AOS` AOs; for every block row, the runs of consecutive blocks that hold a
    non-zero element are gathered once into contiguous tiles (in ``dtype``), and a product multiplies only those
    (dense BLAS). Without ``ao_positions`` the blocks are consecutive ranges of the given AO order.

    :param overlap: symmetric AO overlap (nao, nao).
    :param ao_positions: Cartesian position of every AO's atom (nao, 3), optional.
    :param dtype: ``np.float32`` (default) halves the memory traffic and doubles the BLAS speed, with a relative error
        of ~1e-7 per product; ``np.float64`` for full precision.
    """

    def __init__(self, overlap: np.ndarray, ao_positions: np.ndarray | None = None, dtype=np.float32,
                 tile_aos: int = TILE_AOS):
        overlap = np.asarray(overlap)
        nao = overlap.shape[0]
        if ao_positions is None:
            groups = [np.arange(i, min(i + tile_aos, nao)) for i in range(0, nao, tile_aos)]
        else:
            ao_positions = np.asarray(ao_positions, dtype=float)
            if ao_positions.shape != (nao, 3):
                raise ValueError(f'ao_positions must have shape ({nao}, 3), got {ao_positions.shape}')
            groups = [np.sort(group) for group in _bisect(np.arange(nao), ao_positions, tile_aos)]
        self.order = np.concatenate(groups) if groups else np.zeros(0, int)
        self.bounds = np.cumsum([0] + [len(group) for group in groups])
        self.dtype = np.dtype(dtype)
        group_of = np.empty(nao, dtype=int)
        for k, group in enumerate(groups):
            group_of[group] = k
        #: per block row: (first, stop, tile) with tile = S[rows of the block, blocked columns first:stop]
        self.tiles: list[list[tuple[int, int, np.ndarray]]] = []
        stored = 0
        for group in groups:
            coupled_aos = np.flatnonzero(np.any(overlap[group] != 0, axis=0))
            coupled = np.zeros(len(groups), bool)
            coupled[group_of[coupled_aos]] = True
            row_tiles, j = [], 0
            while j < len(groups):
                if not coupled[j]:
                    j += 1
                    continue
                k = j
                while k + 1 < len(groups) and coupled[k + 1]:
                    k += 1
                first, stop = int(self.bounds[j]), int(self.bounds[k + 1])
                tile = np.ascontiguousarray(overlap[np.ix_(group, self.order[first:stop])], dtype=self.dtype)
                row_tiles.append((first, stop, tile))
                stored += tile.size
                j = k + 1
            self.tiles.append(row_tiles)
        #: fraction of the dense matrix that a product touches
        self.fill = float(stored) / nao ** 2 if nao else 0.0

    def to_blocked(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors (nao, k) in the original AO order → the operator's order and dtype."""
        return np.ascontiguousarray(np.asarray(vectors)[self.order], dtype=self.dtype)

    def from_blocked(self, vectors: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_blocked`, as float64."""
        out = np.empty(vectors.shape, dtype=float)
        out[self.order] = vectors
        return out

    def matmul(self, block: np.ndarray) -> np.ndarray:
        """``S @ block`` for a block in the operator's order."""
        out = np.zeros_like(block)
        for i, row_tiles in enumerate(self.tiles):
            target = out[self.bounds[i]:self.bounds[i + 1]]
            for first, stop, tile in row_tiles:
                target += tile @ block[first:stop]
        return out

    def extreme_eigenvalues(self, tol: float = 1e-4) -> tuple[float, float]:
        """Smallest and largest eigenvalue by Lanczos (both ends from one Krylov space)."""
        from scipy.sparse.linalg import LinearOperator, eigsh

        nao = len(self.order)
        if nao <= 2:  # ARPACK needs k < n
            w = np.linalg.eigvalsh(self.from_blocked(self.matmul(self.to_blocked(np.eye(nao)))))
            return float(w[0]), float(w[-1])
        operator = LinearOperator(
            (nao, nao), dtype=float,
            matvec=lambda x: self.matmul(np.asarray(x, self.dtype).reshape(nao, -1)).astype(float).ravel())
        v0 = np.random.default_rng(0).normal(size=nao)
        values = eigsh(operator, k=2, which='BE', return_eigenvectors=False, v0=v0, tol=tol)
        return float(values.min()), float(values.max())


def overlap_sqrt_times(overlap: np.ndarray, vectors: np.ndarray, tol: float | None = None, method: str = 'auto',
                       max_degree: int = 400, ao_positions: np.ndarray | None = None,
                       precision: str = 'single', tile_aos: int = TILE_AOS) -> np.ndarray:
    """``S^{1/2} V`` for a block of vectors (the Löwdin-orthogonal components of MOs ``V``).

    ``method='exact'`` diagonalises S (O(nao³), float64). ``'chebyshev'`` expands ``√x`` in Chebyshev polynomials on
    ``[λ_min, λ_max]`` of S (found by Lanczos) and applies it with the three-term recurrence, one ``S @ V`` product
    per degree: ``O(degree · fill · nao² · k)``, where ``fill`` is the fraction of the overlap that the
    :class:`TiledOverlap` keeps (AO blocks ordered by ``ao_positions`` when given; ~0.3 for a 2,000-atom QD). The degree
    follows from the condition number (``((√κ-1)/(√κ+1))^degree < tol``), e.g. 24 for κ = 7.7 and tol 1e-7.
    ``'auto'``: exact up to :data:`EXACT_SQRT_MAX_AO` AOs.

    :param tol: truncation error of the expansion; default 1e-7 in single and 1e-10 in double precision.
    :param precision: ``'single'`` (default; float32 products, error ~1e-6 on the vectors, 1e-7 on populations) or
        ``'double'`` for the Chebyshev route. The exact route is always double.
    :param tile_aos: AOs per block of the :class:`TiledOverlap` (``nao`` or more: one dense block).
    :raises ValueError: if S is not positive definite, naming its smallest eigenvalue.
    """
    overlap = np.asarray(overlap, dtype=float)
    vectors = np.asarray(vectors, dtype=float)
    if method == 'auto':
        method = 'exact' if overlap.shape[0] <= EXACT_SQRT_MAX_AO else 'chebyshev'
    if method == 'exact':
        return overlap_sqrt(overlap) @ vectors
    if method != 'chebyshev':
        raise ValueError(f"method must be 'auto', 'exact' or 'chebyshev', got {method!r}")
    if precision not in ('single', 'double'):
        raise ValueError(f"precision must be 'single' or 'double', got {precision!r}")
    if tol is None:
        tol = 1e-7 if precision == 'single' else 1e-10
    tiled = TiledOverlap(overlap, ao_positions, np.float32 if precision == 'single' else np.float64, tile_aos)
    low, high = tiled.extreme_eigenvalues()
    if low <= 1e-8:
        raise ValueError(f'the AO overlap is not positive definite: smallest eigenvalue {low:.3g} (must be > 1e-08)')
    low, high = 0.98 * low, 1.02 * high  # safety margin around the Lanczos estimates
    kappa = high / low
    rate = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)
    degree = int(np.ceil(np.log(tol) / np.log(rate))) + 2 if rate > 0 else 2
    if degree > max_degree:
        return overlap_sqrt(overlap) @ vectors
    # Chebyshev coefficients of sqrt on [low, high] from its values at the Chebyshev nodes.
    nodes = np.cos(np.pi * (np.arange(degree) + 0.5) / degree)
    values = np.sqrt(0.5 * (high - low) * nodes + 0.5 * (high + low))
    coefficients = np.array([2.0 / degree * np.sum(values * np.cos(np.pi * j * (np.arange(degree) + 0.5) / degree))
                             for j in range(degree)])
    coefficients[0] /= 2
    scale, shift = 2.0 / (high - low), (high + low) / (high - low)

    def mapped(block):  # (2S - (high + low)) / (high - low) applied to a block
        return scale * tiled.matmul(block) - shift * block

    previous = tiled.to_blocked(vectors)
    current = mapped(previous)
    result = coefficients[0] * previous.astype(float) + coefficients[1] * current
    for j in range(2, degree):
        previous, current = current, 2 * mapped(current) - previous
        result += coefficients[j] * current
    return tiled.from_blocked(result)


def _atom_summation(ao_atom: np.ndarray, n_atoms: int) -> sparse.csr_matrix:
    ao_atom = np.asarray(ao_atom, dtype=int)
    if ao_atom.size and (ao_atom.min() < 0 or ao_atom.max() >= n_atoms):
        raise ValueError(f'ao_atom refers to atom {int(ao_atom.max())} but the structure has {n_atoms} atoms')
    return sparse.csr_matrix((np.ones(len(ao_atom)), (ao_atom, np.arange(len(ao_atom)))),
                             shape=(n_atoms, len(ao_atom)))


def atomic_populations(coefficients: np.ndarray, overlap: np.ndarray, ao_atom: np.ndarray, n_atoms: int,
                       method: str = 'lowdin', overlap_half: np.ndarray | None = None) -> np.ndarray:
    """Population of every MO on every atom, shape (nmo, n_atoms).

    :param coefficients: MO coefficients (nao, nmo) in the non-orthogonal AO basis.
    :param overlap: AO overlap matrix (nao, nao).
    :param ao_atom: index of the atom each AO sits on (nao,).
    :param n_atoms: number of atoms of the structure (atoms without AOs get zero population).
    :param method: ``'lowdin'`` (default) or ``'mulliken'``.
    :param overlap_half: a precomputed ``S^{1/2}`` to reuse (Löwdin only).
    """
    coefficients = np.asarray(coefficients, dtype=float)
    if coefficients.ndim != 2:
        raise ValueError(f'coefficients must be a (nao, nmo) matrix, got shape {coefficients.shape}')
    nao = coefficients.shape[0]
    if np.shape(overlap) != (nao, nao):
        raise ValueError(f'the AO overlap has shape {np.shape(overlap)} but the coefficients have {nao} AOs')
    if len(ao_atom) != nao:
        raise ValueError(f'ao_atom has {len(ao_atom)} entries but the coefficients have {nao} AOs')
    summation = _atom_summation(ao_atom, n_atoms)
    if method == 'lowdin':
        weights = (overlap_sqrt_times(overlap, coefficients) if overlap_half is None
                   else overlap_half @ coefficients) ** 2
    elif method == 'mulliken':
        weights = coefficients * (np.asarray(overlap) @ coefficients)
    else:
        raise ValueError(f'unknown population method {method!r}; choose one of {POPULATION_METHODS}')
    return np.asarray((summation @ weights).T)


def renormalize(populations: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Populations restricted to the atoms in ``mask`` (all if ``None``) and renormalised to sum 1 per MO."""
    populations = np.asarray(populations, dtype=float)
    sub = populations if mask is None else populations[:, np.asarray(mask, dtype=bool)]
    total = sub.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        bad = int(np.argmin(total[:, 0]))
        raise ValueError(f'MO {bad} has no population on the selected atoms (sum {float(total[bad, 0]):.3g})')
    return sub / total


def participation_ratio(populations: np.ndarray) -> np.ndarray:
    """The authors' participation ratio ``PR = 1 / (N Σ_A p_A²)`` per MO, from populations normalised over N atoms."""
    populations = np.asarray(populations, dtype=float)
    return 1.0 / (populations.shape[1] * np.sum(populations ** 2, axis=1))


def inverse_participation_ratio(populations: np.ndarray) -> np.ndarray:
    """``IPR = Σ_A p_A²`` per MO (1 for one atom, 1/N for uniform), from normalised populations."""
    populations = np.asarray(populations, dtype=float)
    return np.sum(populations ** 2, axis=1)


def class_populations(populations: np.ndarray, classes: np.ndarray, names: list[str]) -> np.ndarray:
    """Summed population of every MO on each atom class, shape (nmo, len(names)).

    :param classes: class name per atom (the columns of ``populations``).
    """
    classes = np.asarray(classes)
    return np.stack([populations[:, classes == name].sum(axis=1) for name in names], axis=1)

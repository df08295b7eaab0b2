"""Per-MO atomic populations and participation ratios (pure; no AiiDA).

Conventions (seed 000, METHODS.md):

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


def _extreme_eigenvalues(overlap: np.ndarray) -> tuple[float, float]:
    from scipy.sparse.linalg import eigsh

    rng = np.random.default_rng(0)
    v0 = rng.normal(size=overlap.shape[0])
    high = float(eigsh(overlap, k=1, which='LA', return_eigenvectors=False, v0=v0, tol=1e-6)[0])
    low = float(eigsh(overlap, k=1, which='SA', return_eigenvectors=False, v0=v0, tol=1e-6)[0])
    return low, high


def overlap_sqrt_times(overlap: np.ndarray, vectors: np.ndarray, tol: float = 1e-10, method: str = 'auto',
                       max_degree: int = 400) -> np.ndarray:
    """``S^{1/2} V`` for a block of vectors (the Löwdin-orthogonal components of MOs ``V``).

    ``method='exact'`` diagonalises S (O(nao³)); ``'chebyshev'`` expands ``√x`` in Chebyshev polynomials on
    ``[λ_min, λ_max]`` of S (found by Lanczos) and applies it with the three-term recurrence, costing one
    ``S @ V`` product per degree: ``O(degree · nao² · k)``. The degree follows from the condition number
    (``((√κ-1)/(√κ+1))^degree < tol``), e.g. 29 for κ = 7 (CP2K's SZV-MOLOPT-SR on In4PF9). ``'auto'``: exact up
    to :data:`EXACT_SQRT_MAX_AO` AOs.

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
    low, high = _extreme_eigenvalues(overlap)
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
        return scale * (overlap @ block) - shift * block

    previous, current = vectors, mapped(vectors)
    result = coefficients[0] * previous + coefficients[1] * current
    for j in range(2, degree):
        previous, current = current, 2 * mapped(current) - previous
        result += coefficients[j] * current
    return result


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

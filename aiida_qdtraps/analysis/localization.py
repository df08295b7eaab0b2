"""Pipek–Mezey localization of a set of MOs with :mod:`pyscf.lo` on our own arrays (pure; no AiiDA).

PySCF's :class:`pyscf.lo.PipekMezey` needs a ``Mole`` only to build atomic projectors. We hand it MOs already
expressed in the Löwdin-orthogonalised AO basis (``X = S^{1/2} C``, where the overlap is the identity) and override
``atomic_pops`` so that the projector on atom ``A`` is the sum over that atom's AOs — i.e. the Pipek–Mezey objective
``Σ_i Σ_A p_iA²`` with Löwdin populations, exactly the populations used for the participation ratio. The optimiser
(CIAH second-order, PySCF's ``boys.kernel``) is PySCF's.

The returned unitary ``U`` rotates the input MOs: ``C_loc = C U``; the localized orbitals span the same space, and
their energies are the expectation values ``ε̃_j = Σ_k U_kj² ε_k`` of the (diagonal) Fock operator.
"""

from __future__ import annotations

import numpy as np
from pyscf import gto, lib
from pyscf.lo import pipek


class _ArrayPipekMezey(pipek.PipekMezey):
    """PySCF's Pipek–Mezey optimiser with Löwdin atomic populations defined by an AO → atom map."""

    def __init__(self, mol, orthogonal_coefficients, ao_atom, n_atoms):
        super().__init__(mol, orthogonal_coefficients)
        self.pop_method = None  # 'customized population': PySCF then calls our atomic_pops
        self._blocks = [np.flatnonzero(ao_atom == a) for a in range(n_atoms)]
        self._blocks = [b for b in self._blocks if len(b)]
        self.init_guess = None

    def get_proj_data(self, *args, **kwargs):
        return None

    def atomic_pops(self, mol, mo_coeff, method=None, kpt=None, proj_data=None, mode=None, verbose=None):
        if mode == 'pop':
            return np.array([np.sum(mo_coeff[b] ** 2, axis=0) for b in self._blocks])
        return np.array([lib.dot(mo_coeff[b].T, mo_coeff[b]) for b in self._blocks])


def pipek_mezey_objective(orthogonal_coefficients: np.ndarray, ao_atom: np.ndarray) -> float:
    """``Σ_i Σ_A p_iA²`` with Löwdin populations of MOs given in the Löwdin-orthogonal basis."""
    weights = np.asarray(orthogonal_coefficients) ** 2
    per_atom = np.zeros((int(np.max(ao_atom)) + 1, weights.shape[1]))
    np.add.at(per_atom, np.asarray(ao_atom, dtype=int), weights)
    return float(np.sum(per_atom ** 2))


def localize_pipek_mezey(orthogonal_coefficients: np.ndarray, ao_atom: np.ndarray, n_atoms: int,
                         conv_tol: float = 1e-8, max_cycle: int = 100, max_restarts: int = 10) -> np.ndarray:
    """Unitary ``U`` (k, k) of the Pipek–Mezey localization of ``k`` MOs.

    :param orthogonal_coefficients: the MOs in the Löwdin-orthogonal AO basis, ``S^{1/2} C`` (nao, k); they must be
        orthonormal (``XᵀX = 1``).
    :param ao_atom: atom index of every AO (nao,).
    :param n_atoms: number of atoms.
    :raises ValueError: if the columns are not orthonormal (naming the deviation).
    """
    x = np.asarray(orthogonal_coefficients, dtype=float)
    k = x.shape[1]
    if k < 2:
        return np.eye(k)
    deviation = float(np.abs(x.T @ x - np.eye(k)).max())
    if deviation > 1e-4:
        raise ValueError(f'the MOs to localize are not orthonormal: max |XᵀX - 1| = {deviation:.3g}')
    mol = gto.Mole()
    mol.verbose = 0
    mol.stdout = open('/dev/null', 'w')  # noqa: SIM115  (PySCF logs to mol.stdout)
    try:
        localizer = _ArrayPipekMezey(mol, x, np.asarray(ao_atom, dtype=int), n_atoms)
        localizer.conv_tol = conv_tol
        localizer.max_cycle = max_cycle
        localized = localizer.kernel()
        # The second-order optimiser stops at any stationary point, including the minimum that the canonical
        # orbitals often sit at; PySCF's Jacobi-sweep stability check rotates out of it, then we re-optimise.
        for _ in range(max_restarts):
            localizer.mo_coeff = localized
            rotated, stable = localizer.stability_jacobi(return_status=True)
            if stable:
                break
            localizer.mo_coeff = rotated
            localized = localizer.kernel()
    finally:
        mol.stdout.close()
    # U = Xᵀ X_loc (X has orthonormal columns and X_loc lies in its span); clean it up to an exact orthogonal matrix.
    u = x.T @ localized
    left, _, right = np.linalg.svd(u)
    return left @ right

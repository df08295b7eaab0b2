"""Pseudo-atomic orbitals of a GTH pseudopotential: a self-consistent spherical PBE atom (numpy/scipy/PySCF-libxc).

The GTH form has no atomic wavefunctions, but pw.x uses ``PP_PSWFC`` for its starting wavefunctions and projwfc.x
projects onto them (PDOS, Löwdin charges). :func:`solve_gth_atom` solves the radial Kohn-Sham equations of the
neutral pseudo-atom in the reference configuration of the GTH entry (``electrons_per_l``), Hartree atomic units:

    [-1/2 d²/dr² + l(l+1)/(2r²) + V_loc(r) + V_H[n](r) + V_xc[n](r)] u(r) + Σ_ij r p_i^l(r) h_ij^l <p_j^l|u> = ε u(r)

with ``u = r R``, in a basis of even-tempered Gaussians r^(l+1) exp(-α r²) per l (the non-local GTH term is exact in
that basis: a rank-``nprj`` matrix), integrals by quadrature on the UPF log grid, spherical PBE exchange-correlation
(libxc through PySCF; GGA potential v = ∂e/∂n − (1/r²) d/dr (r² 2 ∂e/∂σ dn/dr)) and linear density mixing.
Shells of one l are filled from the lowest eigenvalue up, 2(2l+1) electrons each (Li q3: 1s² 2s¹).

The orbitals tabulated on the UPF grid are what ``PP_CHI`` holds (``r R(r)``, ∫ u² dr = 1), and Σ f u² is an
atomic valence density ``4π r² n(r)`` for ``PP_RHOATOM``. No aiida import here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.linalg import eigh

from .gth import DX, GthPotential, local_potential, model_valence_density, projector, radial_grid

ANGULAR_LABELS = 'SPDF'
#: Even-tempered exponents (bohr^-2) of the Gaussian basis per l: ALPHA_MIN · BETA^k, k < N_BASIS.
ALPHA_MIN, BETA, N_BASIS = 0.01, 1.45, 34
#: Basis overlap eigenvalues below this (relative) are dropped (linear dependence).
OVERLAP_TOLERANCE = 1.0e-10
#: The SCF runs on r <= R_SOLVE bohr (the widest basis function is ~1e-7 there); orbitals are then evaluated on the
#: whole UPF grid. Densities below DENSITY_FLOOR (bohr^-3) get no xc potential.
R_SOLVE, DENSITY_FLOOR = 40.0, 1.0e-10


@dataclasses.dataclass
class AtomicOrbital:
    n: int
    l: int
    occupation: float
    energy: float  # Hartree
    u: np.ndarray  # r R(r) on the UPF grid, ∫ u² dr = 1

    @property
    def label(self) -> str:
        return f'{self.n}{ANGULAR_LABELS[self.l]}'


@dataclasses.dataclass
class AtomResult:
    r: np.ndarray
    orbitals: list[AtomicOrbital]
    radial_density: np.ndarray  # 4π r² n(r), e/bohr, integrates to z_valence
    iterations: int
    converged: bool


def _period(z: int) -> int:
    for period, last in enumerate((2, 10, 18, 36, 54, 86, 118), start=1):
        if z <= last:
            return period
    raise ValueError(z)


def shells(pot: GthPotential) -> list[tuple[int, int, float]]:
    """``(n, l, occupation)`` of the valence shells of the GTH reference configuration, lowest n first per l.

    Principal quantum numbers: the outermost s/p shell has n = period, d = period − 1, f = period − 2; extra shells of
    the same l (semicore) get n − 1, n − 2, ...
    """
    period = _period(pot.atomic_number)
    result = []
    for l, electrons in enumerate(pot.electrons_per_l):
        capacity = 2 * (2 * l + 1)
        count = -(-electrons // capacity)  # shells of this l
        outer = period - max(l - 1, 0)
        remaining = float(electrons)
        for k in range(count):
            occupation = min(capacity, remaining)
            result.append((outer - count + 1 + k, l, occupation))
            remaining -= occupation
    return result


def _xc_potential(r: np.ndarray, density: np.ndarray, xc: str) -> np.ndarray:
    """Spherical (spin-unpolarised) xc potential (Hartree) of the density n(r) (bohr^-3) via libxc."""
    from pyscf.dft import libxc

    n = np.maximum(density, 1.0e-14)
    dndr = np.gradient(n, np.log(r)) / r
    inside = density > DENSITY_FLOOR  # far tail: no density, no reliable GGA derivative; v = 0 there
    rho = np.zeros((4, int(inside.sum())))
    rho[0], rho[1] = n[inside], dndr[inside]
    from pyscf import lib

    with lib.with_omp_threads(1):  # ~2000 points: threads only cost (10x slower on a loaded machine)
        _, (vrho, vsigma, *_), *_ = libxc.eval_xc(xc, rho, spin=0, deriv=1)
    v = np.zeros_like(r)
    v[inside] = vrho
    if vsigma is not None:
        flux = np.zeros_like(r)
        flux[inside] = r[inside] ** 2 * 2.0 * np.asarray(vsigma) * dndr[inside]
        v -= np.gradient(flux, np.log(r)) / r / r**2
    v[~inside] = 0.0
    return v


def _hartree_potential(r: np.ndarray, radial_density: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """V_H(r) = Q(r)/r + ∫_r^∞ 4π r' n dr' from the radial density 4π r² n (Hartree)."""
    inner = np.cumsum(radial_density * weights)
    outer = np.cumsum((radial_density / r * weights)[::-1])[::-1]
    return inner / r + outer - radial_density / r * weights  # the point itself counted once


def solve_gth_atom(pot: GthPotential, xc: str = 'PBE,PBE', mixing: float = 0.4, tolerance: float = 1.0e-7,
                   max_iterations: int = 300) -> AtomResult:
    """Self-consistent pseudo-atom of ``pot`` (see the module docstring); orbitals on :func:`radial_grid`.

    Runs with one BLAS thread: with two, OpenBLAS sums in another order and the last of the 9 digits the UPF file
    keeps changed on a few grid points (measured: In, md5 347c356a… with 1 thread, 58218de8… with 2), which made
    ``qdtraps setup`` see a "new" pseudopotential family whenever the thread count differed.

    :raises RuntimeError: if the density does not converge to ``tolerance`` (max |Δ(4πr²n)|) in ``max_iterations``.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _solve_gth_atom(pot, xc, mixing, tolerance, max_iterations)


def _solve_gth_atom(pot: GthPotential, xc: str, mixing: float, tolerance: float, max_iterations: int) -> AtomResult:
    r_full, _ = radial_grid(pot.atomic_number)
    r = r_full[r_full <= R_SOLVE]
    weights = r * DX
    occupied = shells(pot)
    alphas = ALPHA_MIN * BETA ** np.arange(N_BASIS)
    vloc = local_potential(pot, r)
    basis = {}
    for l in sorted({l for _, l, _ in occupied}):
        raw = r[None, :] ** (l + 1) * np.exp(-alphas[:, None] * r[None, :] ** 2)
        chi = raw / np.sqrt((raw**2 * weights).sum(axis=1))[:, None]
        dchi = chi * ((l + 1) / r[None, :] - 2.0 * alphas[:, None] * r[None, :])
        overlap = (chi * weights) @ chi.T
        evals, evecs = np.linalg.eigh(overlap)
        keep = evals > OVERLAP_TOLERANCE * evals.max()
        transform = evecs[:, keep] / np.sqrt(evals[keep])  # orthonormal combinations
        chi, dchi = transform.T @ chi, transform.T @ dchi
        chi_full = transform.T @ (r_full[None, :] ** (l + 1) * np.exp(-alphas[:, None] * r_full[None, :] ** 2)
                                  / np.sqrt((raw**2 * weights).sum(axis=1))[:, None])
        kinetic = 0.5 * ((dchi * weights) @ dchi.T + l * (l + 1) * (chi * weights / r**2) @ chi.T)
        nonlocal_ = np.zeros_like(kinetic)
        if l < len(pot.projectors) and len(pot.projectors[l][1]):
            r_l, h = pot.projectors[l]
            b = np.array([(chi * weights) @ (r * projector(r_l, l, i + 1, r)) for i in range(len(h))])
            nonlocal_ = b.T @ h @ b
        basis[l] = (chi, kinetic + nonlocal_, chi_full)

    radial_density = model_valence_density(pot, r)
    converged, orbitals = False, []
    for iteration in range(1, max_iterations + 1):
        density = radial_density / (4.0 * np.pi * r**2)
        potential = vloc + _hartree_potential(r, radial_density, weights) + _xc_potential(r, density, xc)
        orbitals = []
        new_density = np.zeros_like(r)
        for l, (chi, h0, _) in basis.items():
            hamiltonian = h0 + (chi * weights * potential) @ chi.T
            energies, coefficients = eigh(hamiltonian)
            for k, (n, _, occupation) in enumerate(s for s in occupied if s[1] == l):
                orbitals.append((n, l, occupation, float(energies[k]), coefficients[:, k]))
                new_density += occupation * (coefficients[:, k] @ chi) ** 2
        change = np.abs(new_density - radial_density).max()
        radial_density = (1.0 - mixing) * radial_density + mixing * new_density
        if change < tolerance:
            converged = True
            radial_density = new_density
            break
    if not converged:
        raise RuntimeError(f'{pot.element} {pot.name}: pseudo-atom not converged in {max_iterations} iterations '
                           f'(last density change {change:.2e})')
    result = []
    for n, l, occupation, energy, coefficients in sorted(orbitals, key=lambda o: (o[1], o[0])):
        u = coefficients @ basis[l][2]
        u *= np.sign(u[np.argmax(np.abs(u))])  # positive at its largest value
        result.append(AtomicOrbital(n, l, occupation, energy, u))
    density = np.zeros_like(r_full)
    for orbital in result:
        density += orbital.occupation * orbital.u**2
    return AtomResult(r_full, result, density, iteration, converged)

"""Trap labeling of a 2,000-atom QD with a 400-MO window on synthetic arrays of realistic size.

The QD is a zincblende InP sphere (bulk geometry) with CP2K's SZV-MOLOPT-SR-GTH AO counts (In 9, P 4 AOs: the
``fast`` protocol; DZVP has about 2.5× more). The AO overlap decays like the overlap of Gaussians between atoms
(a Gaussian kernel ``exp(-r²/2.5² Å²)`` between atoms coupling every AO pair of neighbouring atoms within 9 Å,
positive definite by construction), with a condition number of the order of the 6.7 of the real In4PF9 overlap. The window has 200 occupied MOs (delocalized valence
states on P plus 8 localized hole traps) and 200 virtual ones (delocalized on In), S-orthonormalised.

Prints: the wall time and peak memory of every step and of the whole labeling, and the speed ratio of the two
routes to S^{1/2}C (Chebyshev expansion vs diagonalisation, measured in the same run, on a smaller QD so that the
diagonalisation finishes) — the goal is < 30 s for the labeling at 2,000 atoms.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/trap_labeling.py [n_atoms]``.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
from ase.build import bulk
from scipy.spatial import cKDTree

from aiida_qdtraps.analysis import populations
from aiida_qdtraps.analysis.traps import LabelingParameters, label_traps

AOS = {'In': 9, 'P': 4}


def sphere(n_atoms: int):
    crystal = bulk('InP', 'zincblende', a=5.869, cubic=True).repeat((12, 12, 12))
    distance = np.linalg.norm(crystal.positions - crystal.positions.mean(0), axis=1)
    atoms = crystal[np.argsort(distance, kind='stable')[:n_atoms]]
    return atoms.get_chemical_symbols(), atoms.positions - atoms.positions.mean(0)


def synthetic_window(symbols, positions, n_occ=200, n_virt=200, n_traps=8, seed=0):
    rng = np.random.default_rng(seed)
    ao_atom = np.concatenate([np.full(AOS[s], i) for i, s in enumerate(symbols)])
    ao_pos = positions[ao_atom]
    nao = len(ao_atom)
    # S = (1 + ε B K Bᵀ) with unit diagonal: K(r) = exp(-r²/σ²) a Gaussian kernel between atoms (positive
    # semi-definite) and B the AO → atom assignment, so every AO of one atom overlaps every AO of a neighbouring
    # atom, as in a real basis (dense within the 9 Å cut-off), and S is positive definite by construction.
    pairs = cKDTree(ao_pos).query_pairs(9.0, output_type='ndarray')
    values = 0.3 * np.exp(-np.sum((ao_pos[pairs[:, 0]] - ao_pos[pairs[:, 1]]) ** 2, axis=1) / 2.5 ** 2)
    overlap = np.eye(nao) * 1.3
    overlap[pairs[:, 0], pairs[:, 1]] = values
    overlap[pairs[:, 1], pairs[:, 0]] = values
    overlap /= 1.3  # unit diagonal, like normalised AOs
    anion_ao = np.flatnonzero(np.array(symbols)[ao_atom] == 'P')
    cation_ao = np.flatnonzero(np.array(symbols)[ao_atom] == 'In')
    columns, energies = [], []

    def plane_waves(aos, count, e0, step):
        k = rng.normal(size=(count, 3)) * 0.4
        phase = rng.uniform(0, 2 * np.pi, size=count)
        block = np.zeros((nao, count))
        block[aos] = np.cos(ao_pos[aos] @ k.T + phase) * rng.uniform(0.5, 1.0, size=(len(aos), count))
        columns.append(block)
        energies.extend(e0 + step * np.arange(count))

    plane_waves(anion_ao, n_occ - n_traps, -5.0, -0.01)
    surface = np.argsort(-np.linalg.norm(positions, axis=1))
    trap_atoms = [a for a in surface if symbols[a] == 'P'][:n_traps]
    block = np.zeros((nao, n_traps))
    for j, atom in enumerate(trap_atoms):
        block[ao_atom == atom, j] = rng.normal(size=AOS['P'])
    columns.append(block)
    energies.extend(-4.9 + 0.05 * np.arange(n_traps))
    plane_waves(cation_ao, n_virt, -1.0, 0.01)
    c = np.concatenate(columns, axis=1)
    metric = c.T @ (overlap @ c)  # S-orthonormalise: C (CᵀSC)^{-1/2}
    w, v = np.linalg.eigh(metric)
    c = c @ (v / np.sqrt(w)) @ v.T
    occupations = np.concatenate([np.full(n_occ, 2.0), np.zeros(n_virt)])
    return np.array(energies), occupations, c, overlap, ao_atom


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label, func, *args, **kwargs):
    start = time.perf_counter()
    value = func(*args, **kwargs)
    elapsed = time.perf_counter() - start
    print(f'{label:<48} {elapsed:8.2f} s   peak RSS {peak_mib():8.0f} MiB', flush=True)
    return value, elapsed


def main(n_atoms: int = 2000):
    print(f'trap-labeling benchmark: {n_atoms}-atom InP sphere, SZV AO counts, 200 + 200 MO window')
    symbols, positions = sphere(n_atoms)
    (energies, occupations, c, overlap, ao_atom), _ = timed('synthetic arrays', synthetic_window, symbols, positions)
    print(f'  nao = {len(ao_atom)}, overlap {overlap.nbytes / 2**20:.0f} MiB')
    low, high = populations._extreme_eigenvalues(overlap)
    print(f'  overlap eigenvalues [{low:.3f}, {high:.3f}], condition number {high / low:.1f}')
    params = LabelingParameters()
    result, total = timed('label_traps (Löwdin, PM localization, labels)', label_traps, symbols, positions, energies,
                          occupations, c, overlap, ao_atom, params)
    print(f'  VBM {result.vbm:.3f} eV, CBM {result.cbm:.3f} eV, {len(result.traps)} traps, '
          f'{result.n_localized_clusters} localized clusters')
    _, chebyshev_big = timed('  of which S^1/2 C (Chebyshev)', populations.overlap_sqrt_times, overlap, c,
                             method='chebyshev')
    print(f'RESULT labeling {n_atoms} atoms / 400 MOs: {total:.1f} s (goal < 30 s), peak RSS {peak_mib():.0f} MiB')

    # Baseline in the same run: diagonalising S for S^{1/2}C, on a 500-atom QD where it finishes quickly.
    small_symbols, small_positions = sphere(500)
    _, _, c_small, s_small, _ = synthetic_window(small_symbols, small_positions, 100, 100, 4)
    exact, t_exact = timed('500 atoms: S^1/2 C by diagonalisation', populations.overlap_sqrt_times, s_small, c_small,
                           method='exact')
    cheb, t_cheb = timed('500 atoms: S^1/2 C by Chebyshev', populations.overlap_sqrt_times, s_small, c_small,
                         method='chebyshev')
    print(f'  max |difference| {np.abs(exact - cheb).max():.2e}')
    print(f'RESULT S^1/2 C speed-up Chebyshev / diagonalisation at 500 atoms: {t_exact / t_cheb:.1f}x '
          f'(diagonalisation scales as nao³, Chebyshev as nao² · window)')


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)

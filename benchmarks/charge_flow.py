"""Charge-flow solver at 2k, 10k and 100k atoms: time, peak memory, and speed-up over dense lstsq at 2k atoms.

Zincblende InP spheres (bulk geometry, a = 5.869 Å) with random Δq (normal, σ = 0.5 e). Each size runs in a fresh
Python process so its peak resident memory is its own. Timed: bond graph (KD-tree, scale 1.2) + sparse
graph-Laplacian solve + atom vectors. Baseline, in the same run: the reference's dense minimum-norm least squares
(``numpy.linalg.lstsq`` on the atoms × bonds incidence matrix) at 2k atoms, whose flows must agree to 1e-8 e.
Goals: 100k atoms < 10 s and < 2 GB; ≥ 100× the dense baseline at 2k atoms.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/charge_flow.py [--sizes 2000 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

LATTICE_CONSTANT = 5.869  # Å, InP


def zincblende_sphere(n_atoms: int):
    """InP sphere with about ``n_atoms`` atoms, centred at the origin."""
    from ase.build import bulk

    radius = (3 * n_atoms / (4 * np.pi * 8 / LATTICE_CONSTANT**3)) ** (1 / 3)
    repeat = int(2 * radius / LATTICE_CONSTANT) + 2
    crystal = bulk('InP', 'zincblende', a=LATTICE_CONSTANT, cubic=True).repeat((repeat, repeat, repeat))
    crystal.positions -= crystal.positions.mean(axis=0)
    return crystal[np.linalg.norm(crystal.positions, axis=1) < radius]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def measure(n_atoms: int, dense: bool) -> dict:
    """One size in this process: times (s) and peak memory (MB)."""
    from aiida_qdtraps.analysis import bonds
    from aiida_qdtraps.analysis import charge_flow as cf

    atoms = zincblende_sphere(n_atoms)
    symbols = atoms.get_chemical_symbols()
    dq = np.random.default_rng(0).normal(scale=0.5, size=len(atoms))
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    pairs = bonds.bond_pairs(atoms.positions, symbols, scale=bonds.CHARGE_FLOW_SCALE, same_element_scale=None)
    after_bonds = time.perf_counter()
    flow = cf.solve_charge_flow(dq, pairs)
    after_solve = time.perf_counter()
    cf.atom_vectors(atoms.positions, pairs, flow.flows)
    end = time.perf_counter()
    result = {'n_atoms': len(atoms), 'n_bonds': len(pairs), 'bonds_s': after_bonds - start,
              'solve_s': after_solve - after_bonds, 'total_s': end - start, 'peak_rss_mb': peak_rss_mb(),
              'rss_before_mb': rss_before}
    if dense:
        incidence = cf.incidence_matrix(pairs, len(atoms)).toarray()
        start = time.perf_counter()
        reference = np.linalg.lstsq(incidence, dq, rcond=None)[0]
        result['dense_solve_s'] = time.perf_counter() - start
        result['max_flow_difference'] = float(np.abs(reference - flow.flows).max())
        start = time.perf_counter()
        cf.solve_charge_flow(dq, pairs)
        result['sparse_solve_again_s'] = time.perf_counter() - start
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[2000, 10000, 100000])
    parser.add_argument('--one', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--dense', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.dense)))
        return
    print(f"{'atoms':>8} {'bonds':>8} {'bonds s':>8} {'solve s':>8} {'total s':>8} {'peak MB':>8}")
    results = []
    for size in args.sizes:
        command = [sys.executable, __file__, '--one', str(size)] + (['--dense'] if size == min(args.sizes) else [])
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        results.append(row)
        print(f"{row['n_atoms']:8d} {row['n_bonds']:8d} {row['bonds_s']:8.3f} {row['solve_s']:8.3f} "
              f"{row['total_s']:8.3f} {row['peak_rss_mb']:8.1f}", flush=True)
    base = results[0]
    if 'dense_solve_s' in base:
        sparse_s = min(base['solve_s'], base['sparse_solve_again_s'])
        print(f"\ndense lstsq at {base['n_atoms']} atoms: {base['dense_solve_s']:.3f} s; "
              f"sparse solve {sparse_s:.4f} s; "
              f"speed-up {base['dense_solve_s'] / sparse_s:.0f}x (goal >= 100x); "
              f"max |x_sparse - x_dense| = {base['max_flow_difference']:.2e} e")
        print(f"speed-up including the bond graph and vectors: {base['dense_solve_s'] / base['total_s']:.0f}x")
    largest = results[-1]
    print(f"largest: {largest['n_atoms']} atoms in {largest['total_s']:.2f} s (goal < 10 s), peak "
          f"{largest['peak_rss_mb']:.0f} MB resident for the whole process (goal < 2048 MB)")


if __name__ == '__main__':
    main()

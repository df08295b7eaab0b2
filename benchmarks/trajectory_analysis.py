"""Wall time and peak memory of the trajectory analyses on a long synthetic trajectory: RDF + RMSF + VDOS.

The trajectory: a 2,000-atom zincblende CdSe cluster (the 2,000 atoms nearest the centre of a bulk block,
a = 6.05 Å) whose atoms vibrate as independent 3D harmonic oscillators (random frequencies 50–300 cm⁻¹, random
phases, 0.1 Å amplitude) for 10,000 frames of 1 fs; positions and velocities are float32 (240 MB each), made in
chunks. Then, each timed separately::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/trajectory_analysis.py [--frames 10000] [--atoms 2000]

* ``rdf``: Cd-Se, Cd-Cd and Se-Se up to 6 Å (the first three shells), 0.02 Å bins (Verlet list, 1 Å skin);
* ``rmsf``: two Kabsch passes over all frames, per element;
* ``vdos``: mass-weighted velocity power spectrum, Hann window, total and per element.

It prints each step's wall time, their sum, the process's peak resident memory (``resource`` ru_maxrss, which
includes the trajectory itself) and the peak of Python allocations during the analyses (``tracemalloc``), and checks
that the VDOS peaks lie inside the imposed 50–300 cm⁻¹ band and that the RMSF is the imposed 0.1/√2 Å per
direction. Targets: under 60 s and under 4 GB; the exit status is 1 when a target is missed or a check fails (the
last line says which). Measured values: docs/dynamics.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc

import numpy as np
from ase.build import bulk

from aiida_qdtraps.analysis import md_structure, spectra
from aiida_qdtraps.analysis.spectra import C_CM_PER_FS


def synthetic_trajectory(n_frames: int, n_atoms: int, dt_fs: float = 1.0, seed: int = 0):
    crystal = bulk('CdSe', 'zincblende', a=6.05, cubic=True).repeat((9, 9, 9))
    order = np.argsort(np.linalg.norm(crystal.positions - crystal.positions.mean(axis=0), axis=1))[:n_atoms]
    base = crystal.positions[order]
    symbols = np.array(crystal.get_chemical_symbols())[order]
    rng = np.random.default_rng(seed)
    omega = 2 * np.pi * C_CM_PER_FS * rng.uniform(50.0, 300.0, size=(n_atoms, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(n_atoms, 3))
    amplitude = 0.1
    positions = np.empty((n_frames, n_atoms, 3), dtype=np.float32)
    velocities = np.empty((n_frames, n_atoms, 3), dtype=np.float32)
    for start in range(0, n_frames, 500):
        t = (np.arange(start, min(start + 500, n_frames)) * dt_fs)[:, None, None]
        angle = omega[None] * t + phase[None]
        positions[start:start + len(t)] = base[None] + amplitude * np.sin(angle)
        velocities[start:start + len(t)] = amplitude * omega[None] * np.cos(angle)
    return list(symbols), positions, velocities


TARGET_SECONDS, TARGET_GB = 60.0, 4.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=10_000)
    parser.add_argument('--atoms', type=int, default=2_000)
    args = parser.parse_args()

    start = time.perf_counter()
    symbols, positions, velocities = synthetic_trajectory(args.frames, args.atoms)
    print(f'synthetic trajectory: {args.frames} frames x {args.atoms} atoms ({positions.nbytes / 1e6:.0f} MB '
          f'positions + {velocities.nbytes / 1e6:.0f} MB velocities, float32) made in '
          f'{time.perf_counter() - start:.1f} s')

    from ase.data import atomic_masses, atomic_numbers
    masses = np.array([atomic_masses[atomic_numbers[s]] for s in symbols])
    tracemalloc.start()
    timings = {}
    start = time.perf_counter()
    rdf = md_structure.rdf(symbols, positions, ['Cd-Se', 'Cd-Cd', 'Se-Se'], r_max=6.0, dr=0.02)
    timings['rdf'] = time.perf_counter() - start
    start = time.perf_counter()
    rmsf = md_structure.rmsf(positions, symbols=symbols)
    timings['rmsf'] = time.perf_counter() - start
    start = time.perf_counter()
    vdos = spectra.vdos(velocities, masses, 1.0, symbols=symbols)
    timings['vdos'] = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    for name, seconds in timings.items():
        print(f'{name:5s} {seconds:7.1f} s')
    total = sum(timings.values())
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB → GB (Linux)
    print(f'total {total:7.1f} s (target < 60 s)')
    print(f'peak resident memory {rss_gb:.2f} GB (whole process, trajectory included; target < 4 GB); '
          f'peak Python allocations during the analyses {traced_peak / 1e9:.2f} GB')
    r, n = rdf['r'], rdf['pairs']['Cd-Se']['n']
    first = r[np.argmax(np.where(r < 3.5, n, 0))]
    peaks = spectra.peak_wavenumbers(vdos['wavenumber'], vdos['total'], n_peaks=5)
    print(f'checks: Cd-Se first peak {first:.2f} Å (bond {6.05 * np.sqrt(3) / 4:.2f} Å); mean RMSF '
          f"{rmsf['rmsf'].mean():.4f} Å (imposed {0.1 * np.sqrt(1.5):.4f} Å); VDOS peaks {np.sort(peaks).round(1)} "
          f'cm-1 (imposed band 50-300)')
    missed = []
    if total >= TARGET_SECONDS:
        missed.append(f'time {total:.1f} s >= {TARGET_SECONDS} s')
    if rss_gb >= TARGET_GB:
        missed.append(f'memory {rss_gb:.2f} GB >= {TARGET_GB} GB')
    if abs(first - 6.05 * np.sqrt(3) / 4) > 0.05:
        missed.append(f'Cd-Se first peak at {first:.2f} Å')
    if abs(rmsf['rmsf'].mean() / (0.1 * np.sqrt(1.5)) - 1) > 0.05:
        missed.append(f"mean RMSF {rmsf['rmsf'].mean():.4f} Å")
    if not np.all((peaks > 45) & (peaks < 305)):
        missed.append(f'VDOS peaks {np.sort(peaks).round(1)} outside 50-300 cm-1')
    print(f'time {total / TARGET_SECONDS:.2f} x target, memory {rss_gb / TARGET_GB:.2f} x target: '
          + ('within targets, checks pass' if not missed else 'MISSED: ' + '; '.join(missed)))
    return 1 if missed else 0


if __name__ == '__main__':
    sys.exit(main())

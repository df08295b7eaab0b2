"""Trajectory analyses on a short classical MD run: a 55-atom Cu/Au icosahedron with ASE's EMT potential.

    OMP_NUM_THREADS=1 .venv/bin/python examples/md_analysis_emt.py [OUTDIR]

No AiiDA and no electronic-structure engine: EMT (effective-medium theory, ASE's built-in Cu/Au potential) gives
forces in milliseconds, enough to exercise the analyses on a real (if classical, metallic) trajectory.

1. Cu55 icosahedron (``ase.cluster.Icosahedron('Cu', 3)``) with its 42 surface atoms turned into Au (Cu13 core,
   Au42 shell), relaxed with EMT (BFGS, 0.01 eV/Å); velocities drawn at 600 K (Maxwell–Boltzmann, no net
   momentum or rotation; equipartition brings it to 237 K); 1 ps of NVE (velocity Verlet, 2 fs) to equilibrate,
   then 8 ps of NVE stored every 4 fs (2,000 frames) as ASE extended xyz with momenta, time and energies:
   ``OUTDIR/emt_md.extxyz``.
2. The analyses, with the same kernels as ``qdtraps md analyze`` and the ``qdtraps.compute_*`` calcfunctions:
   NVE drift, Au–Au / Cu–Au RDF, RMSF per element and class, VDOS per element.
3. A synthetic HOMO–LUMO gap series (slow Gaussian-distributed fluctuation of σ = 0.08 eV plus a 150 cm⁻¹
   oscillation), its cumulant dephasing function and Gaussian time, against τ = ħ/σ_total of the static limit.

Figures (docs/dynamics.md): ``docs/images/dynamics_emt.png`` (RDF, RMSF, VDOS) and
``docs/images/dynamics_dephasing.png``. The same trajectory through the command line::

    qdtraps md analyze OUTDIR/emt_md.extxyz --rdf Au-Au --rdf Cu-Au --rmsf --vdos -o OUTDIR/analysis
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np
from ase import io, units
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from aiida_qdtraps.analysis import gap_dynamics, md_structure, spectra
from aiida_qdtraps.analysis.trajectory import drift, from_extxyz

REPO = pathlib.Path(__file__).resolve().parent.parent
STEP_FS, STORE_EVERY, N_FRAMES = 2.0, 2, 2000


def run_md(path: pathlib.Path) -> None:
    atoms = Icosahedron('Cu', 3)
    radius = np.linalg.norm(atoms.positions - atoms.positions.mean(axis=0), axis=1)
    symbols = np.array(atoms.get_chemical_symbols())
    symbols[np.argsort(radius)[13:]] = 'Au'  # the 42 atoms of the outer shell
    atoms.set_chemical_symbols(list(symbols))
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=0.01)  # start from the EMT minimum, so the run does not heat up
    thermalize_momenta(atoms, 600, rng=np.random.default_rng(7))
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = VelocityVerlet(atoms, timestep=STEP_FS * units.fs)
    dyn.run(500)  # 1 ps
    frames = []

    def store():
        frame = atoms.copy()
        frame.calc = None
        epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        frame.info.update({'time': len(frames) * STEP_FS * STORE_EVERY * units.fs, 'potential_energy': epot,
                           'kinetic_energy': ekin, 'conserved_energy': epot + ekin,
                           'temperature': atoms.get_temperature()})
        frames.append(frame)

    dyn.attach(store, interval=STORE_EVERY)
    dyn.run(N_FRAMES * STORE_EVERY)
    io.write(path, frames[:N_FRAMES], format='extxyz')


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / 'examples' / 'output'
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'emt_md.extxyz'
    start = time.perf_counter()
    run_md(path)
    print(f'EMT MD: {time.perf_counter() - start:.1f} s')

    traj = from_extxyz(path)
    print(f'{traj.n_frames} frames of {traj.n_atoms} atoms, {traj.timestep_fs:g} fs apart; mean temperature '
          f'{traj.temperature.mean():.0f} K; NVE drift {drift(traj.times_fs, traj.conserved_energy, traj.n_atoms):.2e}'
          ' meV/atom/ps')
    rdf = md_structure.rdf(traj.symbols, traj.positions, ['Au-Au', 'Cu-Au'], r_max=7.0, dr=0.02)
    classes = np.where(np.array(traj.symbols) == 'Cu', 'core', 'surface')  # the Cu13 core, the Au42 shell
    rmsf = md_structure.rmsf(traj.positions, symbols=traj.symbols, labels=classes)
    vdos = spectra.vdos(traj.velocities, traj.masses(), traj.timestep_fs, symbols=traj.symbols)
    for element, values in rmsf['per_element'].items():
        print(f"RMSF {element}: {values['mean']:.3f} ± {values['std']:.3f} Å over {values['count']} atoms")
    for pair, data in rdf['pairs'].items():
        r = rdf['r']
        first = r[np.argmax(np.where(r < 3.3, data['n'], 0))]
        print(f"{pair}: first peak {first:.2f} Å, N(3.3 Å) = {data['coordination'][np.searchsorted(r, 3.3)]:.2f}")
    peaks = spectra.peak_wavenumbers(vdos['wavenumber'], vdos['total'], n_peaks=3)
    print(f'VDOS highest peaks / cm-1: {np.sort(peaks).round(1)}')

    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    for pair, data in rdf['pairs'].items():
        axes[0].plot(rdf['r'], data['g'], label=pair)
    axes[0].set(xlabel='r / Å', ylabel='g(r) (cluster-volume density)', title='RDF')
    axes[0].legend()
    order = np.argsort(classes, kind='stable')
    colours = np.where(np.array(traj.symbols)[order] == 'Cu', 'tab:orange', 'goldenrod')
    axes[1].bar(np.arange(traj.n_atoms), rmsf['rmsf'][order], color=colours, width=1.0)
    axes[1].set(xlabel='atom (Cu13 core, then Au42 shell)', ylabel='RMSF / Å', title='RMSF after Kabsch alignment')
    axes[2].plot(vdos['wavenumber'], vdos['total'], color='k', label='total')
    for element, values in vdos['per_element'].items():
        axes[2].plot(vdos['wavenumber'], values, label=element)
    axes[2].set(xlim=(0, 350), xlabel='wavenumber / cm⁻¹', ylabel='VDOS / states per cm⁻¹', title='VDOS')
    axes[2].legend()
    fig.suptitle(f'EMT NVE MD of Cu13@Au42, {traj.n_frames} frames × {traj.timestep_fs:g} fs, '
                 f'{traj.temperature.mean():.0f} K')
    fig.savefig(REPO / 'docs' / 'images' / 'dynamics_emt.png', dpi=110)
    plt.close(fig)

    # Synthetic gap: a slow Gaussian-distributed drift (σ 0.08 eV, correlation time 2 ps) + a 150 cm⁻¹ mode.
    rng = np.random.default_rng(3)
    dt, n = 0.5, 200_000
    t = np.arange(n) * dt
    slow = np.convolve(rng.normal(size=n + 8000), np.exp(-0.5 * (np.arange(-4000, 4001) * dt / 1000.0) ** 2),
                       mode='valid')[:n]
    slow *= 0.08 / slow.std()
    gaps = 2.0 + slow + 0.03 * np.sin(2 * np.pi * 150.0 * spectra.C_CM_PER_FS * t)
    result = gap_dynamics.dephasing(gaps, dt, max_time_fs=200.0)
    print(f"dephasing: tau = {result['tau_fs']:.2f} fs, hbar/sigma = {result['tau_static_fs']:.2f} fs "
          f"(sigma {result['std']:.4f} eV)")
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    ax.plot(result['time'], result['dephasing'], 'k', label='D(t) = exp(−g(t)), second-order cumulant')
    ax.plot(result['time'], np.exp(-0.5 * (result['time'] / result['tau_fs']) ** 2), '--', color='tab:red',
            label=f"Gaussian fit τ = {result['tau_fs']:.2f} fs")
    ax.axvline(result['tau_static_fs'], color='grey', lw=0.8, label=f"ħ/σ = {result['tau_static_fs']:.2f} fs")
    ax.set(xlim=(0, 40), xlabel='t / fs', ylabel='pure dephasing', title=f"Synthetic gap, σ = {result['std']:.3f} eV")
    ax.legend(fontsize=8)
    fig.savefig(REPO / 'docs' / 'images' / 'dynamics_dephasing.png', dpi=110)
    plt.close(fig)


if __name__ == '__main__':
    main()

"""CP2K MD of a small CdSe cluster and the trajectory analyses of Bhati et al., every result a node.

    OMP_NUM_THREADS=1 verdi run examples/md_cdse.py [cd-rich|se-rich] [--protocol fast|xtb] [--heatup FS] [--nve FS] \
        [--timestep FS] [--gap-every N] [--out DIR]

The two clusters are the adamantane cages of zincblende CdSe, made charge-balanced by the builder's defaults:
``cd-rich`` Cd6Se4Cl4 (a Cd-rich core, Cl⁻ on four Cd) and ``se-rich`` Cd4Se6H4 (a Se-rich core, H on four Se; the
H needs a 0.5 fs step). They stand in for Bhati et al.'s 1.5 nm Cd-rich and Se-rich clusters at a cost this machine
can pay.

1. ``build_qd`` (calcfunction) makes the cluster from its recipe.
2. ``QdMdWorkChain`` (the ``fast`` DFT: GAPW, DZVP-MOLOPT-SR-GTH, 200 Ry) heats it from 0 to 300 K in two CSVR
   segments, then runs NVE; one trajectory with the NVE drift.
3. ``compute_rmsf``, ``compute_vdos`` and ``compute_rdf`` on the NVE part (calcfunctions on the trajectory).
4. ``MdGapsWorkChain`` runs a PBE single point on every ``--gap-every``-th NVE frame (each from the previous frame's
   wavefunction) and stores the HOMO/LUMO/gap series, its statistics and, with enough frames, the cumulant dephasing
   time and the HOMO–LUMO non-adiabatic couplings.

Prints one table and writes ``<out>/md_<cluster>_<protocol>.png`` (RMSF per atom, VDOS per element, gap series).

``--protocol xtb`` runs the MD and the gap frames with GFN1-xTB instead (the ``xtb`` protocol: no basis, no grid,
0.08–0.16 s per MD step here): ``cd-rich --protocol xtb --heatup 1000 --nve 4000 --gap-every 20`` ran in 17 minutes
(6.5 min of MD, 100 gap frames), with spectra worth looking at, at the tight-binding level (docs/md.md, "Screening
dynamics with GFN1-xTB").

Cost here (one core, docs/md.md): the defaults (8 fs heat-up + 12 fs NVE at 2 fs, a PBE frame every 2 NVE frames)
run the whole chain on Cd6Se4Cl4 in about 30 minutes: a check of the chain, too short for any spectrum. Bhati et
al.'s schedule is ``--heatup 2000 --nve 35000 --gap-every 10`` (days here; a cluster's job). The MD starts
from the built, unrelaxed cluster, so its first few hundred femtoseconds are relaxation: for production, relax first
and start from the relaxed structure.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.workchains.build import build_qd
from aiida_qdtraps.workchains.dynamics import compute_rdf, compute_rmsf, compute_vdos
from aiida_qdtraps.workchains.md import QdMdWorkChain
from aiida_qdtraps.workchains.md_gaps import MdGapsWorkChain

CLUSTERS = {
    'cd-rich': {'material': 'CdSe', 'diameter': 7.0, 'ligand': 'Cl', 'center': 'interstitial'},
    'se-rich': {'material': 'CdSe', 'diameter': 7.0, 'ligand': 'H', 'center': 'interstitial2'},
}
#: MD time step (fs): 2 fs resolves the Cd–Se and Cd–Cl modes (< 300 cm⁻¹, periods > 100 fs); Se–H needs 0.5 fs.
TIMESTEP = {'cd-rich': 2.0, 'se-rich': 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('cluster', nargs='?', choices=sorted(CLUSTERS), default='cd-rich')
    parser.add_argument('--protocol', choices=('fast', 'xtb'), default='fast',
                        help='fast: PBE MD and PBE gap frames; xtb: GFN1-xTB for both')
    parser.add_argument('--heatup', type=float, default=8.0, help='heat-up length (fs)')
    parser.add_argument('--nve', type=float, default=12.0, help='NVE length (fs)')
    parser.add_argument('--timestep', type=float, default=None, help='MD time step (fs)')
    parser.add_argument('--gap-every', type=int, default=2, help='a PBE single point every this many NVE frames')
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('.'))
    args = parser.parse_args()
    code = orm.load_code('cp2k@localhost')
    start = time.perf_counter()

    structure = build_qd(orm.Dict(CLUSTERS[args.cluster]))
    print(f'{args.cluster}: {structure.get_formula()} (StructureData<{structure.pk}>)')
    md = {'heatup_fs': args.heatup, 'nve_fs': args.nve, 'timestep_fs': args.timestep or TIMESTEP[args.cluster],
          'stride': 1}
    builder = QdMdWorkChain.get_builder_from_protocol(code, structure, protocol=args.protocol, overrides={'md': md})
    results, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise SystemExit(f'QdMdWorkChain<{node.pk}> failed: {node.exit_message}')
    md_seconds = time.perf_counter() - start
    trajectory, summary = results['trajectory'], results['md_summary'].get_dict()
    first_nve = trajectory.numsteps - summary['nve_frames']
    options = orm.Dict({'start_frame': first_nve})

    rmsf = compute_rmsf(trajectory, options)
    vdos = compute_vdos(trajectory, options)
    rdf = compute_rdf(trajectory, orm.Dict({'pairs': ['Cd-Se'], 'start_frame': first_nve}))
    level = 'pbe' if args.protocol == 'fast' else 'xtb'
    gaps_builder = MdGapsWorkChain.get_builder_from_protocol(code, trajectory, protocol='fast', functional=level,
                                                             frames={'start': first_nve, 'every': args.gap_every})
    gap_results, gap_node = run_get_node(gaps_builder)
    if not gap_node.is_finished_ok:
        raise SystemExit(f'MdGapsWorkChain<{gap_node.pk}> failed: {gap_node.exit_message}')

    symbols = np.array(trajectory.symbols)
    values = rmsf['rmsf'].get_array('rmsf')
    wavenumber, curves = vdos['vdos'].get_x()[1], {name: y for name, y, _ in vdos['vdos'].get_y()}
    total = next(iter(curves.values()))
    low = wavenumber > 20.0
    peak = float(wavenumber[low][np.argmax(total[low])])
    r, g = rdf['rdf'].get_array('r'), rdf['rdf'].get_array('g_Cd_Se')
    gaps = gap_results['gaps'].get_array('gaps')
    rows = [
        ('QD', f'{structure.get_formula()} ({len(symbols)} atoms), QdMdWorkChain<{node.pk}>'),
        ('MD', f"{summary['frames']} frames, {md['heatup_fs']:g} fs heat-up + {md['nve_fs']:g} fs NVE at "
               f"{md['timestep_fs']:g} fs, {md_seconds:.0f} s"),
        ('NVE', f"mean T {summary['nve_mean_temperature_k']:.0f} ± {summary['nve_std_temperature_k']:.0f} K, drift "
                f"{summary['nve_drift_mev_per_atom_ps']:+.3f} meV/atom/ps"),
        ('RMSF', ', '.join(f'{el} {values[symbols == el].mean():.3f} Å' for el in sorted(set(symbols)))),
        ('VDOS', f'largest peak above 20 cm⁻¹ at {peak:.0f} cm⁻¹ (resolution {wavenumber[1] - wavenumber[0]:.0f} '
                 'cm⁻¹)'),
        ('RDF', f'first Cd–Se peak at {r[np.argmax(g)]:.2f} Å'),
        (f'gap ({level})', f'{gaps.mean():.3f} ± {gaps.std():.3f} eV over {gaps.size} frames, MdGapsWorkChain<'
                      f'{gap_node.pk}>'),
    ]
    if 'dephasing_summary' in gap_results:
        rows.append(('dephasing', f"τ = {gap_results['dephasing_summary']['tau_fs']:.1f} fs"))
    for name, text in rows:
        print(f'{name:10s} {text}')
    print(f'total {time.perf_counter() - start:.0f} s')
    plot(args.out / f'md_{args.cluster}_{args.protocol}.png', structure.get_formula(), symbols, values, wavenumber,
         curves, gap_results['gaps'], 'PBE' if level == 'pbe' else 'GFN1-xTB')


def plot(path: pathlib.Path, formula: str, symbols, rmsf, wavenumber, curves: dict, gaps: orm.ArrayData,
         level: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    for element in sorted(set(symbols)):
        index = np.flatnonzero(symbols == element)
        axes[0].bar(index, rmsf[index], width=0.8, label=element)
    axes[0].set(xlabel='atom', ylabel='RMSF / Å', title=f'{formula}: RMSF (NVE)')
    axes[0].legend(fontsize=8)
    for k, (name, values) in enumerate(curves.items()):
        axes[1].plot(wavenumber, values, color='k' if k == 0 else None, lw=1.2 if k == 0 else 0.9, label=name)
    axes[1].set(xlim=(0, 600), xlabel='wavenumber / cm⁻¹', ylabel='VDOS', title='vibrational DOS')
    axes[1].legend(fontsize=8)
    times = gaps.get_array('times')
    for name in ('homo', 'lumo'):
        axes[2].plot(times, gaps.get_array(name), 'o-', ms=3, label=name.upper())
    axes[2].set(xlabel='t / fs', ylabel='energy / eV', title=f'frontier orbitals ({level})')
    axes[2].legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()

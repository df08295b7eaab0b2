"""CP2K MD of a small CdSe cluster and the trajectory analyses of Bhati et al., every result a node.

    OMP_NUM_THREADS=1 verdi run examples/md_cdse.py [cd-rich|se-rich|Cd28Se17Cl22|Cd17Se28H22] [--protocol fast|xtb] \
        [--relax] [--heatup FS] [--nve FS] [--timestep FS] [--gap-every N] [--gap-frames N] [--out DIR]

The two clusters are the adamantane cages of zincblende CdSe, made charge-balanced by the builder's defaults:
``cd-rich`` Cd6Se4Cl4 (a Cd-rich core, Cl⁻ on four Cd) and ``se-rich`` Cd4Se6H4 (a Se-rich core, H on four Se; the
H needs a 0.5 fs step). They stand in for Bhati et al.'s 1.5 nm Cd-rich and Se-rich clusters at a cost this machine
can pay; ``Cd28Se17Cl22`` and ``Cd17Se28H22`` are those clusters themselves (67 atoms, the builder's named models).

1. ``build_qd`` (calcfunction) makes the cluster from its recipe; with ``--relax``, ``QdRelaxWorkChain`` relaxes it
   with the relax protocol of the same name (``fast`` PBE or ``xtb``) and the MD starts from the relaxed structure.
2. ``QdMdWorkChain`` (the ``fast`` DFT: GAPW, DZVP-MOLOPT-SR-GTH, 200 Ry) heats it from 0 to 300 K in two CSVR
   segments, then runs NVE; one trajectory with the NVE drift, the dipole and the HOMO/LUMO of every step.
3. ``compute_rmsf`` (per element and per core/surface/ligand class), ``compute_vdos``, ``compute_ir`` and
   ``compute_rdf`` on the NVE part; ``compute_gap_statistics`` and ``compute_dephasing`` on the gap of every NVE step
   (calcfunctions on the trajectory).
4. ``MdGapsWorkChain`` runs a single point (PBE, or GFN1-xTB with ``--protocol xtb``) on ``--gap-frames`` NVE frames
   ``--gap-every`` apart (each from the previous frame's wavefunction) and stores their HOMO/LUMO/gap series and the
   HOMO–LUMO non-adiabatic couplings between consecutive frames (meaningful for frames a time step apart).

Prints one table and writes ``<out>/md_<cluster>_<protocol>.png`` (RMSF, VDOS, IR, frontier orbitals, gap
histograms, dephasing function, NAC histogram).

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
from aiida_qdtraps.workchains.dynamics import (
    compute_dephasing,
    compute_gap_statistics,
    compute_ir,
    compute_rdf,
    compute_rmsf,
    compute_vdos,
)
from aiida_qdtraps.workchains.md import QdMdWorkChain
from aiida_qdtraps.workchains.md_gaps import MdGapsWorkChain
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

CLUSTERS = {
    'cd-rich': {'material': 'CdSe', 'diameter': 7.0, 'ligand': 'Cl', 'center': 'interstitial'},
    'se-rich': {'material': 'CdSe', 'diameter': 7.0, 'ligand': 'H', 'center': 'interstitial2'},
    # Bhati et al.'s two clusters (docs/builder.md, named models)
    'Cd28Se17Cl22': {'material': 'CdSe', 'model': 'Cd28Se17Cl22'},
    'Cd17Se28H22': {'material': 'CdSe', 'model': 'Cd17Se28H22'},
}
#: MD time step (fs): 2 fs resolves the Cd–Se and Cd–Cl modes (< 300 cm⁻¹, periods > 100 fs); Se–H needs 0.5 fs.
TIMESTEP = {'cd-rich': 2.0, 'se-rich': 0.5, 'Cd28Se17Cl22': 2.0, 'Cd17Se28H22': 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('cluster', nargs='?', choices=list(CLUSTERS), default='cd-rich')
    parser.add_argument('--protocol', choices=('fast', 'xtb'), default='fast',
                        help='fast: PBE MD and PBE gap frames; xtb: GFN1-xTB for both')
    parser.add_argument('--relax', action='store_true', help='relax the built cluster first (same protocol)')
    parser.add_argument('--heatup', type=float, default=8.0, help='heat-up length (fs)')
    parser.add_argument('--nve', type=float, default=12.0, help='NVE length (fs)')
    parser.add_argument('--timestep', type=float, default=None, help='MD time step (fs)')
    parser.add_argument('--gap-every', type=int, default=2, help='a single point every this many NVE frames')
    parser.add_argument('--gap-frames', type=int, default=None, help='at most this many single points')
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('.'))
    args = parser.parse_args()
    code = orm.load_code('cp2k@localhost')
    start = time.perf_counter()

    structure = build_qd(orm.Dict(CLUSTERS[args.cluster]))
    print(f'{args.cluster}: {structure.get_formula()} (StructureData<{structure.pk}>)')
    if args.relax:
        relax_results, relax_node = run_get_node(QdRelaxWorkChain.get_builder_from_protocol(code, structure,
                                                                                            protocol=args.protocol))
        if not relax_node.is_finished_ok:
            raise SystemExit(f'QdRelaxWorkChain<{relax_node.pk}> failed: {relax_node.exit_message}')
        structure = relax_results['relaxed_structure']
        print(f'relaxed: StructureData<{structure.pk}> (QdRelaxWorkChain<{relax_node.pk}>, '
              f'{time.perf_counter() - start:.0f} s)')
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

    rmsf = compute_rmsf(trajectory, orm.Dict({'start_frame': first_nve, 'labels': 'sites'}))
    vdos = compute_vdos(trajectory, options)
    ir = compute_ir(trajectory, options)['ir']
    rdf = compute_rdf(trajectory, orm.Dict({'pairs': ['Cd-Se'], 'start_frame': first_nve}))
    step_statistics = compute_gap_statistics(trajectory, options)
    step_dephasing = compute_dephasing(trajectory, options)
    level = 'pbe' if args.protocol == 'fast' else 'xtb'
    frames = {'start': first_nve, 'every': args.gap_every, 'max_frames': args.gap_frames}
    gaps_builder = MdGapsWorkChain.get_builder_from_protocol(code, trajectory, protocol='fast', functional=level,
                                                             frames=frames)
    gap_results, gap_node = run_get_node(gaps_builder)
    if not gap_node.is_finished_ok:
        raise SystemExit(f'MdGapsWorkChain<{gap_node.pk}> failed: {gap_node.exit_message}')

    symbols = np.array(trajectory.symbols)
    values = rmsf['rmsf'].get_array('rmsf')
    wavenumber, curves = vdos['vdos'].get_x()[1], {name: y for name, y, _ in vdos['vdos'].get_y()}
    total = next(iter(curves.values()))
    low = wavenumber > 20.0
    peak = float(wavenumber[low][np.argmax(total[low])])
    ir_x, ir_y = ir.get_x()[1], ir.get_y()[0][1]
    ir_peak = float(ir_x[low][np.argmax(ir_y[low])])
    r, g = rdf['rdf'].get_array('r'), rdf['rdf'].get_array('g_Cd_Se')
    gaps = gap_results['gaps'].get_array('gaps')
    step_gaps = trajectory.get_array('gap')[first_nve:]
    frame_rows = gap_results['selection']['indices'] if 'selection' in gap_results else None
    stats, dephasing = step_statistics['statistics'], step_dephasing['summary']
    per_class = rmsf['summary']['per_label']
    rows = [
        ('QD', f'{structure.get_formula()} ({len(symbols)} atoms), QdMdWorkChain<{node.pk}>'),
        ('MD', f"{summary['frames']} frames, {md['heatup_fs']:g} fs heat-up + {md['nve_fs']:g} fs NVE at "
               f"{md['timestep_fs']:g} fs, {md_seconds:.0f} s"),
        ('NVE', f"mean T {summary['nve_mean_temperature_k']:.0f} ± {summary['nve_std_temperature_k']:.0f} K, drift "
                f"{summary['nve_drift_mev_per_atom_ps']:+.3f} meV/atom/ps"),
        ('RMSF', ', '.join(f'{el} {values[symbols == el].mean():.3f} Å' for el in sorted(set(symbols)))
         + '; ' + ', '.join(f"{name} {entry['mean']:.3f} Å" for name, entry in sorted(per_class.items()))),
        ('VDOS', f'largest peak above 20 cm⁻¹ at {peak:.0f} cm⁻¹ (resolution {wavenumber[1] - wavenumber[0]:.0f} '
                 'cm⁻¹)'),
        ('IR', f'largest peak above 20 cm⁻¹ at {ir_peak:.0f} cm⁻¹ (dipole of every NVE step)'),
        ('RDF', f'first Cd–Se peak at {r[np.argmax(g)]:.2f} Å'),
        (f'gap ({level})', f"{stats['mean']:.3f} ± {stats['std']:.3f} eV over the {step_gaps.size} NVE steps; "
                           f"HOMO {stats['homo']['mean']:.3f} ± {stats['homo']['std']:.3f}, LUMO "
                           f"{stats['lumo']['mean']:.3f} ± {stats['lumo']['std']:.3f} eV"),
        ('dephasing', f"τ = {dephasing['tau_fs']:.1f} fs from the gap of every step "
                      f"({'resolved' if dephasing['resolved'] else 'NOT resolved'} at {dephasing['dt_fs']:g} fs)"),
        ('frames', f'{gaps.size} single points, MdGapsWorkChain<{gap_node.pk}>: {gaps.mean():.3f} ± '
                   f'{gaps.std():.3f} eV'),
    ]
    if frame_rows is not None:
        rows.append(('check', f'single point - MD gap at the same frames: max '
                              f'{np.abs(gaps - trajectory.get_array("gap")[frame_rows]).max() * 1000:.1f} meV'))
    if 'nac_summary' in gap_results:
        rows.append(('NAC', f"mean ħ|d| {gap_results['nac_summary']['mean_mev']:.2f} meV between frames "
                            f"{args.gap_every * md['timestep_fs']:g} fs apart"))
    for name, text in rows:
        print(f'{name:10s} {text}')
    print(f'total {time.perf_counter() - start:.0f} s')
    classes = rmsf['rmsf'].get_array('labels')
    plot(args.out / f'md_{args.cluster}_{args.protocol}.png', structure.get_formula(), symbols, (values, classes),
         (wavenumber, curves), (ir_x, ir_y), trajectory, first_nve, step_statistics['histogram'],
         step_dephasing['dephasing'], dephasing['tau_fs'], gap_results, 'PBE' if level == 'pbe' else 'GFN1-xTB')


def plot(path: pathlib.Path, formula: str, symbols, rmsf, vdos, ir, trajectory: orm.TrajectoryData, first_nve: int,
         histogram: orm.ArrayData, dephasing: orm.XyData, tau_fs: float, gap_results, level: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(17, 7), constrained_layout=True)
    axes = axes.ravel()
    values, classes = rmsf
    for name in ('core', 'surface', 'ligand'):
        index = np.flatnonzero(classes == name)
        if index.size:
            axes[0].bar(index, values[index], width=0.8,
                        label=f'{name} (mean {values[index].mean():.2f} Å)')
    axes[0].set_xticks(range(len(symbols)), symbols, fontsize=6, rotation=90)
    axes[0].set(ylabel='RMSF / Å', title=f'{formula}: RMSF per atom (NVE)')
    axes[0].legend(fontsize=8)
    wavenumber, curves = vdos
    for k, (name, values) in enumerate(curves.items()):
        axes[1].plot(wavenumber, values, color='k' if k == 0 else None, lw=1.2 if k == 0 else 0.9, label=name)
    axes[1].set(xlim=(0, 600), xlabel='wavenumber / cm⁻¹', ylabel='VDOS', title='vibrational DOS')
    axes[1].legend(fontsize=8)
    axes[2].plot(ir[0], ir[1] / ir[1].max(), 'k', lw=1.0)
    axes[2].set(xlim=(0, 600), xlabel='wavenumber / cm⁻¹', ylabel='intensity (max 1)',
                title='IR (dipole ACF, harmonic correction)')
    times = trajectory.get_times()[first_nve:]
    frames = gap_results['gaps']
    for name, color in (('homo', 'C0'), ('lumo', 'C3')):
        axes[3].plot(times, trajectory.get_array(name)[first_nve:], color=color, lw=0.8, label=f'{name.upper()} (MD)')
        axes[3].plot(frames.get_array('times'), frames.get_array(name), 'o', color=color, ms=4, mfc='none',
                     label=f'{name.upper()} (single point)')
    axes[3].set(xlabel='t / fs', ylabel='energy / eV', title=f'frontier orbitals ({level})')
    axes[3].legend(fontsize=7)
    for name, label in (('', 'gap'), ('homo_', 'HOMO'), ('lumo_', 'LUMO')):
        edges, counts = histogram.get_array(f'{name}edges'), histogram.get_array(f'{name}counts')
        centre = edges[:-1] + np.diff(edges) / 2
        mean = float((centre * counts).sum() / counts.sum())
        axes[4].step(centre - mean, counts / counts.max(), where='mid', label=f'{label} (mean {mean:.2f} eV)')
    axes[4].set(xlabel='E − mean / eV', ylabel='frames (max 1)', title='gap, HOMO, LUMO (NVE steps)')
    axes[4].legend(fontsize=7)
    t = dephasing.get_x()[1]
    d = dict((name, y) for name, y, _ in dephasing.get_y())
    axes[5].plot(t, d['dephasing'], 'k', label='D(t), 2nd-order cumulant')
    axes[5].plot(t, np.exp(-0.5 * (t / tau_fs) ** 2), 'C1--', label=f'exp(−t²/2τ²), τ = {tau_fs:.1f} fs')
    axes[5].set(xlim=(0, min(t[-1], 8 * tau_fs)), xlabel='t / fs', ylabel='D(t)', title='pure dephasing of the gap')
    axes[5].legend(fontsize=8)
    if 'nac' in gap_results:
        nac = gap_results['nac'].get_y()[1][1]
        axes[6].hist(nac, bins=20, color='0.4')
        axes[6].set(xlabel='ħ|d| / meV', ylabel='frame pairs', title='HOMO–LUMO NAC (single points)')
    else:
        axes[6].set_axis_off()
    axes[7].set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()

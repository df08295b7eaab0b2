"""10 ps MLFF MD of the acetate-capped Cd6Se4(OAc)4 QD at 300 K and its structure analyses, every result a node.

    OMP_NUM_THREADS=1 verdi run examples/mlff_md_acetate.py [--time PS] [--temperature K] [--seed N] \
        [--driver mean|1|2|3|4] [--flexible] [--no-compress] [--job-seconds S] [--models DIR] [--out DIR]

The force field is the DeePMD-kit ensemble shipped in ``tests/data/mlff/cd6se4oac4/ensemble/`` (four DP/ZBL members
trained by ``MlffActiveLearningWorkChain`` on GFN1-xTB labels; ``model_1.pth`` is the shipped ``model.pth``, the
member with the lowest validation error: docs/mlff.md). A model of GFN1-xTB, not of DFT.

1. The four frozen members and the start geometry (``start.xyz``, the geometry the models were trained from) become
   ``SinglefileData`` / ``StructureData`` nodes.
2. ``MlffMdCalculation``: Langevin BAOAB at ``--temperature`` with Sowa et al.'s settings (1 fs steps, damping
   0.5 ps⁻¹, i.e. a friction time of 2 ps; frames every 10 fs), driven by member 1 (``--driver``: another member, or
   ``mean``, the committee mean; compressed by ``dp --pt compress`` in the job, same forces to 1e-12 eV/Å), with the
   Cd6Se4 core held fixed as in Sowa et al.'s FF1 (``--flexible`` moves it too), the ensemble's force deviation on
   every frame, and a stop when it passes 1.5 eV/Å: an MD that leaves the trained region ends there with a clear
   error, not with an exploded trajectory analysed as if it were physics. With ``--job-seconds`` the MD runs as a
   chain of jobs of that wall time (``MlffMdChainWorkChain``), each continuing the one before (docs/mlff.md: 70 ps in
   six jobs of 200 s).
3. ``compute_rdf`` (Cd–O, Cd–C, Cd–Se; the finite-cluster normalisation of docs/dynamics/rdf.md) and
   ``compute_binding_modes`` (Sowa et al.'s r1/r2/r3 with Cd as the metal) on the frames after the first 2 ps (the
   velocities are drawn at the temperature on the minimum, so the MD starts at about half of it; with this weak
   friction it takes about 5 ps to get there: the analysed frames average 260–305 K over three seeds).

Prints the ensemble-deviation report, the RDF peaks and coordination numbers and the binding-mode fractions, and
writes ``<out>/mlff_md_acetate.png`` (temperature and deviation along the MD, the three RDFs, the (r2, r3) histogram).
Cost here (one core, machine otherwise idle): 150 s for 10 ps driven by member 1 compressed in the job (15 ms per step,
the ensemble's four evaluations of every 10th step included; 20 ms uncompressed), about four times that with the
committee mean (four model evaluations per step). Since the members evaluate the saved frames in batches of 10, the
CI test of this example (MD and analyses) takes 136 s (6 Dec 2026, machine otherwise idle).
"""

from __future__ import annotations

import argparse
import inspect
import pathlib
import time

import numpy as np
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.calculations.mlff_md import MlffMdCalculation, md_parameters
from aiida_qdtraps.workchains.dynamics import compute_binding_modes, compute_rdf, pair_key

#: ``verdi run`` sets ``__file__`` to the bare file name: the script is found by the path it was started with
REPO = pathlib.Path(inspect.getfile(inspect.currentframe())).resolve().parent.parent
MODELS = REPO / 'tests' / 'data' / 'mlff' / 'cd6se4oac4' / 'ensemble'
TYPE_MAP = ['C', 'Cd', 'H', 'O', 'Se']
PAIRS = ['Cd-O', 'Cd-C', 'Cd-Se']
#: ensemble force deviation (eV/Å) at which the MD stops: well above the 300 K frames' (median ~0.15 eV/Å), reached
#: only on the way out of the trained region
STOP_DEVI_F = 1.5
EQUILIBRATION_PS = 2.0
#: Sowa et al.'s FF1: the inorganic core held in place, the ligands free
FROZEN_CORE = ('Cd', 'Se')


class MdLeftTrainedRegion(RuntimeError):
    """The MLFF MD stopped or diverged before its end."""


def run(models_dir: pathlib.Path = MODELS, time_ps: float = 10.0, temperature: float = 300.0, seed: int = 1,
        driver: str | int = 0, code: orm.Code | None = None, save_interval: int = 10,
        stop_devi_f: float = STOP_DEVI_F, frozen: tuple[str, ...] = FROZEN_CORE, compress: bool = True,
        job_seconds: int | None = None) -> dict:
    """Run the MD and the analyses; return the nodes and the report's numbers. With ``job_seconds`` the MD runs as a
    chain of jobs of that wall time (``MlffMdChainWorkChain``), each continuing the one before.

    :raises FileNotFoundError: naming the models directory without ``model_*.pth`` or ``start.xyz``.
    :raises MdLeftTrainedRegion: naming the time and deviation at which the MD stopped, or its exit status.
    """
    from ase.io import read

    models_dir = pathlib.Path(models_dir)
    files = sorted(models_dir.glob('model_*.pth'))
    if not files or not (models_dir / 'start.xyz').is_file():
        raise FileNotFoundError(f'{str(models_dir)!r} must hold the frozen members model_*.pth and start.xyz')
    atoms = read(models_dir / 'start.xyz')
    atoms.pbc = False
    structure = orm.StructureData(ase=atoms)
    models = {f'model_{i + 1}': orm.SinglefileData(path) for i, path in enumerate(files)}
    steps = int(round(time_ps * 1000))
    parameters = md_parameters({'thermostat': 'langevin', 'timestep_fs': 1.0, 'steps': steps,
                                'save_interval': save_interval, 'temperature_K': temperature,
                                'thermostat_tau_fs': 2000.0, 'seed': seed, 'driver': driver,
                                'stop_devi_f': stop_devi_f, 'compress': compress,
                                'frozen_indices': [i for i, symbol in enumerate(atoms.get_chemical_symbols())
                                                   if symbol in frozen]}, len(atoms))
    code = code or orm.load_code('dp-python@localhost')
    inputs = {'code': code, 'structure': structure, 'models': models, 'type_map': orm.List(TYPE_MAP),
              'parameters': orm.Dict(parameters), 'metadata': {'options': {'withmpi': False}}}
    start = time.time()
    if job_seconds:
        from aiida_qdtraps.workchains.mlff_md_chain import MlffMdChainWorkChain

        inputs['metadata']['options']['max_wallclock_seconds'] = int(job_seconds)
        results, node = run_get_node(MlffMdChainWorkChain, md=inputs, max_jobs=orm.Int(1000),
                                     metadata={'label': 'mlff_md_acetate'})
        chain = node.exit_status == MlffMdChainWorkChain.exit_codes.ERROR_LEFT_TRAINED_REGION.status
        if chain:  # the chain keeps the MD up to where its last job stopped
            results = {'trajectory': results['trajectory'], 'output_parameters': orm.load_node(
                results['output_parameters']['jobs'][-1]).outputs.output_parameters}
    else:
        inputs['metadata']['label'] = 'mlff_md_acetate'
        results, node = run_get_node(MlffMdCalculation, **inputs)
        chain = False
    seconds = time.time() - start
    if not node.is_finished_ok and not chain:
        raise MdLeftTrainedRegion(f'{node.process_label}<{node.pk}> failed with exit status {node.exit_status}: '
                                  f'{node.exit_message}')
    info = results['output_parameters'].get_dict()
    trajectory = results['trajectory']
    deviation = trajectory.get_array('max_devi_f')
    if info.get('stopped_at_step') is not None:
        raise MdLeftTrainedRegion(
            f"the MD left the trained region at {info['stopped_at_step'] / 1000:.2f} ps of {time_ps:g} ps: ensemble "
            f"force deviation {info['stop_max_devi_f']:.2f} eV/Å > {stop_devi_f} eV/Å "
            f"({node.process_label}<{node.pk}>); "
            'a longer MD needs a model trained on more of this region (docs/mlff.md)')
    first = int(round(EQUILIBRATION_PS * 1000 / save_interval)) if time_ps > 2 * EQUILIBRATION_PS else 0
    rdf = compute_rdf(trajectory, orm.Dict({'pairs': PAIRS, 'r_max': 8.0, 'dr': 0.05, 'start_frame': first}))
    modes = compute_binding_modes(trajectory, orm.Dict({'metal': 'Cd', 'start_frame': first}))
    temperatures = trajectory.get_array('temperature')[first:]
    report = {
        'md_pk': node.pk, 'seconds': seconds, 'frozen_atoms': len(parameters['frozen_indices']),
        'frames': len(deviation), 'analysed_from_ps': first * save_interval / 1e3,
        'mean_temperature_K': float(temperatures.mean()),
        'deviation_median': float(np.median(deviation)), 'deviation_p95': float(np.percentile(deviation, 95)),
        'deviation_max': float(deviation.max()), 'fraction_above_0.25': float(np.mean(deviation > 0.25)),
    }
    return {'md': node, 'trajectory': trajectory, 'rdf': rdf['rdf'], 'binding_modes': modes, 'report': report}


def rdf_peaks(rdf: orm.ArrayData, shell: float = 1.2) -> dict:
    """Per pair: the onset (Å, the shortest distance with g(r) > 0), the first-shell peak (the largest g(r) within
    ``shell`` Å of the onset) and the coordination number at the first minimum of g(r) within 1 Å after it."""
    r = rdf.get_array('r')
    dr = float(r[1] - r[0])
    peaks = {}
    for pair in rdf.base.attributes.get('pairs'):
        g = np.nan_to_num(rdf.get_array(f'g_{pair_key(pair)}'))
        n = rdf.get_array(f'coordination_{pair_key(pair)}')
        onset = int(np.nonzero(g > 0)[0][0])
        top = onset + int(np.argmax(g[onset:onset + int(round(shell / dr)) + 1]))
        after = top + int(np.argmin(g[top:top + int(round(1.0 / dr)) + 1]))
        peaks[pair] = {'onset': float(r[onset]), 'r_peak': float(r[top]), 'r_min': float(r[after]),
                       'coordination': float(n[after])}
    return peaks


def plot(result: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    trajectory, rdf = result['trajectory'], result['rdf']
    time_ps = trajectory.get_array('times') / 1e3
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(time_ps, trajectory.get_array('temperature'), lw=0.6, color='tab:red')
    axes[0].set(xlabel='t (ps)', ylabel='T (K)')
    twin = axes[0].twinx()
    twin.plot(time_ps, trajectory.get_array('max_devi_f'), lw=0.6, color='tab:blue')
    twin.set_ylabel('ensemble force deviation (eV/Å)', color='tab:blue')
    curves = {pair: np.nan_to_num(rdf.get_array(f'g_{pair_key(pair)}')) for pair in rdf.base.attributes.get('pairs')}
    heights = sorted(g.max() for g in curves.values())
    top = 1.3 * heights[-2] if len(heights) > 1 and heights[-1] > 3 * heights[-2] else 1.1 * heights[-1]
    for pair, g in curves.items():  # a frozen pair's delta-like peak would flatten the others: clip it
        axes[1].plot(rdf.get_array('r'), g, label=pair + (' (clipped)' if g.max() > top else ''))
    axes[1].set(xlabel='r (Å)', ylabel='g(r)', ylim=(0, top))
    axes[1].legend()
    distances = result['binding_modes']['distances']
    edges = distances.get_array('edges')
    axes[2].imshow(distances.get_array('hist_r2_r3').T, origin='lower', aspect='auto', cmap='viridis',
                   extent=(edges[0], edges[-1], edges[0], edges[-1]))
    axes[2].set(xlabel='r2 (Å)', ylabel='r3 (Å)', title='carboxylate binding (Cd)')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--time', type=float, default=10.0, help='MD length (ps)')
    parser.add_argument('--temperature', type=float, default=300.0, help='K')
    parser.add_argument('--seed', type=int, default=1, help='velocity and Langevin noise seed')
    parser.add_argument('--driver', default='1', help="a member number 1..4, or 'mean' (the committee mean)")
    parser.add_argument('--flexible', action='store_true', help='move the Cd6Se4 core too (default: held fixed)')
    parser.add_argument('--no-compress', action='store_true',
                        help='drive the MD with the model as trained (default: compressed in the job, same forces)')
    parser.add_argument('--models', type=pathlib.Path, default=MODELS, help='folder with model_*.pth and start.xyz')
    parser.add_argument('--job-seconds', type=int, default=None,
                        help='run the MD as a chain of jobs of this wall time (MlffMdChainWorkChain)')
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('.'))
    args = parser.parse_args()
    driver = 'mean' if args.driver == 'mean' else int(args.driver) - 1
    try:
        result = run(args.models, args.time, args.temperature, args.seed, driver,
                     frozen=() if args.flexible else FROZEN_CORE, compress=not args.no_compress,
                     job_seconds=args.job_seconds)
    except MdLeftTrainedRegion as error:
        raise SystemExit(f'error: {error}') from None
    report = result['report']
    if args.job_seconds:
        summary = result['md'].outputs.output_parameters
        print(f"MlffMdChainWorkChain<{report['md_pk']}>: {summary['n_jobs']} jobs of {args.job_seconds} s wall time, "
              f"{len(summary['incomplete_jobs'])} continued after their wall time")
    print(f"{result['md'].process_label}<{report['md_pk']}>: {report['frames']} frames in {report['seconds']:.0f} s; "
          f"mean T {report['mean_temperature_K']:.0f} K after {report['analysed_from_ps']:g} ps; "
          f"{report['frozen_atoms']} atoms held fixed")
    print(f"ensemble force deviation (eV/Å): median {report['deviation_median']:.3f}, 95th percentile "
          f"{report['deviation_p95']:.3f}, largest {report['deviation_max']:.3f}; "
          f"{100 * report['fraction_above_0.25']:.1f} % of frames above 0.25")
    print(f"{'pair':8s} {'onset (Å)':>10s} {'peak (Å)':>9s} {'minimum (Å)':>12s} {'coordination':>13s}    "
          f"ArrayData<{result['rdf'].pk}>")
    for pair, values in rdf_peaks(result['rdf']).items():
        print(f"{pair:8s} {values['onset']:10.2f} {values['r_peak']:9.2f} {values['r_min']:12.2f} "
              f"{values['coordination']:13.2f}")
    fractions = result['binding_modes']['fractions']
    print(f"binding modes (Dict<{fractions.pk}>): " + ', '.join(
        f'{mode} {value:.2f}' for mode, value in fractions['fractions'].items()))
    args.out.mkdir(parents=True, exist_ok=True)
    plot(result, args.out / 'mlff_md_acetate.png')
    print(f"figure: {args.out / 'mlff_md_acetate.png'}")


if __name__ == '__main__':
    main()

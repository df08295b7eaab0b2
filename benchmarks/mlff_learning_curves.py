"""Learning curves of DeePMD force fields: active (ensemble deviation) against random selection at equal labels.

Usage::

    .venv/bin/python benchmarks/mlff_learning_curves.py [--run PK] [--heldout tests/data/mlff/in4pf9/heldout.extxyz]
        [--sizes 10 20 40] [--repeats 3] [--steps 2000] [--out DIR]

Pool-based, on labels already paid for: the pool is every training frame of a finished ``MlffActiveLearningWorkChain``
(``--run``, default the latest finished one: its CP2K MD frames and its labels), the test set the frames of an
independent CP2K MD (``--heldout``, extended xyz with DFT energies and forces; the reference model's by default).
Per repeat (seed r), both arms start from the same ``sizes[0]`` random pool frames; then, up to each next size:

* **random**: adds frames drawn at random from the rest of the pool;
* **active**: trains an ensemble of 2 on its current frames and adds the pool frames of largest maximum force
  deviation (DP-GEN's ``max_devi_f``, ``analysis.mlff.model_deviation``), what the work chain's selection ranks by.

At every size each arm trains one model (seed 1; the active arm's ensemble member 1 is that model) with the reference
model's settings and ``--steps`` steps, and its force RMSE on the test frames (eV/Å) is recorded. Printed: one line per
size with mean ± standard deviation over the repeats per arm, the labels each arm needs to reach the lowest RMSE both
reach, and their ratio; ``--out`` gets a CSV and a PNG.

Trainings run as ``dp --pt train`` + ``freeze`` subprocesses (the same script as ``DeepmdTrainCalculation``), one at a
time, one thread, outside the AiiDA graph: the models are benchmark artefacts, the frames are the run's stored
labels.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault('OMP_NUM_THREADS', '1')
sys.path.insert(0, str(pathlib.Path(__file__).parent))

from mlff_reference_model import MODEL  # noqa: E402  (the reference model's descriptor and fitting net)


def pool_frames(run) -> list:
    """The training frames of the run's dataset as ``ase.Atoms`` with energy and forces (eV, eV/Å)."""
    import dpdata

    with tempfile.TemporaryDirectory() as tmp:
        run.outputs.dataset.base.repository.copy_tree(tmp)
        return [atoms for system in sorted(pathlib.Path(tmp, 'training').iterdir())
                for atoms in dpdata.LabeledSystem(str(system), fmt='deepmd/npy').to('ase/structure')]


def train(frames: list, type_map: list[str], seed: int, steps: int, workdir: pathlib.Path) -> pathlib.Path:
    """One frozen model trained on ``frames`` (subprocess, the DeepmdTrainCalculation script)."""
    from aiida_qdtraps.analysis.mlff import labelled_system
    from aiida_qdtraps.calculations.deepmd import KINDS, SCRIPT

    workdir.mkdir(parents=True)
    system = None
    for atoms in frames:
        frame = labelled_system(atoms, atoms.get_potential_energy(), atoms.get_forces(), type_map)
        system = frame if system is None else system + frame
    system.to('deepmd/npy', str(workdir / 'data'), set_size=len(frames))
    params = copy.deepcopy(KINDS['energy'])
    params['model'].update(copy.deepcopy(MODEL))
    params['model']['type_map'] = type_map
    for part in ('descriptor', 'fitting_net'):
        params['model'][part]['seed'] = seed
    params['learning_rate'].update({'decay_steps': max(steps // 20, 1), 'stop_lr': 1.0e-6})
    params['training'].update({'numb_steps': steps, 'seed': seed, 'disp_freq': max(steps // 10, 1),
                               'save_freq': steps, 'training_data': {'systems': ['data'], 'batch_size': 'auto'}})
    params['training'].pop('validation_data', None)
    (workdir / 'input.json').write_text(json.dumps(params))
    # run a copy, as the CalcJob does: from its package folder, `import deepmd` would find the plugin's deepmd.py
    (workdir / SCRIPT.name).write_text(SCRIPT.read_text())
    result = subprocess.run([sys.executable, SCRIPT.name, '-'], cwd=workdir, capture_output=True, text=True,
                            check=False)
    if result.returncode:
        raise RuntimeError(f'training in {workdir} failed:\n{result.stderr[-3000:]}')
    return workdir / 'model.pth'


def force_rmse(model: pathlib.Path, frames: list) -> float:
    from aiida_qdtraps.analysis.mlff_test import frame_labels, model_errors, predict

    reference_e, reference_f = frame_labels(frames)
    model_e, model_f = predict(str(model), frames)
    return model_errors(model_e, model_f, reference_e, reference_f, [len(a) for a in frames])['force_rmse_eV_A']


def max_deviation(models: list[pathlib.Path], frames: list) -> np.ndarray:
    from aiida_qdtraps.analysis.mlff import model_deviation
    from aiida_qdtraps.analysis.mlff_test import predict

    forces = np.array([np.array(predict(str(m), frames)[1]) for m in models])  # (models, frames, atoms, 3)
    return np.asarray(model_deviation(forces)['max_devi_f'])


def labels_to_reach(sizes: list[int], curve: np.ndarray, level: float) -> int | None:
    """The first size at which the mean curve is at or below ``level``."""
    for size, value in zip(sizes, curve):
        if value <= level:
            return size
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run', type=int, help='MlffActiveLearningWorkChain PK (default: the latest finished one)')
    parser.add_argument('--heldout', default='tests/data/mlff/in4pf9/heldout.extxyz')
    parser.add_argument('--sizes', type=int, nargs='+', default=[10, 20, 40])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--steps', type=int, default=2000)
    parser.add_argument('--out', default=None, help='directory for learning_curves.csv and .png')
    args = parser.parse_args()
    if sorted(set(args.sizes)) != args.sizes or args.sizes[0] < 1:
        parser.error(f'--sizes must be increasing positive integers, got {args.sizes}')

    from aiida import orm
    from ase.io import read

    from aiida_qdtraps.profile import load_project_profile

    load_project_profile()
    if args.run is None:
        query = orm.QueryBuilder().append(orm.WorkChainNode, filters={
            'attributes.process_label': 'MlffActiveLearningWorkChain', 'attributes.exit_status': 0},
            project='*').order_by({orm.WorkChainNode: {'ctime': 'desc'}}).limit(1)
        found = query.all(flat=True)
        if not found:
            raise SystemExit('no finished MlffActiveLearningWorkChain in the profile: pass --run')
        run = found[0]
    else:
        run = orm.load_node(args.run)
    pool = pool_frames(run)
    test = read(args.heldout, index=':')
    type_map = sorted({s for atoms in pool for s in atoms.get_chemical_symbols()})
    if args.sizes[-1] > len(pool):
        raise SystemExit(f'the pool holds {len(pool)} frames, fewer than the largest size {args.sizes[-1]}')
    print(f'pool: {len(pool)} training frames of {run.process_label}<{run.pk}>; test: {len(test)} frames of '
          f'{args.heldout}; sizes {args.sizes}, {args.repeats} repeats, {args.steps} steps per model', flush=True)

    rmse = {'active': np.zeros((args.repeats, len(args.sizes))), 'random': np.zeros((args.repeats, len(args.sizes)))}
    start = time.time()
    trainings = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)

        def folder(repeat: int, arm: str, k: int, seed: int) -> pathlib.Path:
            # both arms start from the same frames: their first models are one training, shared
            return root / (f'r{repeat}_first_s{seed}' if k == 0 else f'r{repeat}_{arm}_{k}_s{seed}')

        for repeat in range(args.repeats):
            rng = np.random.default_rng(repeat)
            first = list(rng.choice(len(pool), size=args.sizes[0], replace=False))
            chosen = {'active': list(first), 'random': list(first)}
            for k, size in enumerate(args.sizes):
                for arm in ('random', 'active'):
                    if k > 0:
                        rest = np.setdiff1d(np.arange(len(pool)), chosen[arm])
                        add = size - len(chosen[arm])
                        if arm == 'random':
                            chosen[arm] += list(rng.choice(rest, size=add, replace=False))
                        else:
                            models = [folder(repeat, arm, k - 1, s) / 'model.pth' for s in (1, 2)]
                            deviation = max_deviation(models, [pool[i] for i in rest])
                            chosen[arm] += list(rest[np.argsort(deviation)[::-1][:add]])
                    frames = [pool[i] for i in chosen[arm]]
                    if k == 0 and arm == 'active':  # the random arm trained it on the same frames
                        rmse[arm][repeat, k] = rmse['random'][repeat, k]
                    else:
                        model = train(frames, type_map, 1, args.steps, folder(repeat, arm, k, 1))
                        trainings += 1
                        rmse[arm][repeat, k] = force_rmse(model, test)
                    if arm == 'active' and k < len(args.sizes) - 1:
                        train(frames, type_map, 2, args.steps, folder(repeat, arm, k, 2))
                        trainings += 1
                    print(f'repeat {repeat} {arm:6s} {size:4d} labels: force RMSE {rmse[arm][repeat, k]:.4f} eV/Å '
                          f'({time.time() - start:.0f} s, {trainings} trainings)', flush=True)

    print('\nlabels  active (mean ± sd, eV/Å)  random (mean ± sd, eV/Å)')
    for k, size in enumerate(args.sizes):
        print(f'{size:6d}  {rmse["active"][:, k].mean():.4f} ± {rmse["active"][:, k].std():.4f}        '
              f'{rmse["random"][:, k].mean():.4f} ± {rmse["random"][:, k].std():.4f}')
    means = {arm: values.mean(axis=0) for arm, values in rmse.items()}
    level = max(means['active'].min(), means['random'].min())
    reach = {arm: labels_to_reach(args.sizes, means[arm], level) for arm in means}
    target = 0.10
    if means['active'].min() <= target and means['random'].min() <= target:
        level, reach = target, {arm: labels_to_reach(args.sizes, means[arm], target) for arm in means}
    ratio = f'{reach["random"] / reach["active"]:.2f}' if None not in reach.values() else 'n/a'
    print(f'labels to reach {level:.4f} eV/Å (mean): active {reach["active"]}, random {reach["random"]}; '
          f'ratio random/active {ratio}')
    print(f'{trainings} trainings in {time.time() - start:.0f} s')
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        rows = ['repeat,labels,active_force_rmse_eV_A,random_force_rmse_eV_A']
        rows += [f'{r},{size},{rmse["active"][r, k]:.5f},{rmse["random"][r, k]:.5f}'
                 for r in range(args.repeats) for k, size in enumerate(args.sizes)]
        (out / 'learning_curves.csv').write_text('\n'.join(rows) + '\n')
        import matplotlib

        matplotlib.use('Agg')
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(5, 4))
        for arm, marker in (('active', 'o'), ('random', 's')):
            axis.errorbar(args.sizes, rmse[arm].mean(axis=0), yerr=rmse[arm].std(axis=0), marker=marker,
                          capsize=3, label=arm)
        axis.set_xlabel('labelled frames')
        axis.set_ylabel('force RMSE on the independent frames (eV/Å)')
        axis.legend()
        figure.tight_layout()
        figure.savefig(out / 'learning_curves.png', dpi=100)
        print(f'wrote {out / "learning_curves.csv"} and {out / "learning_curves.png"}')


if __name__ == '__main__':
    main()

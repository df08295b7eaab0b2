"""Learning curves of DeePMD force fields: active (ensemble deviation) against random selection at equal labels.

Usage::

    .venv/bin/python benchmarks/mlff_learning_curves.py [--run PK] [--heldout tests/data/mlff/in4pf9/heldout.extxyz]
        [--sizes 10 20 40] [--repeats 3] [--steps 2000] [--warm-steps 0] [--batch-size auto]
        [--jobs 1] [--origins ORIGIN ...] [--out DIR]

Pool-based, on labels already paid for: the pool is every training frame of a finished ``MlffActiveLearningWorkChain``
(``--run``, default the latest finished one: its CP2K MD frames and its labels), the test set the frames of an
independent CP2K MD (``--heldout``, extended xyz with DFT energies and forces; the reference model's by default).
Per repeat (seed r), both arms start from the same ``sizes[0]`` random pool frames; then, up to each next size:

* **random**: adds frames drawn at random from the rest of the pool;
* **active**: trains an ensemble of 2 on its current frames and adds the pool frames of largest maximum force
  deviation (DP-GEN's ``max_devi_f``, ``analysis.mlff.model_deviation``), what the work chain's selection ranks by.

At every size each arm trains one model (seed 1; the active arm's ensemble member 1 is that model) with the run's own
model settings (its ``training`` input's ``model`` section: descriptor, fitting net, DP/ZBL; the reference model's if
it has none) and ``--steps`` steps, and its force RMSE on the test frames (eV/Å) is recorded. With ``--warm-steps N``
each arm's models after the first start from the same arm's models at the size before and train ``N`` steps with the
run's ``warm_start_parameters``, as the work chain's iterations do (the random arm's trainings then form one chain per
repeat). Printed: one line per
size with mean ± standard deviation over the repeats per arm, the labels each arm needs to reach 0.10 eV/Å (or else
the lowest RMSE both reach), at the sizes run and interpolated between them (log-log), and their ratios; then how many
of the frames each arm trained on came from each origin (the initial CP2K MD, an exploration MD at T, a model
relaxation: ``aiida_qdtraps.provenance.dataset_frame_origins``); ``--origins`` keeps only the pool frames of the
origins named (e.g. the frames drawn at the test frames' temperature). ``--out`` gets ``learning_curves.csv``,
``frames.csv`` (every arm's frames per repeat, in the order taken, with their index among the run's training frames and
their origin) and a PNG.

Trainings run as ``dp --pt train`` + ``freeze`` subprocesses (the same script as ``DeepmdTrainCalculation``), one
thread each, ``--jobs`` at a time (the random arm's trainings are independent of each other; the active arm trains
its two members side by side), outside the AiiDA graph: the models are benchmark artefacts, the frames are the run's
stored labels.
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
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

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


def train(frames: list, type_map: list[str], seed: int, steps: int, workdir: pathlib.Path,
          model_settings: dict | None = None, batch_size: int | str = 'auto', init_model: pathlib.Path | None = None,
          warm_parameters: dict | None = None) -> pathlib.Path:
    """One frozen model trained on ``frames`` (subprocess, the DeepmdTrainCalculation script).

    ``model_settings``: the ``model`` section (descriptor, fitting net, optional ``zbl``); default the reference
    model's. ``batch_size``: frames per step (DeePMD-kit's ``auto`` is ⌈32 / atoms⌉). ``init_model``: a frozen model
    to start from (``--init-frz-model``, as the work chain's warm starts), with ``warm_parameters`` (learning rate,
    loss prefactors) merged over the input.
    """
    from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

    from aiida_qdtraps.analysis.mlff import labelled_system
    from aiida_qdtraps.calculations.deepmd import KINDS, SCRIPT, ZBL_TABLE_FILE, dp_zbl_model, uses_pretrain_script

    workdir.mkdir(parents=True)
    system = None
    for atoms in frames:
        frame = labelled_system(atoms, atoms.get_potential_energy(), atoms.get_forces(), type_map)
        system = frame if system is None else system + frame
    system.to('deepmd/npy', str(workdir / 'data'), set_size=len(frames))
    params = copy.deepcopy(KINDS['energy'])
    params['model'].update(copy.deepcopy(model_settings or MODEL))
    params['model']['type_map'] = type_map
    for part in ('descriptor', 'fitting_net'):
        params['model'][part]['seed'] = seed
    params['learning_rate'].update({'decay_steps': max(steps // 20, 1), 'stop_lr': 1.0e-6})
    if init_model is not None:
        params = recursive_merge(params, copy.deepcopy(warm_parameters or {}))
    params['training'].update({'numb_steps': steps, 'seed': seed, 'disp_freq': max(steps // 10, 1),
                               'save_freq': steps, 'training_data': {'systems': ['data'], 'batch_size': batch_size}})
    params['training'].pop('validation_data', None)
    table = dp_zbl_model(params['model'])  # DP/ZBL, as DeepmdTrainCalculation writes it
    if table is not None:
        np.savetxt(workdir / ZBL_TABLE_FILE, table, fmt='%.10e')
    (workdir / 'input.json').write_text(json.dumps(params))
    # run a copy, as the CalcJob does: from its package folder, `import deepmd` would find the plugin's deepmd.py
    (workdir / SCRIPT.name).write_text(SCRIPT.read_text())
    command = [sys.executable, SCRIPT.name, '-']
    if init_model is not None:
        (workdir / 'init.pth').write_bytes(pathlib.Path(init_model).read_bytes())
        command += ['init.pth', 'pretrain' if uses_pretrain_script(params['model']) else 'model-section']
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
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


def labels_to_reach_interpolated(sizes: list[int], curve: np.ndarray, level: float) -> float | None:
    """Labels at which the mean curve crosses ``level``, interpolated linearly in log(labels) and log(RMSE) between
    the two sizes around the first crossing (learning curves are near power laws); None if it never gets there."""
    for k, (size, value) in enumerate(zip(sizes, curve)):
        if value <= level:
            if k == 0 or value == curve[k - 1]:
                return float(size)
            x0, x1, y0, y1 = np.log(sizes[k - 1]), np.log(size), np.log(curve[k - 1]), np.log(value)
            return float(np.exp(x0 + (np.log(level) - y0) * (x1 - x0) / (y1 - y0)))
    return None


def origin_name(origin) -> str:
    """A short name of a :class:`~aiida_qdtraps.provenance.FrameOrigin`: its kind and temperature."""
    return origin.kind + ('' if origin.temperature_K is None else f' {origin.temperature_K:g} K')


def restrict_pool(origins: list[str], names: list[str] | None) -> list[int]:
    """Indices of the pool frames whose origin (:func:`origin_name`) is one of ``names``; every frame when None.

    :raises ValueError: naming an origin that no pool frame has, with the origins there are.
    """
    if not names:
        return list(range(len(origins)))
    missing = [name for name in names if name not in origins]
    if missing:
        there = ', '.join(f"'{name}' ({origins.count(name)})" for name in sorted(set(origins)))
        raise ValueError(f'no pool frame has the origin {", ".join(repr(m) for m in missing)}; the pool has: {there}')
    return [i for i, origin in enumerate(origins) if origin in names]


def composition(taken: dict[str, np.ndarray], origins: list[str], sizes: list[int]) -> dict[str, list[dict]]:
    """Per arm and size, the mean number (over the repeats) of frames of each origin among the frames trained on.

    :param taken: ``learning_curves``' ``'frames'`` (pool indices per arm, (repeats, sizes[-1]), in the order taken).
    :param origins: the origin of every pool frame, in pool order.
    """
    names = sorted(set(origins))
    table = {}
    for arm, frames in taken.items():
        table[arm] = [{name: float(np.mean([sum(origins[i] == name for i in row[:size]) for row in frames]))
                       for name in names} for size in sizes]
    return table


def learning_curves(pool_size: int, sizes: list[int], repeats: int, jobs: int, train_model, test_rmse, deviation,
                    report=print, warm: bool = False) -> dict[str, np.ndarray]:
    """Force RMSE per arm (``{'active', 'random'}``: arrays (repeats, sizes)).

    ``train_model(indices, seed, tag, init) -> model`` trains on the pool frames ``indices`` (``tag``: a unique name of
    the training; ``init``: with ``warm``, the same arm's model of that seed at the size before, to start from, else
    None); at most ``jobs`` run at a time, the rest of the work in threads around them. ``test_rmse(model)`` is the
    force RMSE on the test frames, ``deviation(models, indices)`` the maximum force deviation of an ensemble on pool
    frames. Per repeat r (``numpy.random.default_rng(r)``): both arms start from the same ``sizes[0]`` random frames
    and share that first model; the random arm adds random frames, the active arm the frames of largest deviation of
    its two members (seeds 1 and 2; seed 1 is the arm's model at that size). Also returned: ``'frames'``, the pool
    indices each arm trained on (``{arm: array (repeats, sizes[-1])}``, in the order taken: the first ``sizes[k]`` are
    the frames of size k), and ``'trainings'``, the number of trainings run.
    """
    rmse = {'active': np.zeros((repeats, len(sizes))), 'random': np.zeros((repeats, len(sizes)))}
    taken = {'active': np.full((repeats, sizes[-1]), -1), 'random': np.full((repeats, sizes[-1]), -1)}
    start = time.time()
    trainings = [0]
    slots = threading.Semaphore(jobs)
    lock = threading.Lock()

    def run_training(indices: list, seed: int, tag: str, init=None):
        with slots:  # at most `jobs` trainings at a time
            model = train_model(list(indices), seed, tag, init if warm else None)
        with lock:
            trainings[0] += 1
        return model

    def record(repeat: int, arm: str, k: int, model) -> None:
        value = test_rmse(model)
        with lock:
            rmse[arm][repeat, k] = value
            if k == 0:  # the random arm's first model is the same training
                rmse['random'][repeat, k] = value
            report(f'repeat {repeat} {"both" if k == 0 else arm:6s} {sizes[k]:4d} labels: force RMSE '
                   f'{value:.4f} eV/Å ({time.time() - start:.0f} s, {trainings[0]} trainings)')

    firsts = {repeat: Future() for repeat in range(repeats)}  # the shared first model of each repeat

    def active_arm(repeat: int, first: list) -> None:
        chosen = list(first)
        models = [None, None]
        try:
            for k in range(len(sizes)):
                members = [1, 2] if k < len(sizes) - 1 else [1]
                tag = f'r{repeat}_first' if k == 0 else f'r{repeat}_active_{k}'
                with ThreadPoolExecutor(len(members)) as both:
                    models = list(both.map(
                        lambda seed: run_training(chosen, seed, f'{tag}_s{seed}', models[seed - 1]), members))
                if k == 0:
                    firsts[repeat].set_result(models[0])
                record(repeat, 'active', k, models[0])
                if len(members) == 2:
                    rest = np.setdiff1d(np.arange(pool_size), chosen)
                    ranked = rest[np.argsort(np.asarray(deviation(models, list(rest))), kind='stable')[::-1]]
                    chosen += [int(i) for i in ranked[:sizes[k + 1] - len(chosen)]]
            taken['active'][repeat] = chosen
        except BaseException as error:
            if not firsts[repeat].done():
                firsts[repeat].set_exception(error)
            raise

    def random_arm(repeat: int, k: int | None, frames: list[list]) -> None:
        """Size ``k`` (``frames[k]``: the arm's frames at every size); with ``warm`` (``k`` None) every size after the
        first in turn, each from the model before, starting from the shared first model."""
        if not warm:
            record(repeat, 'random', k, run_training(frames[k], 1, f'r{repeat}_random_{k}_s1'))
            return
        model = firsts[repeat].result()
        for size in range(1, len(sizes)):
            model = run_training(frames[size], 1, f'r{repeat}_random_{size}_s1', model)
            record(repeat, 'random', size, model)

    tasks = []
    with ThreadPoolExecutor(repeats * len(sizes)) as executor:
        for repeat in range(repeats):
            rng = np.random.default_rng(repeat)
            first = [int(i) for i in rng.choice(pool_size, size=sizes[0], replace=False)]
            tasks.append(executor.submit(active_arm, repeat, first))
            chosen = [list(first)]  # the random arm's frames at every size, known in advance
            for k in range(1, len(sizes)):
                rest = np.setdiff1d(np.arange(pool_size), chosen[-1])
                chosen.append(chosen[-1] + [int(i) for i in rng.choice(rest, size=sizes[k] - len(chosen[-1]),
                                                                         replace=False)])
            taken['random'][repeat] = chosen[-1]
            for k in range(1, len(sizes)) if not warm else [None]:
                tasks.append(executor.submit(random_arm, repeat, k, chosen))
        for task in tasks:
            task.result()  # re-raises a failed training
    rmse['trainings'] = trainings[0]
    rmse['frames'] = taken
    return rmse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run', type=int, help='MlffActiveLearningWorkChain PK (default: the latest finished one)')
    parser.add_argument('--heldout', default='tests/data/mlff/in4pf9/heldout.extxyz')
    parser.add_argument('--sizes', type=int, nargs='+', default=[10, 20, 40])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--steps', type=int, default=2000)
    parser.add_argument('--batch-size', default='auto',
                        help="frames per training step (default DeePMD-kit's 'auto': ⌈32 / atoms⌉, one frame for a "
                             '38-atom QD)')
    parser.add_argument('--warm-steps', type=int, default=0,
                        help="with N > 0, each arm's model at a size starts from its model at the size before and "
                             "trains N steps with the run's warm_start_parameters (as the work chain's iterations); "
                             'default 0: every model from scratch with --steps')
    parser.add_argument('--jobs', type=int, default=1,
                        help='trainings at a time (each one thread; the active arm trains its two members together)')
    parser.add_argument('--origins', nargs='+', metavar='ORIGIN',
                        help="only the pool frames of these origins, as the frames table names them, e.g. "
                             "'initial MD 300 K' 'MLFF MD 300 K' (a pool at the test frames' temperature)")
    parser.add_argument('--out', default=None, help='directory for learning_curves.csv and .png')
    args = parser.parse_args()
    if sorted(set(args.sizes)) != args.sizes or args.sizes[0] < 1:
        parser.error(f'--sizes must be increasing positive integers, got {args.sizes}')
    if args.batch_size != 'auto':
        if not args.batch_size.isdigit() or int(args.batch_size) < 1:
            parser.error(f"--batch-size must be 'auto' or a positive integer, got {args.batch_size!r}")
        args.batch_size = int(args.batch_size)
    if args.warm_steps < 0:
        parser.error(f'--warm-steps must be 0 or a positive integer, got {args.warm_steps}')
    if args.jobs < 1:
        parser.error(f'--jobs must be a positive integer, got {args.jobs}')

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
    from aiida_qdtraps.provenance import dataset_frame_origins

    origins = [origin_name(origin) for origin in dataset_frame_origins(run.outputs.dataset)]
    if len(origins) != len(pool):  # grow_dataset records one source per frame; a dataset made otherwise may not
        raise SystemExit(f'the dataset names {len(origins)} frame sources for {len(pool)} training frames')
    try:
        kept = restrict_pool(origins, args.origins)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    pool, origins = [pool[i] for i in kept], [origins[i] for i in kept]
    test = read(args.heldout, index=':')
    type_map = sorted({s for atoms in pool for s in atoms.get_chemical_symbols()})
    if args.sizes[-1] > len(pool):
        raise SystemExit(f'the pool holds {len(pool)} frames, fewer than the largest size {args.sizes[-1]}')
    training = run.inputs.training.get_dict()
    model_settings = training.get('parameters', {}).get('model', MODEL)
    warm_parameters = training.get('warm_start_parameters', {})
    only = f' ({", ".join(args.origins)} only)' if args.origins else ''
    print(f'pool: {len(pool)} training frames of {run.process_label}<{run.pk}>{only}; test: {len(test)} frames of '
          f'{args.heldout}; sizes {args.sizes}, {args.repeats} repeats, {args.steps} steps of '
          f'{args.batch_size} frames per model (warm starts: {args.warm_steps or "none"}), '
          f'{args.jobs} at a time; model: {json.dumps(model_settings)}', flush=True)

    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        rmse = learning_curves(
            len(pool), args.sizes, args.repeats, args.jobs,
            train_model=lambda indices, seed, tag, init: train(
                [pool[i] for i in indices], type_map, seed, args.warm_steps if init else args.steps,
                pathlib.Path(tmp, tag), model_settings, args.batch_size, init, warm_parameters),
            test_rmse=lambda model: force_rmse(model, test),
            deviation=lambda models, indices: max_deviation(models, [pool[i] for i in indices]),
            report=lambda line: print(line, flush=True), warm=args.warm_steps > 0)
    trainings = rmse.pop('trainings')
    taken = rmse.pop('frames')

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
    between = {arm: labels_to_reach_interpolated(args.sizes, means[arm], level) for arm in means}
    if None not in between.values():
        print(f'interpolated (log-log between sizes): active {between["active"]:.0f}, random {between["random"]:.0f}; '
              f'ratio random/active {between["random"] / between["active"]:.2f}')
    print(f'{trainings} trainings in {time.time() - start:.0f} s')
    names = sorted(set(origins))
    print(f'\nframes trained on, by origin (mean over the repeats; pool: '
          f'{", ".join(f"{origins.count(name)} {name}" for name in names)})')
    print('labels  arm     ' + '  '.join(f'{name:>16s}' for name in names))
    table = composition(taken, origins, args.sizes)
    for k, size in enumerate(args.sizes):
        for arm in ('active', 'random'):
            print(f'{size:6d}  {arm:6s}  ' + '  '.join(f'{table[arm][k][name]:16.1f}' for name in names))
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        rows = ['repeat,labels,active_force_rmse_eV_A,random_force_rmse_eV_A']
        rows += [f'{r},{size},{rmse["active"][r, k]:.5f},{rmse["random"][r, k]:.5f}'
                 for r in range(args.repeats) for k, size in enumerate(args.sizes)]
        (out / 'learning_curves.csv').write_text('\n'.join(rows) + '\n')
        rows = ['arm,repeat,order,pool_index,origin']
        rows += [f'{arm},{r},{n},{kept[index]},{origins[index]}' for arm in ('active', 'random')
                 for r in range(args.repeats) for n, index in enumerate(taken[arm][r])]
        (out / 'frames.csv').write_text('\n'.join(rows) + '\n')
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
        print(f'wrote {out / "learning_curves.csv"}, {out / "frames.csv"} and {out / "learning_curves.png"}')


if __name__ == '__main__':
    main()

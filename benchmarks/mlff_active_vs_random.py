"""Active-learning vs random selection: force RMSE on held-out frames after the same number of CP2K labels.

Usage: ``.venv/bin/python benchmarks/mlff_active_vs_random.py [--new-run] [--run PK] [--structure FILE.xyz]
[--temperature 150] [--md-steps 60] [--save-interval 5] [--held-out 4] [--labels 2] [--splits 3] [--random-draws 3]
[--steps 400]``. The run in docs/mlff.md: ``--new-run --structure tests/data/deepmd/in4pf9_relaxed_fast.xyz`` and the
defaults.

Small-scale, on the project profile, every step an AiiDA process:

1. The ensemble and dataset of a finished ``MlffActiveLearningWorkChain`` (``--run``, default the latest; a ``fast``
   one is run if there is none; ``--new-run``: a new one with the CI test's settings from ``--structure``). One
   ``MlffMdCalculation`` with that ensemble (from ``--structure`` or the run's boxed QD) gives a pool of frames, each
   with the ensemble's ``max_devi_f``.
2. Every pool frame is labelled once with CP2K (the run's own ENERGY_FORCE settings), one after the other, each SCF
   starting from the previous label's wavefunction. Labels above ``MAX_PLAUSIBLE_FORCE`` leave the pool (reported).
3. ``--splits`` times: ``--held-out`` random labelled frames are the test set; from the rest, the active arm takes the
   ``--labels`` frames of largest ``max_devi_f`` (what ``select_candidates`` does), the random arm ``--labels`` frames
   at random (``--random-draws`` draws). Each arm's picks are added to the run's dataset (``grow_dataset``) and one
   model is trained per arm and draw (same seed, ``--steps`` steps, the run's model settings).
4. Each model's force RMSE on that split's held-out frames (``held_out_errors`` calcfunction, DFT = the CP2K labels).
   Printed: per split and arm, then mean ± standard deviation over the splits, the ratio random / active of the means,
   the number of CP2K labels and the wall times of each stage.

Labelling the pool once and drawing the arms from it costs one CP2K label per pool frame, whatever the number of
splits and draws; the remaining cost is one training per arm, split and draw.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import tempfile
import time

import numpy as np
from mlff_common import active_learning_run, load


def split_arms(deviation: np.ndarray, n_held_out: int, n_labels: int, n_draws: int, seed: int) -> dict:
    """Indices (into the labelled pool) of one split: held-out test frames, the active picks, the random draws.

    Active: the ``n_labels`` non-held-out frames of largest ``deviation``. Random: ``n_draws`` seeded draws of
    ``n_labels`` non-held-out frames.
    """
    rng = np.random.default_rng(seed)
    pool = np.arange(len(deviation))
    if n_held_out + n_labels > len(pool):
        raise ValueError(f'{len(pool)} labelled frames cannot give {n_held_out} held-out + {n_labels} picks')
    held_out = np.sort(rng.choice(pool, size=n_held_out, replace=False))
    rest = np.setdiff1d(pool, held_out)
    active = np.sort(rest[np.argsort(deviation[rest])[::-1][:n_labels]])
    random = [np.sort(rng.choice(rest, size=n_labels, replace=False)) for _ in range(n_draws)]
    return {'held_out': held_out, 'active': active, 'random': random}


def main(args) -> None:
    from aiida import orm
    from aiida.common import AttributeDict
    from aiida.engine import calcfunction, run_get_node
    from ase.io import read

    from aiida_qdtraps.analysis import mlff
    from aiida_qdtraps.calculations.deepmd import DeepmdTrainCalculation
    from aiida_qdtraps.calculations.mlff_md import MlffMdCalculation
    from aiida_qdtraps.workchains.cp2k_base import WFN_RESTART, QdCp2kBaseWorkChain
    from aiida_qdtraps.workchains.cp2k_parameters import update_cp2k_parameters
    from aiida_qdtraps.workchains.mlff import grow_dataset

    @calcfunction
    def held_out_errors(model: orm.SinglefileData, test_set: orm.FolderData) -> orm.Dict:
        """Energy and force errors of a frozen DeePMD model on every frame of ``test_set`` (deepmd/npy, eV, eV/Å)."""
        from deepmd.infer import DeepPot

        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / 'model.pth'
            path.write_bytes(model.get_content('rb'))
            potential = DeepPot(str(path))
            test_set.base.repository.copy_tree(pathlib.Path(tmp) / 'data')
            e_ref, e_ml, f_ref, f_ml, natoms = [], [], [], [], []
            for system in sorted((pathlib.Path(tmp) / 'data').glob('*/*/type.raw')):
                types = np.loadtxt(system, dtype=int, ndmin=1)
                for sset in sorted(system.parent.glob('set.*')):
                    coords = np.load(sset / 'coord.npy')
                    energy, forces, _ = potential.eval(coords, None, types)
                    e_ml.extend(np.ravel(energy))
                    e_ref.extend(np.ravel(np.load(sset / 'energy.npy')))
                    f_ml.append(np.reshape(forces, (len(coords), -1)))
                    f_ref.append(np.load(sset / 'force.npy'))
                    natoms.extend([len(types)] * len(coords))
        natoms = np.array(natoms, dtype=float)
        energy = mlff.parity_metrics(np.array(e_ml) / natoms, np.array(e_ref) / natoms)
        force = mlff.parity_metrics(np.concatenate(f_ml), np.concatenate(f_ref))
        return orm.Dict({'n_frames': len(natoms), 'force_rmse': force['rmse'], 'force_mae': force['mae'],
                         'energy_mae_per_atom': energy['mae'], 'units': {'force': 'eV/Å', 'energy': 'eV/atom'}})

    timings = {}
    start = time.perf_counter()
    _, dp_python = load()
    if args.new_run:  # the CI test's loop (tests/workchains/test_mlff_real.py) on the pool's start geometry
        overrides = {'initial': {'method': 'cp2k_md', 'steps': 1}, 'label_wfn_restart': True,
                     'exploration': {'md': {'steps': 20, 'save_interval': 2}}}
        run = active_learning_run(structure_file=args.structure, overrides=overrides, new=True)
        timings['new active-learning run'] = time.perf_counter() - start
        start = time.perf_counter()
    else:
        run = orm.load_node(args.run) if args.run else active_learning_run()
    md_first = next(n for n in run.called if isinstance(n, orm.CalcJobNode) and n.process_type.endswith('mlff_md'))
    type_map = md_first.inputs.type_map
    cell = md_first.inputs.structure.get_ase().cell.array
    if args.structure:
        atoms = mlff.recenter_in_cell(read(args.structure), cell)
        structure = orm.StructureData(ase=atoms)
        structure.pbc = (False, False, False)
    else:
        structure = md_first.inputs.structure
    print(f'run: MlffActiveLearningWorkChain<{run.pk}> ({len(run.outputs.models)} models), dataset<'
          f'{run.outputs.dataset.pk}>; pool MD from {args.structure or "the run structure"}', flush=True)

    # 1. pool
    md_inputs = {'code': dp_python, 'structure': structure, 'models': dict(run.outputs.models), 'type_map': type_map,
                 'parameters': orm.Dict({'temperature_K': args.temperature, 'steps': args.md_steps,
                                         'save_interval': args.save_interval, 'seed': args.seed})}
    if args.pool_md:  # reuse a pool MD (and the labels of its frames, below) of an earlier run of this script
        md = orm.load_node(args.pool_md)
    else:
        _, md = run_get_node(MlffMdCalculation, **md_inputs)
    assert md.is_finished_ok, (md.exit_status, md.exit_message)
    trajectory = md.outputs.trajectory
    deviation = trajectory.get_array('max_devi_f')
    timings['pool MD'] = time.perf_counter() - start
    print(f'pool: MlffMdCalculation<{md.pk}>, {trajectory.numsteps - 1} frames at {args.temperature} K '
          f'(frame 0, the start, left out), max_devi_f {np.round(deviation[1:], 3).tolist()} eV/Å', flush=True)

    # 2. label every pool frame (SCF from the previous label's wavefunction)
    start = time.perf_counter()
    label_call = next((link.node for link in run.base.links.get_outgoing(link_label_filter='label_%').all()
                       if link.node.process_label == 'QdCp2kBaseWorkChain'), None)
    if label_call is None:
        raise SystemExit(f'MlffActiveLearningWorkChain<{run.pk}> has no CP2K label whose settings could be reused')
    label_inputs = AttributeDict(label_call.get_builder_restart()._inputs(prune=True))
    labelled, parent = [], None
    earlier = {}  # finished labels of this pool from an earlier run (--pool-md): matched by their input positions
    if args.pool_md:
        query = orm.QueryBuilder().append(orm.WorkChainNode, filters={
            'attributes.process_label': 'QdCp2kBaseWorkChain', 'attributes.exit_status': 0,
            'ctime': {'>': md.ctime}}, project='*')
        earlier = {n.pk: n for n in query.all(flat=True)}
    for index in range(1, trajectory.numsteps):
        frame = orm.StructureData(ase=mlff.recenter_in_cell(trajectory.get_step_structure(index).get_ase(), cell))
        frame.pbc = (False, False, False)
        match = next((n for n in earlier.values() if n.inputs.cp2k.structure.get_ase().get_chemical_symbols()
                      == frame.get_ase().get_chemical_symbols() and np.allclose(
                          n.inputs.cp2k.structure.get_ase().positions, frame.get_ase().positions, atol=1e-8)), None)
        if match is not None:
            node = match
            frame = match.inputs.cp2k.structure
            print(f'  frame {index}: reusing QdCp2kBaseWorkChain<{node.pk}>', flush=True)
        else:
            inputs = AttributeDict(label_inputs)
            inputs.cp2k = AttributeDict(dict(label_inputs.cp2k))
            inputs.cp2k.structure = frame
            inputs.cp2k.pop('parent_calc_folder', None)
            guess = {'WFN_RESTART_FILE_NAME': WFN_RESTART, 'SCF': {'SCF_GUESS': 'RESTART'}} if parent is not None \
                else {'SCF': {'SCF_GUESS': 'ATOMIC'}}
            parameters = inputs.cp2k.parameters.get_dict()
            parameters['FORCE_EVAL']['DFT'].pop('WFN_RESTART_FILE_NAME', None)
            inputs.cp2k.parameters = update_cp2k_parameters(orm.Dict(parameters),
                                                            orm.Dict({'FORCE_EVAL': {'DFT': guess}}))
            if parent is not None:
                inputs.cp2k.parent_calc_folder = parent
            _, node = run_get_node(QdCp2kBaseWorkChain, **inputs)
        assert node.is_finished_ok, (node.pk, node.exit_status)
        retrieved = node.outputs.retrieved
        forces = mlff.read_cp2k_atomic_forces(retrieved.base.repository.get_object_content('aiida.out'))
        largest = float(np.linalg.norm(forces, axis=1).max())  # eV/Å
        output = retrieved.base.repository.get_object_content('aiida.out')
        scf = re.findall(r'SCF run converged in +(\d+) steps', output)
        print(f'  frame {index}: QdCp2kBaseWorkChain<{node.pk}>, largest force {largest:.2f} eV/Å, SCF steps '
              f'{"+".join(scf)}, max_devi_f {deviation[index]:.3f}', flush=True)
        parent = node.outputs.remote_folder
        if largest > mlff.MAX_PLAUSIBLE_FORCE:
            continue
        labelled.append((index, frame, node.outputs.output_parameters, retrieved))
    timings[f'{trajectory.numsteps - 1} CP2K labels'] = time.perf_counter() - start
    print(f'labelled pool: {len(labelled)} of {trajectory.numsteps - 1} frames kept (largest force <= '
          f'{mlff.MAX_PLAUSIBLE_FORCE} eV/Å)', flush=True)

    def frames(picks):
        out = {}
        for i, k in enumerate(picks):
            _, frame, parameters, retrieved = labelled[int(k)]
            out.update({f'structure_{i:03d}': frame, f'output_parameters_{i:03d}': parameters,
                        f'retrieved_{i:03d}': retrieved})
        return out

    # 3.-4. splits, arms, trainings, held-out errors
    start = time.perf_counter()
    pool_deviation = np.array([deviation[index] for index, *_ in labelled])
    types = type_map.get_list()
    train_call = next(n for n in run.called_descendants
                      if isinstance(n, orm.CalcJobNode) and n.process_type.endswith('deepmd.train'))
    parameters = train_call.inputs.parameters.get_dict()
    parameters.setdefault('training', {})['numb_steps'] = args.steps
    results = {'active': [], 'random': []}
    for split in range(args.splits):
        arms = split_arms(pool_deviation, args.held_out, args.labels, args.random_draws, args.seed + split)
        test_set = grow_dataset(orm.Dict({'type_map': types, 'validation_every': 1}),
                                **frames(arms['held_out']))['dataset']
        runs = [('active', arms['active'])] + [('random', picks) for picks in arms['random']]
        for arm, picks in runs:
            dataset = grow_dataset(orm.Dict({'type_map': types, 'validation_every': 0}), dataset=run.outputs.dataset,
                                   **frames(picks))['dataset']
            _, train = run_get_node(DeepmdTrainCalculation, code=dp_python, dataset=dataset, type_map=type_map,
                                    parameters=orm.Dict(parameters), seed=orm.Int(args.seed))
            assert train.is_finished_ok, (train.exit_status, train.exit_message)
            errors = held_out_errors(train.outputs.model, test_set)
            results[arm].append((split, errors['force_rmse']))
            print(f'  split {split}: {arm:>6} picks {[labelled[int(k)][0] for k in picks]} (max_devi_f '
                  f'{np.round(pool_deviation[picks], 3).tolist()}), DeepmdTrainCalculation<{train.pk}>, held-out '
                  f'{[labelled[int(k)][0] for k in arms["held_out"]]}: force RMSE {errors["force_rmse"]:.4f} eV/Å, '
                  f"energy MAE {1e3 * errors['energy_mae_per_atom']:.1f} meV/atom (Dict<{errors.pk}>)", flush=True)
    timings[f"{len(results['active']) + len(results['random'])} trainings + errors"] = time.perf_counter() - start

    def per_split(arm):  # random: mean over the draws of each split
        return np.array([np.mean([r for s, r in results[arm] if s == split]) for split in range(args.splits)])

    active, random = per_split('active'), per_split('random')
    print(f'\nheld-out force RMSE after {args.labels} CP2K labels per arm ({args.held_out} held-out frames, '
          f'{args.splits} splits; random = mean of {args.random_draws} draws per split):')
    print(f'  active: {active.mean():.4f} ± {active.std(ddof=1) if len(active) > 1 else 0:.4f} eV/Å  '
          f'(per split {np.round(active, 4).tolist()})')
    print(f'  random: {random.mean():.4f} ± {random.std(ddof=1) if len(random) > 1 else 0:.4f} eV/Å  '
          f'(per split {np.round(random, 4).tolist()})')
    print(f'  ratio random / active: {random.mean() / active.mean():.3f}; active better in '
          f'{int(np.sum(active < random))} of {args.splits} splits')
    print(f'CP2K labels: {trajectory.numsteps - 1} (pool), {len(labelled)} kept; base dataset '
          f"{sum(len(v) for v in run.outputs.dataset.base.attributes.get('frame_sources').values())} frames")
    print('wall times: ' + ', '.join(f'{k} {v:.0f} s' for k, v in timings.items()))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--run', type=int, help='pk of a finished MlffActiveLearningWorkChain (default: the latest)')
    parser.add_argument('--new-run', action='store_true',
                        help='first run a new fast active-learning loop (the CI test\'s settings) from --structure')
    parser.add_argument('--pool-md', type=int,
                        help='pk of the MlffMdCalculation of an earlier run: reuse its pool and the labels of its '
                             'frames')
    parser.add_argument('--structure', help='start geometry of the pool MD (xyz; default: the run structure)')
    parser.add_argument('--temperature', type=float, default=150.0, help='pool MD temperature (K)')
    parser.add_argument('--md-steps', type=int, default=60, help='pool MD steps')
    parser.add_argument('--save-interval', type=int, default=5, help='a pool frame every n MD steps')
    parser.add_argument('--held-out', type=int, default=4, help='held-out test frames per split')
    parser.add_argument('--labels', type=int, default=2, help='CP2K labels per arm')
    parser.add_argument('--splits', type=int, default=3, help='random held-out splits')
    parser.add_argument('--random-draws', type=int, default=3, help='random-arm draws per split')
    parser.add_argument('--steps', type=int, default=400, help='training steps per model')
    parser.add_argument('--seed', type=int, default=7)
    main(parser.parse_args())

"""Active-learning vs random selection: force RMSE on held-out frames after the same number of CP2K labels.

Usage: ``.venv/bin/python benchmarks/mlff_active_vs_random.py [--labels 2] [--held-out 3] [--steps 400]``.

Small-scale and in one run, on the project profile:

1. From the latest finished ``MlffActiveLearningWorkChain`` (runs a ``fast`` one if there is none), take its final
   ensemble and dataset, and run one ``MlffMdCalculation`` (``--temperature``, default 300 K, ``--md-steps``). This
   gives a pool of frames with their ``max_devi_f``. Long or hot MD with the CI-sized models distorts the QD until
   CP2K's SCF struggles: a 600 K, 400-step pool needed SCF restarts of 9+ min per label here.
2. Pick ``--held-out`` random pool frames as the test set. From the rest, pick ``--labels`` frames by active learning
   (largest ensemble force deviation) and ``--labels`` frames at random (seeded).
3. Label all of them with CP2K (the run's own ENERGY_FORCE settings) and grow the run's dataset twice: once with the
   active picks, once with the random picks. The test frames are validation frames in both.
4. Train one model per arm (same seed, same steps) and print each arm's force RMSE on the held-out frames (from
   ``dp test`` inside ``DeepmdTrainCalculation``) and their ratio.
"""

from __future__ import annotations

import argparse

import numpy as np
from mlff_common import active_learning_run, load


def main(n_labels: int, n_held_out: int, steps: int, seed: int, temperature: float, md_steps: int) -> None:
    from aiida import orm
    from aiida.common import AttributeDict
    from aiida.engine import run_get_node

    from aiida_qdtraps.analysis.mlff import recenter_in_cell
    from aiida_qdtraps.calculations.deepmd import DeepmdTrainCalculation
    from aiida_qdtraps.calculations.mlff_md import MlffMdCalculation
    from aiida_qdtraps.workchains.cp2k_base import QdCp2kBaseWorkChain
    from aiida_qdtraps.workchains.mlff import grow_dataset

    _, dp_python = load()
    run = active_learning_run()
    md_first = next(n for n in run.called if isinstance(n, orm.CalcJobNode) and n.process_type.endswith('mlff_md'))
    structure = md_first.inputs.structure
    type_map = md_first.inputs.type_map
    md_inputs = {'code': dp_python, 'structure': structure, 'models': dict(run.outputs.models), 'type_map': type_map,
                 'parameters': orm.Dict({'temperature_K': temperature, 'steps': md_steps, 'save_interval': 5,
                                          'seed': seed})}
    _, md = run_get_node(MlffMdCalculation, **md_inputs)
    assert md.is_finished_ok, (md.exit_status, md.exit_message)
    trajectory = md.outputs.trajectory
    deviation = trajectory.get_array('max_devi_f')
    rng = np.random.default_rng(seed)
    pool = np.arange(1, trajectory.numsteps)  # frame 0 is the start geometry
    held_out = rng.choice(pool, size=n_held_out, replace=False)
    rest = np.setdiff1d(pool, held_out)
    active = rest[np.argsort(deviation[rest])[::-1][:n_labels]]
    random = rng.choice(rest, size=n_labels, replace=False)
    print(f'pool: {trajectory.numsteps - 1} MD frames at {temperature} K, max_devi_f {deviation[pool].min():.3f}–'
          f'{deviation[pool].max():.3f} eV/Å; held out {sorted(held_out.tolist())}, active {sorted(active.tolist())} '
          f'(max_devi_f {np.round(deviation[active], 3).tolist()}), random {sorted(random.tolist())}', flush=True)

    label_call = next(n for n in run.called if isinstance(n, orm.WorkChainNode)
                      and n.process_label == 'QdCp2kBaseWorkChain')
    label_inputs = AttributeDict(label_call.get_builder_restart()._inputs(prune=True))
    cell = structure.get_ase().cell.array
    labels = {}
    for index in sorted(set(held_out) | set(active) | set(random)):
        atoms = recenter_in_cell(trajectory.get_step_structure(int(index)).get_ase(), cell)
        frame = orm.StructureData(ase=atoms)
        frame.pbc = (False, False, False)
        inputs = AttributeDict(label_inputs)
        inputs.cp2k = AttributeDict(dict(label_inputs.cp2k))
        inputs.cp2k.structure = frame
        _, node = run_get_node(QdCp2kBaseWorkChain, **inputs)
        assert node.is_finished_ok, (node.pk, node.exit_status)
        labels[int(index)] = (frame, node.outputs.output_parameters, node.outputs.retrieved)
        print(f'labelled frame {index}: QdCp2kBaseWorkChain<{node.pk}>', flush=True)

    def frames(indices, offset=0):
        out = {}
        for i, index in enumerate(sorted(int(x) for x in indices)):
            frame, parameters, retrieved = labels[index]
            out.update({f'structure_{offset + i:03d}': frame, f'output_parameters_{offset + i:03d}': parameters,
                        f'retrieved_{offset + i:03d}': retrieved})
        return out

    types = type_map.get_list()
    with_test = grow_dataset(orm.Dict({'type_map': types, 'validation_every': 1}), dataset=run.outputs.dataset,
                             **frames(held_out))['dataset']
    training = run.called_descendants
    train_call = next(n for n in training if isinstance(n, orm.CalcJobNode) and n.process_type.endswith('deepmd.train'))
    parameters = train_call.inputs.parameters.get_dict()
    parameters.setdefault('training', {})['numb_steps'] = steps
    rmse = {}
    for arm, picks in (('active', active), ('random', random)):
        dataset = grow_dataset(orm.Dict({'type_map': types, 'validation_every': 0}), dataset=with_test,
                               **frames(picks))['dataset']
        _, train = run_get_node(DeepmdTrainCalculation, code=dp_python, dataset=dataset, type_map=type_map,
                                parameters=orm.Dict(parameters), seed=orm.Int(seed))
        assert train.is_finished_ok, (train.exit_status, train.exit_message)
        result = train.outputs.output_parameters.get_dict()
        rmse[arm] = result['force_rmse']
        print(f"{arm:>6}: {n_labels} labels, DeepmdTrainCalculation<{train.pk}>, held-out ({result['n_validation_frames']}"
              f" frames) force RMSE {result['force_rmse']:.4f} eV/Å, energy MAE "
              f"{1e3 * result['energy_mae_per_atom']:.2f} meV/atom", flush=True)
    print(f"ratio random / active force RMSE: {rmse['random'] / rmse['active']:.2f}")


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--labels', type=int, default=2, help='CP2K labels per arm')
    parser.add_argument('--held-out', type=int, default=3, help='held-out test frames')
    parser.add_argument('--steps', type=int, default=400, help='training steps per model')
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--temperature', type=float, default=300.0, help='MD temperature (K) of the pool')
    parser.add_argument('--md-steps', type=int, default=100, help='MD steps of the pool (a frame every 5 steps)')
    args = parser.parse_args()
    main(args.labels, args.held_out, args.steps, args.seed, args.temperature, args.md_steps)

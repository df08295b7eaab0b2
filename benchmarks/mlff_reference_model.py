"""The shipped reference force field: one real DeePMD model made by ``MlffActiveLearningWorkChain``, tested on frames of
an independent CP2K MD.

Usage (project profile; each command is one process, the two runs can go side by side)::

    .venv/bin/python benchmarks/mlff_reference_model.py heldout --structure tests/data/cp2k/relaxed/in4pf9_fast.xyz
    .venv/bin/python benchmarks/mlff_reference_model.py train --structure tests/data/cp2k/relaxed/in4pf9_fast.xyz
    .venv/bin/python benchmarks/mlff_reference_model.py export --run PK --heldout PK --out tests/data/mlff/in4pf9
    .venv/bin/python benchmarks/mlff_reference_model.py relax --run PK [--rattle 0 0.05 0.1 0.2]

The acetate-capped Cd6Se4(OAc)4 model on GFN1-xTB labels (``tests/data/mlff/cd6se4oac4``; docs/mlff.md) was made by::

    ... heldout --structure QD.xyz --label-protocol xtb --steps 400 --timestep 1.0
    ... train --structure QD.xyz --label-protocol xtb --steps 1000 --timestep 1.0 --stride 2 --training-steps 16000 \
        --labels 40 --max-iterations 2 --zbl 0.6 1.0 --explore-steps 10000
    ... export --run PK --heldout PK --skip 20 --every 10 --out tests/data/mlff/cd6se4oac4

``train --previous PK`` continues a finished run onto the QD of ``--structure`` (another size or vacancy of the same
elements): the run's dataset is trained on with the new QD's frames and iteration 1 warm-starts from its models
(docs/mlff.md, *One model for several QDs of a material*). A run imported from a shipped ``training.aiida`` lacks the
weights of all but the shipped model: ``--previous-ensemble tests/data/mlff/cd6se4oac4/ensemble`` supplies them (each
file matched to its model by sha256).

The defaults are the shipped model's settings (docs/mlff.md, *The reference model*). The loop's own validation frames
are every 5th frame of its training MD and flatter the model (0.029 eV/Å there against 0.094 on the independent
frames), so ``--force-target`` (its stop criterion) sits well below the 0.10 eV/Å goal.

``heldout``: a CP2K NVT MD (CSVR, 300 K) of the QD with the labels' DFT settings (the ``fast`` relax protocol, run as MD
exactly as the work chain's initial data) but its own seed, through ``QdCp2kBaseWorkChain``; ``grow_dataset`` turns
every frame into a labelled frame (dataset FolderData, each frame traced to the MD CalcJob). ``train``:
``MlffActiveLearningWorkChain`` from the same geometry, initial data from its own CP2K MD (another seed), then
active-learning iterations until the held-out RMSEs or ``--max-iterations``; with ``--relax-rattle A [A ...]`` each
iteration from ``--relax-from`` on also explores by model relaxations from the QD rattled by these amplitudes (Å), and
``--balance`` shares the labels between MD and relaxation frames (docs/mlff.md, *Relaxation paths as exploration*).
``export``: writes ``model.pth`` (the model of the final ensemble with the lowest force RMSE on the loop's own
validation frames), ``heldout.extxyz`` (the held-out MD's frames from step ``--skip`` on, every ``--every``-th; DFT
energies in eV, forces in eV/Å), ``parity_run.png`` (the loop's own parity plot) and ``training.aiida`` (an archive of
the run and the held-out MD, every frame traced to its CP2K calculation; the other models' weights, the raw files
the parsers stored as arrays and the models' predictions are left out (``ARCHIVE_STRIPPED``), their nodes stay; with
``--ensemble`` also ``ensemble/``: the final ensemble, the shipped member as ``model_1.pth``, and the start geometry)
and prints the model's errors on the held-out frames, as ``qdtraps mlff test`` computes them. ``relax``: every model
of the run's final ensemble relaxes the QD of ``--structure`` (the DFT minimum) as given and rattled by each
``--rattle`` amplitude (Å, seeded), with BFGS to 0.05 eV/Å; one line per model and start: RMSD of the end point to
the DFT minimum, the ensemble's deviation there, and the model's errors on the shipped held-out frames.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')

PROTOCOL = 'fast'  # the loop's own protocol (mlff.yaml); the labels' settings are --label-protocol's
MODEL = {
    'descriptor': {'type': 'se_e2_a', 'sel': 'auto', 'rcut_smth': 0.5, 'rcut': 6.0, 'neuron': [16, 32, 64],
                   'axis_neuron': 8},
    'fitting_net': {'neuron': [120, 120, 120], 'resnet_dt': True},
}


#: File names left out of ``training.aiida`` (all nodes but the shipped model and its training's retrieved folder):
#: ``model.pth`` (other models' weights, 1.9 MB each), ``validation.f.out`` and ``md.npz`` (raw outputs stored as the
#: ``validation_parity`` and ``trajectory`` arrays), the MLFF MDs' ``velocities.npy`` / ``forces.npy`` and the
#: ``forces_mlff.npy`` of ``validation_parity`` (model predictions; CP2K's own MD forces stay in its retrieved
#: ``aiida-frc-1.xyz``, the labels in the datasets and each label's ``aiida.out``).
ARCHIVE_STRIPPED = ('model.pth', 'validation.f.out', 'md.npz', 'velocities.npy', 'forces.npy', 'forces_mlff.npy')


def structure_from(path: str):
    from aiida import orm
    from ase.io import read

    structure = orm.StructureData(ase=read(path))
    structure.pbc = (False, False, False)
    return structure


def md_settings(args, seed: int) -> dict:
    return {'method': 'cp2k_md', 'steps': args.steps, 'timestep_fs': args.timestep, 'temperature_K': args.temperature,
            'thermostat_tau_fs': 50.0, 'seed': seed, 'stride': args.stride}


def heldout(args) -> None:
    """The independent CP2K MD and its labelled frames."""
    from aiida import orm
    from aiida.common import AttributeDict
    from aiida.engine import run_get_node
    from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

    from aiida_qdtraps.workchains.build import center_in_box
    from aiida_qdtraps.workchains.cp2k_base import QdCp2kBaseWorkChain
    from aiida_qdtraps.workchains.cp2k_relax import QdCp2kRelaxWorkChain
    from aiida_qdtraps.workchains.electronic_state import electronic_state_changes
    from aiida_qdtraps.workchains.mlff import MD_FILES, grow_dataset, initial_md_parameters, label_parameters

    cp2k_code = orm.load_code('cp2k@localhost')
    structure = structure_from(args.structure)
    label, relax = QdCp2kRelaxWorkChain.cp2k_builder_from_protocol(cp2k_code, structure, args.label_protocol)
    inputs = AttributeDict(label._inputs(prune=True))
    inputs.cp2k = AttributeDict(dict(inputs.cp2k))
    inputs.cp2k.structure = center_in_box(structure, orm.Float(relax['box_vacuum']))
    settings = md_settings(args, args.seed)
    inputs.cp2k.parameters = orm.Dict(recursive_merge(
        initial_md_parameters(label_parameters(inputs.cp2k.parameters.get_dict()), settings),
        electronic_state_changes(args.charge, args.multiplicity)))
    inputs.cp2k.settings = orm.Dict({'additional_retrieve_list': list(MD_FILES[2:])})
    print(f'held-out CP2K MD: {settings}', flush=True)
    start = time.time()
    _, node = run_get_node(QdCp2kBaseWorkChain, **inputs)
    if not node.is_finished_ok:
        raise SystemExit(f'{node.process_label}<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    dataset = grow_dataset(orm.Dict({'type_map': sorted({s.kind_name for s in structure.sites}),
                                     'validation_every': 0, 'md_stride': 1}),
                           md_retrieved_000=node.outputs.retrieved)['dataset']
    print(f'held-out MD {node.process_label}<{node.pk}> {time.time() - start:.0f} s; dataset<{dataset.pk}>', flush=True)


def previous_models(run, ensemble: str | None) -> dict:
    """The run's final ``models``; with ``ensemble`` (a directory of ``*.pth``, e.g. a shipped ``ensemble/``), each
    model whose weights an archive left out is replaced by the file there with the same sha256 (the archive's
    ``qdtraps_stripped_files`` extra names it), stored as a new SinglefileData whose extra ``same_content_as`` is the
    run's model's uuid (the file is not linked to the training that made it)."""
    import hashlib

    from aiida import orm

    from aiida_qdtraps.archive import STRIPPED_EXTRA

    models = dict(run.outputs.models)
    if ensemble is None:
        return models
    files = {hashlib.sha256(path.read_bytes()).hexdigest(): path
             for path in sorted(pathlib.Path(ensemble).glob('*.pth'))}
    for name, model in sorted(models.items()):
        stripped = model.base.extras.get(STRIPPED_EXTRA, None)
        if not stripped:
            continue
        digest = stripped[0]['sha256']
        if digest not in files:
            raise SystemExit(f'--previous-ensemble {ensemble}: no file with the sha256 of {name}<{model.pk}> '
                             f'({digest[:12]}…)')
        copy = orm.SinglefileData(files[digest], filename=model.filename)
        copy.base.extras.set('same_content_as', model.uuid)
        models[name] = copy.store()
        print(f'{name}: {files[digest]} (sha256 of {model.__class__.__name__}<{model.pk}>)', flush=True)
    return models


def train(args) -> None:
    """The active-learning run."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_qdtraps.workchains.mlff import MlffActiveLearningWorkChain

    cp2k_code, dp_code = orm.load_code('cp2k@localhost'), orm.load_code('dp-python@localhost')
    model = json.loads(json.dumps(MODEL))
    if args.type_one_side:  # one embedding net per neighbour type instead of per type pair: ~2x faster for 5 types
        model['descriptor']['type_one_side'] = True
    if args.zbl:  # DP/ZBL needs a type-embedding descriptor: se_atten_v2 without attention layers
        model['descriptor'] = {'type': 'se_atten_v2', 'sel': args.sel, 'rcut_smth': 0.5, 'rcut': 6.0,
                               'neuron': [16, 32, 64], 'axis_neuron': 8, 'attn_layer': 0}
        model['zbl'] = {'sw_rmin': args.zbl[0], 'sw_rmax': args.zbl[1]}
    overrides = {
        'num_models': 4,
        'validation_every': args.validation_every,
        'label_wfn_restart': True,
        'initial': md_settings(args, args.seed),
        'training': {'numb_steps': args.training_steps, 'warm_start_steps': 0.5,
                     'parameters': {'model': model,
                                    'learning_rate': {'decay_steps': max(args.training_steps // 20, 1),
                                                      'stop_lr': 1.0e-6},
                                    'training': {'disp_freq': 200, 'save_freq': args.training_steps}}},
        'exploration': {'temperatures_K': args.temperatures,
                        'md': {'steps': args.explore_steps, 'save_interval': args.save_interval, 'timestep_fs': 1.0,
                               **({'stop_devi_f': args.stop_devi_f} if args.stop_devi_f else {})},
                        **({'grow': {'max_steps': args.grow}} if args.grow else {}),
                        **({'rotate_driver': True} if args.rotate_driver else {}),
                        **({'continue_md': True} if args.continue_md else {}),
                        **({'relax': {'rattle_stdev': args.relax_rattle, 'steps': 300, 'save_interval': 5,
                                      'from_iteration': args.relax_from}}
                           if args.relax_rattle else {})},
        'selection': {'trust_lo': args.trust[0], 'trust_hi': args.trust[1], 'max_candidates': args.labels,
                      **({'balance': True} if args.balance else {}),
                      **({} if args.no_calibrate else {'calibrate': {'target_error': 0.10,
                                                                      'min_points': args.labels}})},
        'convergence': {'force_rmse_eV_A': args.force_target, 'energy_rmse_meV_atom': 2.0, 'accurate_fraction': 0.99,
                        'max_iterations': args.max_iterations},
    }
    builder = MlffActiveLearningWorkChain.get_builder_from_protocol(cp2k_code, dp_code, dp_code,
                                                                    structure_from(args.structure), PROTOCOL,
                                                                    overrides=overrides, charge=args.charge,
                                                                    multiplicity=args.multiplicity,
                                                                    label_protocol=args.label_protocol)
    if args.previous is not None:  # continue that run onto this QD: its frames and its models
        previous = orm.load_node(args.previous)
        if previous.process_label != 'MlffActiveLearningWorkChain' or not previous.is_finished_ok:
            raise SystemExit(f'--previous {args.previous}: {previous.__class__.__name__}<{previous.pk}> is not a '
                             'finished MlffActiveLearningWorkChain')
        builder.previous_dataset = previous.outputs.dataset
        builder.previous_models = previous_models(previous, args.previous_ensemble)
    print(json.dumps(overrides), flush=True)
    start = time.time()
    _, node = run_get_node(builder)
    print(f'{node.process_label}<{node.pk}> exit {node.exit_status} after {time.time() - start:.0f} s', flush=True)


def export(args) -> None:
    """Model, held-out frames, parity plot and archive of both runs; the test line."""
    import dpdata
    from aiida import orm
    from ase.io import write

    from aiida_qdtraps.analysis.mlff_test import frame_labels, model_errors, predict
    from aiida_qdtraps.archive import create_archive, strip_files
    from aiida_qdtraps.workchains.mlff import best_member

    run = orm.load_node(args.run)
    held = orm.load_node(args.heldout)
    dataset = held.outputs.dataset if hasattr(held, 'outputs') and 'dataset' in held.outputs else held
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The ensemble member with the lowest force RMSE on the loop's own validation frames (`dp test` in its training),
    # the work chain's `best_model`: chosen without looking at the independent held-out frames.
    validation = {name: node.creator.outputs.output_parameters['force_rmse']
                  for name, node in run.outputs.models.items()}
    chosen = best_member(validation)
    print(f'validation force RMSE per model (eV/Å): {validation}; shipped: {chosen}', flush=True)
    (out / 'model.pth').write_bytes(run.outputs.models[chosen].get_content('rb'))
    steps = dataset.base.attributes.get('frame_md_steps')
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset.base.repository.copy_tree(tmp)
        for system in sorted(pathlib.Path(tmp, 'training').iterdir()):
            md_steps = (steps or {}).get(f'training/{system.name}')
            for i, atoms in enumerate(dpdata.LabeledSystem(str(system), fmt='deepmd/npy').to('ase/structure')):
                step = md_steps[i] if md_steps else i
                if step >= args.skip and (step - args.skip) % args.every == 0:
                    atoms.info['md_step'] = int(step)
                    frames.append(atoms)
    write(out / 'heldout.extxyz', frames)
    if 'parity_plot' in run.outputs:
        (out / 'parity_run.png').write_bytes(run.outputs.parity_plot.get_content('rb'))
    # A label copied from the cache names the CalcJob that ran it (`frame_sources`): those go into the archive too.
    sources = {uuid for node in (run.outputs.dataset, dataset)
               for values in node.base.attributes.get('frame_sources').values() for uuid in values}
    create_archive(out / 'training.aiida', [run, dataset, *(orm.load_node(uuid) for uuid in sorted(sources))],
                   overwrite=True)
    # What leaves the archive (ARCHIVE_STRIPPED): the weights of every other model (earlier iterations, other members),
    # the raw files whose contents the parsers stored as arrays, and the models' predictions along the MLFF MDs and on
    # the validation frames; their nodes, links and sha256 stay, so every frame still traces to its labelling
    # calculation.
    shipped = run.outputs.models[chosen]
    stripped = strip_files(out / 'training.aiida', ARCHIVE_STRIPPED,
                           keep=[shipped.uuid, shipped.creator.outputs.retrieved.uuid])
    if args.ensemble:  # the final ensemble, the shipped member first, and the geometry it was trained from
        folder = out / 'ensemble'
        folder.mkdir(exist_ok=True)
        names = [chosen, *sorted(set(run.outputs.models) - {chosen})]
        for i, name in enumerate(names):
            (folder / f'model_{i + 1}.pth').write_bytes(run.outputs.models[name].get_content('rb'))
        run.inputs.structure.get_ase().write(folder / 'start.xyz', format='extxyz')
        print(f'ensemble/: model_1..{len(names)}.pth = {names}, start.xyz', flush=True)
    size = (out / 'training.aiida').stat().st_size / 1e6
    print(f"training.aiida {size:.1f} MB ({len({f.sha256 for f in stripped})} files left out: other models' weights, "
          "raw files stored as arrays, model predictions); "
          f"files {sorted(p.name for p in out.iterdir())}", flush=True)
    reference_e, reference_f = frame_labels(frames)
    model_e, model_f = predict(str(out / 'model.pth'), frames)
    errors = model_errors(model_e, model_f, reference_e, reference_f, [len(a) for a in frames])
    print(json.dumps(errors), flush=True)


def relax(args) -> None:
    """Each ensemble member's relaxation from the DFT minimum and rattled starts; its held-out errors."""
    import numpy as np
    from aiida import orm
    from ase.io import read

    from aiida_qdtraps.analysis.cross_engine import aligned_rmsd
    from aiida_qdtraps.analysis.mlff_relax import ensemble_deviation, relax_with_model
    from aiida_qdtraps.analysis.mlff_test import frame_labels, model_errors, predict

    if args.models:  # frozen models (SinglefileData) of one training iteration, e.g. of a run still going
        models = {f'model_{pk}': orm.load_node(pk) for pk in args.models}
    else:
        models = dict(orm.load_node(args.run).outputs.models.items())
    minimum = read(args.structure)
    frames = read(args.heldout_frames, index=':')
    reference_e, reference_f = frame_labels(frames)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, node in sorted(models.items()):
            paths[name] = str(pathlib.Path(tmp, f'{name}.pth'))
            pathlib.Path(paths[name]).write_bytes(node.get_content('rb'))
        for name, path in paths.items():
            model_e, model_f = predict(path, frames)
            errors = model_errors(model_e, model_f, reference_e, reference_f, [len(a) for a in frames])
            print(f"model={name} heldout_force_rmse_eV_A={errors['force_rmse_eV_A']:.4f} "
                  f"heldout_energy_rmse_meV_atom={errors['energy_rmse_meV_atom']:.3f}", flush=True)
            for amplitude in args.rattle:
                start = minimum.copy()
                start.positions += np.random.default_rng(args.seed).normal(scale=amplitude, size=start.positions.shape)
                result = relax_with_model(start, path, fmax=0.05, steps=300)
                end = minimum.copy()
                end.positions = result['positions']
                rmsd, largest, _ = aligned_rmsd(minimum, end)
                deviation = ensemble_deviation(end, list(paths.values()))
                print(f'model={name} rattle_A={amplitude} rmsd_A={rmsd:.3f} max_displacement_A={largest:.3f} '
                      f"steps={result['n_steps']} converged={result['converged']} "
                      f'end_deviation_eV_A={deviation:.3f}', flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=('heldout', 'train', 'export', 'relax'))
    parser.add_argument('--structure', default='tests/data/cp2k/relaxed/in4pf9_fast.xyz')
    parser.add_argument('--label-protocol', default=PROTOCOL, choices=('fast', 'moderate', 'precise', 'xtb'),
                        help='relax protocol of the labels and of the CP2K MDs (xtb: GFN1-xTB, a model of xTB)')
    parser.add_argument('--steps', type=int, default=None, help='CP2K MD steps (heldout 50, train 120)')
    parser.add_argument('--timestep', type=float, default=2.0, help='CP2K MD time step (fs)')
    parser.add_argument('--temperature', type=float, default=300.0)
    parser.add_argument('--charge', type=int, default=0)
    parser.add_argument('--multiplicity', type=int, default=1)
    parser.add_argument('--stride', type=int, default=1)
    parser.add_argument('--seed', type=int, default=None, help='MD seed (heldout 100, train 0)')
    parser.add_argument('--training-steps', type=int, default=16000)
    parser.add_argument('--validation-every', type=int, default=5,
                        help='train: every n-th frame of the initial MD is a validation frame')
    parser.add_argument('--explore-steps', type=int, default=2000, help='train: MLFF MD steps per temperature')
    parser.add_argument('--temperatures', type=float, nargs='+', default=[300.0, 450.0],
                        help='train: exploration MD temperatures (K), one MD each (repeated: another seed)')
    parser.add_argument('--trust', type=float, nargs=2, default=[0.10, 0.60], metavar=('LO', 'HI'),
                        help='train: trust levels (eV/Å) of iteration 1 (and all iterations with --no-calibrate)')
    parser.add_argument('--no-calibrate', action='store_true', help='train: keep the given trust levels')
    parser.add_argument('--save-interval', type=int, default=20, help='train: MLFF MD steps between saved frames')
    parser.add_argument('--stop-devi-f', type=float, default=None,
                        help='train: end an exploration MD at the first frame with a force deviation above this (eV/Å)')
    parser.add_argument('--grow', type=int, default=None, metavar='MAX_STEPS',
                        help='train: double the exploration length after an iteration with <= 5%% failed frames and '
                             'no stopped MD, up to MAX_STEPS')
    parser.add_argument('--rotate-driver', action='store_true', help='train: each member drives MDs in turn')
    parser.add_argument('--continue-md', action='store_true',
                        help='train: each exploration MD starts where the previous iteration\'s last had the ensemble '
                             'agree')
    parser.add_argument('--type-one-side', action='store_true',
                        help='train: se_e2_a with type_one_side (embedding by neighbour type only; faster)')
    parser.add_argument('--zbl', type=float, nargs=2, metavar=('SW_RMIN', 'SW_RMAX'),
                        help='train: a DP/ZBL model (ZBL repulsion below SW_RMAX Å, se_atten_v2 descriptor)')
    parser.add_argument('--sel', type=int, default=40, help='train: neighbours within rcut (se_atten_v2 of --zbl)')
    parser.add_argument('--labels', type=int, default=10, help='CP2K labels per iteration at most')
    parser.add_argument('--max-iterations', type=int, default=2)
    parser.add_argument('--previous', type=int, default=None, metavar='PK',
                        help='train: continue that finished run onto this QD (its dataset and models: another size or '
                             'vacancy of the same elements)')
    parser.add_argument('--previous-ensemble', default=None, metavar='DIR',
                        help="train --previous: the files of the run's models whose weights an archive left out "
                             '(matched by sha256), e.g. tests/data/mlff/cd6se4oac4/ensemble')
    parser.add_argument('--force-target', type=float, default=0.025,
                        help='held-out force RMSE (eV/Å) of the loop\'s own validation frames at which it stops')
    parser.add_argument('--relax-rattle', type=float, nargs='*', default=[],
                        help='train: also explore by model relaxations from the QD rattled by these amplitudes (Å)')
    parser.add_argument('--balance', action='store_true',
                        help='train: share the labels of an iteration between MD and relaxation frames')
    parser.add_argument('--relax-from', type=int, default=1, help='train: first iteration that relaxes')
    parser.add_argument('--run', type=int, help='export: the MlffActiveLearningWorkChain')
    parser.add_argument('--heldout', type=int, help='export: the held-out dataset FolderData')
    parser.add_argument('--skip', type=int, default=5, help='export: first MD step of the held-out frames')
    parser.add_argument('--every', type=int, default=3, help='export: held-out frame stride (MD steps)')
    parser.add_argument('--ensemble', action='store_true',
                        help='export: also write ensemble/model_<i>.pth (the shipped member first) and start.xyz')
    parser.add_argument('--out', default='tests/data/mlff/in4pf9')
    parser.add_argument('--rattle', type=float, nargs='*', default=[0.0, 0.05, 0.1, 0.2],
                        help='relax: rattle amplitudes (Å) of the starts')
    parser.add_argument('--models', type=int, nargs='*', default=[],
                        help='relax: frozen models (SinglefileData pks) instead of the final ensemble of --run')
    parser.add_argument('--heldout-frames', default='tests/data/mlff/in4pf9/heldout.extxyz',
                        help='relax: labelled frames for the held-out errors')
    args = parser.parse_args()
    if args.steps is None:
        args.steps = 50 if args.command == 'heldout' else 120
    if args.seed is None:
        args.seed = 100 if args.command == 'heldout' else 0
    from aiida_qdtraps.profile import load_project_profile

    load_project_profile()
    {'heldout': heldout, 'train': train, 'export': export, 'relax': relax}[args.command](args)


if __name__ == '__main__':
    main()

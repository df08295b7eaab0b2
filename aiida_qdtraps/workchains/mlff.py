"""``MlffActiveLearningWorkChain`` (``qdtraps.active_learning``): DP-GEN's loop as restartable AiiDA processes.

Sowa et al. (Methods; docs/references.md) train DeePMD force fields iteratively: train → MD with the force field →
label new geometries with DFT → retrain, until the errors are small. Here::

    initial frames (rattled QD) → CP2K ENERGY_FORCE labels → grow_dataset
    repeat: train an ensemble (DeepmdTrainCalculation × num_models, different seeds)
            → explore (MlffMdCalculation per temperature, all models give the deviation)
            → select_candidates (trust levels on max force deviation; with ``selection.calibrate``, from iteration 2
              on, levels calibrated on the labelled frames so far by calibrate_trust_levels)
            → stop if accurate fraction ≥ threshold, validation energy MAE (and force MAE, if set) below thresholds,
              or max_iterations reached; else label the candidates with CP2K → grow_dataset

Every frame of the dataset keeps the uuid of the CP2K CalcJob that labelled it (attribute ``frame_sources`` of the
dataset FolderData, aligned with the frames of each deepmd/npy system), and that CalcJob's ``retrieved`` folder is an
input of the ``grow_dataset`` call that added it. The CP2K labels reuse the relax protocol (``relax.yaml``) of the
same name with ``RUN_TYPE ENERGY_FORCE`` and ``FORCE_EVAL/PRINT/FORCES`` through ``QdCp2kBaseWorkChain``.

Every node in the context is stored before the step that made it ends, so each step's checkpoint can be written and
a daemon worker that dies resumes the loop where it was. The same inputs launched again with AiiDA caching on for
the CP2K and DeePMD CalcJobs reuse every finished label, training and MD (``frame_sources`` names the CalcJob that
ran a label, so the relaunch's datasets have the same hash as the first run's).
"""

from __future__ import annotations

import copy

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_, while_
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

from ..analysis import mlff
from ..calculations.deepmd import DeepmdTrainCalculation
from ..calculations.mlff_md import MlffMdCalculation, md_parameters
from .build import center_in_box
from .cp2k_base import WFN_RESTART, QdCp2kBaseWorkChain
from .cp2k_parameters import update_cp2k_parameters
from .cp2k_relax import QdCp2kRelaxWorkChain
from .electronic_state import electronic_state_changes
from .mlff_functions import (  # noqa: F401  (re-exported: their public import path)
    calibrate_deviation,
    calibrate_trust_levels,
    collect_iterations,
    exploration_kind,
    exploration_start,
    grow_dataset,
    plot_parity,
    rattle_structure,
    select_candidates,
)
from .mlff_settings import (  # noqa: F401  (re-exported: their public import path)
    CONVERGENCE_KEYS,
    INITIAL_KEYS,
    INITIAL_MD_DEFAULTS,
    LABEL_CHANGES,
    MD_FILES,
    SELECTION_KEYS,
    TRAINING_KEYS,
    best_member,
    calibrate_settings,
    exploration_driver,
    grow_settings,
    initial_md_parameters,
    initial_md_settings,
    is_converged,
    label_parameters,
    next_exploration_steps,
    relaxations,
    training_schedule,
    validate_settings,
    validation_route,
)
from .stage import QdProtocolMixin, define_qd_inputs, qd_builder

#: The settings inputs of the active-learning loop (one Dict each) and what they hold.
SETTINGS_HELP = {
    'initial': 'Initial frames: `method` `rattle` (default; `n_frames`, `rattle_stdev` Å, `seed`) or `cp2k_md` '
               '(`steps`, `timestep_fs`, `temperature_K`, `thermostat_tau_fs`, `seed`, `stride`: a short CP2K NVT MD '
               'whose frames are the initial labels).',
    'training': '`numb_steps`, `parameters` (DeePMD input merged over the DeepmdTrainCalculation defaults), '
                '`warm_start` (bool), `warm_start_steps` (fraction of numb_steps), `warm_start_parameters`.',
    'exploration': '`temperatures_K` (list, K) and `md` (MlffMdCalculation parameters but the temperature and '
                   '`driver`; `stop_devi_f` ends an MD where the ensemble disagrees); optional `grow` (`factor`, '
                   '`max_failed`, `max_steps`: the MD length grows after an iteration with few failed frames), '
                   '`rotate_driver` (each member drives MDs in turn), `continue_md` (each MD starts where the same MD '
                   'of the previous iteration last had the ensemble agree), '
                   '`relax` (`rattle_stdev`: list of Å, one model BFGS relaxation from the QD rattled by each; '
                   '`steps`, `save_interval`, `fmax` eV/Å, `maxstep` Å, `from_iteration`): relaxation paths as '
                   'candidate frames.',
    'selection': '`trust_lo`, `trust_hi` (eV/Å), `max_candidates`, `stride`, `min_distance_scale`, `balance` (share '
                 '`max_candidates` between MD and relaxation frames), optional '
                 '`adaptive_lo` or `calibrate` (`target_error` eV/Å, `quantile`, `min_points`, `hi_ratio`: from '
                 'iteration 2 on the levels are calibrated on the labelled frames so far).',
    'convergence': '`accurate_fraction` (default 0.95), `energy_mae_per_atom` (eV/atom, default 0.001), optional '
                   '`force_mae` (eV/Å), `max_iterations` (default 5).',
}

class MlffActiveLearningWorkChain(QdProtocolMixin, WorkChain):
    """Train a DeePMD ensemble for a QD by active learning with CP2K labels (Sowa et al.'s iterative scheme)."""

    protocol_file = 'mlff.yaml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_qd_inputs(spec, box_help='Centre the QD in a cubic box with this much vacuum (Å) first; every label '
                                        'uses this box.')
        spec.expose_inputs(QdCp2kBaseWorkChain, namespace='label', exclude=('cp2k.structure',),
                           namespace_options={'help': 'CP2K ENERGY_FORCE labelling (parameters from the protocol).'})
        spec.input('dp_code', valid_type=orm.AbstractCode, help='Python with deepmd-kit: training (train/freeze/test).')
        spec.input('md_code', valid_type=orm.AbstractCode, help='Python with ase + deepmd-kit: the MLFF MD script.')
        spec.input('type_map', valid_type=orm.List, required=False, help='Element order; default: sorted elements.')
        spec.input('num_models', valid_type=orm.Int, default=lambda: orm.Int(4), help='Ensemble size (seeds 1..n).')
        spec.input('validation_every', valid_type=orm.Int, default=lambda: orm.Int(5),
                   help='Hold out every n-th labelled frame for validation and the parity plot.')
        for name, help_text in SETTINGS_HELP.items():
            spec.input(name, valid_type=orm.Dict, help=help_text)
        spec.input('label_wfn_restart', valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help='Start the SCF of the labels of MD frames from the wavefunction of the initial data (the last '
                        'frame of the initial CP2K MD, or the first initial label) instead of the atomic guess.')
        spec.input('previous_dataset', valid_type=orm.FolderData, required=False,
                   help="The `dataset` output of an earlier run (another QD of the same elements: another size, a "
                        "vacancy): its frames are trained on with this run's, each composition its own system; its "
                        "type map is this run's. The initial data of this QD is made as without it.")
        spec.input_namespace('previous_models', valid_type=orm.SinglefileData, dynamic=True, required=False,
                             help="The `models` output of that run (`model_1` … `model_<num_models>`): iteration 1 "
                                  'warm-starts member n from its model n instead of training from scratch.')
        spec.input('train_options', valid_type=dict, non_db=True, required=False, help='CalcJob options of training.')
        spec.input('md_options', valid_type=dict, non_db=True, required=False, help='CalcJob options of the MD.')
        spec.inputs.validator = validate_settings
        spec.outline(
            cls.setup,
            if_(cls.should_box)(cls.put_in_box),
            if_(cls.starts_from_md)(
                cls.run_initial_md,
                cls.inspect_initial_md,
            ).else_(
                cls.make_initial_frames,
                cls.run_labels,
                cls.inspect_labels,
            ),
            while_(cls.should_iterate)(
                cls.run_training,
                cls.inspect_training,
                cls.run_exploration,
                cls.inspect_exploration,
                if_(cls.should_label)(
                    cls.run_labels,
                    cls.inspect_labels,
                ),
                cls.report_iteration,
            ),
            cls.results,
        )
        spec.output_namespace('models', valid_type=orm.SinglefileData, dynamic=True,
                              help='The final ensemble (frozen .pth models).')
        spec.output('dataset', valid_type=orm.FolderData, help='All labelled frames (deepmd/npy), with frame sources.')
        spec.output('iterations', valid_type=orm.Dict,
                    help='Per iteration: accurate/candidate/failed fractions, validation errors, `converged`.')
        spec.output('parity_plot', valid_type=orm.SinglefileData, required=False,
                    help='MLFF vs DFT energies and forces on the held-out frames (PNG).')
        spec.output('best_model', valid_type=orm.SinglefileData, required=False,
                    help='The member of the final ensemble with the lowest force RMSE on the held-out frames of its '
                         'training (the same node as in `models`): the model to use for MD or relaxations.')
        spec.exit_code(410, 'ERROR_LABELING_FAILED', message='CP2K labelling failed for {count} frame(s): {message}')
        spec.exit_code(420, 'ERROR_TRAINING_FAILED', message='DeePMD training failed: {message}')
        spec.exit_code(430, 'ERROR_EXPLORATION_FAILED', message='MLFF MD failed: {message}')

    @classmethod
    def get_builder_from_protocol(cls, cp2k_code: orm.AbstractCode, dp_code: orm.AbstractCode,
                                  md_code: orm.AbstractCode, structure: orm.StructureData,
                                  protocol: str | None = None, overrides: dict | None = None, charge: int = 0,
                                  multiplicity: int = 1, options: dict | None = None,
                                  label_protocol: str | None = None):
        """Builder for ``structure`` with the ``fast`` (CI) / ``moderate`` / ``precise`` protocol.

        The CP2K labels use the CP2K relax protocol of the same name (``relax.yaml``: DFT settings and box vacuum),
        turned into ENERGY_FORCE, or the relax protocol ``label_protocol`` when given: ``'xtb'`` labels with
        GFN1-xTB (about a second per label for 14–35 atoms; a model of that level of theory, not of DFT).

        :param overrides: nested dict with this work chain's input layout, merged last.
        :param options: CalcJob options merged into ``label.cp2k.metadata.options``.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        label, relax = QdCp2kRelaxWorkChain.cp2k_builder_from_protocol(cp2k_code, structure, label_protocol or protocol,
                                                                       options=options)
        label.cp2k.parameters = orm.Dict(label_parameters(label.cp2k.parameters.get_dict()))
        builder = qd_builder(cls, structure, charge, multiplicity, relax.get('box_vacuum'))
        builder.label = label._inputs(prune=True)
        builder.dp_code = dp_code
        builder.md_code = md_code
        builder.num_models = orm.Int(inputs['num_models'])
        builder.label_wfn_restart = orm.Bool(inputs.get('label_wfn_restart', False))
        builder.validation_every = orm.Int(inputs['validation_every'])
        if inputs['initial'].get('method') == 'cp2k_md':  # drop the protocol's rattle settings unless overridden
            given = (overrides or {}).get('initial', {})
            inputs['initial'] = {k: v for k, v in inputs['initial'].items()
                                 if k in given or k in INITIAL_KEYS['cp2k_md']}
        for key in ('initial', 'training', 'exploration', 'selection', 'convergence'):
            builder[key] = orm.Dict(inputs[key])
        return builder

    # -- steps ---------------------------------------------------------------------------------------------------
    def setup(self):
        self.ctx.structure = self.inputs.structure
        elements = sorted({site.kind_name for site in self.inputs.structure.sites})
        elements = sorted({self.inputs.structure.get_kind(name).symbol for name in elements})
        previous = self.inputs.get('previous_dataset')
        if previous is not None:  # its type map (validated to hold every element of the structure)
            elements = list(previous.base.attributes.get('type_map'))
        # stored now: a checkpoint cannot hold an unstored node, and would be skipped until a process used them
        self.ctx.type_map = orm.List(self.inputs.type_map.get_list() if 'type_map' in self.inputs
                                     else elements).store()
        self.ctx.iteration = 0
        self.ctx.dataset = previous
        self.ctx.converged = False
        self.ctx.statistics = {}
        self.ctx.models = dict(self.inputs.get('previous_models', {}))
        if previous is not None:
            systems = {name: len(uuids) for name, uuids in previous.base.attributes.get('frame_sources').items()}
            models = f" and its models {', '.join(sorted(self.ctx.models))}" if self.ctx.models else ''
            self.report(f'continuing from dataset<{previous.pk}> ({sum(systems.values())} frames: '
                        f"{', '.join(f'{n} {name}' for name, n in sorted(systems.items()))}){models}; "
                        f'type map {self.ctx.type_map.get_list()}')
        self.ctx.to_label = {}
        self.ctx.grow_parameters = orm.Dict({'type_map': self.ctx.type_map.get_list(),
                                             'validation_every': self.inputs.validation_every.value}).store()
        self.ctx.progress = {}
        exploration = self.inputs.exploration.get_dict()
        self.ctx.explore_steps = md_parameters(exploration.get('md', {}))['steps']

    def should_box(self):
        return 'box_vacuum' in self.inputs

    def put_in_box(self):
        self.ctx.structure = center_in_box(self.inputs.structure, self.inputs.box_vacuum)

    def make_initial_frames(self):
        self.ctx.to_label = rattle_structure(self.ctx.structure, self.inputs.initial)
        self.report(f'initial data: {len(self.ctx.to_label)} rattled frames of the QD to label with CP2K')

    def starts_from_md(self):
        return self.inputs.initial.get('method', 'rattle') == 'cp2k_md'

    def run_initial_md(self):
        """A short CP2K NVT MD of the (boxed) QD with the label DFT settings; its frames are the initial data."""
        settings = initial_md_settings(self.inputs.initial.get_dict())
        state = electronic_state_changes(self.inputs.charge.value, self.inputs.multiplicity.value)
        base = AttributeDict(self.exposed_inputs(QdCp2kBaseWorkChain, namespace='label'))
        inputs = copy.copy(base)
        inputs.cp2k = AttributeDict(dict(base.cp2k))
        inputs.cp2k.structure = self.ctx.structure
        inputs.cp2k.parameters = orm.Dict(recursive_merge(initial_md_parameters(base.cp2k.parameters.get_dict(),
                                                                                settings), state))
        cp2k_settings = base.cp2k.settings.get_dict() if 'settings' in base.cp2k else {}
        extra = [name for name in MD_FILES[2:] if name not in cp2k_settings.get('additional_retrieve_list', [])]
        cp2k_settings['additional_retrieve_list'] = [*cp2k_settings.get('additional_retrieve_list', []), *extra]
        inputs.cp2k.settings = orm.Dict(cp2k_settings)
        inputs.metadata = {'call_link_label': 'initial_md'}
        self.report(f"initial data: CP2K NVT MD, {settings['steps']} steps of {settings['timestep_fs']} fs at "
                    f"{settings['temperature_K']} K, frame stride {settings['stride']}")
        return ToContext(initial_md=self.submit(QdCp2kBaseWorkChain, **inputs))

    def inspect_initial_md(self):
        """The MD frames (positions, CP2K forces and energies) become the initial dataset."""
        node = self.ctx.initial_md
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_LABELING_FAILED.format(
                count=1, message=f'initial MD {node.process_label}<{node.pk}> exit status {node.exit_status}')
        self.ctx.wfn_parent = getattr(node.outputs, 'remote_folder', None)
        settings = initial_md_settings(self.inputs.initial.get_dict())
        parameters = orm.Dict({**self.ctx.grow_parameters.get_dict(), 'md_stride': settings['stride']})
        kwargs = {'dataset': self.ctx.dataset} if self.ctx.dataset is not None else {}
        self.ctx.dataset = grow_dataset(parameters, md_retrieved_000=node.outputs.retrieved, **kwargs)['dataset']
        n_frames = sum(len(v) for v in self.ctx.dataset.base.attributes.get('frame_sources').values())
        earlier = " with the earlier run's" if kwargs else ''
        self.report(f'initial data: dataset<{self.ctx.dataset.pk}> holds {n_frames} frames of the CP2K MD{earlier}')
        return None

    def run_labels(self):
        """Label every structure of ``ctx.to_label`` with CP2K ENERGY_FORCE (QdCp2kBaseWorkChain)."""
        state = electronic_state_changes(self.inputs.charge.value, self.inputs.multiplicity.value)
        base = AttributeDict(self.exposed_inputs(QdCp2kBaseWorkChain, namespace='label'))
        parameters = update_cp2k_parameters(base.cp2k.parameters, orm.Dict(state))
        futures = {}
        parent = self.ctx.get('wfn_parent') if self.inputs.label_wfn_restart.value else None
        if parent is not None:  # CP2K falls back to the atomic guess if the file is missing
            parameters = update_cp2k_parameters(parameters, orm.Dict({'FORCE_EVAL': {'DFT': {
                'WFN_RESTART_FILE_NAME': WFN_RESTART, 'SCF': {'SCF_GUESS': 'RESTART'}}}}))
        for key, structure in sorted(self.ctx.to_label.items()):
            inputs = copy.copy(base)
            inputs.cp2k = AttributeDict(dict(base.cp2k))
            inputs.cp2k.structure = structure
            inputs.cp2k.parameters = parameters
            if parent is not None:
                inputs.cp2k.parent_calc_folder = parent
            inputs.metadata = {'call_link_label': f'label_iter_{self.ctx.iteration}_{key}'}
            futures[f'label_{key}'] = self.submit(QdCp2kBaseWorkChain, **inputs)
        start = f', SCF from the wavefunction in RemoteData<{parent.pk}>' if parent is not None else ''
        self.report(f'iteration {self.ctx.iteration}: labelling {len(futures)} frame(s) with CP2K ENERGY_FORCE{start}')
        return ToContext(**futures)

    def inspect_labels(self):
        """Add the finished labels to the dataset; fail if any CP2K work chain failed.

        A label of an MD frame (iteration >= 1) whose largest CP2K force exceeds ``MAX_PLAUSIBLE_FORCE`` (atoms
        pushed into each other by a poor model) is left out with a report, as DP-GEN leaves out failed frames; the
        next training then uses the dataset as it was. Initial labels are never left out: there ``grow_dataset``
        refuses them, with the force in the message.
        """
        failed, labels, refused = [], {}, []
        for i, key in enumerate(sorted(self.ctx.to_label)):
            node = self.ctx[f'label_{key}']
            if not node.is_finished_ok:
                failed.append(f'{node.process_label}<{node.pk}> exit status {node.exit_status}')
                continue
            if self.ctx.iteration > 0:
                largest = self._largest_force(node.outputs.retrieved)
                if largest is not None and largest > mlff.MAX_PLAUSIBLE_FORCE:
                    refused.append(f'{node.process_label}<{node.pk}> ({largest:.3g} eV/Å)')
                    continue
            labels[f'structure_{i:03d}'] = self.ctx.to_label[key]
            labels[f'output_parameters_{i:03d}'] = node.outputs.output_parameters
            labels[f'retrieved_{i:03d}'] = node.outputs.retrieved
        if failed:
            return self.exit_codes.ERROR_LABELING_FAILED.format(count=len(failed), message='; '.join(failed))
        self.ctx.progress = {'labelled': len(self.ctx.to_label), 'refused': len(refused),
                             'added': sum(key.startswith('structure_') for key in labels)}
        if self.ctx.iteration > 0:
            self._calibrate()
        if self.ctx.iteration == 0:
            self.ctx.wfn_parent = getattr(self.ctx[f'label_{min(self.ctx.to_label)}'].outputs, 'remote_folder', None)
        if refused:
            self.ctx.refused_labels = self.ctx.get('refused_labels', 0) + len(refused)
            self.report(f'iteration {self.ctx.iteration}: {len(refused)} label(s) not added, largest force above '
                        f'{mlff.MAX_PLAUSIBLE_FORCE} eV/Å (unphysical MD frames): {"; ".join(refused)}')
        if not labels:
            self.report(f'iteration {self.ctx.iteration}: no label added; '
                        f'the dataset stays dataset<{self.ctx.dataset.pk}>')
            return None
        kwargs = {'dataset': self.ctx.dataset} if self.ctx.dataset is not None else {}
        self.ctx.dataset = grow_dataset(self.ctx.grow_parameters, **kwargs, **labels)['dataset']
        n_frames = sum(len(v) for v in self.ctx.dataset.base.attributes.get('frame_sources').values())
        self.report(f'iteration {self.ctx.iteration}: dataset<{self.ctx.dataset.pk}> now holds {n_frames} frames')
        return None

    def _calibrate(self) -> None:
        """Store the deviation of this batch's labelled frames next to their true force error (``calibrate_deviation``)
        and report how well the one tracks the other."""
        selection = self.ctx.statistics.get(f'selection_iter_{self.ctx.iteration}')
        runs = self._exploration_runs()
        if selection is None or not all('forces' in n.outputs.trajectory.get_arraynames() for n in runs.values()):
            return
        nodes = {f'trajectory_{k}': n.outputs.trajectory for k, n in runs.items()}
        for n, key in enumerate(sorted(self.ctx.to_label)):
            nodes[f'retrieved_{n:03d}'] = self.ctx[f'label_{key}'].outputs.retrieved
        calibration = calibrate_deviation(selection, **nodes)
        self.ctx.statistics[f'calibration_iter_{self.ctx.iteration}'] = calibration
        relation = calibration['relation']
        ratio = relation.get('ratio_p50')
        self.report(f"iteration {self.ctx.iteration}: labelled frames' true force error / deviation: median "
                    f"{'n/a' if ratio is None else f'{ratio:.2f}'}, largest true error "
                    f"{max(calibration['true_error'], default=float('nan')):.3f} eV/Å (Calibration<{calibration.pk}>)")

    @staticmethod
    def _largest_force(retrieved: orm.FolderData) -> float | None:
        """Largest atomic force (eV/Å) of a CP2K ENERGY_FORCE output, None if it has no forces block."""
        text = retrieved.base.repository.get_object_content(retrieved.creator.base.attributes.get('output_filename',
                                                                                               'aiida.out'))
        try:
            return float(np.linalg.norm(mlff.read_cp2k_atomic_forces(text), axis=1).max())
        except ValueError:
            return None  # grow_dataset raises with the reason

    def should_iterate(self):
        max_iterations = int(self.inputs.convergence.get('max_iterations', 5))
        return not self.ctx.converged and self.ctx.iteration < max_iterations

    def run_training(self):
        """Train the ensemble; from iteration 2 on (``training.warm_start``) member n starts from member n's model, in
        iteration 1 from ``previous_models``'s model n when given."""
        self.ctx.iteration += 1
        self.ctx.progress = {}
        previous_models = bool(self.inputs.get('previous_models'))
        parameters, warm = training_schedule(self.inputs.training.get_dict(), self.ctx.iteration, previous_models)
        parameters = orm.Dict(parameters)
        futures = {}
        for seed in range(1, self.inputs.num_models.value + 1):
            inputs = {'code': self.inputs.dp_code, 'dataset': self.ctx.dataset, 'type_map': self.ctx.type_map,
                      'parameters': parameters, 'seed': orm.Int(seed),
                      'metadata': {'call_link_label': f'train_iter_{self.ctx.iteration}_model_{seed}',
                                   'options': dict(self.inputs.get('train_options', {}))}}
            if warm:
                inputs['init_model'] = self.ctx.models[f'model_{seed}']
            futures[f'train_{seed}'] = self.submit(DeepmdTrainCalculation, **inputs)
        if not warm:
            start = 'from scratch'
        elif self.ctx.iteration == 1:
            start = 'warm start from previous_models'
        else:
            start = f'warm start from iteration {self.ctx.iteration - 1}'
        self.report(f'iteration {self.ctx.iteration}: training {len(futures)} DeePMD models '
                    f"({parameters['training']['numb_steps']} steps each, {start})")
        return ToContext(**futures)

    def inspect_training(self):
        failed = [f'DeepmdTrainCalculation<{self.ctx[k].pk}> exit status {self.ctx[k].exit_status}'
                  for k in self.ctx if k.startswith('train_') and not self.ctx[k].is_finished_ok]
        if failed:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message='; '.join(failed))
        self.ctx.models = {f'model_{s}': self.ctx[f'train_{s}'].outputs.model
                           for s in range(1, self.inputs.num_models.value + 1)}
        first = self.ctx['train_1']
        self.ctx.validation = first.outputs.output_parameters
        self.ctx.statistics[f'validation_iter_{self.ctx.iteration}'] = first.outputs.output_parameters
        if 'validation_parity' in first.outputs:
            self.ctx.parity = first.outputs.validation_parity
        metrics = first.outputs.output_parameters.get_dict()
        if metrics.get('warm_start'):
            self.report(f"iteration {self.ctx.iteration}: warm start, model 1's first training force RMSE "
                        f"{metrics.get('initial_rmse_f_trn', float('nan')):.3g} eV/Å (final "
                        f"{metrics.get('final_rmse_f_trn', float('nan')):.3g})")
        if 'energy_mae_per_atom' in metrics:
            self.report(f"iteration {self.ctx.iteration}: validation MAE {1e3 * metrics['energy_mae_per_atom']:.3g} "
                        f"meV/atom, force MAE {metrics['force_mae']:.3g} eV/Å ({metrics['n_validation_frames']} "
                        'held-out frames, model 1)')
        errors = {f'model_{s}': self.ctx[f'train_{s}'].outputs.output_parameters.get('force_rmse')
                  for s in range(1, self.inputs.num_models.value + 1)}
        self.ctx.best_model = best_member(errors)
        if self.ctx.best_model is not None:
            listed = ', '.join(f'{errors[name]:.3g}' if errors[name] is not None else 'n/a' for name in errors)
            self.report(f'iteration {self.ctx.iteration}: validation force RMSE per model {listed} eV/Å; lowest: '
                        f'{self.ctx.best_model}')
        return None

    def run_exploration(self):
        exploration = self.inputs.exploration.get_dict()
        futures, drivers = {}, []
        starts = self._exploration_starts(exploration) if exploration.get('continue_md') else {}
        if starts:
            listed = ', '.join(f"md_{i} from step {start.base.attributes.get('step')} of the previous "
                               f'TrajectoryData<{start.creator.inputs.trajectory.pk}>' for i, start in starts.items())
            self.report(f'iteration {self.ctx.iteration}: explorations continue: {listed}')
        for i, temperature in enumerate(exploration['temperatures_K']):
            parameters = {**exploration.get('md', {}), 'temperature_K': float(temperature),
                          'seed': 1000 * self.ctx.iteration + i}
            if 'grow' in exploration:
                parameters['steps'] = self.ctx.explore_steps
            if exploration.get('rotate_driver', False):
                parameters['driver'] = exploration_driver(exploration, self.ctx.iteration, i,
                                                          self.inputs.num_models.value)
            drivers.append(f"model_{parameters.get('driver', 0) + 1}")
            futures[f'md_{i}'] = self._submit_md(parameters, f'md_iter_{self.ctx.iteration}_{i}', starts.get(i))
        relax = relaxations(exploration, self.ctx.iteration)
        for k, parameters in enumerate(relax):
            parameters['seed'] = 1000 * self.ctx.iteration + 100 + k
            futures[f'relax_{k}'] = self._submit_md(parameters, f'relax_iter_{self.ctx.iteration}_{k}')
        self.report(f'iteration {self.ctx.iteration}: MLFF MD at {exploration["temperatures_K"]} K, '
                    f'{self.ctx.explore_steps} steps, driven by {", ".join(drivers)}'
                    + (f', model relaxations from the QD rattled by {[p["rattle_stdev"] for p in relax]} Å'
                       if relax else ''))
        return ToContext(**futures)

    def _exploration_runs(self) -> dict:
        """This iteration's ``MlffMdCalculation`` nodes by context key (``md_<i>``, ``relax_<k>``)."""
        return {k: self.ctx[k] for k in self.ctx if k.startswith(('md_', 'relax_'))}

    def _exploration_starts(self, exploration: dict) -> dict:
        """With ``exploration.continue_md``: the start of each MD of this iteration, the last frame of the same MD of
        the previous iteration before its force deviation first exceeded ``md.stop_devi_f`` (where it stopped), or
        ``selection.trust_hi`` without a stop (``exploration_start`` calcfunction); none in iteration 1."""
        stop = exploration.get('md', {}).get('stop_devi_f')
        limit = orm.Dict({'max_devi_f': float(stop if stop is not None else self.inputs.selection['trust_hi'])})
        starts = {}
        for i in range(len(exploration['temperatures_K'])):
            previous = self.ctx.get(f'md_{i}')
            if previous is not None and 'trajectory' in previous.outputs:
                starts[i] = exploration_start(previous.outputs.trajectory, limit)
        return starts

    def _submit_md(self, parameters: dict, link_label: str, structure: orm.StructureData | None = None):
        """An ``MlffMdCalculation`` (MD or relaxation) of the QD (or ``structure``) with the current ensemble."""
        return self.submit(MlffMdCalculation, code=self.inputs.md_code, structure=structure or self.ctx.structure,
                           models=self.ctx.models, type_map=self.ctx.type_map, parameters=orm.Dict(parameters),
                           metadata={'call_link_label': link_label,
                                     'options': dict(self.inputs.get('md_options', {}))})

    def inspect_exploration(self):
        runs = self._exploration_runs()
        failed = [f'MlffMdCalculation<{n.pk}> exit status {n.exit_status}' for n in runs.values() if
                  not n.is_finished_ok]
        if failed:
            return self.exit_codes.ERROR_EXPLORATION_FAILED.format(message='; '.join(failed))
        selection = {**self.inputs.selection.get_dict(), 'seed': self.ctx.iteration}
        if self.inputs.num_models.value < 2:
            return self.exit_codes.ERROR_EXPLORATION_FAILED.format(message='model deviation needs >= 2 models')
        levels, origin = self._trust_levels()
        result = select_candidates(self.ctx.structure, orm.Dict(selection),
                                   **({'trust_levels': levels} if levels is not None else {}),
                                   **{k: n.outputs.trajectory for k, n in sorted(runs.items())})
        stats = result['statistics']
        if stats.get('trust_source') == 'adaptive':
            origin = f"trust_lo adaptive (selection.adaptive_lo {selection['adaptive_lo']}), trust_hi as given"
        self.report(f"iteration {self.ctx.iteration}: trust levels {stats['trust_lo']:.4g} / {stats['trust_hi']:.4g} "
                    f'eV/Å, {origin}')
        self.ctx.statistics[f'selection_iter_{self.ctx.iteration}'] = stats
        self.ctx.to_label = {k: v for k, v in result.items() if k.startswith('candidate_')}
        self.ctx.converged = is_converged(stats.get_dict(), self.ctx.validation.get_dict(),
                                          self.inputs.convergence.get_dict())
        route = validation_route(self.ctx.validation.get_dict(), self.inputs.convergence.get_dict())
        self.report(f"iteration {self.ctx.iteration}: {stats['n_frames']} MD frames, accurate {stats['accurate']:.2f},"
                    f" candidate {stats['candidate']:.2f}, failed {stats['failed']:.2f}; "
                    f'{len(self.ctx.to_label)} selected' + ('; converged' if self.ctx.converged else '')
                    + (f'; validation: {route[1]}' if route is not None else ''))
        if stats.get('n_filtered'):
            self.report(f"iteration {self.ctx.iteration}: pre-label filter: {stats['filter']}")
        for line in self._grow_exploration(runs, stats['failed']):
            self.report(line)
        return None

    def _grow_exploration(self, runs: dict, failed: float) -> list[str]:
        """Set the next exploration length (``exploration.grow``); return the report lines: the MDs that stopped at
        ``md.stop_devi_f`` and the next length."""
        outputs = {key: node.outputs.output_parameters.get_dict() for key, node in runs.items()
                   if key.startswith('md_') and 'output_parameters' in node.outputs}
        stopped = {key: out for key, out in outputs.items() if 'stopped_at_step' in out}
        lines = []
        if stopped:
            listed = ', '.join(f"{key} at step {out['stopped_at_step']} ({out['stop_max_devi_f']:.3g} eV/Å)"
                               for key, out in sorted(stopped.items()))
            lines.append(f'iteration {self.ctx.iteration}: MD stopped at md.stop_devi_f: {listed}')
        grow = grow_settings(self.inputs.exploration.get_dict())
        if grow is not None:
            steps, why = next_exploration_steps(self.ctx.explore_steps, grow, float(failed), len(stopped))
            lines.append(f'iteration {self.ctx.iteration}: next exploration {steps} steps ({why})')
            self.ctx.explore_steps = steps
        return lines

    def _trust_levels(self) -> tuple[orm.Dict | None, str]:
        """The ``calibrate_trust_levels`` output for this iteration's selection (None: the given levels) and where the
        levels come from, for the report."""
        if calibrate_settings(self.inputs.selection.get_dict()) is None:
            return None, 'as given (selection.trust_lo, trust_hi)'
        if self.ctx.iteration < 2:
            return None, 'as given (selection.calibrate starts in iteration 2: no labelled MD frames yet)'
        records = {k: v for k, v in self.ctx.statistics.items() if k.startswith('calibration_iter_')}
        levels = calibrate_trust_levels(self.inputs.selection, **records)
        self.ctx.statistics[f'trust_levels_iter_{self.ctx.iteration}'] = levels
        batches = ', '.join(str(i) for i in levels['iterations'])
        where = f"{levels.creator.process_label}<{levels.creator.pk}>, {levels['n_points']} labelled frame(s)" + \
            (f' of iteration(s) {batches}' if batches else '')
        if levels['source'] == 'calibrated':
            return levels, f"calibrated ({where}): {levels['reason']}"
        return levels, f"as given ({where}): {levels['reason']}"

    def report_iteration(self):
        """One progress line per iteration: exploration, selection, labels, held-out errors, convergence."""
        iteration = self.ctx.iteration
        stats = self.ctx.statistics[f'selection_iter_{iteration}']
        validation = self.ctx.validation.get_dict()
        progress = self.ctx.get('progress') or {}
        n_selected = len(self.ctx.to_label)
        if progress:
            labels = f"{progress['labelled']} labelled, {progress['added']} added"
            labels += f", {progress['refused']} refused (|F| > {mlff.MAX_PLAUSIBLE_FORCE} eV/Å)" \
                if progress['refused'] else ''
        elif not n_selected:
            labels = 'nothing to label'
        else:
            labels = 'not labelled (' + ('converged' if self.ctx.converged else 'last iteration') + ')'
        if 'force_rmse' in validation and 'energy_rmse_per_atom' in validation:
            errors = (f"force RMSE {validation['force_rmse']:.3g} eV/Å, energy RMSE "
                      f"{1e3 * validation['energy_rmse_per_atom']:.3g} meV/atom (model 1, "
                      f"{validation.get('n_validation_frames', '?')} held-out frames)")
        else:
            errors = 'no held-out errors (no validation frames)'
        n_frames = sum(len(v) for v in self.ctx.dataset.base.attributes.get('frame_sources').values())
        self.report(f"iteration {iteration} summary: accurate {stats['accurate']:.2f} of {stats['n_frames']} MD "
                    f"frames at trust levels {stats['trust_lo']:.4g} / {stats['trust_hi']:.4g} eV/Å "
                    f"({stats.get('trust_source', 'given')}); {stats['n_selected']} selected, "
                    f"{stats.get('n_filtered', 0)} filtered; "
                    f'{labels}; dataset {n_frames} frames; {errors}; '
                    + ('converged' if self.ctx.converged else 'not converged'))

    def should_label(self):
        """Label only when another training follows (labels after the last training would not be used)."""
        return bool(self.ctx.to_label) and self.should_iterate()

    def results(self):
        self.out('dataset', self.ctx.dataset)
        self.out('models', self.ctx.models)
        if self.ctx.get('best_model') is not None:
            self.out('best_model', self.ctx.models[self.ctx.best_model])
        self.out('iterations', collect_iterations(self.inputs.convergence, **self.ctx.statistics))
        if 'parity' in self.ctx:
            self.out('parity_plot', plot_parity(self.ctx.parity))
        self.report(f'done after {self.ctx.iteration} iteration(s); converged: {self.ctx.converged}')

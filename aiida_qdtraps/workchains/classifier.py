"""``TrapClassifierWorkChain`` (``qdtraps.classifier``): featurize every trap labelling of a Group, build the dataset,
train the classifier and cluster the traps; and the walks of the classifier's provenance: :func:`labeling_inputs`
(a labelling → the ``featurize`` inputs), :func:`trace_sample` (a model row → its recipe) and
:func:`library_summary`.

The calcfunctions it calls (``featurize``, ``build_dataset``, ``train_classifier``, ``cluster_traps``,
``predict_traps``) are in :mod:`.classifier_functions` and importable from here as well.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import WorkChain, if_

from .. import provenance
from .classifier_functions import (  # noqa: F401  (re-exported: their public import path)
    CLUSTER_DEFAULTS,
    FEATURE_SETS,
    FEATURIZE_DEFAULTS,
    INTERPOLATION_DEFAULTS,
    SETTINGS_KEYS,
    TRAIN_DEFAULTS,
    build_dataset,
    cluster_traps,
    featurize,
    geometry_source,
    labelled_qd,
    predict_traps,
    restrict_to_interpolation,
    train_classifier,
)


def labeling_inputs(node: orm.Node) -> dict:
    """The ``featurize`` inputs of a finished labeling (see :func:`~aiida_qdtraps.provenance.labeling`): structure,
    atom_labels, states, summary and, found through the provenance of its ``mo_window`` (extract_mo_window →
    retrieved → CP2K CalcJob, :func:`~aiida_qdtraps.provenance.scf_calcjob`), the SCF's ``atomic_charges``,
    ``output_parameters`` and ``parameters`` input (``scf_input``), and the ``parameters`` input of the relax CalcJob
    the structure comes from, if any (``geometry_input``, see :func:`~aiida_qdtraps.provenance.geometry_origin`)."""
    label = provenance.labeling(node)
    outputs = label.outputs
    inputs = {'structure': label.inputs.structure, 'atom_labels': outputs.atom_labels, 'states': outputs.states,
              'summary': outputs.summary}
    calcjob = provenance.scf_calcjob(label.inputs.mo_window)
    if calcjob is not None:
        for link, key in (('atomic_charges', 'atomic_charges'), ('output_parameters', 'scf_parameters')):
            if link in calcjob.outputs:
                inputs[key] = calcjob.outputs[link]
        if 'parameters' in calcjob.inputs:
            inputs['scf_input'] = calcjob.inputs.parameters
    origin = provenance.geometry_origin(inputs['structure'])
    if isinstance(origin, orm.CalcJobNode) and 'parameters' in origin.inputs:
        inputs['geometry_input'] = origin.inputs.parameters
    return inputs


class TrapClassifierWorkChain(WorkChain):
    """Featurize every trap labeling of a Group, build the dataset, train the classifier and cluster the traps."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('group', valid_type=orm.Str, help='Label of the Group of trap labelings (TrapLabelingWorkChain).')
        spec.input('featurize', valid_type=orm.Dict, required=False, help=f'featurize parameters {FEATURIZE_DEFAULTS}')
        spec.input('dataset', valid_type=orm.Dict, required=False, help='build_dataset parameters')
        spec.input('train', valid_type=orm.Dict, required=False, help=f'train_classifier parameters {TRAIN_DEFAULTS}')
        spec.input('cluster', valid_type=orm.Dict, required=False, help=f'cluster_traps parameters {CLUSTER_DEFAULTS}')
        spec.input('cutouts', valid_type=orm.Str, required=False,
                   help='Label of a Group of CutoutInterpolationWorkChain runs (or their `path` nodes) on labelings of '
                        '`group`: the classifier is trained again on the dataset whose positives are restricted to '
                        'the centres their cutout explains (output namespace `interpolation_subset`).')
        spec.input('interpolation', valid_type=orm.Dict, required=False,
                   help=f'restrict_to_interpolation parameters {INTERPOLATION_DEFAULTS}')
        spec.outline(cls.collect, cls.make_dataset, cls.train_model,
                     if_(cls.should_restrict)(cls.train_interpolation_subset), cls.cluster_positives)
        spec.output_namespace('features', valid_type=orm.ArrayData, dynamic=True)
        spec.output('dataset', valid_type=orm.ArrayData)
        spec.output('model', valid_type=orm.SinglefileData)
        spec.output('metrics', valid_type=orm.Dict)
        spec.output('importances', valid_type=orm.Dict)
        spec.output('importance_plot', valid_type=orm.SinglefileData)
        spec.output('clusters', valid_type=orm.ArrayData, required=False)
        spec.output('cluster_plot', valid_type=orm.SinglefileData, required=False)
        spec.output_namespace('interpolation_subset', required=False, dynamic=True,
                              help='dataset, model, metrics, importances and importance_plot of the classifier '
                                   'trained on the positives explained by a cutout interpolation.')
        spec.exit_code(301, 'ERROR_NO_LABELINGS', message='No trap labelings in the group: {message}')
        spec.exit_code(302, 'ERROR_FEATURIZE', message='Featurization failed: {message}')
        spec.exit_code(303, 'ERROR_DATASET', message='The dataset was refused: {message}')
        spec.exit_code(304, 'ERROR_TRAINING', message='Training failed: {message}')
        spec.exit_code(305, 'ERROR_INTERPOLATION_SUBSET', message='The interpolation subset failed: {message}')

    def collect(self):
        try:
            group = orm.load_group(self.inputs.group.value)
        except Exception as exc:  # noqa: BLE001 (NotExistent, MultipleObjectsError)
            return self.exit_codes.ERROR_NO_LABELINGS.format(message=str(exc))
        features = {}
        for node in sorted(group.nodes, key=lambda n: n.pk):
            try:
                inputs = labeling_inputs(node)
            except ValueError as exc:
                self.report(f'skipped: {exc}')
                continue
            if 'featurize' in self.inputs:
                inputs['parameters'] = self.inputs.featurize
            result, calc = featurize.run_get_node(**inputs, metadata={'call_link_label': f'featurize_{node.pk}'})
            if not calc.is_finished_ok:
                return self.exit_codes.ERROR_FEATURIZE.format(message=f'{node.pk}: {calc.exit_message}')
            features[f'qd_{node.pk}'] = result['features']
        if not features:
            return self.exit_codes.ERROR_NO_LABELINGS.format(message=f'group {group.label!r} has {len(group.nodes)} '
                                                                     'nodes, none a finished trap labeling')
        self.ctx.features = features
        self.out('features', features)
        return None

    def make_dataset(self):
        extra = {'parameters': self.inputs.dataset} if 'dataset' in self.inputs else {}
        result, calc = build_dataset.run_get_node(**self.ctx.features, **extra,
                                                  metadata={'call_link_label': 'build_dataset'})
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_DATASET.format(message=calc.exit_message)
        self.ctx.dataset = result['dataset']
        self.out('dataset', self.ctx.dataset)
        attrs = self.ctx.dataset.base.attributes
        self.report(f"dataset: {attrs.get('n_samples')} samples, {attrs.get('n_positive')} trapping, "
                    f"from {attrs.get('n_qds')} QDs")
        return None

    def train_model(self):
        extra = {'parameters': self.inputs.train} if 'train' in self.inputs else {}
        result, calc = train_classifier.run_get_node(self.ctx.dataset, **extra,
                                                     metadata={'call_link_label': 'train_classifier'})
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_TRAINING.format(message=calc.exit_message)
        self.out_many(result)
        self.report(f"test macro-F1 {result['metrics']['macro_f1']:.3f}, ROC-AUC {result['metrics']['roc_auc']}")
        return None

    def should_restrict(self):
        return 'cutouts' in self.inputs

    def train_interpolation_subset(self):
        try:
            paths = cutout_paths(orm.load_group(self.inputs.cutouts.value))
        except Exception as exc:  # noqa: BLE001 (NotExistent, MultipleObjectsError)
            return self.exit_codes.ERROR_INTERPOLATION_SUBSET.format(message=str(exc))
        if not paths:
            return self.exit_codes.ERROR_INTERPOLATION_SUBSET.format(
                message=f'group {self.inputs.cutouts.value!r} holds no cutout path')
        extra = {'parameters': self.inputs.interpolation} if 'interpolation' in self.inputs else {}
        result, calc = restrict_to_interpolation.run_get_node(self.ctx.dataset, **paths, **extra,
                                                              metadata={'call_link_label': 'interpolation_subset'})
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_INTERPOLATION_SUBSET.format(message=calc.exit_message)
        subset = result['dataset']
        counts = subset.base.attributes.get('interpolation')
        self.report(f"interpolation subset: {counts['kept']} of {counts['n_positive']} trapping rows kept (cosine >= "
                    f"{counts['min_cosine']:.3f}; {counts['disagree']} disagree, {counts['undefined']} without a "
                    f"defined orientation, {counts['no_cutout']} without a cutout), "
                    f"{int((subset.get_array('y') == 0).sum())} bulk rows")
        extra = {'parameters': self.inputs.train} if 'train' in self.inputs else {}
        trained, calc = train_classifier.run_get_node(subset, **extra,
                                                      metadata={'call_link_label': 'train_interpolation_subset'})
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_INTERPOLATION_SUBSET.format(message=calc.exit_message)
        self.out('interpolation_subset', {'dataset': subset, **trained})
        self.report(f"interpolation subset: test macro-F1 {trained['metrics']['macro_f1']:.3f} (all positives: "
                    f"{self.outputs['metrics']['macro_f1']:.3f})")
        return None

    def cluster_positives(self):
        extra = {'parameters': self.inputs.cluster} if 'cluster' in self.inputs else {}
        result, calc = cluster_traps.run_get_node(self.ctx.dataset, **extra, metadata={'call_link_label': 'cluster'})
        if calc.is_finished_ok:
            self.out_many(result)
        else:
            self.report(f'clustering skipped: {calc.exit_message}')


def cutout_paths(group: orm.Group) -> dict[str, orm.ArrayData]:
    """The cutout ``path`` nodes of a Group, keyed ``path_<pk>``: its ArrayData members that have an orientation
    cosine and the ``centres.<atom>.path`` outputs of its ``CutoutInterpolationWorkChain`` members."""
    paths = {}
    for node in group.nodes:
        if isinstance(node, orm.WorkflowNode):
            candidates = [link.node for link in node.base.links.get_outgoing().all()
                          if link.link_label.startswith('centres__') and link.link_label.endswith('__path')]
        else:
            candidates = [node]
        for path in candidates:
            if isinstance(path, orm.ArrayData) and 'final_orientation_cosine' in path.base.attributes.keys():
                paths[f'path_{path.pk}'] = path
    return paths


def trace_sample(model: orm.SinglefileData, row: int | None = None) -> dict:
    """Walk from a stored model to the origin of one of its training rows.

    model -> ``train_classifier`` -> dataset -> the row's source ``atom_labels`` -> ``label_traps`` -> ``mo_window``
    -> ``extract_mo_window`` -> retrieved -> the PBE0 CalcJob -> the structure it ran on -> the build calcfunction
    (``build_qd`` or ``build_qd_structure``) -> its recipe and the built structure.

    :param row: dataset row (default: the first trapping row, else row 0).
    :returns: ``row``, ``atom`` (index in the QD) and the nodes ``dataset``, ``atom_labels``, ``label_traps``,
        ``pbe0``, ``scf_structure``, ``recipe``, ``built``.
    :raises ValueError: when the model's history lacks one of these nodes.
    """
    qb = orm.QueryBuilder().append(orm.SinglefileData, filters={'uuid': model.uuid}, tag='model')
    qb.append(orm.CalcFunctionNode, with_outgoing='model', filters={'attributes.process_label': 'train_classifier'},
              tag='train')
    qb.append(orm.ArrayData, with_outgoing='train', edge_filters={'label': 'dataset'}, project='*')
    dataset = qb.one()[0]
    y = dataset.get_array('y')
    if row is None:
        row = int(np.flatnonzero(y == 1)[0]) if y.any() else 0
    source_uuid, atom = str(dataset.get_array('source_uuid')[row]), int(dataset.get_array('atom_index')[row])

    labels = orm.load_node(source_uuid)
    label = provenance.labeling(labels)
    pbe0 = provenance.scf_calcjob(label.inputs.mo_window)
    if pbe0 is None or 'structure' not in pbe0.inputs:
        raise ValueError(f'the MO window of {label.process_label}<{label.pk}> was not cut from a CalcJob that ran on '
                         'a structure')
    scf_structure = pbe0.inputs.structure
    build = provenance.build_of(scf_structure)
    if build is None:
        raise ValueError(f'StructureData<{scf_structure.pk}>, which the PBE0 ran on, was not built from a recipe')
    return {'row': row, 'atom': atom, 'dataset': dataset, 'atom_labels': labels, 'label_traps': label, 'pbe0': pbe0,
            'scf_structure': scf_structure, 'recipe': build.recipe, 'built': build.structure}


def library_summary(group_label: str) -> list[dict]:
    """Summary of a Group of trap labelings (for archive round-trip checks and reports): per
    ``label_traps`` node, sorted by the uuid of its ``atom_labels``, the formula, label counts, trap counts, the
    uuids of the PBE0 CalcJob and of the built structure, and the vacancy kind of the builder recipe (``None`` for an
    intact QD; read from the recipe, the input of ``build_qd`` or ``build_qd_structure``, because early library
    members predate the structures' ``qd_vacancy`` attribute)."""
    qb = orm.QueryBuilder()
    qb.append(orm.Group, filters={'label': group_label}, tag='group')
    qb.append(orm.WorkflowNode, with_group='group', tag='labeling')
    qb.append(orm.CalcFunctionNode, with_incoming='labeling', filters={'attributes.process_label': 'label_traps'},
              tag='label')
    qb.append(orm.ArrayData, with_incoming='label', edge_filters={'label': 'atom_labels'}, project=['uuid', '*'],
              tag='atom_labels')
    qb.append(orm.Dict, with_incoming='label', edge_filters={'label': 'summary'}, project='*')
    rows = []
    for uuid, atom_labels, summary in qb.all():
        inputs = labeling_inputs(atom_labels)
        structure = inputs['structure']
        build = provenance.build_of(structure)
        pbe0 = provenance.scf_calcjob(provenance.labeling(atom_labels).inputs.mo_window)
        rows.append({'atom_labels': uuid, 'formula': summary.get('formula'), 'material': summary.get('material'),
                     'protocol': summary.get('protocol'), 'label_counts': summary.get('atom_label_counts'),
                     'trap_counts': summary.get('trap_counts'),
                     'built_structure': build.structure.uuid if build is not None else None,
                     'pbe0_calculation': pbe0.uuid,
                     'charges': sorted(inputs['atomic_charges'].get_arraynames()) if 'atomic_charges' in inputs
                     else [], 'n_atoms': len(structure.sites),
                     'vacancy': build.recipe.get('vacancy') if build is not None else None})
    return sorted(rows, key=lambda r: r['atom_labels'])

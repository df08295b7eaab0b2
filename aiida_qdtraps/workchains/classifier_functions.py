"""Calcfunctions of the trap-centre classifier: ``featurize``, ``build_dataset``, ``restrict_to_interpolation``,
``train_classifier``, ``cluster_traps`` and ``predict_traps`` (``TrapClassifierWorkChain`` in :mod:`.classifier`
runs them over a Group).

Thin bridges to :mod:`aiida_qdtraps.analysis.features` and :mod:`aiida_qdtraps.analysis.classifier`:

* ``featurize`` (one per QD): inputs the labelling's ``structure``, ``atom_labels``, ``states``, ``summary`` and the
  hybrid SCF's ``atomic_charges`` and ``output_parameters`` (dipole) → ``features`` ArrayData (``X``, ``y``,
  ``atom_index``; attributes ``feature_names``, ``source_uuid`` = the ``atom_labels`` node, ``protocol``,
  ``scf_settings`` (what the PBE0 ran with), ``geometry_source`` (built or relaxed, and how), ...).
* ``build_dataset`` (inputs: the per-QD ``features`` nodes in a dynamic namespace) → ``dataset`` ArrayData whose
  every row carries its source label node's uuid (``source_uuid``) and atom index (``atom_index``);
  ``restrict_to_interpolation`` → the dataset with the positives a cutout interpolation explains.
* ``train_classifier`` → ``model`` (SinglefileData, xgboost JSON), ``metrics`` and ``importances`` (Dict),
  ``importance_plot`` (PNG); ``cluster_traps`` → ``clusters`` (ArrayData), ``cluster_plot`` (PNG);
  ``predict_traps`` → ``predictions`` (ArrayData).
"""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm
from aiida.engine import ExitCode, calcfunction

from .. import provenance
from ..analysis import classifier as kernel
from ..analysis import features as feats
from ..protocols import cp2k_physics_settings, merge_settings, settings_differences

#: Options of ``featurize`` (``parameters`` input).
FEATURIZE_DEFAULTS = {'elements': ['P'], 'coordinations': [4]}
#: Options of ``train_classifier``.
TRAIN_DEFAULTS = {'feature_set': 'all', 'seed': 0, 'test_size': 0.2, 'cv_folds': 5, 'permutation_repeats': 10,
                  'compare_geometry_only': True, 'split': 'qd', 'hyperparameters': {}}
#: Options of ``cluster_traps``.
CLUSTER_DEFAULTS = {'perplexity': 20.0, 'min_cluster_size': 5, 'seed': 0, 'exclude_qd_level': True}
FEATURE_SETS = {'all': feats.FEATURES, 'geometry': feats.GEOMETRY_FEATURES}


def _options(node: orm.Dict | None, defaults: dict, what: str) -> dict:
    values = node.get_dict() if node is not None else {}
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ValueError(f'unknown {what} parameters {unknown}; allowed: {sorted(defaults)}')
    return {**defaults, **values}


def _net_charge(structure: orm.StructureData, recipe: dict) -> float:
    """Net charge (e) of the QD from formal oxidation states and ligand charges (the recipe's when unknown)."""
    from ..builder.passivation import net_charge

    try:
        return float(net_charge(structure.get_ase()))
    except ValueError:
        return float(recipe.get('charge', 0))


def _calcjob_settings(process_type: str | None, parameters: orm.Dict | None) -> dict | None:
    """The physics settings of a CalcJob's ``parameters`` input: CP2K (:func:`cp2k_physics_settings`) or QE pw.x
    (``&SYSTEM`` cut-offs and functional); None for other or no parameters."""
    if parameters is None:
        return None
    params = parameters.get_dict()
    if process_type == 'aiida.calculations:cp2k':
        settings = cp2k_physics_settings(params)
        geo_opt = ((params.get('MOTION') or {}).get('GEO_OPT') or {})
        if geo_opt:
            settings['max_force'] = geo_opt.get('MAX_FORCE')
        return settings
    if process_type == 'aiida.calculations:quantumespresso.pw':
        system = params.get('SYSTEM') or {}
        return {key: system.get(key) for key in ('ecutwfc', 'ecutrho', 'input_dft')}
    return None


def geometry_source(structure: orm.StructureData, geometry_parameters: orm.Dict | None = None) -> dict:
    """Where a labelled structure's geometry comes from (:func:`~aiida_qdtraps.provenance.geometry_origin`): the
    process label (``build_qd`` or ``build_qd_structure`` for a built QD, ``Cp2kCalculation`` for a CP2K relax, ...)
    and, for a relax, the physics settings and force criterion of its ``parameters`` (``geometry_parameters``)."""
    origin = provenance.geometry_origin(structure)
    if origin is None:
        return {'process': None, 'settings': None}
    return {'process': origin.process_label, 'settings': _calcjob_settings(origin.process_type, geometry_parameters)}


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def labelled_qd(structure: orm.StructureData, atom_labels: orm.ArrayData, states: orm.ArrayData, summary: orm.Dict,
                atomic_charges: orm.ArrayData | None = None,
                scf_parameters: orm.Dict | None = None) -> feats.LabelledQd:
    """The pure-layer :class:`~aiida_qdtraps.analysis.features.LabelledQd` of a labelling's nodes."""
    attributes = atom_labels.base.attributes
    symbols = np.array(attributes.get('symbols'))
    if len(symbols) != len(structure.sites):
        raise ValueError(f'atom_labels cover {len(symbols)} atoms but the structure has {len(structure.sites)}')
    recipe = summary.get('recipe') or {}
    spins = summary['spins']
    charges = {}
    for name in ('mulliken', 'lowdin'):
        if atomic_charges is not None and name in atomic_charges.get_arraynames():
            charges[name] = atomic_charges.get_array(name)
    dipole = scf_parameters.get('dipole_debye') if scf_parameters is not None else None
    return feats.LabelledQd(
        symbols=symbols, positions=structure.get_ase().positions,
        coordination=atom_labels.get_array('coordination'),
        roles=np.array(attributes.get('role_names'))[atom_labels.get_array('role')],
        bonds=atom_labels.get_array('bonds'),
        labels=np.array(attributes.get('label_names'))[atom_labels.get_array('label')],
        state=atom_labels.get_array('state'), spin=atom_labels.get_array('spin'),
        energies=states.get_array('energies'), participation=states.get_array('participation'),
        populations=states.get_array('populations'), class_populations=states.get_array('class_populations'),
        occupied=states.get_array('occupied'), homo=np.array([s['homo_ev'] for s in spins]),
        lumo=np.array([s['lumo_ev'] for s in spins]), mulliken=charges.get('mulliken'), lowdin=charges.get('lowdin'),
        dipole=None if dipole is None else np.asarray(dipole, float), total_charge=_net_charge(structure, recipe),
        shape=recipe.get('shape', 'sphere') if recipe else None,
        n_quantum_confined=sum(int(s.get('n_quantum_confined', 0)) for s in spins),
        n_uc_trap_states=sum(v for k, v in (summary.get('trap_counts') or {}).items()
                             if k.endswith('under-coordinated')))


@calcfunction
def featurize(structure: orm.StructureData, atom_labels: orm.ArrayData, states: orm.ArrayData, summary: orm.Dict,
              atomic_charges: orm.ArrayData | None = None, scf_parameters: orm.Dict | None = None,
              scf_input: orm.Dict | None = None, geometry_input: orm.Dict | None = None,
              parameters: orm.Dict | None = None) -> dict:
    """The 42 features (21 geometry-only ones without charges and dipole) of the sample atoms of one labelled QD.

    :param scf_input: the hybrid SCF CalcJob's ``parameters`` input; its physics settings (grid, functional, basis,
        see :func:`~aiida_qdtraps.protocols.cp2k_physics_settings`) are recorded as attribute ``scf_settings``.
    :param geometry_input: the ``parameters`` input of the CalcJob that made ``structure`` (a relax), if any; with
        the creator's process label it is recorded as attribute ``geometry_source``.
    :param parameters: ``elements`` (default ['P']) and ``coordinations`` (default [4]; None = any) of the samples.
    :returns: ``features`` ArrayData, or exit code 310 (bad parameters / inputs refused by the kernel).
    """
    try:
        options = _options(parameters, FEATURIZE_DEFAULTS, 'featurize')
        qd = labelled_qd(structure, atom_labels, states, summary, atomic_charges, scf_parameters)
        geometry_only = qd.mulliken is None or qd.lowdin is None or qd.dipole is None
        atoms, X, y, names = feats.featurize(qd, geometry_only=geometry_only, elements=options['elements'],
                                             coordinations=options['coordinations'])
    except (KeyError, TypeError, ValueError) as exc:
        return ExitCode(310, f'featurization failed: {exc}')
    node = orm.ArrayData()
    node.set_array('X', X)
    node.set_array('y', y)
    node.set_array('atom_index', atoms)
    node.base.attributes.set_many({
        'feature_names': list(names), 'units': [feats.UNITS[n] for n in names], 'geometry_only': geometry_only,
        'source_uuid': atom_labels.uuid, 'protocol': summary.get('protocol'), 'material': summary.get('material'),
        'formula': summary.get('formula'), 'labeling_parameters': summary.get('parameters'),
        'scf_settings': _calcjob_settings('aiida.calculations:cp2k', scf_input),
        'geometry_source': geometry_source(structure, geometry_input),
        'elements': list(options['elements']),
        'coordinations': None if options['coordinations'] is None else list(options['coordinations']),
        'n_samples': len(atoms), 'n_positive': int(y.sum())})
    return {'features': node}


#: Attributes of a ``features`` node that must agree across a dataset (unless mixing is asked for).
SETTINGS_KEYS = ('protocol', 'labeling_parameters', 'scf_settings', 'geometry_source')


def _differences(key: str, a, b) -> list[str]:
    """How two ``features`` nodes' values of a :data:`SETTINGS_KEYS` attribute disagree (empty: they agree)."""
    if key == 'scf_settings':
        return settings_differences(a, b)
    if key == 'geometry_source' and isinstance(a, dict) and isinstance(b, dict):
        if a.get('process') != b.get('process'):
            return [f"made by {a.get('process')} != {b.get('process')}"]
        return settings_differences(a.get('settings'), b.get('settings'))
    return [] if _canonical(a) == _canonical(b) else [f'{a!r} != {b!r}']


def _merged_geometry_sources(sources: list) -> list:
    """The distinct geometry sources (per creating process, :func:`merge_settings` of their settings)."""
    by_process: dict = {}
    for source in sources:
        source = source or {'process': None, 'settings': None}
        by_process.setdefault(source.get('process'), []).append(source.get('settings'))
    return [{'process': process, 'settings': settings} for process, group in by_process.items()
            for settings in merge_settings(group)]


def _mixed_settings(attrs) -> list[str]:
    """One line per settings attribute (:data:`SETTINGS_KEYS`) on which two ``features`` nodes disagree, with how
    (the first disagreeing pair; physics settings compare the basis and potential of shared elements only)."""
    lines = []
    for key in SETTINGS_KEYS:
        values = [a.get(key) for a in attrs]
        if key == 'scf_settings':
            distinct = len(merge_settings(values))
        elif key == 'geometry_source':
            distinct = len(_merged_geometry_sources(values))
        else:
            distinct = len({_canonical(value) for value in values})
        if distinct > 1:  # then (and only then: merging is exact) some pair disagrees; name the first one
            i, j, detail = next((i, j, d) for j in range(len(values)) for i in range(j)
                                if (d := _differences(key, values[i], values[j])))
            lines.append(f"{key} of QD {i} ({attrs[i].get('formula')}) and QD {j} ({attrs[j].get('formula')}): "
                         f"{', '.join(detail)}")
    return lines


@calcfunction
def build_dataset(parameters: orm.Dict | None = None, **features) -> dict:
    """Stack per-QD ``features`` nodes (any input names) into one dataset; rows keep their source uuid and atom.

    :param parameters: ``allow_mixed_protocols`` (default False): accept QDs labelled with different protocols or
        labeling parameters.
    :returns: ``dataset`` ArrayData, or exit codes 320 (no QD / no samples), 321 (different feature sets or sample
        selections), 322 (protocols or labeling parameters mixed without being asked).
    """
    try:
        options = _options(parameters, {'allow_mixed_protocols': False}, 'build_dataset')
    except ValueError as exc:
        return ExitCode(320, str(exc))
    nodes = [features[key] for key in sorted(features)]
    if not nodes:
        return ExitCode(320, 'build_dataset got no features nodes')
    attrs = [n.base.attributes for n in nodes]
    for key in ('feature_names', 'elements', 'coordinations'):
        values = {repr(a.get(key)) for a in attrs}
        if len(values) > 1:
            return ExitCode(321, f'the QDs disagree on {key}: {sorted(values)}')
    mixed = _mixed_settings(attrs)
    if mixed and not options['allow_mixed_protocols']:
        return ExitCode(322, f'the QDs were labelled with different protocols / settings ({"; ".join(mixed)}); pass '
                             'allow_mixed_protocols=True to mix')
    X = np.concatenate([n.get_array('X') for n in nodes])
    if not len(X):
        return ExitCode(320, f'the {len(nodes)} QDs have no sample atoms of {attrs[0].get("elements")} with '
                             f'coordination {attrs[0].get("coordinations")}')
    dataset = orm.ArrayData()
    dataset.set_array('X', X)
    dataset.set_array('y', np.concatenate([n.get_array('y') for n in nodes]))
    dataset.set_array('atom_index', np.concatenate([n.get_array('atom_index') for n in nodes]))
    dataset.set_array('qd_index', np.concatenate([np.full(len(n.get_array('y')), k) for k, n in enumerate(nodes)]))
    dataset.set_array('source_uuid', np.concatenate([np.full(len(n.get_array('y')), a.get('source_uuid'), dtype='<U36')
                                                     for n, a in zip(nodes, attrs)]))
    dataset.base.attributes.set_many({
        'feature_names': attrs[0].get('feature_names'), 'elements': attrs[0].get('elements'),
        'coordinations': attrs[0].get('coordinations'), 'protocols': sorted({str(a.get('protocol')) for a in attrs}),
        'scf_settings': merge_settings([a.get('scf_settings') for a in attrs]),
        'geometry_sources': _merged_geometry_sources([a.get('geometry_source') for a in attrs]),
        'sources': [a.get('source_uuid') for a in attrs], 'formulas': [a.get('formula') for a in attrs],
        'n_samples': len(X), 'n_positive': int(dataset.get_array('y').sum()), 'n_qds': len(nodes)})
    return {'dataset': dataset}


#: Options of ``restrict_to_interpolation``.
INTERPOLATION_DEFAULTS = {'min_cosine': kernel.AGREEMENT_COSINE}


@calcfunction
def restrict_to_interpolation(dataset: orm.ArrayData, parameters: orm.Dict | None = None, **paths) -> dict:
    """The dataset with its positives restricted to the trap centres that a cutout interpolation explains
    (:func:`~aiida_qdtraps.analysis.classifier.interpolation_subset`): negatives stay, a positive stays only if a
    ``path`` of ``CutoutInterpolationWorkChain`` for its labelling and atom has a defined orientation
    (``orientation_defined``) and ``final_orientation_cosine`` ≥ ``min_cosine`` (default 0.7071, 45°).

    :param paths: the ``path`` ArrayData of the cutouts (any input names); each names its labelling
        (``source_uuid``) and atom (``centre``) in its attributes.
    :returns: ``dataset`` (the kept rows, every array of the input; attribute ``interpolation`` with the counts and the
        cut-off), or exit code 325 (parameters refused, a path without its labelling or cosine, no positive kept).
    """
    try:
        options = _options(parameters, INTERPOLATION_DEFAULTS, 'restrict_to_interpolation')
        cosines = {}
        for key in sorted(paths):
            attrs = paths[key].base.attributes
            if attrs.get('source_uuid', None) is None or attrs.get('final_orientation_cosine', None) is None:
                raise ValueError(f'path {key!r} (ArrayData<{paths[key].pk}>) has no labelling or no orientation '
                                 'cosine: run the cutout with the `traps` and `mo_window` of a label_traps')
            defined = attrs.get('orientation_defined', True)
            cosines[(attrs.get('source_uuid'), int(attrs.get('centre')))] = (
                float(attrs.get('final_orientation_cosine')) if defined else None)
        if not cosines:
            raise ValueError('no cutout paths given')
        keep, counts = kernel.interpolation_subset(dataset.get_array('y'), dataset.get_array('source_uuid'),
                                                   dataset.get_array('atom_index'), cosines,
                                                   float(options['min_cosine']))
    except (TypeError, ValueError) as exc:
        return ExitCode(325, f'interpolation subset refused: {exc}')
    if counts['kept'] == 0:
        return ExitCode(325, f"no positive row has an agreeing cutout (cosine >= {options['min_cosine']}): {counts}")
    subset = orm.ArrayData()
    for name in dataset.get_arraynames():
        subset.set_array(name, dataset.get_array(name)[keep])
    attrs = dict(dataset.base.attributes.all)
    attrs.update(n_samples=int(keep.sum()), n_positive=counts['kept'],
                 interpolation={**counts, 'min_cosine': float(options['min_cosine']), 'parent': dataset.uuid})
    subset.base.attributes.set_many(attrs)
    return {'dataset': subset}


def _subset(dataset: orm.ArrayData, feature_set: str):
    names = tuple(dataset.base.attributes.get('feature_names'))
    if feature_set not in FEATURE_SETS:
        raise ValueError(f'feature_set must be one of {sorted(FEATURE_SETS)}, got {feature_set!r}')
    wanted = FEATURE_SETS[feature_set]
    missing = [n for n in wanted if n not in names]
    if missing:
        raise ValueError(f'the dataset lacks features {missing} of the {feature_set!r} set (featurized without '
                         'atomic charges / dipole?)')
    return dataset.get_array('X')[:, [names.index(n) for n in wanted]], wanted


@calcfunction
def train_classifier(dataset: orm.ArrayData, parameters: orm.Dict | None = None) -> dict:
    """Train and evaluate the xgboost trap-centre classifier on a dataset (see :func:`.kernel.train`).

    :param parameters: ``feature_set`` (all | geometry), ``seed``, ``test_size``, ``cv_folds``,
        ``permutation_repeats``, ``compare_geometry_only`` (also train the geometry-only model on the same split and
        report it under ``metrics['geometry_only']``), ``split`` (``qd``, the default: the test set and every
        cross-validation fold hold whole QDs, so no QD is on both sides; ``atom``: atoms split independently),
        ``hyperparameters`` (xgboost).
    :returns: ``model`` (xgboost JSON), ``metrics``, ``importances``, ``importance_plot``; or exit code 330
        (parameters or dataset refused: a single class, missing features, too few samples).
    """
    try:
        options = _options(parameters, TRAIN_DEFAULTS, 'train_classifier')
        X, names = _subset(dataset, options['feature_set'])
        y = dataset.get_array('y')
        if options['split'] not in ('qd', 'atom'):
            raise ValueError(f"split must be 'qd' (whole QDs on either side) or 'atom', got {options['split']!r}")
        groups = None
        if options['split'] == 'qd':
            kernel.check_dataset(X, y, names)  # a useless dataset is refused as such before its groups are asked for
            if 'source_uuid' not in dataset.get_arraynames():
                raise ValueError("split 'qd' needs the per-row `source_uuid` array that build_dataset writes; "
                                 "this dataset has none: use split 'atom'")
            groups = dataset.get_array('source_uuid')
        common = {'seed': int(options['seed']), 'test_size': float(options['test_size']), 'groups': groups,
                  'cv_folds': int(options['cv_folds']), 'permutation_repeats': int(options['permutation_repeats']),
                  **options['hyperparameters']}
        result = kernel.train(X, y, names, **common)
        comparison = None
        if options['compare_geometry_only'] and options['feature_set'] != 'geometry':
            Xg, gnames = _subset(dataset, 'geometry')
            comparison = kernel.train(Xg, y, gnames, **common)
    except (TypeError, ValueError) as exc:
        return ExitCode(330, f'training refused: {exc}')
    attrs = dataset.base.attributes
    metadata = {'feature_names': list(names), 'feature_set': options['feature_set'], 'elements': attrs.get('elements'),
                'coordinations': attrs.get('coordinations'), 'protocols': attrs.get('protocols'),
                'scf_settings': attrs.get('scf_settings'), 'geometry_sources': attrs.get('geometry_sources'),
                'dataset_uuid': dataset.uuid}
    model = orm.SinglefileData(io.BytesIO(kernel.model_to_json(result.model, metadata)), filename='model.json')
    model.base.attributes.set_many({'format': 'xgboost-json', **metadata})
    metrics = dict(result.metrics, feature_set=options['feature_set'],
                   test_rows=result.test_index.tolist())
    if comparison is not None:
        metrics['geometry_only'] = {k: comparison.metrics[k] for k in
                                    ('macro_f1', 'per_class', 'confusion_matrix', 'roc_auc', 'cross_validation',
                                     'n_features')}
    title = (f"{options['feature_set']} features: macro-F1 {result.metrics['macro_f1']:.2f} "
             f"(test, n={len(result.test_index)})")
    return {'model': model, 'metrics': orm.Dict(metrics), 'importances': orm.Dict(result.importances),
            'importance_plot': orm.SinglefileData(io.BytesIO(kernel.importance_plot(result.importances, title=title)),
                                                  filename='importances.png')}


@calcfunction
def cluster_traps(dataset: orm.ArrayData, parameters: orm.Dict | None = None) -> dict:
    """PCA-initialised t-SNE + HDBSCAN of the positive (trapping) rows of a dataset.

    :param parameters: ``perplexity``, ``min_cluster_size``, ``seed``, ``exclude_qd_level`` (leave out the features
        shared by all atoms of a QD, as Alexander et al. do).
    :returns: ``clusters`` ArrayData (``row_index`` into the dataset, ``embedding`` (n, 2), ``labels``, −1 = noise),
        ``cluster_plot`` (PNG); or exit code 340 (too few positive rows or bad parameters).
    """
    try:
        options = _options(parameters, CLUSTER_DEFAULTS, 'cluster_traps')
        rows = np.flatnonzero(dataset.get_array('y') == 1)
        names = tuple(dataset.base.attributes.get('feature_names'))
        exclude = feats.QD_LEVEL_FEATURES if options['exclude_qd_level'] else ()
        result = kernel.cluster(dataset.get_array('X')[rows], names, perplexity=float(options['perplexity']),
                                min_cluster_size=int(options['min_cluster_size']), seed=int(options['seed']),
                                exclude=exclude)
    except (TypeError, ValueError) as exc:
        return ExitCode(340, f'clustering refused: {exc}')
    clusters = orm.ArrayData()
    clusters.set_array('row_index', rows)
    clusters.set_array('embedding', result.embedding)
    clusters.set_array('labels', result.labels)
    sizes = {str(k): int(np.sum(result.labels == k)) for k in np.unique(result.labels)}
    clusters.base.attributes.set_many({'used_features': list(result.used_features), 'perplexity': result.perplexity,
                                       'min_cluster_size': result.min_cluster_size, 'cluster_sizes': sizes,
                                       'n_clusters': int(np.sum(np.unique(result.labels) >= 0))})
    png = kernel.embedding_plot(result)
    return {'clusters': clusters, 'cluster_plot': orm.SinglefileData(io.BytesIO(png), filename='clusters.png')}


@calcfunction
def predict_traps(model: orm.SinglefileData, features: orm.ArrayData, parameters: orm.Dict | None = None) -> dict:
    """Apply a stored model to one QD's ``features``: probability and prediction of trapping per sample atom.

    :param parameters: ``allow_mixed_protocols`` (default False): predict even when the QD's SCF settings or geometry
        source (``featurize`` attributes ``scf_settings``, ``geometry_source``) are not among the model's training
        data's (models from before these were recorded are not checked).
    :returns: ``predictions`` ArrayData (``atom_index``, ``probability``, ``predicted``, ``labelled`` = the
        labelling's own target), or exit codes 350 (features that do not match the model's), 351 (a QD computed with
        other settings than the training data).
    """
    try:
        options = _options(parameters, {'allow_mixed_protocols': False}, 'predict_traps')
        booster, metadata = kernel.model_from_json(model.get_content('rb'))
    except ValueError as exc:
        return ExitCode(350, f'prediction refused: {exc}')
    if not options['allow_mixed_protocols']:
        attrs = features.base.attributes
        for key, trained_key in (('scf_settings', 'scf_settings'), ('geometry_source', 'geometry_sources')):
            trained = metadata.get(trained_key)
            if not trained or key not in attrs.all:
                continue
            mine = attrs.get(key)
            if all(_differences(key, value, mine) for value in trained):
                return ExitCode(351, f'the QD was computed with other settings than the model was trained on ({key}, '
                                     f'training data != this QD: {"; ".join(_differences(key, trained[0], mine))}); '
                                     'pass allow_mixed_protocols=True to predict anyway')
    try:
        names = tuple(features.base.attributes.get('feature_names'))
        wanted = tuple(metadata.get('feature_names') or names)
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ValueError(f'the QD lacks features {missing} that the model uses')
        X = features.get_array('X')[:, [names.index(n) for n in wanted]]
        probability, predicted = kernel.predict(booster, X, wanted)
    except ValueError as exc:
        return ExitCode(350, f'prediction refused: {exc}')
    node = orm.ArrayData()
    node.set_array('atom_index', features.get_array('atom_index'))
    node.set_array('probability', probability)
    node.set_array('predicted', predicted)
    node.set_array('labelled', features.get_array('y'))
    node.base.attributes.set_many({'n_predicted_trapping': int(predicted.sum()), 'source_uuid':
                                   features.base.attributes.get('source_uuid'),
                                   'agreement': float(np.mean(predicted == features.get_array('y')))
                                   if len(X) else None})
    return {'predictions': node}

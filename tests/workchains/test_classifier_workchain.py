"""The classifier's calcfunctions and TrapClassifierWorkChain on the shipped labelled library (a real pipeline
archive, tests/data/library/library.aiida, made by tests/data/library/build_library.py), and the provenance walk
from a trained model back to the built structure of one sample, with QueryBuilder only."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from library_archives import ALL_CORE, assert_pbe0_charges, library_fixture, round_trip_manifest, train_all_core

from aiida_qdtraps.analysis import classifier as kernel
from aiida_qdtraps.builder.vacancies import VACANCY_KINDS
from aiida_qdtraps.workchains.classifier import (
    build_dataset,
    featurize,
    labeling_inputs,
    predict_traps,
    trace_sample,
    train_classifier,
)

GROUP = 'qdtraps/library'
library = library_fixture('library.aiida', GROUP, 'library')


def test_archive_round_trips_with_identical_queries(library):
    manifest = round_trip_manifest('manifest.json', library)
    # what the classifier needs of the library: >= 12 QDs, InP and GaP, intact and with every vacancy kind of the
    # builder
    assert len(manifest) >= 12 and {row['material'] for row in manifest} == {'InP', 'GaP'}
    assert None in {row['vacancy'] for row in manifest}
    assert {row['vacancy'] for row in manifest} - {None} == set(VACANCY_KINDS)
    assert_pbe0_charges(manifest)
    assert all(row['built_structure'] and row['pbe0_calculation'] for row in manifest)
    assert all(row['charges'] == ['hirshfeld', 'lowdin', 'mulliken'] or 'lowdin' in row['charges'] for row in manifest)


@pytest.fixture(scope='module')
def trained(library):
    return train_all_core(GROUP)


def test_workchain_outputs(trained, library):
    results, _ = trained
    dataset = results['dataset']
    n_rows = sum(len(f.get_array('y')) for f in results['features'].values())
    assert len(results['features']) == len(library.nodes) == dataset.base.attributes.get('n_qds')
    assert dataset.get_array('X').shape == (n_rows, 42)
    assert np.isfinite(dataset.get_array('X')).all()
    metrics = results['metrics']
    assert metrics['n_samples'] == n_rows and metrics['n_positive'] == int(dataset.get_array('y').sum())
    assert np.sum(metrics['confusion_matrix']) == metrics['n_test']
    assert metrics['geometry_only']['n_features'] == 21
    assert set(results['importances']['gain']) == set(dataset.base.attributes.get('feature_names'))
    content = results['model'].get_content('rb')
    assert content.lstrip().startswith(b'{')  # xgboost JSON, not a pickle
    booster, meta = kernel.model_from_json(content)
    assert meta['dataset_uuid'] == dataset.uuid and len(meta['feature_names']) == 42
    assert booster.feature_names == meta['feature_names']
    assert results['importance_plot'].get_content('rb')[:4] == b'\x89PNG'
    if 'clusters' in results:
        clusters = results['clusters']
        assert (dataset.get_array('y')[clusters.get_array('row_index')] == 1).all()
        assert results['cluster_plot'].get_content('rb')[:4] == b'\x89PNG'


def test_provenance_walk_from_model_to_built_structure(trained):
    """model → train_classifier → dataset → one row's source label node → label_traps → mo_window → PBE0 CalcJob →
    the structure it ran on → the built structure (QueryBuilder only; the library skips the PBE relax, so the PBE0
    ran on the boxed built structure)."""
    trace = trace_sample(trained[0]['model'])
    dataset, row, atom = trace['dataset'], trace['row'], trace['atom']
    assert dataset.get_array('y')[row] == int(dataset.get_array('y').any())  # the first trapping row when there is one
    labels, pbe0, scf_structure, built = (trace[key] for key in ('atom_labels', 'pbe0', 'scf_structure', 'built'))
    assert trace['recipe'].uuid == built.creator.inputs.recipe.uuid
    assert pbe0.process_type == 'aiida.calculations:cp2k'
    assert pbe0.inputs.parameters['GLOBAL']['RUN_TYPE'] == 'ENERGY'
    assert 'HF' in pbe0.inputs.parameters['FORCE_EVAL']['DFT']['XC']
    symbols = labels.base.attributes.get('symbols')
    assert scf_structure.get_ase().get_chemical_symbols()[atom] == symbols[atom]
    assert built.get_formula() == scf_structure.get_formula()
    assert built.creator.inputs.recipe['material'] in ('InP', 'GaP')


def test_predict_on_one_qd(trained, library):
    results, _ = trained
    features = next(iter(results['features'].values()))
    predictions, node = predict_traps.run_get_node(results['model'], features)
    assert node.is_finished_ok, node.exit_message
    predictions = predictions['predictions']
    assert (predictions.get_array('atom_index') == features.get_array('atom_index')).all()
    assert ((predictions.get_array('probability') >= 0) & (predictions.get_array('probability') <= 1)).all()
    geometry = featurize(**labeling_inputs(next(iter(library.nodes))), parameters=orm.Dict(ALL_CORE))['features']
    geometry_only = orm.ArrayData()
    names = geometry.base.attributes.get('feature_names')
    keep = [k for k, n in enumerate(names) if not n.startswith('pr_')]
    geometry_only.set_array('X', geometry.get_array('X')[:, keep])
    geometry_only.set_array('y', geometry.get_array('y'))
    geometry_only.set_array('atom_index', geometry.get_array('atom_index'))
    geometry_only.base.attributes.set('feature_names', [names[k] for k in keep])
    _, node = predict_traps.run_get_node(results['model'], geometry_only)
    assert node.exit_status == 350 and "['pr_state', 'pr_gating']" in node.exit_message


def test_mixed_protocols_and_single_class_are_refused(library):
    inputs = labeling_inputs(next(iter(library.nodes)))
    first = featurize(**inputs, parameters=orm.Dict(ALL_CORE))['features']
    other_summary = orm.Dict({**inputs['summary'].get_dict(), 'protocol': 'moderate'})
    second = featurize(**{**inputs, 'summary': other_summary}, parameters=orm.Dict(ALL_CORE))['features']
    _, node = build_dataset.run_get_node(qd_a=first, qd_b=second)
    assert node.exit_status == 322 and 'moderate' in node.exit_message
    assert not node.base.links.get_outgoing().all()
    result, node = build_dataset.run_get_node(qd_a=first, qd_b=second,
                                              parameters=orm.Dict({'allow_mixed_protocols': True}))
    assert node.is_finished_ok

    single = orm.ArrayData()
    single.set_array('X', np.random.default_rng(0).normal(size=(10, 42)))
    single.set_array('y', np.zeros(10, int))
    single.base.attributes.set('feature_names', list(result['dataset'].base.attributes.get('feature_names')))
    _, node = train_classifier.run_get_node(single, orm.Dict({'feature_set': 'all'}))
    assert node.exit_status == 330 and 'single class' in node.exit_message

    _, node = featurize.run_get_node(**inputs, parameters=orm.Dict({'element': ['P']}))
    assert node.exit_status == 310 and "['element']" in node.exit_message


def test_other_grid_under_the_same_protocol_name_is_refused(trained, library):
    """A QD whose PBE0 ran on another grid is told apart even when its protocol is still called ``fast``: the
    features record the SCF's physics settings and the geometry's origin, build_dataset and predict_traps compare
    them."""
    results, _ = trained
    inputs = labeling_inputs(next(iter(library.nodes)))
    first = featurize(**inputs, parameters=orm.Dict(ALL_CORE))['features']
    attrs = first.base.attributes
    assert attrs.get('protocol') == 'fast' and attrs.get('scf_settings')['cutoff'] == 200
    assert attrs.get('scf_settings')['hf_fraction'] == 0.25
    assert attrs.get('geometry_source') == {'process': 'build_qd_structure', 'settings': None}  # built, not relaxed
    dataset = results['dataset'].base.attributes
    assert len(dataset.get('scf_settings')) == 1 and {'In', 'Ga', 'P'} <= set(dataset.get('scf_settings')[0]['kinds'])
    assert dataset.get('geometry_sources') == [{'process': 'build_qd_structure', 'settings': None}]

    params = inputs['scf_input'].get_dict()
    params['FORCE_EVAL']['DFT']['MGRID'].update(CUTOFF=300, REL_CUTOFF=50)
    regridded = featurize(**{**inputs, 'scf_input': orm.Dict(params)}, parameters=orm.Dict(ALL_CORE))['features']
    _, node = build_dataset.run_get_node(qd_a=first, qd_b=regridded)
    assert node.exit_status == 322, node.exit_message
    assert 'scf_settings' in node.exit_message and 'cutoff: 200 != 300, rel_cutoff: 30 != 50' in node.exit_message
    assert 'protocol of' not in node.exit_message  # both are still called 'fast'

    _, node = predict_traps.run_get_node(results['model'], regridded)
    assert node.exit_status == 351 and 'cutoff: 200 != 300' in node.exit_message
    assert not node.base.links.get_outgoing().all()
    result, node = predict_traps.run_get_node(results['model'], regridded,
                                              orm.Dict({'allow_mixed_protocols': True}))
    assert node.is_finished_ok and len(result['predictions'].get_array('predicted')) == len(regridded.get_array('y'))
    _, node = predict_traps.run_get_node(results['model'], first)
    assert node.is_finished_ok


def test_cli_report_predict_train(trained, library, monkeypatch, tmp_path):
    """``qdtraps classify report / predict / train`` on the imported library (the test profile stands in for the
    project profile; a real ``train`` run is the work chain of :func:`trained`)."""
    import re

    from click.testing import CliRunner

    from aiida_qdtraps.cli import cmd_classify

    monkeypatch.setattr(cmd_classify, '_load', lambda: None)
    runner = CliRunner()
    model = trained[0]['model'].pk
    result = runner.invoke(cmd_classify.classify, ['report', str(model), '--output-dir', str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert 'macro-F1' in result.output and 'geometry (21)' in result.output
    assert 'top features by gain' in result.output
    assert (tmp_path / 'importance_plot.png').read_bytes()[:4] == b'\x89PNG'

    labeling = next(iter(library.nodes))
    result = runner.invoke(cmd_classify.classify, ['predict', str(model), str(labeling.pk)])
    assert result.exit_code == 0, result.output
    n_core = sum(1 for s in labeling_inputs(labeling)['atom_labels'].base.attributes.get('symbols')
                 if s in ('In', 'Ga', 'P'))
    assert len([line for line in result.output.splitlines() if re.match(r'^\d+\s+(In|Ga|P)\s', line)]) == n_core

    result = runner.invoke(cmd_classify.classify, ['train', 'no-such-group', '--geometry-only'])
    assert result.exit_code != 0 and 'No trap labelings' in result.output

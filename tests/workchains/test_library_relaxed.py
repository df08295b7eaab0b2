"""The relaxed library (tests/data/library/library_relaxed.aiida, ``build_library.py --relax``): the whole ``fast``
pipeline (PBE GEO_OPT -> PBE0 -> labels) per QD. Its archive round-trips, every label traces back through a real
GEO_OPT CalcJob to the built structure (QueryBuilder only), the relaxed geometry differs from the built one that the
built-geometry library member of the same recipe was labelled on, and a classifier trained on it traces one sample
model -> dataset -> labels -> PBE0 CalcJob -> relaxed structure -> GEO_OPT CalcJob -> built structure."""

from __future__ import annotations

import library_archives as archives
import numpy as np
import pytest
from aiida import orm

from aiida_qdtraps.workchains import classifier

GROUP = 'qdtraps/library-relaxed'
relaxed = archives.library_fixture('library_relaxed.aiida', GROUP, 'relaxed')


def test_relaxed_archive_round_trips(relaxed):
    manifest = archives.round_trip_manifest('manifest_relaxed.json', relaxed)
    assert len(manifest) >= 12  # at least 12 QDs through the pipeline
    assert {row['protocol'] for row in manifest} == {'fast'}
    assert {row['material'] for row in manifest} == {'InP', 'GaP'}
    assert {None, 'ligand', 'cation', 'pair', 'anion'} <= {row['vacancy'] for row in manifest}
    archives.assert_pbe0_charges(manifest)


def test_every_label_comes_from_a_relaxed_structure(relaxed):
    for labeling in relaxed.nodes:
        structure = labeling.inputs.structure  # the PBE0 output structure the labels were made on
        qb = orm.QueryBuilder().append(orm.StructureData, filters={'id': structure.pk}, tag='labelled')
        qb.append(orm.CalcJobNode, with_descendants='labelled', tag='calc',
                  filters={'attributes.process_label': 'Cp2kCalculation'}, project='*')
        geo_opts = [calc for (calc,) in qb.all() if calc.inputs.parameters['GLOBAL']['RUN_TYPE'] == 'GEO_OPT']
        finished = [calc for calc in geo_opts if calc.is_finished_ok]
        assert finished, f'no finished GEO_OPT CalcJob behind the labels of <{labeling.pk}>'
        geo_opt = finished[0]
        qb = orm.QueryBuilder().append(orm.CalcJobNode, filters={'id': geo_opt.pk}, tag='relax')
        qb.append(orm.CalcFunctionNode, with_descendants='relax', tag='build',
                  filters={'attributes.process_label': 'build_qd_structure'})
        qb.append(orm.StructureData, with_incoming='build', project='*')
        (built,) = qb.one()
        # same atoms in the same order; the relax ran in a box, so compare after removing the mean shift
        shift = np.array([s.position for s in structure.sites]) - np.array([s.position for s in built.sites])
        moved = np.linalg.norm(shift - shift.mean(0), axis=1)
        assert [s.kind_name for s in structure.sites] == [s.kind_name for s in built.sites]
        assert np.sqrt((moved ** 2).mean()) > 0.05, labeling.outputs.summary['formula']


@pytest.fixture(scope='module')
def relaxed_model(relaxed):
    return archives.train_all_core(GROUP)


def test_classifier_on_relaxed_labels_traces_through_the_relax(relaxed_model):
    """Train on the relaxed library (every core atom a sample), then walk from the model to one trapping sample's
    built structure: the PBE0 ran on the GEO_OPT's output structure, and the GEO_OPT on the built one."""
    results, _ = relaxed_model
    metrics = results['metrics']
    assert metrics['n_positive'] > 0 and metrics['n_samples'] > metrics['n_positive']
    trace = classifier.trace_sample(results['model'])
    assert trace['dataset'].get_array('y')[trace['row']] == 1
    scf_structure, built = trace['scf_structure'], trace['built']
    qb = orm.QueryBuilder().append(orm.StructureData, filters={'id': scf_structure.pk}, tag='relaxed')
    qb.append(orm.CalcJobNode, with_descendants='relaxed', tag='relax', project='*',
              filters={'attributes.process_label': 'Cp2kCalculation'})
    qb.append(orm.StructureData, with_outgoing='relax', edge_filters={'label': 'structure'}, tag='start')
    qb.append(orm.StructureData, with_descendants='start', filters={'id': built.pk})
    relax_calcs = [calc for (calc,) in qb.all() if calc.inputs.parameters['GLOBAL']['RUN_TYPE'] == 'GEO_OPT']
    assert any(calc.is_finished_ok for calc in relax_calcs)
    assert trace['pbe0'].inputs.structure.uuid == scf_structure.uuid
    assert scf_structure.get_formula() == built.get_formula()


def test_relaxed_and_built_geometries_are_not_mixed_silently(relaxed, relaxed_model, monkeypatch):
    """The features of a relaxed QD record the GEO_OPT that made its geometry (settings and force criterion); a
    dataset mixing it with a QD labelled on its built geometry is refused unless asked for, and so is a prediction of
    the relaxed-library model on a built-geometry QD (``qdtraps classify predict``)."""
    from click.testing import CliRunner

    from aiida_qdtraps.cli import cmd_classify

    built_library = archives.import_library('library.aiida', 'qdtraps/library')
    relaxed_qd = classifier.featurize(**classifier.labeling_inputs(sorted(relaxed.nodes, key=lambda n: n.pk)[0]),
                           parameters=orm.Dict(archives.ALL_CORE))['features']
    source = relaxed_qd.base.attributes.get('geometry_source')
    assert source['process'] == 'Cp2kCalculation'
    assert source['settings']['max_force'] == 0.0045 and source['settings']['hf_fraction'] is None
    assert source['settings']['cutoff'] == 200
    built_qd = classifier.featurize(**classifier.labeling_inputs(sorted(built_library.nodes, key=lambda n: n.pk)[0]),
                         parameters=orm.Dict(archives.ALL_CORE))['features']
    _, node = classifier.build_dataset.run_get_node(qd_a=relaxed_qd, qd_b=built_qd)
    assert node.exit_status == 322 and 'made by Cp2kCalculation != build_qd_structure' in node.exit_message
    _, node = classifier.build_dataset.run_get_node(qd_a=relaxed_qd, qd_b=built_qd,
                                         parameters=orm.Dict({'allow_mixed_protocols': True}))
    assert node.is_finished_ok
    assert len(node.outputs.dataset.base.attributes.get('geometry_sources')) == 2

    monkeypatch.setattr(cmd_classify, '_load', lambda: None)
    command = ['predict', str(relaxed_model[0]['model'].pk), str(sorted(built_library.nodes, key=lambda n: n.pk)[0].pk)]
    result = CliRunner().invoke(cmd_classify.classify, command)
    assert result.exit_code != 0, result.output
    assert 'training data != this QD: made by Cp2kCalculation != build_qd_structure' in result.output
    assert 'pass --allow-mixed-protocols' in result.output
    result = CliRunner().invoke(cmd_classify.classify, [*command, '--allow-mixed-protocols'])
    assert result.exit_code == 0 and 'P(trapping)' in result.output, result.output

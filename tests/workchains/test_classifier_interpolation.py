"""The classifier on the interpolation-defined subset (Alexander et al.): PLi4+ cutouts of the P-4c structural hole
traps of the shipped labelled library (real CP2K PBE0 labels) interpolated at PBE0/def2-SVP with PySCF, then
``TrapClassifierWorkChain`` trained again on the positives whose cutout agrees with the QD's trap orbital."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from library_archives import import_library

from aiida_qdtraps import provenance
from aiida_qdtraps.workchains.classifier import TrapClassifierWorkChain, cutout_paths, restrict_to_interpolation
from aiida_qdtraps.workchains.cutout import CutoutInterpolationWorkChain

GROUP = 'qdtraps/library'
#: PBE0/def2-SVP as Alexander et al., density fitting, loose enough for a few-second PLi4+ frame.
PBE0 = {'xc': 'pbe0', 'basis': 'def2-svp', 'density_fit': True, 'grid_level': 2, 'conv_tol': 1e-8}
#: The default P-4c task has 4 positives in 2 QDs: atoms split, 2 folds.
TRAIN = {'split': 'atom', 'cv_folds': 2, 'test_size': 0.3, 'permutation_repeats': 2,
         'hyperparameters': {'n_estimators': 50}}


def p4c_labelings(group: orm.Group) -> list[orm.CalcFunctionNode]:
    labelings = []
    for node in sorted(group.nodes, key=lambda n: n.pk):
        label = provenance.labeling(node)
        records = [t.get_dict() for t in label.outputs.traps.values()] if 'traps' in label.outputs else []
        if any(t['carrier'] == 'hole' and t['kind'] == 'structural' and t['center_element'] == 'P'
               and t['center_coordination'] == 4 for t in records):
            labelings.append(label)
    return labelings


def stand_in_path(labels: orm.ArrayData, atom: int, cosine: float) -> orm.ArrayData:
    """A stored cutout record with the attributes ``restrict_to_interpolation`` reads (a stand-in for a real path)."""
    path = orm.ArrayData()
    path.set_array('levels', np.array([[-8.32, -8.32, -8.32], [-7.94, -8.63, -8.90]]))
    path.base.attributes.set_many({'source_uuid': labels.uuid, 'centre': atom, 'final_orientation_cosine': cosine,
                                   'orientation_defined': True, 'orientation_note': ''})
    return path.store()


@pytest.mark.slow
def test_cutouts_of_library_traps_and_the_interpolation_subset(aiida_profile, pyscf_code):
    library = import_library('library.aiida', GROUP)
    labelings = p4c_labelings(library)
    assert [label.inputs.structure.get_formula() for label in labelings] == ['F17In10P4', 'F18In10P4']
    cutouts = orm.Group(label='qdtraps/cutouts-built').store()
    for label in labelings:
        results, node = run_get_node(CutoutInterpolationWorkChain, structure=label.inputs.structure,
                                     traps=label.outputs.traps, mo_window=label.inputs.mo_window, frames=orm.Int(2),
                                     pyscf={'code': pyscf_code, 'parameters': orm.Dict(PBE0)})
        assert node.is_finished_ok, node.exit_message
        cutouts.add_nodes(node)
        for key, centre in results['centres'].items():
            attrs = centre['path'].base.attributes
            assert attrs.get('source_uuid') == label.outputs.atom_labels.uuid
            assert key == f"atom_{attrs.get('centre')}"
            assert 0.0 <= attrs.get('final_orientation_cosine') <= 1.0
            # the built QDs sit on the ideal lattice: every P-4c is a regular tetrahedron, its three P 3p levels stay
            # degenerate and the cutout HOMO has no orientation to compare with the QD's trap orbital
            levels = centre['path'].get_array('levels')
            assert np.ptp(levels) < 1e-3 and abs(attrs.get('rise_ev')) < 1e-3
            assert attrs.get('orientation_defined') is False and 'degenerate' in attrs.get('orientation_note')
    paths = cutout_paths(cutouts)
    assert len(paths) == 4

    # so no trapping P-4c of the built library is explained by its cutout: the subset is refused, naming why
    results, node = run_get_node(TrapClassifierWorkChain, group=orm.Str(GROUP), train=orm.Dict(TRAIN),
                                 cutouts=orm.Str(cutouts.label))
    assert node.exit_status == 305
    assert "'kept': 0" in node.exit_message and "'undefined': 4" in node.exit_message
    assert 'metrics' in results  # the classifier on all positives was trained before

    # three agreeing cutouts and one that disagrees (stand-ins, same rows): the subset keeps 3 of the 4 positives
    rows = {(t['center'], label.outputs.atom_labels) for label in labelings for t in
            (r.get_dict() for r in label.outputs.traps.values()) if t['center_element'] == 'P' and t['kind'] ==
            'structural' and t['carrier'] == 'hole'}
    assert len(rows) == 4
    stand_ins = orm.Group(label='qdtraps/cutouts-stand-in').store()
    for k, (atom, labels) in enumerate(sorted(rows, key=lambda r: (r[1].pk, r[0]))):
        stand_ins.add_nodes(stand_in_path(labels, atom, 0.3 if k == 0 else 0.9))
    results, node = run_get_node(TrapClassifierWorkChain, group=orm.Str(GROUP), train=orm.Dict(TRAIN),
                                 cutouts=orm.Str(stand_ins.label), interpolation=orm.Dict({'min_cosine': 0.8}))
    assert node.is_finished_ok, node.exit_message
    subset = results['interpolation_subset']
    counts = subset['dataset'].base.attributes.get('interpolation')
    assert counts == {'n_positive': 4, 'kept': 3, 'disagree': 1, 'undefined': 0, 'no_cutout': 0, 'unmatched': 0,
                      'min_cosine': 0.8, 'parent': results['dataset'].uuid}
    full_y, y = results['dataset'].get_array('y'), subset['dataset'].get_array('y')
    assert (y == 0).sum() == (full_y == 0).sum() and y.sum() == 3
    assert subset['metrics']['n_samples'] == len(y) and subset['metrics']['n_positive'] == 3
    assert subset['model'].get_content('rb').lstrip().startswith(b'{')
    restrict = subset['dataset'].creator
    assert restrict.process_label == 'restrict_to_interpolation'
    assert {link.node.uuid for link in restrict.base.links.get_incoming().all()} >= {
        n.uuid for n in stand_ins.nodes}


def test_restrict_refuses_paths_without_labelling_and_bad_cut_off(aiida_profile):
    dataset = orm.ArrayData()
    dataset.set_array('y', np.array([0, 1, 1]))
    dataset.set_array('source_uuid', np.array(['a', 'a', 'a']))
    dataset.set_array('atom_index', np.array([0, 1, 2]))
    bare = orm.ArrayData()
    bare.set_array('levels', np.zeros((2, 3)))
    _, calc = restrict_to_interpolation.run_get_node(dataset, path=bare)
    assert calc.exit_status == 325 and 'has no labelling or no orientation cosine' in calc.exit_message
    path = orm.ArrayData()
    path.base.attributes.set_many({'source_uuid': 'a', 'centre': 1, 'final_orientation_cosine': 0.9})
    _, calc = restrict_to_interpolation.run_get_node(dataset, parameters=orm.Dict({'min_cosine': 2.0}), path=path)
    assert calc.exit_status == 325 and 'min_cosine must be in [0, 1]' in calc.exit_message
    _, calc = restrict_to_interpolation.run_get_node(dataset, parameters=orm.Dict({'cosine': 0.5}), path=path)
    assert calc.exit_status == 325 and "unknown restrict_to_interpolation parameters ['cosine']" in calc.exit_message
    result, calc = restrict_to_interpolation.run_get_node(dataset, path=path)
    assert calc.is_finished_ok and result['dataset'].get_array('atom_index').tolist() == [0, 1]


def test_cli_min_cosine_needs_cutouts(monkeypatch):
    from click.testing import CliRunner

    from aiida_qdtraps.cli import cmd_classify

    monkeypatch.setattr(cmd_classify, '_load', lambda: None)
    result = CliRunner().invoke(cmd_classify.classify, ['train', 'some-group', '--min-cosine', '0.9'])
    assert result.exit_code == 2 and '--min-cosine needs --cutouts' in result.output

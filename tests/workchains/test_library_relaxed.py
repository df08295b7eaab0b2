"""The relaxed library subset (tests/data/library/library_relaxed.aiida, ``build_library.py --relax``): the whole
``fast`` pipeline (PBE GEO_OPT -> PBE0 -> labels) per QD. Its archive round-trips, every label traces back through a
real GEO_OPT CalcJob to the built structure (QueryBuilder only), and the relaxed geometry differs from the built one
that the built-geometry library member of the same recipe was labelled on."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from aiida import orm

from aiida_qdtraps.workchains.classifier import library_summary

LIBRARY = pathlib.Path(__file__).parent.parent / 'data' / 'library'
GROUP = 'qdtraps/library-relaxed'


@pytest.fixture(scope='module')
def relaxed(aiida_profile):
    from aiida.tools.archive import import_archive

    import_archive(LIBRARY / 'library_relaxed.aiida')
    return orm.load_group(GROUP)


def test_relaxed_archive_round_trips(relaxed):
    manifest = json.loads((LIBRARY / 'manifest_relaxed.json').read_text())
    assert library_summary(GROUP) == manifest
    assert len(manifest) == len(relaxed.nodes) >= 2
    assert {row['protocol'] for row in manifest} == {'fast'}


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

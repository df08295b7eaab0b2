"""What the two library test modules share (test_classifier_workchain.py: the built-geometry ``library.aiida``;
test_library_relaxed.py: ``library_relaxed.aiida``): importing an archive, its round trip against its manifest, the
PBE0-charge check of the manifest, and one fast all-core-atoms classifier run."""

from __future__ import annotations

import json
import pathlib

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.builder.passivation import net_charge
from aiida_qdtraps.workchains.build import to_atoms
from aiida_qdtraps.workchains.classifier import TrapClassifierWorkChain, library_summary

LIBRARY = pathlib.Path(__file__).parent.parent / 'data' / 'library'
#: Every core atom is a sample (built library: 182 rows, 53 trapping; the default P-4c task has only 4 positives).
ALL_CORE = {'elements': ['In', 'Ga', 'P'], 'coordinations': None}
FAST_TRAIN = {'cv_folds': 3, 'permutation_repeats': 2, 'hyperparameters': {'n_estimators': 50}}


def import_library(archive: str, group: str) -> orm.Group:
    """Import ``tests/data/library/<archive>`` into the current (test) profile and return its Group."""
    from aiida.tools.archive import import_archive

    import_archive(LIBRARY / archive)
    return orm.load_group(group)


def library_fixture(archive: str, group: str, name: str):
    """A module-scoped fixture ``name`` that imports ``archive`` into the (fresh) test profile and gives its Group."""

    @pytest.fixture(scope='module', name=name)
    def imported(aiida_profile):
        return import_library(archive, group)

    return imported


def round_trip_manifest(manifest: str, group: orm.Group) -> list[dict]:
    """The rows of ``tests/data/library/<manifest>``, after checking that the imported ``group`` gives the same
    ``library_summary`` and one row per labelling."""
    rows = json.loads((LIBRARY / manifest).read_text())
    assert library_summary(group.label) == rows
    assert len(rows) == len(group.nodes)
    return rows


def assert_pbe0_charges(manifest: list[dict]) -> None:
    """Every QD's PBE0 ran with the built QD's formal net charge (+1 F⁻, +3 P³⁻, +1 FXP vacancies)."""
    for row in manifest:
        built = to_atoms(orm.load_node(row['built_structure']))
        pbe0 = orm.load_node(row['pbe0_calculation'])
        assert pbe0.inputs.parameters['FORCE_EVAL']['DFT'].get('CHARGE', 0) == net_charge(built), row['formula']


def train_all_core(group: str):
    """``TrapClassifierWorkChain`` on ``group`` with every core atom a sample; returns (results, node)."""
    results, node = run_get_node(TrapClassifierWorkChain, group=orm.Str(group), featurize=orm.Dict(ALL_CORE),
                                 train=orm.Dict(FAST_TRAIN), cluster=orm.Dict({'min_cluster_size': 3}))
    assert node.is_finished_ok, node.exit_message
    return results, node

"""Property-based tests of the DeePMD parsers (``qdtraps.deepmd.train``, ``qdtraps.mlff_md``) on damaged files.

Same contract as ``test_fuzz_parsers.py``: exit status 0 or a named exit code of the calculation class, never an
exception, and no outputs on a non-zero exit code.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from aiida import orm
from aiida.plugins import CalculationFactory
from ase import Atoms
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_fuzz_readers import DATA, FUZZ, mutated, recorded

from aiida_qdtraps.parsers.deepmd import DeepmdTrainParser, MlffMdParser

TRAIN_FILES = ('lcurve.out', 'validation.e_peratom.out', 'validation.f.out')


@pytest.fixture
def make_node(aiida_localhost, aiida_code_installed, process_nodes):
    """A CalcJobNode of ``process_type`` with the given retrieved files (name -> bytes), as the engine leaves it
    before parsing."""
    code = aiida_code_installed(label='dp-python-fuzz', default_calc_job_plugin='qdtraps.deepmd.train',
                                filepath_executable=sys.executable)

    def factory(process_type: str, files: dict[str, bytes], inputs: dict | None = None):
        retrieved = orm.FolderData()
        for name, content in files.items():
            retrieved.base.repository.put_object_from_bytes(content, name)
        node = process_nodes.calcjob(aiida_localhost, f'aiida.calculations:{process_type}', code, inputs)
        return process_nodes.finish(node, {'retrieved': retrieved}, exit_status=None)

    return factory


def check_parsed(parser, node, process_type: str) -> tuple[dict, int]:
    results, calcfunction = parser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished, 'the parser raised an exception'
    status = calcfunction.exit_status
    codes = {code.status for code in CalculationFactory(process_type).exit_codes.values()}
    assert status == 0 or status in codes, f'exit status {status} is not an exit code of {process_type}'
    if status:
        assert not results, f'outputs {sorted(results)} left on exit status {status}'
    return results or {}, status


@settings(FUZZ, max_examples=10)
@given(name=st.sampled_from(TRAIN_FILES), data=st.data())
@example(name='validation.f.out', data=None)
def test_train_parser(make_node, name, data):
    files = {other: (DATA / 'deepmd' / other).read_bytes() for other in TRAIN_FILES}
    files['model.pth'] = b'model'
    text = (data.draw(mutated((f'deepmd/{name}',))) if data is not None
            else recorded(f'deepmd/{name}').replace('e-01', 'e-0x', 1))  # before: numpy's loadtxt error, outputs kept
    files[name] = text.encode()
    check_parsed(DeepmdTrainParser, make_node('qdtraps.deepmd.train', files), 'qdtraps.deepmd.train')


def md_structure() -> orm.StructureData:
    data = np.load(DATA / 'deepmd' / 'md.npz')
    symbols = (DATA / 'deepmd' / 'md_symbols.txt').read_text().split()
    return orm.StructureData(ase=Atoms(symbols, positions=data['positions'][0], cell=data['cell']))


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@settings(FUZZ, max_examples=10)
@given(cut=st.one_of(st.none(), st.integers(0, 10582)), drop=st.one_of(st.none(), st.sampled_from(
    ['positions', 'steps', 'cell', 'energies', 'temperatures', 'forces'])),
    frames=st.integers(0, 11), timings=st.one_of(st.none(), mutated(('deepmd/md.json',))))
@example(cut=None, drop=None, frames=11, timings='[1, 2]')  # before: a list into orm.Dict after the trajectory
def test_md_parser(make_node, cut, drop, frames, timings):
    """md.npz cut at a byte, without an array or with fewer frames in one array; md.json mutated."""
    arrays = dict(np.load(DATA / 'deepmd' / 'md.npz'))
    arrays['energies'] = arrays['energies'][:frames]
    if drop is not None:
        arrays.pop(drop)
    raw = npz_bytes(arrays)
    files = {'md.npz': raw if cut is None else raw[:cut],
             'md.json': (recorded('deepmd/md.json') if timings is None else timings).encode()}
    node = make_node('qdtraps.mlff_md', files, {'structure': md_structure()})
    results, status = check_parsed(MlffMdParser, node, 'qdtraps.mlff_md')
    if status == 0:
        assert results['trajectory'].numsteps == 11

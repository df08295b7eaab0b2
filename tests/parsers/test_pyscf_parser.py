"""``qdtraps.pyscf`` parser on hand-made script outputs with known values."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from aiida import orm
from aiida.common import LinkType
from ase import Atoms

from aiida_qdtraps.parsers.pyscf import HARTREE_TO_EV, PyscfParser, window_indices


@pytest.fixture
def job(aiida_localhost, aiida_code_installed, process_nodes):
    """A stored ``qdtraps.pyscf`` job node of an H2 molecule (inputs only)."""
    code = aiida_code_installed(label='pyscf-parse', filepath_executable='/bin/true',
                                default_calc_job_plugin='qdtraps.pyscf')
    structure = orm.StructureData(ase=Atoms('H2', positions=[(0, 0, 0), (0, 0, 0.74)]))
    return process_nodes.calcjob(aiida_localhost, 'aiida.calculations:qdtraps.pyscf', code,
                                 {'structure': structure}).store()


def _results(converged=True):
    """Three AOs (two on H0, one on H1), three MOs at -0.5, -0.2, +0.1 Ha, two occupied (restricted)."""
    arrays = {'mo_energy': np.array([[-0.5, -0.2, 0.1]]), 'mo_occ': np.array([[2.0, 2.0, 0.0]]),
              'mo_coeff': np.eye(3)[None], 'overlap': np.eye(3), 'ao_atom': np.array([0, 0, 1]),
              'mulliken': np.array([0.1, -0.1]), 'lowdin': np.array([0.05, -0.05]), 'dipole': np.array([0, 0, 1.5])}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    result = {'energy_ha': -1.25, 'converged': converged, 'scf_step': 'newton' if not converged else 'diis',
              'attempts': [{'step': 'diis', 'converged': converged, 'energy_ha': -1.25, 'cycles': 5, 'seconds': 0.1}],
              'unrestricted': False, 'nelectron': 4, 'nao': 3, 'ao_labels': ['0 H 1s', '0 H 2s', '1 H 1s'],
              'cube_mos': [], 'pyscf_version': '2.14.0', 'wall_time_s': 0.5}
    params = {'xc': 'pbe0', 'basis': 'sto-3g', 'charge': -2, 'multiplicity': 1,
              'mo_window': {'occupied': 1, 'virtual': 1}}
    return {'results.npz': buffer.getvalue(), 'results.json': json.dumps(result).encode(),
            'input.json': json.dumps(params).encode(), 'pyscf.log': b''}


def _parse(node, files: dict):
    folder = orm.FolderData()
    for name, content in files.items():
        folder.base.repository.put_object_from_bytes(content, name)
    folder.base.links.add_incoming(node, LinkType.CREATE, 'retrieved')
    folder.store()
    parser = PyscfParser(node)
    return parser.parse(), parser.outputs


def test_outputs_have_the_known_values(job):
    exit_code, outputs = _parse(job, _results())
    assert exit_code is None or exit_code.status == 0
    out = outputs['output_parameters']
    assert out['energy_ev'] == pytest.approx(-1.25 * HARTREE_TO_EV)
    assert out['homo_ev'] == pytest.approx(-0.2 * HARTREE_TO_EV) and out['homo_index'] == 1
    assert out['gap_ev'] == pytest.approx(0.3 * HARTREE_TO_EV)
    assert out['dipole_debye'] == [0.0, 0.0, 1.5] and out['units']['gap_ev'] == 'eV'
    window = outputs['mo_window']
    assert window.get_array('indices').tolist() == [[1, 2]]
    assert window.get_array('energies')[0] == pytest.approx(np.array([-0.2, 0.1]) * HARTREE_TO_EV)
    assert window.get_array('occupations').tolist() == [[2.0, 0.0]]
    assert window.get_array('coefficients').tolist() == [[[0, 0], [1, 0], [0, 1]]]
    assert window.get_array('ao_atom').tolist() == [0, 0, 1]
    assert window.base.attributes.get('symbols') == ['H', 'H']
    assert outputs['charges'].get_array('lowdin').tolist() == [0.05, -0.05]
    assert outputs['mo_energies'].get_array('energies').shape == (1, 3)


def test_unconverged_scf_keeps_the_outputs_and_exits_310(job):
    exit_code, outputs = _parse(job, _results(converged=False))
    assert exit_code.status == 310
    assert outputs['output_parameters']['converged'] is False and 'mo_window' in outputs


def test_script_error_is_named(job):
    files = {'pyscf.log': b'Traceback (most recent call last):\n  ...\nKeyError: \'basis\'\n'}
    exit_code, _ = _parse(job, files)
    assert exit_code.status == 301 and "KeyError: 'basis'" in exit_code.message


def test_missing_output(job):
    exit_code, _ = _parse(job, {'pyscf.log': b''})
    assert exit_code.status == 300


def test_window_indices_share_counts_between_spins():
    occupations = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=float)
    assert window_indices(occupations, 5, 2).tolist() == [[1, 2, 3, 4], [0, 1, 2, 3]]
    assert window_indices(occupations, 1, 9).tolist() == [[2, 3, 4, 5], [1, 2, 3, 4]]
    with pytest.raises(ValueError, match='need occupied and empty MOs'):
        window_indices(np.ones((1, 3)), 1, 1)

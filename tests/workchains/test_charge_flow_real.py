"""Real Bader run through aiida-shell on the CP2K PBE0 density of the tiny In4PF9 QD (baderkit, no mocks).

The density is CP2K 2023.1's PBE0 valence density of the relaxed In4PF9 cluster of ``make demo`` (SZV-MOLOPT-SR,
GTH-PBE q13/q5/q7: 120 valence electrons); the recorded cube keeps every second grid point and drops vacuum planes
(grid 48×44×51, deliberately not cubic: baderkit 0.10.2 misreads such a cube unless it is converted to CHGCAR).
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.io.cube import read_cube

from aiida_qdtraps.workchains.charge_flow import BaderChargeFlowWorkChain

CUBE = 'in4pf9_pbe0_density.cube.gz'
KINDS = [{'_': 'In', 'BASIS_SET': 'SZV-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q13'},
         {'_': 'P', 'BASIS_SET': 'SZV-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q5'},
         {'_': 'F', 'BASIS_SET': 'SZV-MOLOPT-SR-GTH', 'POTENTIAL': 'GTH-PBE-q7'}]


@pytest.fixture
def density(data_dir):
    text = gzip.decompress((data_dir / 'bader' / CUBE).read_bytes())
    cube = orm.SinglefileData(io.BytesIO(text), filename='density.cube')
    atoms = read_cube(io.StringIO(text.decode()), read_data=False)['atoms']
    atoms.pbc = False
    return cube, orm.StructureData(ase=atoms)


def test_real_bader_charge_flow(baderkit_code, density, aiida_localhost):
    """Electrons conserved, In positive, F and P negative, flows and plots produced, all as nodes."""
    cube, structure = density
    parameters = orm.Dict({'FORCE_EVAL': {'DFT': {'CHARGE': 0}, 'SUBSYS': {'KIND': KINDS}}})
    results, node = run_get_node(BaderChargeFlowWorkChain, structure=structure, density_cube=cube,
                                 parameters=parameters, bader={'code': baderkit_code})
    assert node.is_finished_ok, node.exit_message
    summary = results['summary'].get_dict()
    assert summary['valence_electrons'] == 120.0
    # Populations + vacuum equal the electrons on the grid; the grid (stride 2) integrates to 120.04 e.
    assert abs(summary['electron_difference']) < 0.1
    assert 0 <= summary['vacuum_charge'] < 0.5
    dq = results['bader_charges'].get_array('charges')
    symbols = structure.get_ase().get_chemical_symbols()
    by_element = {el: dq[[s == el for s in symbols]] for el in ('In', 'P', 'F')}
    assert np.all(by_element['In'] > 0.5)
    assert np.all(by_element['F'] < -0.3)
    assert np.all(by_element['P'] < 0)
    flow = results['charge_flow']
    bonds, flows = flow.get_array('bonds'), flow.get_array('bond_flows')
    assert len(bonds) == summary['n_bonds'] > 0
    # The flows reproduce Δq up to each component's net charge (minimum-norm least squares).
    incidence = np.zeros((len(dq), len(bonds)))
    incidence[bonds[:, 0], np.arange(len(bonds))] = 1
    incidence[bonds[:, 1], np.arange(len(bonds))] = -1
    expected = np.linalg.lstsq(incidence, dq, rcond=None)[0]
    np.testing.assert_allclose(flows, expected, atol=1e-8)
    # Electrons flow from In to F along every In-F bond.
    for (i, j), x in zip(bonds, flows):
        pair = {symbols[i], symbols[j]}
        if pair == {'In', 'F'}:
            donor = i if symbols[i] == 'In' else j
            assert (x > 0) == (donor == i)
    assert summary['per_domain']['ligand']['dq_total'] < 0 < summary['per_domain']['core']['dq_total']
    assert results['charge_flow_map'].get_content(mode='rb')[:8] == b'\x89PNG\r\n\x1a\n'
    bader_job = node.base.links.get_outgoing(link_label_filter='bader').one().node
    assert bader_job.process_type == 'aiida.calculations:core.shell'
    assert 'atom_summary_tsv' in bader_job.outputs

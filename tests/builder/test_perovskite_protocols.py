"""A CsPbBr3 nanocube passes the CP2K protocol builders: Cs has a GTH-PBE potential, a MOLOPT basis and an ADMM
auxiliary basis in the element settings, and CP2K's data files (when installed) hold those names."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiida import orm

from aiida_qdtraps.builder import qd
from aiida_qdtraps.protocols import element_settings, kind_sections

CP2K_DATA = Path('/usr/share/cp2k')


def _kinds(builder_namespace):
    return {kind['_']: kind for kind in builder_namespace.cp2k.parameters.get_dict()['FORCE_EVAL']['SUBSYS']['KIND']}


@pytest.fixture
def cube():
    # 2 cells, CsBr-terminated: Cs20Pb8Br36 (charge 20 + 16 - 36 = 0)
    return orm.StructureData(ase=qd.build_qd('CsPbBr3', 11.7, shape='cube'))


def test_cs_element_settings():
    assert element_settings()['Cs'] == {'valence': 9, 'aux_fit': 'cFIT7'}
    (kind,) = kind_sections(['Cs'], 'DZVP-MOLOPT-SR-GTH', admm=True)
    assert kind == {'_': 'Cs', 'BASIS_SET': ['ORB DZVP-MOLOPT-SR-GTH', 'AUX_FIT cFIT7'], 'POTENTIAL': 'GTH-PBE-q9'}


@pytest.mark.skipif(not CP2K_DATA.is_dir(), reason='CP2K data files not installed')
def test_cs_names_exist_in_the_cp2k_data_files():
    assert ' Cs DZVP-MOLOPT-SR-GTH DZVP-MOLOPT-SR-GTH-q9' in (CP2K_DATA / 'BASIS_MOLOPT').read_text().splitlines()
    potentials = (CP2K_DATA / 'GTH_POTENTIALS').read_text().splitlines()
    assert any(line.split()[:2] == ['Cs', 'GTH-PBE-q9'] for line in potentials)
    assert 'Cs cFIT7' in (CP2K_DATA / 'BASIS_ADMM_MOLOPT').read_text().splitlines()


def test_relax_and_hybrid_builders_accept_a_cspbbr3_cube(cube, recorded_cp2k_code):
    from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
    from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

    assert cube.get_formula(mode='hill_compact') == 'Br9Cs5Pb2'
    relax = QdRelaxWorkChain.get_builder_from_protocol(recorded_cp2k_code, cube, protocol='fast')
    kinds = _kinds(relax.base)
    assert set(kinds) == {'Br', 'Cs', 'Pb'}
    assert kinds['Cs']['POTENTIAL'] == 'GTH-PBE-q9'
    hybrid = HybridScfWorkChain.get_builder_from_protocol(recorded_cp2k_code, cube, protocol='fast')
    hybrid_kinds = _kinds(hybrid.scf)
    assert set(hybrid_kinds) == {'Br', 'Cs', 'Pb'}
    assert hybrid_kinds['Cs']['BASIS_SET'] == ['ORB DZVP-MOLOPT-SR-GTH', 'AUX_FIT cFIT7']  # PBE0 + ADMM

"""Protocol builders: every protocol gives a complete, valid CP2K input for the QD's elements."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from aiida_cp2k.utils import Cp2kInput

from aiida_qdtraps.protocols import (
    cp2k_physics_settings,
    kind_sections,
    merge_settings,
    settings_differences,
    valence_from_potential,
)
from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

PROTOCOLS = ('fast', 'moderate', 'precise')


def assert_cp2k_accepts(parameters: dict, folder, xyz: str = '1\n\nP 0 0 0\n') -> None:
    """``cp2k.psmp --check`` parses ``parameters`` (changed in place: a 14 Å cell and ``xyz`` as the coordinates)."""
    parameters['FORCE_EVAL']['SUBSYS']['TOPOLOGY'] = {'COORD_FILE_NAME': 'qd.xyz', 'COORD_FILE_FORMAT': 'XYZ'}
    parameters['FORCE_EVAL']['SUBSYS']['CELL']['ABC'] = '14 14 14'
    (folder / 'qd.xyz').write_text(xyz)
    (folder / 'aiida.inp').write_text(Cp2kInput(parameters).render())
    result = subprocess.run([shutil.which('cp2k.psmp'), '--check', '-i', 'aiida.inp'], cwd=folder,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_relax_builder(cp2k_code, tiny_qd, protocol, data_regression):
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol=protocol)
    params = builder.base.cp2k.parameters.get_dict()
    kinds = {k['_']: k for k in params['FORCE_EVAL']['SUBSYS']['KIND']}
    assert set(kinds) == {'In', 'P', 'F'}
    assert params['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'GAPW' and kinds['In']['HARD_EXP_RADIUS'] == 3.0
    assert kinds['In']['BASIS_SET'] == 'DZVP-MOLOPT-SR-GTH'  # no minimal basis in any protocol
    assert params['GLOBAL']['RUN_TYPE'] == 'GEO_OPT'
    assert builder.base.cp2k.metadata['options']['parser_name'] == 'qdtraps.cp2k'
    options = builder.base.cp2k.metadata['options']
    data_regression.check({'parameters': params, 'box_vacuum': builder.box_vacuum.value,
                           'options': {key: options[key] if key != 'resources' else dict(options[key])
                                       for key in ('resources', 'max_wallclock_seconds', 'withmpi', 'parser_name')}})


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_hybrid_builder(cp2k_code, tiny_qd, protocol, data_regression):
    builder = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol=protocol)
    params = builder.scf.cp2k.parameters.get_dict()
    dft = params['FORCE_EVAL']['DFT']
    assert dft['XC']['HF']['FRACTION'] == 0.25
    assert 'AUXILIARY_DENSITY_MATRIX_METHOD' in dft
    # GPW: the density cube of the Bader stage must hold every valence electron (a GAPW cube lacks the hard parts)
    assert dft['QS']['METHOD'] == 'GPW' and 'E_DENSITY_CUBE' in dft['PRINT']
    kinds = {k['_']: k for k in params['FORCE_EVAL']['SUBSYS']['KIND']}
    assert 'HARD_EXP_RADIUS' not in kinds['In']  # a GAPW-only keyword
    assert dft['PRINT']['MO_MOLDEN']['NDIGITS'] == 12
    assert dft['SCF']['ADDED_MOS'] >= builder.mo_window['virtual']
    data_regression.check({'parameters': params, 'mo_window': builder.mo_window.get_dict(),
                           'settings': builder.scf.cp2k.settings.get_dict()})


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_cp2k_accepts_generated_inputs(cp2k_code, tiny_qd, protocol, tmp_path):
    """``cp2k --check`` parses each protocol's input (keywords and sections exist in CP2K 2023.1)."""
    for cls, namespace in ((QdRelaxWorkChain, 'base'), (HybridScfWorkChain, 'scf')):
        builder = cls.get_builder_from_protocol(cp2k_code, tiny_qd, protocol=protocol)
        assert_cp2k_accepts(builder[namespace].cp2k.parameters.get_dict(), tmp_path)


def test_pipeline_builder_shares_protocol(cp2k_code, tiny_qd):
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast', charge=1,
                                                                multiplicity=2)
    assert builder.charge.value == 1 and builder.multiplicity.value == 2
    assert 'box_vacuum' in builder.relax and 'box_vacuum' not in builder.hybrid_scf
    assert builder.relax.base.cp2k.code.uuid == builder.hybrid_scf.scf.cp2k.code.uuid
    assert 'HF' in builder.hybrid_scf.scf.cp2k.parameters['FORCE_EVAL']['DFT']['XC']


def test_pipeline_builder_passes_the_functional_and_refuses_xtb_labels(cp2k_code, tiny_qd):
    pbe = QdTrapsPipelineWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast', functional='pbe')
    assert pbe.hybrid_scf.scf.cp2k.parameters['FORCE_EVAL']['DFT']['XC'] == {'XC_FUNCTIONAL': {'PBE': {}}}
    with pytest.raises(ValueError, match="functional 'xtb' does not label traps"):
        QdTrapsPipelineWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast', functional='xtb')


def test_overrides_and_options(cp2k_code, tiny_qd):
    builder = QdRelaxWorkChain.get_builder_from_protocol(
        cp2k_code, tiny_qd, protocol='fast',
        overrides={'base': {'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 250}}}}}}},
        options={'max_wallclock_seconds': 600})
    assert builder.base.cp2k.parameters['FORCE_EVAL']['DFT']['MGRID'] == {'CUTOFF': 250, 'REL_CUTOFF': 50, 'NGRIDS': 4}
    assert builder.base.cp2k.metadata['options']['max_wallclock_seconds'] == 600


def test_scf_monitor_on_by_default_and_switchable(cp2k_code, tiny_qd):
    """Every CP2K stage carries the cp2k_scf CalcJob monitor; `scf_monitor` changes or removes it."""
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast')
    for namespace in (builder.relax.base.cp2k, builder.hybrid_scf.scf.cp2k):
        monitor = namespace.monitors['scf'].get_dict()
        assert monitor['entry_point'] == 'qdtraps.cp2k_scf' and monitor['minimum_poll_interval'] == 30
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast',
                                                         overrides={'base': {'scf_monitor': {'scf_window': 80}}})
    assert builder.base.cp2k.monitors['scf']['kwargs']['scf_window'] == 80
    builder = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast',
                                                         overrides={'base': {'scf_monitor': False}})
    assert dict(builder.base.cp2k.monitors) == {}
    with pytest.raises(ValueError, match='scf_windw'):
        QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast',
                                                   overrides={'base': {'scf_monitor': {'scf_windw': 80}}})
    with pytest.raises(ValueError, match="scf_monitor must be a dict .* got 'yes'"):
        QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast',
                                                   overrides={'base': {'scf_monitor': 'yes'}})


def test_unknown_protocol_and_element(cp2k_code, tiny_qd):
    with pytest.raises(ValueError, match='not a valid protocol'):
        QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='ultra')
    with pytest.raises(ValueError, match=r"\['Xe'\]"):
        kind_sections(['In', 'Xe'], 'SZV-MOLOPT-SR-GTH')
    with pytest.raises(ValueError, match='GTH-PBE'):
        valence_from_potential('GTH-PBE')
    assert kind_sections(['In'], 'DZVP-MOLOPT-SR-GTH', admm=True) == [
        {'_': 'In', 'BASIS_SET': ['ORB DZVP-MOLOPT-SR-GTH', 'AUX_FIT cFIT10'], 'POTENTIAL': 'GTH-PBE-q13'}]


def test_physics_settings_tell_protocols_apart_but_not_handler_changes(cp2k_code, tiny_qd):
    """``cp2k_physics_settings`` is what the classifier compares across QDs: the grid, functional and basis of each
    protocol, but not the SCF solver changes that the error handlers make."""
    hybrid = {p: cp2k_physics_settings(HybridScfWorkChain.get_builder_from_protocol(
        cp2k_code, tiny_qd, protocol=p).scf.cp2k.parameters.get_dict()) for p in PROTOCOLS}
    fast = hybrid['fast']
    assert (fast['cutoff'], fast['rel_cutoff'], fast['extended_fft_lengths']) == (300, 50, True)
    assert fast['hf_fraction'] == 0.25 and fast['hf_potential'] == 'COULOMB' and fast['admm'] == 'BASIS_PROJECTION'
    assert fast['poisson'] == ['WAVELET', 'NONE'] and fast['qs_method'] == 'GPW'
    assert fast['kinds']['In'] == [['ORB DZVP-MOLOPT-SR-GTH', 'AUX_FIT cFIT10'], 'GTH-PBE-q13']
    assert hybrid['moderate']['kinds']['P'] == [['ORB DZVP-MOLOPT-SR-GTH', 'AUX_FIT cFIT3'], 'GTH-PBE-q5']
    assert settings_differences(fast, hybrid['moderate']) == ['cutoff: 300 != 400']

    relax = cp2k_physics_settings(QdRelaxWorkChain.get_builder_from_protocol(
        cp2k_code, tiny_qd, protocol='fast').base.cp2k.parameters.get_dict())
    assert relax['qs_method'] == 'GAPW' and relax['kinds']['In'] == ['DZVP-MOLOPT-SR-GTH', 'GTH-PBE-q13', 3.0]
    # a record made before `qs_method` existed was GPW (CP2K's default): told apart from GAPW, equal to GPW
    legacy = {key: value for key, value in relax.items() if key != 'qs_method'}
    assert settings_differences(legacy, relax) == ["qs_method: 'GPW' != 'GAPW'"]
    assert settings_differences(legacy, {**relax, 'qs_method': 'GPW'}) == []
    assert relax['hf_fraction'] is None and 'hf_fraction: None != 0.25' in settings_differences(relax, fast)

    # what the SCF handlers change (mixing, smearing, OT, guess, MAX_SCF) is not a different model chemistry ...
    params = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast').scf.cp2k.parameters
    params = params.get_dict()
    params['FORCE_EVAL']['DFT']['SCF'].update({
        'MAX_SCF': 300, 'SCF_GUESS': 'ATOMIC', 'MIXING': {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': 0.4},
        'SMEAR': {'_': True, 'METHOD': 'FERMI_DIRAC', 'ELECTRONIC_TEMPERATURE': 300}})
    params['FORCE_EVAL']['DFT']['PRINT'].pop('MO_MOLDEN')
    assert cp2k_physics_settings(params) == fast
    # ... a raised grid is, also in lower-case keys
    params['FORCE_EVAL']['DFT']['MGRID'] = {'cutoff': 400, 'rel_cutoff': 60, 'ngrids': 4}
    assert settings_differences(fast, cp2k_physics_settings(params)) == ['cutoff: 300 != 400', 'rel_cutoff: 50 != 60']
    for spelling, value in (('.FALSE.', False), ('F', False), ('T', True), ('.true.', True)):
        params['GLOBAL']['EXTENDED_FFT_LENGTHS'] = spelling
        assert cp2k_physics_settings(params)['extended_fft_lengths'] is value
    assert cp2k_physics_settings({}) == {**{key: None for key in fast}, 'method': 'QS', 'qs_method': 'GPW',
                                         'extended_fft_lengths': False, 'poisson': [None, None], 'kinds': {}}


def test_settings_compare_shared_elements_and_merge():
    """An InP and a GaP QD of one protocol have the same settings (kinds compared over shared elements only); a
    different P basis or grid is a difference; merging keeps one entry per distinct setting with the union of kinds."""
    inp = {'cutoff': 200, 'kinds': {'In': ['SZV', 'q13'], 'P': ['SZV', 'q5']}}
    gap = {'cutoff': 200, 'kinds': {'Ga': ['SZV', 'q13'], 'P': ['SZV', 'q5']}}
    dzvp = {'cutoff': 200, 'kinds': {'In': ['SZV', 'q13'], 'P': ['DZVP', 'q5']}}
    assert settings_differences(inp, gap) == []
    assert settings_differences(inp, dzvp) == ["kinds[P]: ['SZV', 'q5'] != ['DZVP', 'q5']"]
    assert settings_differences(inp, {**gap, 'cutoff': 300}) == ['cutoff: 200 != 300']
    assert settings_differences(None, None) == [] and settings_differences(None, inp) != []
    merged = merge_settings([inp, gap, dzvp, None])
    assert merged == [{'cutoff': 200, 'kinds': {'In': ['SZV', 'q13'], 'P': ['SZV', 'q5'], 'Ga': ['SZV', 'q13']}},
                      dzvp, None]
    assert inp == {'cutoff': 200, 'kinds': {'In': ['SZV', 'q13'], 'P': ['SZV', 'q5']}}  # inputs not modified


@pytest.fixture
def cdse_35(tiny_qd_recipe):
    """Cd16Se13Cl6 (35 atoms, 29 core), the default CdSe QD of 10 Å through the building calcfunction."""
    from aiida import orm

    from aiida_qdtraps.workchains.build import build_qd_structure

    return build_qd_structure(orm.Dict({'material': 'CdSe', 'diameter': 10.0, 'ligand': 'Cl'}))


@pytest.mark.parametrize('protocol, window, added', [
    ('fast', {'occupied': 29, 'virtual': 32}, 34),
    ('moderate', {'occupied': 29, 'virtual': 32}, 42),
])
def test_hybrid_builder_scales_the_mo_window_with_the_qd(recorded_cp2k_code, cdse_35, protocol, window, added):
    """The 35-atom Cd16Se13Cl6 gets one MO per core atom on each side (+3 skipped quantum-confined virtuals), not the
    protocol's 10 + 10 / 20 + 20; the pipeline builds its PBE0 stage the same way."""
    assert cdse_35.get_formula() == 'Cd16Cl6Se13'
    builder = HybridScfWorkChain.get_builder_from_protocol(recorded_cp2k_code, cdse_35, protocol=protocol)
    assert builder.mo_window.get_dict() == window
    assert builder.scf.cp2k.parameters['FORCE_EVAL']['DFT']['SCF']['ADDED_MOS'] == added
    pipeline = QdTrapsPipelineWorkChain.get_builder_from_protocol(recorded_cp2k_code, cdse_35, protocol=protocol)
    assert pipeline.hybrid_scf.mo_window.get_dict() == window
    assert pipeline.hybrid_scf.scf.cp2k.parameters['FORCE_EVAL']['DFT']['SCF']['ADDED_MOS'] == added


def test_hybrid_builder_keeps_a_given_window_and_added_mos(recorded_cp2k_code, cdse_35, tiny_qd):
    builder = HybridScfWorkChain.get_builder_from_protocol(
        recorded_cp2k_code, cdse_35, protocol='fast', overrides={'mo_window': {'virtual': 50}})
    assert builder.mo_window.get_dict() == {'occupied': 29, 'virtual': 50}
    assert builder.scf.cp2k.parameters['FORCE_EVAL']['DFT']['SCF']['ADDED_MOS'] == 52  # the window + fast's margin 2
    builder = HybridScfWorkChain.get_builder_from_protocol(
        recorded_cp2k_code, cdse_35, protocol='fast',
        overrides={'scf': {'cp2k': {'parameters': {'FORCE_EVAL': {'DFT': {'SCF': {'ADDED_MOS': 40}}}}}}})
    assert builder.scf.cp2k.parameters['FORCE_EVAL']['DFT']['SCF']['ADDED_MOS'] == 40
    small = HybridScfWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast')
    assert small.mo_window.get_dict() == {'occupied': 10, 'virtual': 10}  # In4PF9: 5 core atoms, the protocol stands
    assert small.scf.cp2k.parameters['FORCE_EVAL']['DFT']['SCF']['ADDED_MOS'] == 12


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_hybrid_builder_with_plain_pbe(cp2k_code, tiny_qd, protocol, tmp_path):
    """``functional='pbe'``: the protocol's single point without exact exchange or ADMM, which CP2K accepts; the
    window, ADDED_MOS and everything else as for PBE0."""
    from aiida_qdtraps.workchains.hybrid_scf import functional_name

    pbe0 = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol=protocol)
    pbe = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol=protocol, functional='pbe')
    hybrid, plain = pbe0.scf.cp2k.parameters.get_dict(), pbe.scf.cp2k.parameters.get_dict()
    assert functional_name(hybrid) == 'PBE0' and functional_name(plain) == 'PBE'
    assert plain['FORCE_EVAL']['DFT']['XC'] == {'XC_FUNCTIONAL': {'PBE': {}}}
    assert 'AUXILIARY_DENSITY_MATRIX_METHOD' not in plain['FORCE_EVAL']['DFT']
    for parameters in (hybrid, plain):
        parameters['FORCE_EVAL']['DFT'].pop('XC')
        parameters['FORCE_EVAL']['DFT'].pop('AUXILIARY_DENSITY_MATRIX_METHOD', None)
    assert plain == hybrid and pbe.mo_window.get_dict() == pbe0.mo_window.get_dict()
    assert_cp2k_accepts(pbe.scf.cp2k.parameters.get_dict(), tmp_path)


def test_hybrid_builder_refuses_an_unknown_functional(cp2k_code, tiny_qd):
    with pytest.raises(ValueError, match="functional 'b3lyp' is not available; choose one of"):
        HybridScfWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast', functional='b3lyp')
    with pytest.raises(ValueError, match="functional 'pbe' needs engine 'cp2k'"):
        HybridScfWorkChain.get_builder_from_protocol(None, tiny_qd, protocol='fast', engine='pyscf',
                                                     pyscf_code=cp2k_code, functional='pbe')


def test_xtb_protocol_has_no_basis_grid_or_kinds_and_cp2k_accepts_it(cp2k_code, tiny_qd, tmp_path):
    """The ``xtb`` relax protocol and the hybrid stage's ``functional='xtb'``: GFN1-xTB without Ewald, Fermi smearing
    at 300 K, none of the defaults' basis, grid or XC keys and no &KIND; the single point keeps the stage's prints and
    window; CP2K parses both."""
    from aiida_qdtraps.workchains.hybrid_scf import functional_name

    relax = QdRelaxWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='xtb')
    frames = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast', functional='xtb')
    pbe0 = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, tiny_qd, protocol='fast')
    for params in (relax.base.cp2k.parameters.get_dict(), frames.scf.cp2k.parameters.get_dict()):
        dft = params['FORCE_EVAL']['DFT']
        assert dft['QS']['METHOD'] == 'xTB' and dft['QS']['XTB'] == {'DO_EWALD': False, 'CHECK_ATOMIC_CHARGES': False}
        assert not {'MGRID', 'XC', 'BASIS_SET_FILE_NAME', 'POTENTIAL_FILE_NAME',
                    'AUXILIARY_DENSITY_MATRIX_METHOD'} & set(dft)
        assert 'KIND' not in params['FORCE_EVAL']['SUBSYS']
        assert dft['SCF']['SMEAR'] == {'_': True, 'METHOD': 'FERMI_DIRAC', 'ELECTRONIC_TEMPERATURE': 300}
        assert dft['POISSON'] == {'PERIODIC': 'NONE', 'POISSON_SOLVER': 'ANALYTIC'}
        assert functional_name(params) == 'GFN1-xTB'
        assert cp2k_physics_settings(params)['qs_method'] == 'XTB'
        assert_cp2k_accepts(params, tmp_path, '2\n\nCd 0 0 0\nSe 2.6 0 0\n')
    assert relax.base.cp2k.parameters['GLOBAL']['RUN_TYPE'] == 'GEO_OPT'
    single = frames.scf.cp2k.parameters.get_dict()['FORCE_EVAL']['DFT']
    hybrid = pbe0.scf.cp2k.parameters.get_dict()['FORCE_EVAL']['DFT']
    assert single['PRINT'] == hybrid['PRINT'] and single['SCF']['ADDED_MOS'] == hybrid['SCF']['ADDED_MOS']
    assert frames.mo_window.get_dict() == pbe0.mo_window.get_dict()


def test_xtb_electronic_state_counts_all_electrons(tiny_qd):
    """Under xTB there is no &KIND to read valences from: the parity of all electrons decides (closed-shell cores),
    and elements beyond Rn are refused by name."""
    from aiida import orm
    from ase import Atoms

    from aiida_qdtraps.workchains.electronic_state import check_electronic_state

    xtb = {'FORCE_EVAL': {'DFT': {'QS': {'METHOD': 'xTB'}}}}
    assert check_electronic_state(tiny_qd, xtb, 0, 1) == (None, '')  # In4PF9: 292 electrons
    problem, message = check_electronic_state(tiny_qd, xtb, 0, 2)
    assert problem == 'multiplicity' and message.startswith('292 electrons (charge 0)')
    assert check_electronic_state(tiny_qd, xtb, 1, 2) == (None, '')
    heavy = orm.StructureData(ase=Atoms('UO2', positions=[[0, 0, 0], [1.8, 0, 0], [-1.8, 0, 0]], cell=[10] * 3))
    assert check_electronic_state(heavy, xtb, 0, 1) == (
        'kinds', 'GFN1-xTB has parameters for H–Rn (Z <= 86), not for Z = 92')


def test_gfn1_valence_electrons():
    """GFN1-xTB valence: the group for groups 1-11, group - 10 for groups 12-18 (filled d10 cores; Zn, Cd, Hg keep
    s and p only). The real xTB MD test checks the count against CP2K's own for Cd, Se, Cl and H."""
    from ase.data import atomic_numbers

    from aiida_qdtraps.workchains.electronic_state import gfn1_valence, valence_electrons

    expected = {'H': 1, 'He': 2, 'C': 4, 'O': 6, 'F': 7, 'Na': 1, 'P': 5, 'Cl': 7, 'K': 1, 'Fe': 8, 'Cu': 11,
                'Zn': 2, 'Ga': 3, 'Se': 6, 'Br': 7, 'Ag': 11, 'Cd': 2, 'In': 3, 'Te': 6, 'I': 7, 'Cs': 1, 'Ba': 2,
                'Au': 11, 'Hg': 2, 'Pb': 4, 'Bi': 5, 'Rn': 8}
    assert {element: gfn1_valence(atomic_numbers[element]) for element in expected} == expected
    for number in (0, 60, 87):
        with pytest.raises(ValueError, match=f'atomic number {number}'):
            gfn1_valence(number)
    xtb = {'FORCE_EVAL': {'DFT': {'QS': {'METHOD': 'xTB'}}}}
    assert valence_electrons(['In', 'P', 'F', 'F'], xtb) == 3 + 5 + 14

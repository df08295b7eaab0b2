"""``QdRelaxWorkChain`` with ``engine: qe`` (``QdQeRelaxWorkChain``): protocol builder, input checks, and a real pw.x
relax + pp.x cube."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.io.cube import read_cube_data
from ase.units import Bohr

from aiida_qdtraps.profile import QE_PREPEND
from aiida_qdtraps.workchains.charge_flow import BaderChargeFlowWorkChain
from aiida_qdtraps.workchains.qe import (
    PSEUDO_FAMILY_LABEL,
    compare_relaxed_qds,
    ensure_upf_family,
    format_comparison,
    qe_protocol_inputs,
)
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

RY_PER_BOHR_TO_EV_PER_ANG = 13.605693122994 / Bohr


def qe_code(aiida_code_installed, name, plugin):
    executable = shutil.which(f'{name}.x')
    if executable is None:
        pytest.fail(f'{name}.x is not installed; run `make setup`')
    return aiida_code_installed(label=name, default_calc_job_plugin=plugin, filepath_executable=executable,
                                prepend_text=QE_PREPEND)


@pytest.fixture
def pw_code(aiida_code_installed):
    return qe_code(aiida_code_installed, 'pw', 'quantumespresso.pw')


@pytest.fixture
def pp_code(aiida_code_installed):
    return qe_code(aiida_code_installed, 'pp', 'quantumespresso.pp')


@pytest.fixture
def projwfc_code(aiida_code_installed):
    return qe_code(aiida_code_installed, 'projwfc', 'quantumespresso.projwfc')


@pytest.fixture
def upf_family(aiida_profile):
    """The GTH-PBE UPF family for In, P, F, H (made from CP2K's GTH_POTENTIALS, as setup does)."""
    status, _ = ensure_upf_family(elements=['In', 'P', 'F', 'H'])
    assert status in ('created', 'exists')
    return orm.load_group(PSEUDO_FAMILY_LABEL)


def test_family_is_made_once_and_has_cp2k_valences(upf_family):
    assert {p.element: p.z_valence for p in upf_family.nodes} == {'In': 13, 'P': 5, 'F': 7, 'H': 1}
    status, _ = ensure_upf_family(elements=['In', 'P', 'F', 'H'])
    assert status == 'exists'
    assert ensure_upf_family('other-family', elements=['In', 'P'])[0] == 'created'
    status, detail = ensure_upf_family('other-family', elements=['In', 'P', 'H'])  # new content: new family, old kept
    assert status == 'updated' and 'other-family-old-' in detail
    assert sorted(p.element for p in orm.load_group('other-family').nodes) == ['H', 'In', 'P']


def test_protocol_builder_sets_isolated_gamma_charge_and_spin(pw_code, pp_code, projwfc_code, upf_family, tiny_qd):
    builder = QdRelaxWorkChain.get_builder_from_protocol(pw_code, tiny_qd, protocol='moderate', charge=1,
                                                         multiplicity=2, pp_code=pp_code, projwfc_code=projwfc_code)
    assert builder.engine.value == 'qe'
    parameters = builder.qe.pw.parameters.get_dict()
    table = qe_protocol_inputs(tiny_qd, 'moderate')
    assert parameters['SYSTEM']['assume_isolated'] == 'mt'
    assert parameters['SYSTEM']['ecutwfc'] == table['qe']['pw']['parameters']['SYSTEM']['ecutwfc']
    assert parameters['SYSTEM']['ecutrho'] == 4 * parameters['SYSTEM']['ecutwfc']
    assert parameters['CONTROL']['calculation'] == 'relax'
    assert builder.qe.pw.settings['gamma_only'] is True
    assert builder.qe.kpoints.get_kpoints_mesh()[0] == [1, 1, 1]
    assert {k: p.element for k, p in builder.qe.pw.pseudos.items()} == {'In': 'In', 'P': 'P', 'F': 'F'}
    assert builder.charge.value == 1 and builder.multiplicity.value == 2
    assert builder.qe_pp.parameters['INPUTPP']['plot_num'] == 0
    assert builder.qe_projwfc.code.uuid == projwfc_code.uuid and 'deltae' in builder.qe_projwfc.parameters['PROJWFC']
    assert 'base' not in builder._inputs(prune=True)  # the CP2K namespace stays empty
    fast = QdRelaxWorkChain.get_builder_from_protocol(pw_code, tiny_qd, protocol='fast')
    assert fast.box_vacuum.value < builder.box_vacuum.value
    assert fast.qe.pw.parameters['SYSTEM']['ecutwfc'] <= parameters['SYSTEM']['ecutwfc']
    assert 'code' not in fast.qe_pp and 'code' not in fast.qe_projwfc
    assert fast.qe.pw.parameters['SYSTEM']['assume_isolated'] == 'none'  # neutral: no MT in a small box
    explicit = QdRelaxWorkChain.get_builder_from_protocol(
        pw_code, tiny_qd, protocol='fast',
        overrides={'qe': {'pw': {'parameters': {'SYSTEM': {'assume_isolated': 'mt'}}}}})
    assert explicit.qe.pw.parameters['SYSTEM']['assume_isolated'] == 'mt'


def test_missing_cutoff_and_family_are_named(pw_code, tiny_qd):
    with pytest.raises(ValueError, match='family `no-such-family` is not installed'):
        QdRelaxWorkChain.get_builder_from_protocol(pw_code, tiny_qd, protocol='fast',
                                                   overrides={'pseudo_family': 'no-such-family'})
    structure = orm.StructureData(cell=np.eye(3) * 10)
    structure.append_atom(position=(0, 0, 0), symbols='Au')
    with pytest.raises(ValueError, match=r"no measured QE cutoff for element\(s\) \['Au'\]"):
        qe_protocol_inputs(structure, 'fast')


def test_impossible_spin_state_is_refused_before_pw_runs(pw_code, upf_family, tiny_qd):
    builder = QdRelaxWorkChain.get_builder_from_protocol(pw_code, tiny_qd, protocol='fast', multiplicity=2)
    _, node = run_get_node(builder)
    assert node.exit_status == QdRelaxWorkChain.exit_codes.ERROR_INCONSISTENT_CHARGE_MULTIPLICITY.status
    assert '120 valence electrons (charge 0) cannot have multiplicity 2' in node.exit_message
    assert node.exit_message.startswith('the QE relax (QdQeRelaxWorkChain<')
    (engine,) = node.called
    assert [c.process_label for c in engine.called] == ['center_in_box']  # no pw.x


def test_engine_needs_its_namespace(pw_code, upf_family, tiny_qd):
    builder = QdRelaxWorkChain.get_builder_from_protocol(pw_code, tiny_qd, protocol='fast')
    inputs = {'engine': orm.Str('cp2k'), 'structure': tiny_qd, 'qe': dict(builder.qe)}
    with pytest.raises(ValueError, match="engine 'cp2k' needs the `base` inputs"):
        run_get_node(QdRelaxWorkChain, **inputs)


@pytest.fixture
def tiny_inp_cluster():
    """H2In-PH2, the smallest In-P bonded cluster (22 valence electrons), slightly off its PBE geometry.

    The 14-atom In4PF9 QD of the CP2K tests (120 electrons) costs several CPU minutes per pw.x SCF here, beyond the CI
    budget; its QE relax is run outside the tests (docs/qe.md).
    """
    atoms = Atoms('InPH4', positions=[[0, 0, 0], [2.62, 0, 0], [-0.85, 1.47, 0], [-0.85, -1.47, 0],
                                      [3.05, 1.25, 0.55], [3.05, -1.25, 0.55]])
    return orm.StructureData(ase=atoms).store()


@pytest.mark.slow
def test_real_pw_relax_pp_density_cube_bader(pw_code, pp_code, projwfc_code, baderkit_code, upf_family,
                                             tiny_inp_cluster):
    """H2In-PH2, fast protocol made cheaper still: pw.x relaxes it (Gamma, neutral: no MT), pp.x writes the cube,
    projwfc.x gives Löwdin charges and the PDOS, and the Bader charge-flow work chain takes the cube as it takes CP2K's.

    Plumbing, not physics: 25 Ry, 2.5 Å vacuum and loose thresholds keep it to a few BFGS steps (docs/qe.md has the
    converged cutoffs).
    """
    overrides = {'box_vacuum': 2.5, 'qe': {'pw': {'parameters': {
        'SYSTEM': {'ecutwfc': 25.0, 'ecutrho': 100.0},
        'CONTROL': {'forc_conv_thr': 2.0e-2, 'etot_conv_thr': 1.0e-2}}}}}
    builder = QdRelaxWorkChain.get_builder_from_protocol(pw_code, tiny_inp_cluster, protocol='fast', pp_code=pp_code,
                                                         projwfc_code=projwfc_code, overrides=overrides)
    assert builder.qe.pw.parameters['SYSTEM']['ecutwfc'] == 25.0
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)

    relaxed = results['relaxed_structure']
    assert relaxed.get_ase().get_chemical_formula() == 'H4InP'
    parameters = results['output_parameters'].get_dict()
    threshold = builder.qe.pw.parameters['CONTROL']['forc_conv_thr']  # Ry/bohr
    trajectory = results['output_trajectory']
    forces = trajectory.get_array('forces')  # eV/Å
    assert np.abs(forces[-1]).max() < threshold * RY_PER_BOHR_TO_EV_PER_ANG
    energies = trajectory.get_array('energy')
    assert energies[-1] < energies[0]
    displacement = np.linalg.norm(relaxed.get_ase().positions - trajectory.get_step_structure(0).get_ase().positions,
                                  axis=1)
    assert displacement.max() > 1e-3  # the geometry did move
    assert parameters['number_of_electrons'] == 22

    cube = results['density_cube']
    density, atoms = read_cube_data(io.StringIO(cube.get_content()))
    volume_element_bohr3 = abs(np.linalg.det(atoms.cell)) / Bohr**3 / density.size
    # e/bohr³ as CP2K's ELECTRON_DENSITY cube: integrates to the 22 valence electrons of H2In-PH2
    assert density.sum() * volume_element_bohr3 == pytest.approx(22, rel=1e-3)
    assert len(atoms) == len(relaxed.sites)
    np.testing.assert_allclose(atoms.positions - atoms.positions[0],
                               relaxed.get_ase().positions - relaxed.get_ase().positions[0], atol=1e-3)

    # projwfc.x on the relaxed run: Löwdin populations sum to the 22 electrons (up to the spilling), In is positive,
    # HOMO/LUMO from its eigenvalues bracket pw.x's Fermi level, and the PDOS figure is a PNG
    lowdin = results['lowdin_charges']
    assert lowdin.creator.process_label == 'analyse_projwfc'
    assert 0 <= lowdin.base.attributes.get('spilling') < 0.05
    assert lowdin.get_array('populations').sum() == pytest.approx(22, rel=0.05)
    lowdin_charges = dict(zip(relaxed.get_ase().get_chemical_symbols(), lowdin.get_array('charges')))
    assert lowdin_charges['In'] > 0
    orbitals = results['orbital_summary'].get_dict()
    assert orbitals['homo'] < parameters['fermi_energy'] < orbitals['lumo'] and orbitals['gap'] > 1.0
    assert results['pdos_plot'].get_content('rb')[:8] == b'\x89PNG\r\n\x1a\n'

    # density -> Bader (baderkit through aiida-shell) -> charge flow, with the UPF valence charges
    valence = {p.element: round(p.z_valence) for p in builder.qe.pw.pseudos.values()}
    flow, flow_node = run_get_node(BaderChargeFlowWorkChain, structure=relaxed, density_cube=cube,
                                   valence=orm.Dict(valence), charge=orm.Int(0), bader={'code': baderkit_code})
    assert flow_node.is_finished_ok, (flow_node.exit_status, flow_node.exit_message)
    summary = flow['summary'].get_dict()
    assert summary['valence_electrons'] == 22
    assert abs(summary['electrons_in_basins'] + summary['vacuum_charge'] - 22) < 0.01
    charges = dict(zip(relaxed.get_ase().get_chemical_symbols(), flow['bader_charges'].get_array('charges')))
    assert charges['In'] > 0  # In gives electrons away, as in the CP2K densities


# --- cross-engine comparison (examples/cross_engine.py) ------------------------------------------------------------


def test_compare_relaxed_qds_aligns_and_summarises(aiida_profile):
    """A QD and a rotated, shifted copy with one ligand moved: RMSD after alignment, same bonds, Bader means."""
    from ase.build import molecule

    a = molecule('CH4')
    b = a.copy()
    b.positions[1] += [0.0, 0.0, 0.12]  # one C-H bond stretched/bent
    b.rotate(37, 'x', center='COM')
    b.translate([1.0, -2.0, 0.5])
    charges_a, charges_b = orm.ArrayData(), orm.ArrayData()
    charges_a.set_array('charges', np.array([-0.4, 0.1, 0.1, 0.1, 0.1]))
    charges_b.set_array('charges', np.array([-0.6, 0.2, 0.15, 0.15, 0.1]))
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(b.get_chemical_symbols(), np.array([b.positions, b.positions]))
    trajectory.set_array('energy', np.array([-1.0, -1.1]))
    trajectory.set_array('forces', np.array([np.zeros((5, 3)), np.full((5, 3), 0.01)]))
    a.cell = b.cell = np.eye(3) * 10
    result = compare_relaxed_qds(cp2k_relaxed=orm.StructureData(ase=a), qe_relaxed=orm.StructureData(ase=b),
                                 cp2k_charges=charges_a, qe_charges=charges_b, qe_trajectory=trajectory,
                                 check_80=trajectory)
    values = result.get_dict()
    assert result.is_stored and result.creator.process_label == 'compare_relaxed_qds'
    assert 0.02 < values['rmsd'] < 0.12 / np.sqrt(5) + 0.01  # only the moved H contributes, shared by the fit
    assert values['max_deviation_atom'] == 'H1'
    cp2k_bonds, qe_bonds = values['bonds']['C-H']
    assert cp2k_bonds['n'] == qe_bonds['n'] == 4 and qe_bonds['max'] > cp2k_bonds['max']
    assert values['bader_dq'] == {'cp2k': {'C': -0.4, 'H': pytest.approx(0.1)},
                                  'qe': {'C': -0.6, 'H': pytest.approx(0.15)}}
    assert values['qe_relax_steps'] == 2 and values['qe_final_max_force'] == pytest.approx(0.01)
    assert values['qe_force_check'] == {'80': pytest.approx(0.01)}
    assert '| C-H mean bond' in format_comparison(values)


def test_analyse_projwfc_on_recorded_output(aiida_profile):
    """``analyse_projwfc`` on the recorded projwfc.x output of InCl3: Löwdin charges from the UPF valences; no
    projections (e.g. spin-polarised), so no HOMO/LUMO and no figure; a structure with other atoms is refused."""
    import pathlib

    from aiida_qdtraps.pseudos import gth_to_upf, parse_gth_potential
    from aiida_qdtraps.workchains.qe import UpfData, analyse_projwfc

    text = (pathlib.Path(__file__).parents[1] / 'data' / 'qe' / 'projwfc_incl3.out').read_text()
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_bytes(text.encode(), 'aiida.out')
    pseudos = {el: UpfData(io.BytesIO(gth_to_upf(parse_gth_potential(el, name)).encode()), filename=f'{el}.upf')
               for el, name in (('In', 'GTH-PBE-q13'), ('Cl', 'GTH-PBE-q7'))}
    atoms = Atoms('InCl3', positions=[[4, 4, 4], [6.3, 4, 4], [2.85, 5.99, 4], [2.85, 2.01, 4]], cell=[8, 8, 8])
    parameters = orm.Dict({'number_of_electrons': 34.0})
    results = analyse_projwfc(retrieved, orm.StructureData(ase=atoms), parameters, **pseudos)
    charges = results['lowdin_charges']
    np.testing.assert_allclose(charges.get_array('charges'), [13 - 12.2918, 7 - 7.1122, 7 - 7.1554, 7 - 7.1555])
    assert charges.base.attributes.get('spilling') == 0.0084
    assert set(results) == {'lowdin_charges', 'orbital_summary'}
    assert results['orbital_summary']['lowdin_charge_by_element']['In'] == pytest.approx(0.7082)
    with pytest.raises(ValueError, match='4 Löwdin atoms for 2 sites'):
        analyse_projwfc(retrieved, orm.StructureData(ase=atoms[:2]), parameters, **pseudos)

"""The CP2K output readers on recorded outputs of CP2K 2023.1 to 2026.2 (tests/data/cp2k/versions/README.md).

Expected numbers are copied from the recordings' own lines; the forces of both table layouts are also compared with
dpdata's reader, and one input run on CP2K 2023.1, 2025.2 and 2026.2 must read the same in every block.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from aiida_qdtraps.analysis import mlff
from aiida_qdtraps.analysis.soundness import read_point
from aiida_qdtraps.parsers import cp2k_files
from aiida_qdtraps.parsers.cp2k import QdCp2kParser
from aiida_qdtraps.parsers.cp2k_progress import (
    read_evaluation_energies,
    read_run_type,
    read_scf_cycles,
    read_trajectory_steps,
    stop_reason,
)

VERSIONS_DIR = Path(__file__).parent.parent / 'data' / 'cp2k' / 'versions'

#: file -> what its lines say: version string, run type, first and last ``ENERGY| Total FORCE_EVAL`` value and their
#: count, the steps of the last SCF cycle (``SCF run converged in N steps``) and its last convergence column, CP2K's
#: total wall time (``CP2K  1  1.0 ...`` last column), ``The number of warnings for this run is``, trajectory steps.
RECORDED = {
    '2023.1_in4pf9_energy_force.out': dict(
        version='2023.1', run_type='ENERGY_FORCE', energies=(-449.786161809262239, -449.786161809262239, 1),
        last_scf=(27, 0.00000028), walltime=45.874, warnings=28, steps=[]),
    '2024.1_md.out': dict(
        version='2024.1', run_type='MD', energies=(-8580.117372366823474, -8580.607578459876095, 6),
        last_scf=(18, 0.00000092), walltime=2379.285, warnings=1, steps=[6, 7, 8, 9, 10]),
    '2024.3_geo_opt.out': dict(
        version='2024.3', run_type='GEO_OPT', energies=(-13.725689111701852, -13.726193434833586, 5),
        last_scf=None, walltime=48.425, warnings=2, steps=[1, 2, 3]),
    '2025.1_water_energy_force.out': dict(
        version='2025.1', run_type='ENERGY_FORCE', energies=(-137.622737586022765, -137.622737586022765, 1),
        last_scf=(43, 0.00000095), walltime=27.098, warnings=2, steps=[]),
    '2025.2_in4pf9_energy_force.out': dict(
        version='2025.2', run_type='ENERGY_FORCE', energies=(-449.786161809262296, -449.786161809262296, 1),
        last_scf=(27, 0.00000028), walltime=32.420, warnings=28, steps=[]),
    '2026.2_in4pf9_energy_force.out': dict(
        version='2026.2', run_type='ENERGY_FORCE', energies=(-449.786161809262126, -449.786161809262126, 1),
        last_scf=(27, 0.00000028), walltime=31.613, warnings=28, steps=[]),
    '2025.2_geo_opt_max_iter.out': dict(
        version='2025.2', run_type='GEO_OPT', energies=(-450.041764848687308, -450.105905643765482, 6),
        last_scf=(16, 0.00000826), walltime=175.890, warnings=0, steps=[1, 2, 3]),
    '2026.2_md/aiida.out': dict(
        version='2026.2', run_type='MD', energies=(-450.144904620814430, -450.144167917309062, 5),
        last_scf=(3, 0.00000690), walltime=39.213, warnings=1, steps=[5, 6, 7, 8]),
    '2026.2_geo_opt.out': dict(
        version='2026.2', run_type='GEO_OPT', energies=(-450.041764848687080, -450.145212015420782, 6),
        last_scf=(13, 3.63e-06), walltime=793.429, warnings=0, steps=[1, 2, 35]),
}


def _read(name: str) -> str:
    if name.startswith('2023.1_'):  # the 2023.1 recordings of this project's own runs
        return (VERSIONS_DIR.parent / 'grid' / 'in4pf9_200ry.out').read_text()
    return (VERSIONS_DIR / name).read_text()


@pytest.mark.parametrize('name', sorted(RECORDED))
def test_version_run_type_energies_walltime(name):
    text, expected = _read(name), RECORDED[name]
    version = cp2k_files.parse_cp2k_version(text)
    assert version == expected['version']
    assert version in cp2k_files.TESTED_CP2K_VERSIONS
    assert cp2k_files.untested_version_warning(version) is None
    assert read_run_type(text) == expected['run_type']
    first, last, count = expected['energies']
    energies = cp2k_files.read_total_energies(text)
    assert len(energies) == count
    assert energies[0] == pytest.approx(first, abs=1e-12) and energies[-1] == pytest.approx(last, abs=1e-12)
    assert read_evaluation_energies(text).tolist() == energies.tolist()
    assert cp2k_files.parse_total_energy(text) == pytest.approx(last, abs=1e-12)
    assert cp2k_files.parse_total_walltime(text) == pytest.approx(expected['walltime'])
    assert read_trajectory_steps(text) == expected['steps']


@pytest.mark.parametrize('name', sorted(name for name, expected in RECORDED.items() if expected['last_scf']))
def test_last_scf_cycle(name):
    n_steps, last_residual = RECORDED[name]['last_scf']
    cycle = read_scf_cycles(_read(name))[-1]
    assert cycle.status == 'converged'
    assert len(cycle.residuals) == n_steps
    assert cycle.residuals[-1] == pytest.approx(last_residual, rel=1e-6)


@pytest.mark.parametrize('name', sorted(RECORDED))
def test_aiida_cp2k_energy_and_warnings_agree(name):
    """aiida-cp2k's own reader (the 9th word of the ``ENERGY|`` line) gives the same energy in both layouts."""
    from aiida_cp2k.utils import parse_cp2k_output

    text, expected = _read(name), RECORDED[name]
    parsed = parse_cp2k_output(text)
    assert parsed['energy'] == pytest.approx(expected['energies'][1], abs=1e-12)
    assert parsed['nwarnings'] == expected['warnings']


@pytest.mark.parametrize(('name', 'mulliken', 'hirshfeld'), [
    ('2024.3_geo_opt.out', (-0.163454, 0.081726), (-0.896, 0.451)),
    ('2025.1_water_energy_force.out', (-0.404041, 0.219739), (-1.185, 0.564)),
])
def test_population_analyses(name, mulliken, hirshfeld):
    """First and last net charge of the last Mulliken and Hirshfeld tables, as printed."""
    text = _read(name)
    charges = {analysis: cp2k_files.parse_atomic_charges(text, analysis) for analysis in ('mulliken', 'hirshfeld')}
    assert (charges['mulliken'][0], charges['mulliken'][-1]) == pytest.approx(mulliken, abs=1e-6)
    assert (charges['hirshfeld'][0], charges['hirshfeld'][-1]) == pytest.approx(hirshfeld, abs=1e-3)


# -- one input, three CP2K versions -----------------------------------------------------------------------------------
SAME_INPUT = ['2025.2_in4pf9_energy_force.out', '2026.2_in4pf9_energy_force.out']


@pytest.mark.parametrize('name', SAME_INPUT)
def test_same_input_reads_the_same_on_every_version(name):
    """``grid/in4pf9_200ry.inp`` run on CP2K 2023.1, 2025.2 and 2026.2 (same basis and potential names): every block
    the project reads gives the 2023.1 numbers, whatever its layout (forces, energy line, dipole digits)."""
    old, new = _read('2023.1_in4pf9_energy_force.out'), _read(name)
    assert cp2k_files.parse_total_energy(new) == pytest.approx(cp2k_files.parse_total_energy(old), abs=1e-10)
    assert cp2k_files.parse_forces(new) == pytest.approx(cp2k_files.parse_forces(old), abs=1e-8)
    old_mo, new_mo = cp2k_files.parse_mo_eigenvalues(old), cp2k_files.parse_mo_eigenvalues(new)
    assert set(new_mo) == set(old_mo) == {'alpha'}
    assert np.array_equal(new_mo['alpha'], old_mo['alpha']) and new_mo['alpha'].shape == (72, 2)
    for analysis in ('mulliken', 'hirshfeld', 'lowdin'):
        charges = cp2k_files.parse_atomic_charges(new, analysis)
        assert charges.shape == (14,)
        assert np.array_equal(charges, cp2k_files.parse_atomic_charges(old, analysis)), analysis
    assert cp2k_files.parse_dipole_moment(new) == pytest.approx(cp2k_files.parse_dipole_moment(old), abs=1e-6)
    assert cp2k_files.parse_grid_quality(new) == cp2k_files.parse_grid_quality(old) == {
        'grid_electron_error': -0.0019400132, 'wavelet_edge_warnings': 28}
    assert cp2k_files.parse_reported_gap(new) == cp2k_files.parse_reported_gap(old)
    old_cycle, new_cycle = read_scf_cycles(old)[-1], read_scf_cycles(new)[-1]
    assert new_cycle.residuals == pytest.approx(old_cycle.residuals, rel=1e-7)
    assert read_point(new).forces == pytest.approx(read_point(old).forces, abs=1e-8)
    assert mlff.read_cp2k_atomic_forces(new) == pytest.approx(mlff.read_cp2k_atomic_forces(old), abs=1e-6)


# -- forces -----------------------------------------------------------------------------------------------------------
FORCES_2025 = '2025.1_water_energy_force.out'

#: file -> number of atoms, first and last row of ``FORCES| Atomic forces [hartree/bohr]`` as printed, and how close
#: the sum of the printed rows must come to the printed ``FORCES| Sum`` (rounding of n rows of 9 or 13 digits).
FORCES_2025_LAYOUT = {
    '2025.1_water_energy_force.out': (24, [-2.38872205e-02, 1.10439160e-02, -1.74324051e-02],
                                      [2.92003313e-03, 4.68007285e-03, 9.47586544e-03], 2e-9),
    '2025.2_in4pf9_energy_force.out': (14, [2.48389096e-03, -3.42368665e-03, -4.16835439e-05],
                                       [-5.40809612e-03, -8.55502290e-03, -5.89126067e-03], 2e-9),
    '2026.2_in4pf9_energy_force.out': (14, [2.48389096e-03, -3.42368665e-03, -4.16835439e-05],
                                       [-5.40809612e-03, -8.55502290e-03, -5.89126067e-03], 2e-9),
}


@pytest.mark.parametrize('name', sorted(FORCES_2025_LAYOUT))
def test_forces_of_the_2025_layout(name):
    """``FORCES| Atomic forces [hartree/bohr]`` of CP2K 2025.1: first and last rows as printed;
    the ``|f|`` column and the ``FORCES| Sum`` line agree with the rows read."""
    n_atoms, first, last, sum_tolerance = FORCES_2025_LAYOUT[name]
    text = _read(name)
    forces = cp2k_files.parse_forces(text)
    assert forces.shape == (n_atoms, 3)
    assert forces[0] == pytest.approx(first, abs=1e-15)
    assert forces[-1] == pytest.approx(last, abs=1e-15)
    norms = [float(row.split()[-1]) for row in re.findall(r'^ FORCES\|\s+\d+ .*$', text, re.M)]
    assert np.linalg.norm(forces, axis=1) == pytest.approx(norms, rel=1e-7)
    (total,) = re.findall(r'^ FORCES\| Sum\s+(\S+)\s+(\S+)\s+(\S+)', text, re.M)
    assert forces.sum(axis=0) == pytest.approx([float(x) for x in total], abs=sum_tolerance)


@pytest.mark.parametrize(('name', 'n_atoms'), [('2025.1_water_energy_force.out', 24),
                                               ('2026.2_in4pf9_energy_force.out', 14)])
def test_forces_of_the_2025_layout_agree_with_dpdata(name, n_atoms):
    """dpdata 1.1.0 reads the 2025 layout of a QS single point (its one-frame reader); energies and forces agree."""
    dpdata = pytest.importorskip('dpdata')
    path = VERSIONS_DIR / name
    text = path.read_text()
    system = dpdata.LabeledSystem(str(path), fmt='cp2k/output')
    assert system['forces'].shape == (1, n_atoms, 3)
    assert cp2k_files.parse_forces(text) * mlff.HARTREE_PER_BOHR_EV_PER_ANGSTROM == pytest.approx(
        system['forces'][0], abs=1e-6)
    assert cp2k_files.parse_total_energy(text) * mlff.HARTREE_EV == pytest.approx(system['energies'][0], rel=1e-7)


def test_forces_of_the_2023_layout_agree_with_dpdata():
    """``ATOMIC FORCES in [a.u.]`` of CP2K 2023.1, read here and by dpdata's ``cp2k/output`` (eV/Å)."""
    dpdata = pytest.importorskip('dpdata')
    path = VERSIONS_DIR.parent / 'grid' / 'in4pf9_200ry.out'
    forces = cp2k_files.parse_forces(path.read_text())
    assert forces.shape == (14, 3)
    system = dpdata.LabeledSystem(str(path), fmt='cp2k/output')
    assert forces * mlff.HARTREE_PER_BOHR_EV_PER_ANGSTROM == pytest.approx(system['forces'][0], abs=1e-6)


def test_mlff_and_soundness_readers_take_the_2025_layout():
    qs = _read(FORCES_2025)
    forces_ha_bohr = cp2k_files.parse_forces(qs)
    assert mlff.read_cp2k_atomic_forces(qs)[0] == pytest.approx(
        np.array([-2.38872205e-02, 1.10439160e-02, -1.74324051e-02]) * mlff.HARTREE_PER_BOHR_EV_PER_ANGSTROM)
    assert mlff.read_cp2k_atomic_forces(qs) == pytest.approx(
        forces_ha_bohr * mlff.HARTREE_PER_BOHR_EV_PER_ANGSTROM, rel=1e-12)
    point = read_point(qs)
    assert point.energy == pytest.approx(-137.622737586022765, abs=1e-12)
    assert point.forces == pytest.approx(forces_ha_bohr)
    energy_only = read_point(_read('2024.3_geo_opt.out'))
    assert energy_only.energy == pytest.approx(-13.726193434833586, abs=1e-12) and energy_only.forces is None


def test_forces_table_cut_off_is_not_read():
    """A table without its ``FORCES| Sum`` line (a job killed while writing it) is not taken for a complete one."""
    text = _read(FORCES_2025)
    assert len(cp2k_files.read_force_blocks(text)) == 1
    cut = text[:text.index(' FORCES|     10 ')]
    assert cp2k_files.read_force_blocks(cut) == []
    with pytest.raises(ValueError, match='no complete atomic forces table'):
        mlff.read_cp2k_atomic_forces(cut)


def test_other_units_are_refused():
    """FORCE_UNIT or ENERGY_UNIT set in the input: an error naming the unit, not numbers taken for Hartree."""
    text = _read(FORCES_2025)
    with pytest.raises(ValueError, match=r'is in \[eV/angstrom\]'):
        cp2k_files.parse_forces(text.replace('[hartree/bohr]', '[eV/angstrom]'))
    with pytest.raises(ValueError, match=r'is in \[eV\]'):
        cp2k_files.parse_total_energy(text.replace('energy [hartree]', 'energy [eV]'))


def test_monitor_rules_do_not_fail_on_another_energy_unit():
    """The CalcJob monitor reads running outputs: an energy in eV leaves the optimisation-stall rule out instead of
    raising in the daemon (the parser reports the unit)."""
    text = _read('2024.3_geo_opt.out').replace('energy [a.u.]:', 'energy [eV]:')
    with pytest.raises(ValueError, match=r'is in \[eV\]'):
        read_evaluation_energies(text)
    assert stop_reason(text, geo_window=1, geo_tolerance=1.0) is None
    assert stop_reason(_read('2024.3_geo_opt.out'), geo_window=1, geo_tolerance=1.0)[0] == 'geometry_stalled'


# -- version check ----------------------------------------------------------------------------------------------------
def test_version_strings():
    assert cp2k_files.parse_cp2k_version(' CP2K| version string:          CP2K version 2025.1\n') == '2025.1'
    assert cp2k_files.parse_cp2k_version('ENERGY| nothing here') is None
    warning = cp2k_files.untested_version_warning('2027.1')
    assert 'CP2K version 2027.1 is not among' in warning and '2025.1' in warning
    assert 'no "CP2K| version string" line' in cp2k_files.untested_version_warning(None)


def _parse(generate_cp2k_calc, text: str, tmp_path):
    path = tmp_path / 'aiida.out'
    path.write_text(text)
    node = generate_cp2k_calc({'aiida.out': path})
    results, calcfunction = QdCp2kParser.parse_from_node(node, store_provenance=False)
    from aiida import orm

    logs = [log.message for log in orm.Log.collection.get_logs_for(node)]
    return results, calcfunction, logs


@pytest.mark.parametrize('name', ['2024.3_geo_opt.out', '2025.1_water_energy_force.out', *SAME_INPUT])
def test_parser_reads_version_and_energy(generate_cp2k_calc, tmp_path, name):
    results, calcfunction, logs = _parse(generate_cp2k_calc, _read(name), tmp_path)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    params = results['output_parameters'].get_dict()
    assert params['cp2k_version'] == RECORDED[name]['version']
    assert params['energy'] == pytest.approx(RECORDED[name]['energies'][1], abs=1e-12)
    assert params['energy_units'] == 'a.u.'
    assert not any('not among the versions' in message for message in logs)


def test_parser_warns_about_an_untested_version(generate_cp2k_calc, tmp_path):
    text = _read(FORCES_2025).replace('CP2K version 2025.1', 'CP2K version 2027.1')
    results, calcfunction, logs = _parse(generate_cp2k_calc, text, tmp_path)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    params = results['output_parameters'].get_dict()
    assert params['cp2k_version'] == '2027.1'
    assert params['energy'] == pytest.approx(-137.622737586022765, abs=1e-12)  # read all the same
    assert any('CP2K version 2027.1 is not among the versions' in message for message in logs)


# -- the pipeline's PBE0 on CP2K 2026.2 -------------------------------------------------------------------------------
PBE0_2026 = VERSIONS_DIR / '2026.2_pbe0'

#: the same PBE0 (demo pipeline on In4PF9, `fast`) on CP2K 2023.1: its parsed ``output_parameters`` and trap labels
PBE0_2023 = {'energy': -448.64408795332, 'homo_ev': -9.9392781240773, 'lumo_ev': -5.1878012534767, 'n_ao': 230,
             'homo_index': 59, 'dipole_debye': [-1.3046172, 2.2142182, -0.037722018]}
LABELS_2023 = ['bulk', 'bulk', 'under-coordinated', 'bulk', 'under-coordinated'] + ['ligand'] * 9
TRAPS_2023 = [(2, 1.6889326937196), (4, 0.89155378231333), (2, 0.59665741034933)]  # (centre, depth eV), electrons


@pytest.fixture
def pbe0_2026_files(tmp_path):
    """The retrieved files of the 2026.2 PBE0 (its MOLDEN cut after the first 72 MOs, gzipped)."""
    import gzip

    molden = tmp_path / 'aiida-MOS-1_0.molden'
    molden.write_bytes(gzip.decompress((PBE0_2026 / 'aiida-MOS-1_0.molden.gz').read_bytes()))
    files = {name: PBE0_2026 / name for name in ('aiida.out', 'aiida-k1-1.pdos', 'aiida-k2-1.pdos',
                                                  'aiida-k3-1.pdos')}
    return files | {molden.name: molden}


def test_pbe0_of_cp2k_2026_parses_to_the_2023_numbers(generate_cp2k_calc, pbe0_2026_files):
    """The hybrid parser on CP2K 2026.2's PBE0 (``PRINT/DOS/PDOS`` input, PDOS files with a ``Total`` column and
    ``E(HOCO)`` line): the HOMO, LUMO, energy and dipole of the same input on 2023.1, and one PDOS per kind."""
    from aiida_qdtraps.parsers.cp2k_hybrid import Cp2kHybridParser

    results, calcfunction = Cp2kHybridParser.parse_from_node(generate_cp2k_calc(pbe0_2026_files),
                                                             store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    params = results['output_parameters'].get_dict()
    assert params['cp2k_version'] == '2026.2'
    assert params['energy'] == pytest.approx(PBE0_2023['energy'], abs=1e-6)
    assert params['homo_ev'] == pytest.approx(PBE0_2023['homo_ev'], abs=1e-5)
    assert params['lumo_ev'] == pytest.approx(PBE0_2023['lumo_ev'], abs=1e-5)
    assert (params['n_ao'], params['homo_index'], params['n_mo']) == (230, 59, 72)
    assert params['dipole_debye'] == pytest.approx(PBE0_2023['dipole_debye'], abs=1e-4)
    pdos = results['pdos']
    assert sorted(name for name in pdos.get_arraynames() if name.endswith('_projections')) == [
        'F_projections', 'In_projections', 'P_projections']
    # s, p, d (f for In): the Total column dropped; the same columns as CP2K 2025.2 prints in the old layout
    assert [pdos.get_array(f'{kind}_projections').shape for kind in ('In', 'P', 'F')] == [(230, 4), (230, 3), (230, 3)]
    assert cp2k_files.read_pdos((PBE0_2026 / 'aiida-k2-1.pdos').read_text())['fermi_ev'] == pytest.approx(
        PBE0_2023['homo_ev'], abs=1e-3)


def test_pbe0_of_cp2k_2026_gives_the_2023_trap_labels(pbe0_2026_files):
    """``label_traps`` on the 2026.2 MOLDEN window (10 occupied + 10 virtual MOs, as the `fast` pipeline labels
    In4PF9): every atom label and every trap of the 2023.1 run, depths within 0.1 meV."""
    from ase.io import read

    from aiida_qdtraps.analysis.traps import label_traps

    data = cp2k_files.read_molden(str(pbe0_2026_files['aiida-MOS-1_0.molden']))
    window = cp2k_files.mo_window(data, 10, 10)
    atoms = read(PBE0_2026 / 'aiida.coords.xyz')
    roles = [{'In': 'cation', 'P': 'anion', 'F': 'ligand'}[symbol] for symbol in atoms.get_chemical_symbols()]
    result = label_traps(atoms.get_chemical_symbols(), atoms.positions, data.energies[0][window],
                         data.occupations[0][window], data.coefficients[0][:, window], data.overlap, data.ao_atom,
                         roles=roles)
    assert list(result.atom_label) == LABELS_2023
    assert [(trap['carrier'], trap['center']) for trap in result.traps] == [('electron', c) for c, _ in TRAPS_2023]
    assert [trap['depth'] for trap in result.traps] == pytest.approx([d for _, d in TRAPS_2023], abs=1e-4)


def test_md_files_of_cp2k_2026_read_as_the_2023_ones():
    """The NVE part of an 8-step QdMdWorkChain on In4PF9 (`fast`, two 2-fs CSVR segments, then NVE; steps 5-8) run
    on CP2K 2026.2 and 2023.1 from the same relaxed QD: the energies file, positions and dipoles read the 2023.1
    numbers (the positions files are identical byte for byte)."""
    from aiida_qdtraps.parsers.cp2k_md_files import read_dipoles, read_ener, read_xyz_frames

    folder = VERSIONS_DIR / '2026.2_md'
    energies = read_ener((folder / 'aiida-1.ener').read_text())
    assert energies['step'].tolist() == [5, 6, 7, 8]
    assert energies['temperature'] == pytest.approx([150.623129581, 147.511985661, 144.083686742, 140.43067682])
    assert energies['potential_energy'] / mlff.HARTREE_EV == pytest.approx(
        [-450.144749902, -450.144572253, -450.144376498, -450.144167917], abs=1e-9)
    assert energies['conserved_energy'] / mlff.HARTREE_EV == pytest.approx(
        [-450.136163981, -450.136163675, -450.136163343, -450.136162993], abs=1e-9)
    symbols, steps, times, positions = read_xyz_frames((folder / 'aiida-pos-1.xyz').read_text())
    assert steps.tolist() == [5, 6, 7, 8] and positions.shape == (4, 14, 3) and symbols.count('F') == 9
    assert times == pytest.approx([5.0, 6.0, 7.0, 8.0])
    _, velocity_steps, _, velocities = read_xyz_frames((folder / 'aiida-vel-1.xyz').read_text())
    assert velocity_steps.tolist() == [5, 6, 7, 8] and np.isfinite(velocities).all()
    dipoles = read_dipoles((folder / 'aiida-moments.dat').read_text())
    assert dipoles.shape == (5, 3)  # the restart's step 4 and steps 5-8
    assert dipoles[0] == pytest.approx([-0.2543326161882414, 0.42122277838412864, -0.010381405088110229], abs=1e-6)


def test_geo_opt_steps_and_the_step_limit_of_cp2k_2025_and_2026():
    """The same GEO_OPT input on 2025.2 (stopped at MAX_ITER 3) and 2026.2 (to convergence): the first three
    evaluations agree to 1e-9 Ha; the step limit of 2025.2 is found as in 2023.1 (aiida-cp2k's check)."""
    from aiida_cp2k.utils import parse_cp2k_output

    limited, full = _read('2025.2_geo_opt_max_iter.out'), _read('2026.2_geo_opt.out')
    assert cp2k_files.read_total_energies(limited)[:3] == pytest.approx(
        cp2k_files.read_total_energies(full)[:3], abs=1e-9)
    assert 'MAXIMUM NUMBER OF OPTIMIZATION STEPS REACHED' in limited
    assert 'GEOMETRY OPTIMIZATION COMPLETED' in full
    assert parse_cp2k_output(limited)['nwarnings'] == 0


def test_parser_finds_the_step_limit_of_cp2k_2025(generate_cp2k_calc, tmp_path):
    """A 2025.2 GEO_OPT stopped by MAX_ITER ends in the exit code the geometry handler continues from."""
    results, calcfunction, _ = _parse(generate_cp2k_calc, _read('2025.2_geo_opt_max_iter.out'), tmp_path)
    assert calcfunction.exit_status == 501, calcfunction.exit_message  # ERROR_MAXIMUM_NUMBER_OPTIMIZATION_STEPS_REACHED
    assert results['output_parameters']['cp2k_version'] == '2025.2'

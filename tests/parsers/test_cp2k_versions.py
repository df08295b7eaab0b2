"""The CP2K output readers on recorded outputs of CP2K 2023.1 to 2025.1 (tests/data/cp2k/versions/README.md).

Expected numbers are copied from the recordings' own lines; the forces of both table layouts are also compared with
dpdata's reader.
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


# -- forces -----------------------------------------------------------------------------------------------------------
FORCES_2025 = '2025.1_water_energy_force.out'

#: file -> number of atoms, first and last row of ``FORCES| Atomic forces [hartree/bohr]`` as printed, and how close
#: the sum of the printed rows must come to the printed ``FORCES| Sum`` (rounding of n rows of 9 or 13 digits).
FORCES_2025_LAYOUT = {
    '2025.1_water_energy_force.out': (24, [-2.38872205e-02, 1.10439160e-02, -1.74324051e-02],
                                      [2.92003313e-03, 4.68007285e-03, 9.47586544e-03], 2e-9),
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


def test_forces_of_the_2025_layout_agree_with_dpdata():
    """dpdata 1.1.0 reads the 2025 layout of a QS single point (its one-frame reader); energies and forces agree."""
    dpdata = pytest.importorskip('dpdata')
    path = VERSIONS_DIR / '2025.1_water_energy_force.out'
    text = path.read_text()
    system = dpdata.LabeledSystem(str(path), fmt='cp2k/output')
    assert system['forces'].shape == (1, 24, 3)
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


@pytest.mark.parametrize('name', ['2024.3_geo_opt.out', '2025.1_water_energy_force.out'])
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

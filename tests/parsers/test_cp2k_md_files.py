"""Readers of CP2K MD files, on the files of a real 6-step In4PF9 NVT run (CP2K 2023.1, frames every 2 steps) and of
its continuation (restart file, counters continued)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.data import atomic_masses, atomic_numbers
from ase.units import Bohr, Hartree, kB

from aiida_qdtraps.parsers.cp2k_md_files import (
    AU_TIME_FS,
    DEBYE_E_ANGSTROM,
    frontier_levels,
    join_by_step,
    kinetic_energy_ev,
    md_evaluations,
    occupied_orbitals,
    read_dipoles,
    read_ener,
    read_mo_energies,
    read_xyz_frames,
    velocity_factor,
)


@pytest.fixture
def md_dir(data_dir):
    return data_dir / 'cp2k' / 'md'


def test_positions_and_velocities_frames(md_dir):
    symbols, steps, times, positions = read_xyz_frames((md_dir / 'aiida-pos-1.xyz').read_text())
    assert len(symbols) == 14 and symbols.count('F') == 9 and symbols.count('In') == 4
    assert steps.tolist() == [0, 2, 4, 6] and times.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert positions.shape == (4, 14, 3)
    assert positions[0, 0].tolist() == [4.68356805, 4.68356805, 4.68356805]
    _, vsteps, _, velocities = read_xyz_frames((md_dir / 'aiida-vel-1.xyz').read_text())
    assert vsteps.tolist() == steps.tolist()
    # the kinetic energy of the printed velocities (Å/fs) is the .ener file's, and its temperature 3N-6 degrees
    ener = read_ener((md_dir / 'aiida-1.ener').read_text())
    masses = atomic_masses[[atomic_numbers[s] for s in symbols]]
    kinetic = kinetic_energy_ev(masses, velocities)
    assert np.allclose(kinetic, ener['kinetic_energy'], rtol=2e-3)
    assert np.allclose(2 * kinetic / ((3 * 14 - 6) * kB), ener['temperature'], rtol=2e-3)


def test_ener_table_in_ev(md_dir):
    ener = read_ener((md_dir / 'aiida-1.ener').read_text())
    assert ener['step'].tolist() == [0, 2, 4, 6]
    assert ener['temperature'][0] == pytest.approx(150.0)
    assert ener['potential_energy'][0] == pytest.approx(-450.041751320 * Hartree)
    # the CSVR conserved quantity moves by < 0.3 meV over these 6 fs
    assert np.ptp(ener['conserved_energy']) < 3e-4


def test_dipoles_one_per_frame_in_e_angstrom(md_dir):
    dipoles = read_dipoles((md_dir / 'aiida-moments.dat').read_text())
    assert dipoles.shape == (4, 3)
    assert dipoles[0] == pytest.approx(np.array([5.8909233, -1.4125181, 2.0838534]) * DEBYE_E_ANGSTROM)


def test_xtb_dipoles_read_from_the_tb_dipole_lines(data_dir):
    """A GFN1-xTB MD (CP2K 2023.1, Cd6Se4Cl4, 3 steps) prints ``TB_DIPOLE| Moment [Debye]`` lines, one per frame."""
    dipoles = read_dipoles((data_dir / 'cp2k' / 'xtb' / 'md_moments_cd6se4cl4.dat').read_text())
    assert dipoles.shape == (4, 3)
    assert dipoles[0] == pytest.approx(np.array([-0.21158921, 6.76649799, -6.50022128]) * DEBYE_E_ANGSTROM)


def test_restarted_run_continues_the_step_numbers(md_dir):
    _, steps, times, _ = read_xyz_frames((md_dir / 'restarted' / 'aiida-pos-1.xyz').read_text())
    assert steps[0] == 8 and times[0] == 8.0
    assert read_ener((md_dir / 'restarted' / 'aiida-1.ener').read_text())['step'][0] == 8


def test_join_by_step_keeps_the_later_run_at_a_restart_point():
    first = (np.array([0, 2, 4]), {'x': np.array([0.0, 2.0, 4.0])})
    second = (np.array([4, 6]), {'x': np.array([40.0, 60.0])})
    steps, arrays = join_by_step([first, second])
    assert steps.tolist() == [0, 2, 4, 6] and arrays['x'].tolist() == [0.0, 2.0, 40.0, 60.0]
    with pytest.raises(ValueError, match='arrays'):
        join_by_step([first, (np.array([6]), {'y': np.array([1.0])})])
    with pytest.raises(ValueError, match='no MD run'):
        join_by_step([])


def test_truncated_last_frame_is_dropped_and_bad_files_are_refused(md_dir):
    text = (md_dir / 'aiida-pos-1.xyz').read_text()
    cut = text[:text.rindex(' P ')]
    assert read_xyz_frames(cut)[1].tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match='atom count'):
        read_xyz_frames('garbage\n')
    with pytest.raises(ValueError, match='no frame'):
        read_xyz_frames('')
    first_frame = '\n'.join(text.splitlines()[:16]) + '\n'
    with pytest.raises(ValueError, match='other elements'):
        read_xyz_frames(first_frame + first_frame.replace(' In ', ' Ga ', 1))


def test_velocity_units():
    assert velocity_factor('angstrom*fs^-1') == 1.0
    assert velocity_factor('bohr*au_t^-1') == pytest.approx(Bohr / AU_TIME_FS)
    assert AU_TIME_FS == pytest.approx(0.02418884, rel=1e-6)
    with pytest.raises(ValueError, match="'m/s'"):
        velocity_factor('m/s')


def test_mo_energies_of_each_frame(data_dir):
    """A real GFN1-xTB NVE run of H2O (CP2K 2023.1, h2o-xtb.inp next to the file): MOs 2-7 of the 4 frames."""
    text = (data_dir / 'cp2k' / 'md_mo' / 'h2o-xtb-mo.MOLog').read_text()
    indices, energies, occupations = read_mo_energies(text)
    assert energies.shape == occupations.shape == (4, 6)
    assert indices.tolist() == [2, 3, 4, 5, 6, 7]
    assert occupations[0].tolist() == [2.0, 2.0, 2.0, 0.0, 0.0, 0.0]
    homo, lumo = frontier_levels(indices, energies, homo_index=4)
    assert homo[0] == pytest.approx(-13.613981) and lumo[0] == pytest.approx(-4.311063)
    # the molecule vibrates: the gap (about 9.3 eV) changes from frame to frame
    gap = lumo - homo
    assert np.all((gap > 9.2) & (gap < 9.4)) and np.ptp(gap) > 1e-4
    with pytest.raises(ValueError, match=r'printed MO range \(2\.\.7\) does not hold the HOMO 7 and the LUMO 8'):
        frontier_levels(indices, energies, homo_index=7)


def test_mo_blocks_that_differ_or_hold_no_number_are_refused(data_dir):
    text = (data_dir / 'cp2k' / 'md_mo' / 'h2o-xtb-mo.MOLog').read_text()
    first = text.index('MO| EIGENVALUES', 10)
    # a block of one SCF iteration (printed for the first iteration from a restarted wavefunction) is not a frame's
    iteration = text[:first].replace('OCCUPATION NUMBERS', 'OCCUPATION NUMBERS AFTER SCF STEP 1')
    assert read_mo_energies(iteration + text)[1].shape == (4, 6)
    with pytest.raises(ValueError, match='different orbitals'):
        read_mo_energies(text[:first] + text[first:].replace(' MO|      7 ', ' XX|      7 ', 1))
    with pytest.raises(ValueError, match='MO block 1 \\(eV\\)'):
        read_mo_energies(text.replace('-13.613981', 'NaN', 1))
    assert read_mo_energies('')[1].shape == (0, 0)
    assert occupied_orbitals(' Number of electrons:      8\n Number of occupied orbitals:      4\n') == 4
    assert occupied_orbitals('no SCF') is None


def test_mo_block_of_a_restarted_scf_iteration_is_skipped(data_dir):
    """A real continued MD run (InF3, fast GAPW DFT, CP2K 2023.1: the restart point and one NVE step): CP2K printed a
    block after the first SCF iteration from the restarted wavefunction, then one per evaluated frame."""
    text = (data_dir / 'cp2k' / 'md_mo' / 'restarted-mo.MOLog').read_text()
    assert text.count('EIGENVALUES AND OCCUPATION NUMBERS') == 3 and 'AFTER SCF STEP 1' in text
    indices, energies, _ = read_mo_energies(text)
    assert energies.shape == (2, 8) and indices.tolist() == list(range(14, 22))
    homo, lumo = frontier_levels(indices, energies, homo_index=17)  # 34 valence electrons
    assert np.all((lumo - homo > 3.5) & (lumo - homo < 4.5))


def test_md_evaluations_tell_a_capped_run_from_one_stopped_at_its_wall_time(data_dir):
    """A run continued after its wall time that ends at its MAX_STEPS cap evaluates the forces once more after its
    last step (17 evaluations for steps 156-170); a run stopped at its wall time abandons that SCF (its start and
    steps 2-4: 4 evaluations)."""
    steps, trailing = md_evaluations((data_dir / 'cp2k' / 'md_capped' / 'aiida.out').read_text())
    assert steps == list(range(156, 171)) and trailing
    steps, trailing = md_evaluations((data_dir / 'cp2k' / 'md' / 'walltime_md.out').read_text())
    assert steps == [2, 3, 4] and not trailing
    assert md_evaluations('') == ([], False)

"""Cube → CHGCAR conversion (units, origin, non-cubic grids) and the Bader output readers."""

from __future__ import annotations

import gzip
import io

import ase.io.cube
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.vasp import VaspChargeDensity
from ase.units import Bohr

from aiida_qdtraps.analysis import bader


def gaussian_cube(path, shape=(20, 24, 28), spacing=0.3, origin=(1.0, -2.0, 0.5)):
    """A cube (e/bohr³) holding two normalised Gaussians (3 e and 5 e) on a non-cubic grid; spacing/origin in Å."""
    axes = [origin[k] + spacing * np.arange(n) for k, n in enumerate(shape)]
    x, y, z = np.meshgrid(*axes, indexing='ij')
    centres = np.array([[origin[0] + 2.5, origin[1] + 3.0, origin[2] + 4.0],
                        [origin[0] + 3.5, origin[1] + 4.2, origin[2] + 4.5]])
    density = np.zeros(shape)
    for centre, electrons, width in zip(centres, (3.0, 5.0), (0.5, 0.6)):
        r2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
        density += electrons * np.exp(-r2 / (2 * width ** 2)) / (2 * np.pi * width ** 2) ** 1.5
    atoms = Atoms('HO', positions=centres, cell=np.diag(np.array(shape) * spacing))
    with open(path, 'w') as handle:
        ase.io.cube.write_cube(handle, atoms, density * Bohr**3, origin=np.array(origin))
    return path, centres, origin


def test_cube_to_chgcar_keeps_units_order_and_origin(tmp_path):
    handle, centres, origin = gaussian_cube(tmp_path / 'two.cube')
    info = bader.cube_to_chgcar(handle, tmp_path / 'CHGCAR')
    assert info['grid'] == [20, 24, 28]
    assert info['electrons_on_grid'] == pytest.approx(8.0, abs=1e-3)
    chg = VaspChargeDensity(str(tmp_path / 'CHGCAR'))
    assert chg.chg[-1].shape == (20, 24, 28)  # not transposed
    # ase stores ρ in e/Å³ in memory: it integrates to the same 8 electrons
    assert chg.chg[-1].sum() * chg.atoms[-1].get_volume() / chg.chg[-1].size == pytest.approx(8.0, abs=1e-3)
    np.testing.assert_allclose(chg.atoms[-1].positions, centres - origin, atol=1e-5)
    peak = np.unravel_index(np.argmax(chg.chg[-1]), chg.chg[-1].shape)
    np.testing.assert_allclose(np.array(peak) * 0.3, centres[0] - origin, atol=0.31)  # the sharper 3 e peak


def test_real_cube_density_units(data_dir):
    """The recorded CP2K PBE0 cube (e/bohr³) integrates to the 120 valence electrons of In4PF9 in e/Å³."""
    text = gzip.decompress((data_dir / 'bader' / 'in4pf9_pbe0_density.cube.gz').read_bytes()).decode()
    density, atoms = bader.read_density_cube(io.StringIO(text))
    assert bader.integrate_density(density, atoms) == pytest.approx(120.0, abs=0.1)
    assert density.shape == (48, 44, 51)
    reference, ase_atoms = ase.io.cube.read_cube_data(io.StringIO(text))  # ase's reader: e/bohr³, unshifted
    np.testing.assert_allclose(density, reference / Bohr**3)
    assert atoms.get_chemical_symbols() == ase_atoms.get_chemical_symbols()


def test_malformed_cubes_are_refused(tmp_path):
    path, _, _ = gaussian_cube(tmp_path / 'two.cube')
    lines = path.read_text().splitlines()
    (tmp_path / 'short.cube').write_text('\n'.join(lines[:-1]) + '\n')
    with pytest.raises(ValueError, match='values but its header announces'):
        bader.read_density_cube(tmp_path / 'short.cube')
    (tmp_path / 'empty.cube').write_text('\n'.join(lines[:6] + ['x' * 3]) + '\n')
    with pytest.raises(ValueError):
        bader.read_density_cube(tmp_path / 'empty.cube')


def test_parse_baderkit_and_acf_agree(data_dir):
    kit = bader.read_bader_file(data_dir / 'bader' / 'atom_summary.tsv')
    acf = bader.read_bader_file(data_dir / 'bader' / 'ACF.dat')
    assert kit.program == 'baderkit' and acf.program == 'bader'
    assert len(kit.populations) == len(acf.populations) == 14
    np.testing.assert_allclose(kit.populations, acf.populations, atol=1e-4)
    np.testing.assert_allclose(kit.volumes, acf.volumes, atol=1e-4)
    assert kit.vacuum_charge == pytest.approx(0.08672)
    assert acf.vacuum_volume == pytest.approx(895.1934)
    assert kit.total_electrons == pytest.approx(120.0374, abs=1e-3)


def test_electron_conservation_check(data_dir):
    result = bader.read_bader_file(data_dir / 'bader' / 'atom_summary.tsv')
    ok = bader.check_electron_conservation(result, 120.0, tolerance=0.1)
    assert ok['conserved'] and ok['difference'] == pytest.approx(0.0374, abs=1e-3)
    # e/bohr³ read as e/Å³ (the units trap) loses most electrons: refused
    wrong = bader.BaderResult(result.populations * Bohr**3, result.volumes, result.positions, 0.0, np.nan, 'baderkit')
    assert not bader.check_electron_conservation(wrong, 120.0)['conserved']
    with pytest.raises(ValueError, match='tolerance'):
        bader.check_electron_conservation(result, 120.0, tolerance=0)


def test_valence_charges_name_missing_elements():
    np.testing.assert_array_equal(bader.valence_charges(['In', 'P'], {'In': 13, 'P': 5}), [13, 5])
    with pytest.raises(ValueError, match=r"\['F'\]"):
        bader.valence_charges(['In', 'F'], {'In': 13})


def test_empty_bader_files_are_refused():
    with pytest.raises(ValueError, match='no atoms'):
        bader.parse_acf('    #  X  Y  Z  CHARGE\n')
    with pytest.raises(ValueError, match='header'):
        bader.parse_baderkit_atoms('a\tb\n1\t2\n')

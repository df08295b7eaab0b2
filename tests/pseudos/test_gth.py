"""GTH → UPF conversion: parsing CP2K's GTH_POTENTIALS, the tabulated functions, and pw.x on both file forms."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from ase.data import atomic_numbers
from scipy.integrate import simpson
from scipy.special import erf

from aiida_qdtraps.protocols import element_settings
from aiida_qdtraps.pseudos import (
    find_gth_potentials_file,
    gth_to_abinit_hgh,
    gth_to_upf,
    local_potential,
    parse_gth_potential,
    projector,
    radial_grid,
    write_upf_family,
)

ELEMENTS = sorted(element_settings())
RY_TO_EV = 13.605693122994


def potential(element):
    return parse_gth_potential(element, f"GTH-PBE-q{element_settings()[element]['valence']}")


def upf_array(text: str, tag: str) -> np.ndarray:
    match = re.search(rf'<{re.escape(tag)}[^>]*>(.*?)</{re.escape(tag)}>', text, re.DOTALL)
    assert match, tag
    return np.array(match.group(1).split(), dtype=float)


def upf_attribute(text: str, tag: str, name: str) -> str:
    match = re.search(rf'<{re.escape(tag)}\b[^>]*?\b{name}="([^"]*)"', text, re.DOTALL)
    assert match, (tag, name)
    return match.group(1)


@pytest.mark.parametrize('element', ELEMENTS)
def test_every_builder_element_converts_with_cp2k_valence(element):
    pot = potential(element)
    text = gth_to_upf(pot)
    assert pot.z_valence == element_settings()[element]['valence']
    assert float(upf_attribute(text, 'PP_HEADER', 'z_valence')) == pot.z_valence
    assert upf_attribute(text, 'PP_HEADER', 'element') == element
    r = upf_array(text, 'PP_R')
    assert len(r) % 2 == 1 and len(r) == int(upf_attribute(text, 'PP_MESH', 'mesh'))
    # PP_LOCAL is the analytic local part in Ry and tends to -2 Z_ion / r (Ry) far away
    vloc = upf_array(text, 'PP_LOCAL')
    np.testing.assert_allclose(vloc, 2 * local_potential(pot, r), rtol=1e-13, atol=1e-13)
    far = r > 8.0
    np.testing.assert_allclose(vloc[far] * r[far], -2.0 * pot.z_valence, rtol=1e-9)
    # the starting-guess density holds the valence charge
    rab = upf_array(text, 'PP_RAB')
    assert simpson(upf_array(text, 'PP_RHOATOM') * rab) == pytest.approx(pot.z_valence, rel=1e-6)
    # one beta per projector, D_ij = 2 h_ij (Ry), block-diagonal in l
    nbeta = sum(len(h) for _, h in pot.projectors)
    assert int(upf_attribute(text, 'PP_HEADER', 'number_of_proj')) == nbeta
    if nbeta:
        dij = upf_array(text, 'PP_DIJ').reshape(nbeta, nbeta)
        np.testing.assert_allclose(dij, dij.T)
        blocks = [2 * h for _, h in pot.projectors if len(h)]
        offset = 0
        for block in blocks:
            n = len(block)
            np.testing.assert_allclose(dij[offset:offset + n, offset:offset + n], block)
            offset += n
        assert np.count_nonzero(dij) == sum(np.count_nonzero(b) for b in blocks)


@pytest.mark.parametrize('element', ['In', 'Pb', 'F', 'Zn'])
def test_tabulated_projectors_are_normalised_gth_projectors(element):
    pot = potential(element)
    text = gth_to_upf(pot)
    r, rab = radial_grid(atomic_numbers[element])
    index = 1
    for l, (r_l, h) in enumerate(pot.projectors):
        for i in range(len(h)):
            tag = f'PP_BETA.{index}'
            beta = upf_array(text, tag)
            assert int(upf_attribute(text, tag, 'angular_momentum')) == l
            cutoff = int(upf_attribute(text, tag, 'cutoff_radius_index'))
            assert cutoff % 2 == 0 and np.all(beta[cutoff:] == 0)
            np.testing.assert_allclose(beta[:cutoff], r[:cutoff] * projector(r_l, l, i + 1, r[:cutoff]), atol=1e-14)
            # ∫ (r p)² dr = 1: the GTH normalisation, and nothing lost by the cut-off
            assert simpson(beta**2 * rab) == pytest.approx(1.0, abs=1e-8)
            index += 1
    assert index - 1 == sum(len(h) for _, h in pot.projectors)


def test_local_potential_is_the_gth_form():
    pot = potential('In')
    r = np.array([0.1, 0.5, 1.0, 2.0])
    x = r / pot.r_loc
    expected = -13 / r * erf(x / np.sqrt(2)) + np.exp(-x**2 / 2) * pot.c_loc[0]
    np.testing.assert_allclose(local_potential(pot, r), expected)


def test_parse_reads_the_cp2k_entry_exactly():
    text = find_gth_potentials_file().read_text()
    block = text[text.index('\nIn GTH-PBE-q13'):].split('#')[0].split('\n')[3:]
    numbers = np.array(' '.join(block).split(), dtype=float)
    pot = potential('In')
    assert pot.electrons_per_l == (2, 1, 10)
    flat = [pot.r_loc, len(pot.c_loc), *pot.c_loc, len(pot.projectors)]
    for r_l, h in pot.projectors:
        flat += [r_l, len(h), *h[np.triu_indices(len(h))]]
    np.testing.assert_array_equal(numbers, flat)
    for _, h in pot.projectors:
        np.testing.assert_array_equal(h, h.T)


def test_conversion_is_deterministic(tmp_path):
    names = {'In': 'GTH-PBE-q13', 'P': 'GTH-PBE-q5', 'H': 'GTH-PBE-q1'}
    first = write_upf_family(tmp_path / 'a', names)
    second = write_upf_family(tmp_path / 'b', names)
    assert [f.name for f in first] == ['H.pbe-gth-q1.upf', 'In.pbe-gth-q13.upf', 'P.pbe-gth-q5.upf']
    assert [hashlib.md5(f.read_bytes()).hexdigest() for f in first] == [
        hashlib.md5(f.read_bytes()).hexdigest() for f in second]


def test_bad_requests_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="no potential 'GTH-PBE-q99' for element 'In'"):
        parse_gth_potential('In', 'GTH-PBE-q99')
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        parse_gth_potential('Xx', 'GTH-PBE-q1')
    fake = tmp_path / 'GTH_POTENTIALS'
    fake.write_text('H GTH-PBE-q1\n    1\n     0.2 2 -4.1 0.7\n    0\n  1.0 2.0\n#\n')
    with pytest.raises(ValueError, match='unread numbers'):
        parse_gth_potential('H', 'GTH-PBE-q1', fake)


def test_hgh_layout_for_local_only_and_missing_channels():
    hydrogen = gth_to_abinit_hgh(potential('H')).splitlines()
    assert hydrogen[1].split() == ['1', '1', '010101']
    assert hydrogen[4:] == ['1', '0.00000000 0']
    fluorine = gth_to_abinit_hgh(potential('F')).splitlines()
    assert fluorine[2].split()[2] == '0'  # lmax: F has only an s projector (its p channel is empty)
    assert fluorine[4:] == ['1', '0.19468402 1 23.74354045']


# --- pw.x on the UPF files against pw.x on the analytic GTH (.gth, ABINIT HGH layout) -------------------------------

MOLECULES = {
    # In, P, H: the elements of the cluster of the workchain tests (all 18 elements: docs/qe.md)
    'InH3': (['In', 'H', 'H', 'H'], [[0, 0, 0], [1.75, 0, 0], [-0.875, 1.516, 0], [-0.875, -1.516, 0]]),
    'PH3': (['P', 'H', 'H', 'H'], [[0, 0, 0.5], [1.19, 0, 0], [-0.595, 1.031, 0], [-0.595, -1.031, 0]]),
}


def run_pw(tmp_path, name, symbols, positions, extension, ecutwfc=25.0, box=6.0):
    workdir = tmp_path / f'{name}-{extension}'
    (workdir / 'pseudo').mkdir(parents=True)
    species = sorted(set(symbols))
    for element in species:
        pot = potential(element)
        text = gth_to_upf(pot) if extension == 'upf' else gth_to_abinit_hgh(pot)
        (workdir / 'pseudo' / f'{element}.{extension}').write_text(text)
    centre = np.mean(positions, axis=0)
    lines = [
        "&control\n calculation='scf', pseudo_dir='./pseudo', outdir='./out', tprnfor=.true.\n/",
        (f"&system\n ibrav=1, celldm(1)={box / 0.529177210903:.8f}, nat={len(symbols)}, ntyp={len(species)},"
         f" ecutwfc={ecutwfc}, assume_isolated='mt', nosym=.true.\n/"),
        '&electrons\n conv_thr=1e-9, mixing_beta=0.4\n/',
        'ATOMIC_SPECIES', *(f'{el} 1.0 {el}.{extension}' for el in species),
        'ATOMIC_POSITIONS angstrom',
        *(f'{s} ' + ' '.join(f'{x:.6f}' for x in np.array(p) - centre + box / 2) for s, p in zip(symbols, positions)),
        'K_POINTS gamma', '']
    (workdir / 'pw.in').write_text('\n'.join(lines))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT='1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM='1', OMP_NUM_THREADS='1')
    result = subprocess.run([shutil.which('pw.x'), '-in', 'pw.in'], cwd=workdir, capture_output=True, text=True,
                            env=env, check=False)
    energies = re.findall(r'^!\s+total energy\s+=\s+(\S+) Ry', result.stdout, re.MULTILINE)
    assert energies, result.stdout[-3000:]
    return float(energies[-1])


@pytest.mark.skipif(shutil.which('pw.x') is None, reason='needs Quantum ESPRESSO pw.x')
@pytest.mark.parametrize('name', sorted(MOLECULES))
def test_upf_reproduces_pw_on_the_analytic_gth(tmp_path, name):
    """Same molecule, same cutoff: the tabulated UPF and pw.x's own GTH evaluation agree to far below 1 meV/atom."""
    symbols, positions = MOLECULES[name]
    e_upf = run_pw(tmp_path, name, symbols, positions, 'upf')
    e_gth = run_pw(tmp_path, name, symbols, positions, 'gth')
    assert abs(e_upf - e_gth) * RY_TO_EV / len(symbols) < 1e-3


def test_conversion_does_not_depend_on_the_blas_thread_count():
    """The pseudo-atom solve pins BLAS to one thread: with two, the last printed digit changed (In), and
    `qdtraps setup` replaced the family on every run with another thread count."""
    from threadpoolctl import threadpool_limits

    pot = parse_gth_potential('In', 'GTH-PBE-q13')
    with threadpool_limits(limits=2):
        two = gth_to_upf(pot)
    with threadpool_limits(limits=1):
        one = gth_to_upf(pot)
    assert hashlib.md5(one.encode()).hexdigest() == hashlib.md5(two.encode()).hexdigest()


def test_same_upf_content_ignores_last_digit_noise_only():
    from aiida_qdtraps.pseudos.gth import same_upf_content

    text = gth_to_upf(parse_gth_potential('P', 'GTH-PBE-q5'))
    assert same_upf_content(text, text)
    first_value = next(v for v in text.split() if v.endswith('E-01') and v[0] in '-0123456789')
    noisy = text.replace(first_value, f'{float(first_value) * (1 + 3e-9):.14E}', 1)  # the 9th digit moves
    assert noisy != text and same_upf_content(text, noisy)
    changed = text.replace(first_value, f'{float(first_value) * 1.01:.14E}', 1)
    assert not same_upf_content(text, changed)
    assert not same_upf_content(text, text.replace('PP_LOCAL', 'PP_LOCALX', 1))

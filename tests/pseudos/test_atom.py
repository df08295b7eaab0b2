"""Pseudo-atomic orbitals of the GTH potentials (PP_PSWFC): the radial solver, the UPF fields, and pw.x/projwfc.x."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from scipy.integrate import simpson

from aiida_qdtraps.protocols import element_settings
from aiida_qdtraps.pseudos import gth_to_upf, parse_gth_potential, radial_grid
from aiida_qdtraps.pseudos.atom import shells, solve_gth_atom

ELEMENTS = sorted(element_settings())


def potential(element):
    return parse_gth_potential(element, f"GTH-PBE-q{element_settings()[element]['valence']}")


def upf_block(text: str, tag: str) -> tuple[dict, np.ndarray]:
    match = re.search(rf'<{re.escape(tag)}\b([^>]*)>(.*?)</{re.escape(tag)}>', text, re.DOTALL)
    assert match, tag
    return dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))), np.array(match.group(2).split(), dtype=float)


@pytest.mark.parametrize('element', ['H', 'Li', 'P', 'Cl', 'In', 'Zn', 'Pb'])
def test_shells_follow_the_gth_reference_configuration(element):
    pot = potential(element)
    expected = {'H': [(1, 0, 1)], 'Li': [(1, 0, 2), (2, 0, 1)], 'P': [(3, 0, 2), (3, 1, 3)],
                'Cl': [(3, 0, 2), (3, 1, 5)], 'In': [(5, 0, 2), (5, 1, 1), (4, 2, 10)],
                'Zn': [(4, 0, 2), (3, 2, 10)], 'Pb': [(6, 0, 2), (6, 1, 2)]}[element]
    assert shells(pot) == expected


@pytest.mark.parametrize('element', ELEMENTS)
def test_pseudo_atom_orbitals_are_normalised_bound_and_hold_the_valence(element):
    pot = potential(element)
    atom = solve_gth_atom(pot)
    r, rab = radial_grid(pot.atomic_number)
    assert atom.converged and np.array_equal(atom.r, r)
    assert sum(o.occupation for o in atom.orbitals) == pot.z_valence
    for orbital in atom.orbitals:
        assert simpson(orbital.u**2 * rab) == pytest.approx(1.0, abs=1e-6)
        assert orbital.energy < 0  # bound
        assert abs(orbital.u[-1]) < 1e-8 and abs(orbital.u[0]) < 50 * r[0]  # u = rR: 0 at both ends
    assert simpson(atom.radial_density * rab) == pytest.approx(pot.z_valence, rel=1e-6)
    by_label = {o.label: o.energy for o in atom.orbitals}
    if element in ('P', 'Cl', 'Se', 'In', 'Pb'):  # valence s below valence p
        s, p = (lab for lab in by_label if lab.endswith('S')), (lab for lab in by_label if lab.endswith('P'))
        assert by_label[next(s)] < by_label[next(p)]


def test_upf_carries_the_orbitals_and_their_density():
    pot = potential('In')
    atom = solve_gth_atom(pot)
    text = gth_to_upf(pot)
    header, _ = upf_block(text.replace('/>', '></PP_HEADER>', 1), 'PP_HEADER')
    assert header['number_of_wfc'] == '3'
    r, rab = radial_grid(pot.atomic_number)
    for index, orbital in enumerate(atom.orbitals, start=1):
        attributes, chi = upf_block(text, f'PP_CHI.{index}')
        assert (attributes['label'], int(attributes['l']), float(attributes['occupation'])) == (
            orbital.label, orbital.l, orbital.occupation)
        np.testing.assert_allclose(chi, orbital.u, rtol=1e-8, atol=1e-30)
    _, rho = upf_block(text, 'PP_RHOATOM')
    assert simpson(rho * rab) == pytest.approx(13, rel=1e-6)
    bare = gth_to_upf(pot, wavefunctions=False)
    assert '<PP_CHI.1' not in bare and 'number_of_wfc="0"' in bare


def run(executable, workdir, stdin_file):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT='1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM='1', OMP_NUM_THREADS='1')
    result = subprocess.run([shutil.which(executable), '-in', stdin_file], cwd=workdir, capture_output=True, text=True,
                            env=env, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def pw_incl3(workdir, wavefunctions):
    """pw.x SCF of a planar InCl3 molecule (34 valence electrons), 25 Ry, 8 Å box, Martyna-Tuckerman."""
    (workdir / 'pseudo').mkdir(parents=True)
    for element in ('In', 'Cl'):
        (workdir / 'pseudo' / f'{element}.upf').write_text(gth_to_upf(potential(element), wavefunctions=wavefunctions))
    (workdir / 'pw.in').write_text('\n'.join([
        "&control\n calculation='scf', pseudo_dir='./pseudo', outdir='./out', prefix='x', tprnfor=.true.\n/",
        "&system\n ibrav=1, celldm(1)=15.0, nat=4, ntyp=2, ecutwfc=25, assume_isolated='mt', nosym=.true., nbnd=22\n/",
        "&electrons\n conv_thr=1e-8, mixing_beta=0.4\n/",
        'ATOMIC_SPECIES', 'In 1.0 In.upf', 'Cl 1.0 Cl.upf', 'ATOMIC_POSITIONS angstrom',
        'In 4.0 4.0 4.0', 'Cl 6.3 4.0 4.0', 'Cl 2.85 5.99 4.0', 'Cl 2.85 2.01 4.0', 'K_POINTS gamma', '']))
    return run('pw.x', workdir, 'pw.in')


@pytest.mark.skipif(shutil.which('projwfc.x') is None, reason='needs Quantum ESPRESSO pw.x and projwfc.x')
def test_pw_starts_from_the_orbitals_and_projwfc_spans_the_occupied_states(tmp_path):
    """Same energy with and without PP_PSWFC (only the start changes); projwfc.x: small spilling, Löwdin sum = 34 e."""
    with_wfc = pw_incl3(tmp_path / 'wfc', True)
    without = pw_incl3(tmp_path / 'bare', False)
    assert re.search(r'Starting wfcs are\s+21 randomized atomic wfcs', with_wfc)
    assert 'Starting wfcs are random' in without
    energies = [float(re.findall(r'^!\s+total energy\s+=\s+(\S+) Ry', out, re.MULTILINE)[-1])
                for out in (with_wfc, without)]
    assert abs(energies[0] - energies[1]) < 1e-6
    (tmp_path / 'wfc' / 'projwfc.in').write_text(
        "&projwfc\n prefix='x', outdir='./out', filpdos='x', DeltaE=0.05, degauss=0.01\n/\n")
    out = run('projwfc.x', tmp_path / 'wfc', 'projwfc.in')
    spilling = float(re.search(r'Spilling Parameter:\s+(\S+)', out).group(1))
    assert 0 <= spilling < 0.02
    charges = [float(v) for v in re.findall(r'Atom #\s+\d+: total charge =\s+(\S+),\s+s =', out)]
    assert len(charges) == 4 and sum(charges) == pytest.approx(34, rel=0.02)
    assert charges[0] < 13 and all(q > 7 for q in charges[1:])  # In gives electrons to Cl
    assert (tmp_path / 'wfc' / 'x.pdos_atm#1(In)_wfc#3(d)').is_file()

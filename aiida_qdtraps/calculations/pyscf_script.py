"""Molecular Kohn-Sham single point with PySCF: the script ``PyscfCalculation`` copies and runs.

Usage: ``python pyscf_script.py input.json``. Reads ``structure.xyz`` (Å) and the settings in ``input.json``
(see :data:`aiida_qdtraps.calculations.pyscf.DEFAULT_PARAMETERS`), runs RKS for a singlet and UKS otherwise, with
a ladder of SCF settings tried in turn until one converges (plain DIIS, level shift, damping with level shift,
second-order Newton SCF). Writes

* ``results.npz``: ``mo_energy`` (nspin, nmo) Ha, ``mo_occ`` (nspin, nmo), ``mo_coeff`` (nspin, nao, nmo), the AO
  ``overlap`` (nao, nao), ``ao_atom`` (nao,), ``mulliken`` and ``lowdin`` atomic charges (e), ``dipole`` (Debye);
* ``results.json``: total energy (Ha), convergence, the SCF attempts, timings, PySCF version, AO labels;
* ``mo_<index>.cube`` for the MOs asked for in ``cube_mos``.

Only numpy and pyscf are needed, so any Python that has them runs it (a cluster's too). Also importable:
:func:`run_scf` is what the command line interface computes in-process.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np

#: SCF settings tried in order until one converges: name and the attributes set on the mean-field object.
SCF_LADDER = (
    ('diis', {}),
    ('level_shift', {'level_shift': 0.5}),
    ('damping', {'level_shift': 0.3, 'damp': 0.5, 'diis_start_cycle': 4}),
    ('newton', {}),
)


def has_ecp(basis: str, element: str) -> bool:
    """Whether PySCF's basis ``basis`` comes with an ECP for ``element`` (then :func:`build_molecule` uses it)."""
    from pyscf import gto

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            return bool(gto.basis.load_ecp(basis, element))
        except Exception:  # noqa: BLE001 - a basis without ECPs
            return False


def build_molecule(symbols, positions, params):
    """The PySCF ``Mole`` of the structure (Å) with the basis and, for elements that have one, its ECP."""
    from pyscf import gto

    basis = params['basis']
    ecp = {element: basis for element in dict.fromkeys(symbols) if has_ecp(basis, element)}
    return gto.M(atom=[(s, tuple(p)) for s, p in zip(symbols, positions)], unit='Angstrom', basis=basis, ecp=ecp,
                 charge=int(params['charge']), spin=int(params['multiplicity']) - 1, verbose=0)


def _mean_field(mol, params, step: str, settings: dict):
    from pyscf import dft

    mf = dft.RKS(mol) if mol.spin == 0 else dft.UKS(mol)
    mf.xc = params['xc']
    mf.grids.level = int(params['grid_level'])
    mf.conv_tol = float(params['conv_tol'])
    mf.max_cycle = int(params['max_cycle'])
    if params['density_fit']:
        mf = mf.density_fit()
    for name, value in settings.items():
        setattr(mf, name, value)
    if step == 'newton':
        mf = mf.newton()
    return mf


def run_scf(symbols, positions, params):
    """Run the SCF ladder; return the converged (or last) mean-field object and the list of attempts."""
    mol = build_molecule(symbols, positions, params)
    attempts, mf, dm = [], None, None
    for step, settings in SCF_LADDER:
        mf = _mean_field(mol, params, step, settings)
        start = time.perf_counter()
        mf.kernel(dm0=dm)
        attempts.append({'step': step, 'converged': bool(mf.converged), 'energy_ha': float(mf.e_tot),
                         'cycles': int(getattr(mf, 'cycles', -1) or -1), 'seconds': time.perf_counter() - start})
        if mf.converged:
            break
        dm = mf.make_rdm1()
    return mf, attempts


def _as_spin(array, unrestricted: bool):
    array = np.asarray(array)
    return array if unrestricted else array[None]


def ao_atom_map(mol) -> np.ndarray:
    """Atom index of every AO (``mol.aoslice_by_atom``)."""
    ao_atom = np.empty(mol.nao, dtype=int)
    for atom, (_, _, first, last) in enumerate(mol.aoslice_by_atom()):
        ao_atom[first:last] = atom
    return ao_atom


def atomic_charges(mf) -> dict:
    """Mulliken and Löwdin charges (e) per atom from the total density matrix (valence charges with ECPs)."""
    mol = mf.mol
    overlap = mol.intor_symmetric('int1e_ovlp')
    dm = np.asarray(mf.make_rdm1())
    if dm.ndim == 3:
        dm = dm.sum(axis=0)
    values, vectors = np.linalg.eigh(overlap)
    sqrt = (vectors * np.sqrt(values)) @ vectors.T
    ao_atom = ao_atom_map(mol)
    mulliken = np.bincount(ao_atom, np.einsum('ij,ji->i', dm, overlap), minlength=mol.natm)
    lowdin = np.bincount(ao_atom, np.diag(sqrt @ dm @ sqrt), minlength=mol.natm)
    nuclear = mol.atom_charges().astype(float)
    return {'mulliken': nuclear - mulliken, 'lowdin': nuclear - lowdin, 'ao_atom': ao_atom}


def resolve_mo(name, mo_occ) -> int:
    """0-based MO index from an int or ``'homo'``, ``'homo-k'``, ``'lumo'``, ``'lumo+k'``."""
    if isinstance(name, int):
        return name
    occupied = np.flatnonzero(np.asarray(mo_occ) > 1e-3)
    homo = int(occupied.max())
    text = str(name).lower().replace(' ', '')
    base = homo if text.startswith('homo') else homo + 1
    offset = text[4:]
    return base + (int(offset) if offset else 0)


def main(path: str) -> None:
    import pyscf
    from pyscf.tools import cubegen

    start = time.perf_counter()
    with open(path) as handle:
        params = json.load(handle)
    symbols, positions = [], []
    with open(params['structure_file']) as handle:
        lines = handle.read().splitlines()
    for line in lines[2:2 + int(lines[0])]:
        fields = line.split()
        symbols.append(fields[0])
        positions.append([float(x) for x in fields[1:4]])
    mf, attempts = run_scf(symbols, np.array(positions), params)
    mol = mf.mol
    unrestricted = mol.spin != 0
    charges = atomic_charges(mf)
    dipole = np.asarray(mf.dip_moment(unit='Debye', verbose=0))
    np.savez('results.npz', mo_energy=_as_spin(mf.mo_energy, unrestricted), mo_occ=_as_spin(mf.mo_occ, unrestricted),
             mo_coeff=_as_spin(mf.mo_coeff, unrestricted), overlap=mol.intor_symmetric('int1e_ovlp'),
             ao_atom=charges['ao_atom'], mulliken=charges['mulliken'], lowdin=charges['lowdin'], dipole=dipole)
    cubes = []
    for name in params.get('cube_mos') or []:
        spin_occ = _as_spin(mf.mo_occ, unrestricted)[0]
        index = resolve_mo(name, spin_occ)
        coeff = _as_spin(mf.mo_coeff, unrestricted)[0][:, index]
        cubegen.orbital(mol, f'mo_{index}.cube', coeff)
        cubes.append(index)
    result = {'energy_ha': float(mf.e_tot), 'converged': bool(mf.converged), 'attempts': attempts,
              'scf_step': attempts[-1]['step'], 'unrestricted': unrestricted, 'nelectron': int(mol.nelectron),
              'nao': int(mol.nao), 'ao_labels': mol.ao_labels(), 'cube_mos': cubes,
              'pyscf_version': pyscf.__version__, 'wall_time_s': time.perf_counter() - start}
    with open('results.json', 'w') as handle:
        json.dump(result, handle, indent=1)


if __name__ == '__main__':
    main(sys.argv[1])

"""The two engines of the hybrid stage on one geometry: a recorded CP2K PBE0 (its MOLDEN file) against PySCF
PBE0/def2-SVP as ``HybridScfWorkChain(engine='pyscf')`` runs it, both windows labelled by the same trap kernel.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/hybrid_engines.py [--cp2k DIR | --cp2k-out FILE]
[--protocol fast]``. ``DIR`` holds the CP2K run's ``qd.xyz`` and ``aiida-MOS-1_0.molden`` (default
``tests/data/cp2k/pbe0_success``: a recorded PBE0 of the unrelaxed In4PF9 with the earlier SZV ``fast`` settings).
Prints per engine the HOMO, LUMO and gap (eV), the band edges (VBM, CBM) and trap counts of
:func:`aiida_qdtraps.analysis.traps.label_traps` on a window of the protocol's size, the atom labels that differ, and
the PySCF wall time (s, in-process :func:`~aiida_qdtraps.calculations.pyscf_script.run_scf`, no AiiDA).

``--cp2k-out FILE``: a CP2K main output without a MOLDEN file (e.g.
``tests/data/cp2k/soundness/in4pf9_pbe0_fast/baseline.out``, the present ``fast`` PBE0); the geometry is its
``ATOMIC COORDINATES`` block and only its HOMO, LUMO and gap (``&PRINT &MO``) are compared.
"""

from __future__ import annotations

import argparse
import itertools
import pathlib
import time

import ase.io
import numpy as np
from ase import Atoms

from aiida_qdtraps.analysis import traps as kernel
from aiida_qdtraps.calculations.pyscf import pyscf_parameters
from aiida_qdtraps.calculations.pyscf_script import ao_atom_map, run_scf
from aiida_qdtraps.parsers.cp2k_files import homo_lumo, mo_window, parse_mo_eigenvalues, read_molden
from aiida_qdtraps.parsers.pyscf import HARTREE_TO_EV, window_indices
from aiida_qdtraps.workchains.hybrid_scf import pyscf_protocol_inputs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def cp2k_output(path: pathlib.Path) -> tuple[Atoms, float, float]:
    """Geometry (the last ``ATOMIC COORDINATES IN ANGSTROM`` block), HOMO and LUMO (eV) of a CP2K main output."""
    lines = path.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if 'ATOMIC COORDINATES IN ANGSTROM' in line) + 3
    rows = [line.split() for line in itertools.takewhile(str.strip, lines[start:])]
    atoms = Atoms([row[2] for row in rows], positions=[[float(x) for x in row[4:7]] for row in rows])
    energies = parse_mo_eigenvalues('\n'.join(lines))['alpha']
    homo, lumo = homo_lumo(energies[:, 0], energies[:, 1])
    return atoms, float(energies[homo, 0]), float(energies[lumo, 0])


def label(atoms, energies, occupations, coefficients, overlap, ao_atom) -> kernel.TrapLabels:
    return kernel.label_traps(atoms.get_chemical_symbols(), atoms.positions, energies, occupations, coefficients,
                              overlap, ao_atom)


def cp2k_labels(directory: pathlib.Path, atoms, n_occupied: int, n_virtual: int) -> kernel.TrapLabels:
    data = read_molden((directory / 'aiida-MOS-1_0.molden').read_text())
    indices = mo_window(data, n_occupied, n_virtual, 0)
    return label(atoms, data.energies[0][indices], data.occupations[0][indices], data.coefficients[0][:, indices],
                 data.overlap, data.ao_atom)


def pyscf_labels(atoms, parameters: dict, n_occupied: int, n_virtual: int) -> tuple[kernel.TrapLabels, dict]:
    params = pyscf_parameters(parameters, atoms.get_chemical_symbols())
    start = time.perf_counter()
    mf, attempts = run_scf(atoms.get_chemical_symbols(), atoms.positions, params)
    seconds = time.perf_counter() - start
    occupations = np.asarray(mf.mo_occ)[None]
    indices = window_indices(occupations, n_occupied, n_virtual)[0]
    energies = np.asarray(mf.mo_energy) * HARTREE_TO_EV
    labels = label(atoms, energies[indices], occupations[0][indices], np.asarray(mf.mo_coeff)[:, indices],
                   mf.mol.intor_symmetric('int1e_ovlp'), ao_atom_map(mf.mol))
    return labels, {'seconds': seconds, 'cycles': attempts[-1]['cycles'], 'nao': mf.mol.nao,
                    'energy_ha': mf.e_tot, 'converged': mf.converged}


def row(name: str, result: kernel.TrapLabels) -> str:
    holes = sum(t['carrier'] == 'hole' for t in result.traps)
    electrons = sum(t['carrier'] == 'electron' for t in result.traps)
    return (f'{name:<6} {result.homo:9.3f} {result.lumo:9.3f} {result.lumo - result.homo:7.3f} {result.vbm:9.3f} '
            f'{result.cbm:9.3f} {result.cbm - result.vbm:7.3f} {holes:6d} {electrons:6d}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cp2k', type=pathlib.Path, default=ROOT / 'tests' / 'data' / 'cp2k' / 'pbe0_success')
    parser.add_argument('--cp2k-out', type=pathlib.Path, default=None)
    parser.add_argument('--protocol', default='fast', help='protocol of the pyscf engine (hybrid_scf_pyscf.yaml)')
    args = parser.parse_args()
    inputs = pyscf_protocol_inputs(args.protocol)
    window = inputs['mo_window']
    if args.cp2k_out is not None:
        atoms, homo, lumo = cp2k_output(args.cp2k_out)
        pyscf, info = pyscf_labels(atoms, inputs['pyscf']['parameters'], window['occupied'], window['virtual'])
        print(f"{atoms.get_chemical_formula()} ({args.cp2k_out}), PySCF {inputs['pyscf']['parameters']}")
        print(f'cp2k   HOMO {homo:9.3f}  LUMO {lumo:9.3f}  gap {lumo - homo:7.3f} eV')
        print(row('pyscf', pyscf))
        print(f"PySCF: {info['seconds']:.1f} s, {info['cycles']} SCF cycles, {info['nao']} AOs, "
              f"E = {info['energy_ha']:.6f} Ha, converged {info['converged']}")
        print(f'gap difference pyscf - cp2k: {(pyscf.lumo - pyscf.homo) - (lumo - homo):+.3f} eV, '
              f'HOMO shift {pyscf.homo - homo:+.3f} eV, LUMO shift {pyscf.lumo - lumo:+.3f} eV')
        return
    atoms = ase.io.read(args.cp2k / 'qd.xyz')
    cp2k = cp2k_labels(args.cp2k, atoms, window['occupied'], window['virtual'])
    pyscf, info = pyscf_labels(atoms, inputs['pyscf']['parameters'], window['occupied'], window['virtual'])
    print(f"{atoms.get_chemical_formula()} ({args.cp2k.name}), window {window['occupied']} + {window['virtual']}, "
          f"PySCF {inputs['pyscf']['parameters']}")
    print(f"{'engine':<6} {'HOMO':>9} {'LUMO':>9} {'gap':>7} {'VBM':>9} {'CBM':>9} {'Eg':>7} {'holes':>6} {'elec.':>6}")
    print(row('cp2k', cp2k))
    print(row('pyscf', pyscf))
    differ = [(i, s, a, b) for i, (s, a, b) in enumerate(zip(atoms.get_chemical_symbols(), cp2k.atom_label,
                                                               pyscf.atom_label)) if a != b]
    print(f'atom labels that differ: {differ or "none"} (of {len(atoms)}; cp2k {sorted(set(cp2k.atom_label))})')
    print(f"PySCF: {info['seconds']:.1f} s, {info['cycles']} SCF cycles, {info['nao']} AOs, "
          f"E = {info['energy_ha']:.6f} Ha, converged {info['converged']}")
    print(f'gap difference pyscf - cp2k: {(pyscf.lumo - pyscf.homo) - (cp2k.lumo - cp2k.homo):+.3f} eV, '
          f'HOMO shift {pyscf.homo - cp2k.homo:+.3f} eV, LUMO shift {pyscf.lumo - cp2k.lumo:+.3f} eV')


if __name__ == '__main__':
    main()

"""PySCF single points at PBE0/def2-SVP: the ideal PLi4+ cutout and the 14-atom In4PF9 test QD.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pyscf_single_point.py``. Prints per system the wall time (s) of
the SCF as ``PyscfCalculation`` runs it (:func:`aiida_qdtraps.calculations.pyscf_script.run_scf`, in-process, no
AiiDA), with and without density fitting, the number of AOs and SCF cycles, and the ratio of the In4PF9 time to the
PLi4+ time. ``--threads`` sets the OpenMP threads of PySCF (default: ``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import argparse
import os
import time

from aiida_qdtraps.analysis.cutout import ideal_tetrahedron
from aiida_qdtraps.builder import qd
from aiida_qdtraps.calculations.pyscf import pyscf_parameters
from aiida_qdtraps.calculations.pyscf_script import run_scf

#: The test/demo QD recipe (tests/conftest.py): In4PF9, 14 atoms.
TINY_QD_RECIPE = {'material': 'InP', 'diameter': 5.2, 'ligand': 'F', 'charge': 0, 'center': 'anion', 'vacuum': 2.5,
                  'min_core_bonds': 1}


def single_point(atoms, charge: int, density_fit: bool) -> dict:
    params = pyscf_parameters({'charge': charge, 'density_fit': density_fit}, atoms.get_chemical_symbols())
    start = time.perf_counter()
    mf, attempts = run_scf(atoms.get_chemical_symbols(), atoms.positions, params)
    return {'seconds': time.perf_counter() - start, 'nao': mf.mol.nao, 'cycles': attempts[-1]['cycles'],
            'converged': mf.converged, 'energy_ha': mf.e_tot}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--skip-qd', action='store_true', help='only PLi4+')
    args = parser.parse_args()
    if args.threads:
        from pyscf import lib

        lib.num_threads(args.threads)
    systems = [('PLi4+', ideal_tetrahedron(), 1)]
    if not args.skip_qd:
        systems.append(('In4PF9', qd.build_qd(**TINY_QD_RECIPE), 0))
    print(f"PBE0/def2-SVP, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'system':8} {'atoms':>5} {'AOs':>5} {'DF':>3} {'cycles':>6} {'wall (s)':>9}  energy (Ha)")
    times = {}
    for name, atoms, charge in systems:
        for density_fit in (True, False):
            r = single_point(atoms, charge, density_fit)
            times[name, density_fit] = r['seconds']
            print(f"{name:8} {len(atoms):5d} {r['nao']:5d} {'yes' if density_fit else 'no':>3} {r['cycles']:6d} "
                  f"{r['seconds']:9.2f}  {r['energy_ha']:.8f}{'' if r['converged'] else ' (not converged)'}")
    if not args.skip_qd:
        for density_fit in (True, False):
            print(f"In4PF9 / PLi4+ time ratio ({'DF' if density_fit else 'no DF'}): "
                  f"{times['In4PF9', density_fit] / times['PLi4+', density_fit]:.1f}")


if __name__ == '__main__':
    main()

"""Grid (egg-box) noise of CP2K's GPW real-space grid at the earlier ``fast`` settings, against finer cutoffs.

This measures the GPW settings the protocols used before they moved to GAPW (docs/protocols.md); to measure a
current protocol on any QD, translated and rotated, use ``benchmarks/protocol_soundness.py``.

A rigid translation of a molecule in a non-periodic box changes nothing physical, so any change of the energy or of
the forces under a small shift is grid error. This script runs CP2K PBE ENERGY_FORCE on the ``fast``-relaxed In4PF9
(``tests/data/cp2k/grid/in4pf9_fast_relaxed.xyz``, 13 Å box, SZV-MOLOPT-SR-GTH, wavelet Poisson,
``EXTENDED_FFT_LENGTHS`` as in the protocols: the ``fast`` relax settings) at each ``--cutoffs`` value, once as is
and once shifted by (0.07, 0.05, 0.03) Å. Per cutoff it prints the energy change, the largest force-component
change, the finest grid's points per edge, the grid diagnostics (``parse_grid_quality``) and the CP2K wall time as a
ratio to the first cutoff's (the baseline, measured in the same run)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/grid_noise.py
        [--cutoffs 200 300] [--rel-cutoff 50] [--no-extended-fft]

Measured here (docs/protocols.md, outputs in tests/data/cp2k/grid/): at 200 Ry / REL_CUTOFF 30 the shift moves the
energy by 118 mHa and a force component by 0.125 Ha/bohr (without EXTENDED_FFT_LENGTHS, 120 instead of 112
grid points: 7.3 mHa, 0.054 Ha/bohr); at 300 / 50 by 0.34 mHa and 0.010 Ha/bohr.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import tempfile
import time

import numpy as np
from aiida_cp2k.utils import parse_cp2k_output
from ase.io import read, write

from aiida_qdtraps.parsers.cp2k_files import parse_forces, parse_grid_quality

GEOMETRY = pathlib.Path(__file__).parent.parent / 'tests' / 'data' / 'cp2k' / 'grid' / 'in4pf9_fast_relaxed.xyz'
SHIFT = np.array([0.07, 0.05, 0.03])
POTENTIALS = {'In': 'GTH-PBE-q13', 'P': 'GTH-PBE-q5', 'F': 'GTH-PBE-q7', 'Ga': 'GTH-PBE-q13', 'Cl': 'GTH-PBE-q7'}

TEMPLATE = """&GLOBAL
   PROJECT aiida
   RUN_TYPE ENERGY_FORCE
   PRINT_LEVEL MEDIUM
   EXTENDED_FFT_LENGTHS {extended}
&END GLOBAL
&FORCE_EVAL
   METHOD QS
   &DFT
      BASIS_SET_FILE_NAME BASIS_MOLOPT
      POTENTIAL_FILE_NAME GTH_POTENTIALS
      &MGRID
         CUTOFF {cutoff}
         REL_CUTOFF {rel_cutoff}
         NGRIDS 4
      &END MGRID
      &POISSON
         PERIODIC NONE
         POISSON_SOLVER WAVELET
      &END POISSON
      &QS
         EPS_DEFAULT 1e-10
      &END QS
      &SCF
         SCF_GUESS ATOMIC
         EPS_SCF 1e-6
         MAX_SCF 150
         ADDED_MOS 12
         &DIAGONALIZATION
            ALGORITHM STANDARD
         &END DIAGONALIZATION
         &MIXING
            METHOD BROYDEN_MIXING
            ALPHA 0.3
            NBROYDEN 8
         &END MIXING
      &END SCF
      &XC
         &XC_FUNCTIONAL PBE
         &END XC_FUNCTIONAL
      &END XC
   &END DFT
   &SUBSYS
      &CELL
         ABC {box} {box} {box}
         PERIODIC NONE
      &END CELL
      &TOPOLOGY
         COORD_FILE_FORMAT XYZ
         COORD_FILE_NAME coords.xyz
      &END TOPOLOGY
{kinds}
   &END SUBSYS
   &PRINT
      &FORCES
      &END FORCES
   &END PRINT
&END FORCE_EVAL
"""


def run(atoms, cutoff: float, rel_cutoff: float, box: float, folder: pathlib.Path, extended: bool) -> dict:
    folder.mkdir(parents=True)
    kinds = '\n'.join(f'      &KIND {e}\n         BASIS_SET SZV-MOLOPT-SR-GTH\n         POTENTIAL {POTENTIALS[e]}\n'
                      f'      &END KIND' for e in sorted(set(atoms.get_chemical_symbols())))
    (folder / 'aiida.inp').write_text(TEMPLATE.format(cutoff=cutoff, rel_cutoff=rel_cutoff, box=box, kinds=kinds,
                                                             extended='.TRUE.' if extended else '.FALSE.'))
    write(folder / 'coords.xyz', atoms, format='xyz')
    start = time.perf_counter()
    with (folder / 'aiida.out').open('w') as handle:
        subprocess.run(['cp2k.psmp', '-i', 'aiida.inp'], cwd=folder, stdout=handle, stderr=subprocess.STDOUT,
                       check=True)
    text = (folder / 'aiida.out').read_text()
    energy = parse_cp2k_output(text)['energy']
    points = int(re.search(r'PW_GRID\|\s+Bounds\s+1\s+-?\d+\s+-?\d+\s+Points:\s+(\d+)', text).group(1))
    return {'energy': energy, 'forces': parse_forces(text), 'seconds': time.perf_counter() - start, 'points': points,
            **parse_grid_quality(text)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cutoffs', type=float, nargs='+', default=[200.0, 400.0])
    parser.add_argument('--rel-cutoff', type=float, default=50.0, help='REL_CUTOFF of the non-fast cutoffs')
    parser.add_argument('--box', type=float, default=13.0, help='cubic box edge (Å); 13: the fast relax box')
    parser.add_argument('--no-extended-fft', dest='extended', action='store_false',
                        help="CP2K's default FFT lengths instead of the protocols' EXTENDED_FFT_LENGTHS")
    args = parser.parse_args()
    atoms = read(GEOMETRY)
    atoms.positions += args.box / 2 - (atoms.positions.max(0) + atoms.positions.min(0)) / 2
    shifted = atoms.copy()
    shifted.positions += SHIFT
    baseline = None
    print(f'{"cutoff/rel (Ry)":>16} {"grid":>5} {"dE shift (mHa)":>15} {"max dF (Ha/bohr)":>17} {"edge warn.":>10} '
          f'{"grid e- error":>13} {"time (s)":>9} {"ratio":>6}')
    with tempfile.TemporaryDirectory() as tmp:
        for cutoff in args.cutoffs:
            rel = 30.0 if cutoff == 200.0 else args.rel_cutoff  # 200 / 30: the fast protocol
            here = run(atoms, cutoff, rel, args.box, pathlib.Path(tmp) / f'{cutoff:g}', args.extended)
            there = run(shifted, cutoff, rel, args.box, pathlib.Path(tmp) / f'{cutoff:g}_shifted', args.extended)
            seconds = here['seconds'] + there['seconds']
            baseline = baseline or seconds
            print(f'{cutoff:>10g}/{rel:<5g} {here["points"]:>5d} {1000 * (there["energy"] - here["energy"]):>15.3f} '
                  f'{np.abs(there["forces"] - here["forces"]).max():>17.2e} {here["wavelet_edge_warnings"]:>10d} '
                  f'{here["grid_electron_error"]:>13.1e} {seconds:>9.1f} {seconds / baseline:>6.2f}', flush=True)


if __name__ == '__main__':
    main()

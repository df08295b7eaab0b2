"""What the PBE0 single point costs when it starts from the relax's PBE wavefunction, with and without screening the
exact exchange on that initial density matrix (``&HF/&SCREENING SCREEN_ON_INITIAL_P``).

The pipeline's hybrid stage restarts from the wavefunction the relax wrote (``SCF_GUESS RESTART``). CP2K can then
screen the four-centre integrals with the initial density matrix as well as with the Schwarz bound, which drops the
integrals that multiply small density-matrix elements before they are computed. This is safe only from a good guess,
and it changes the result by the integrals it drops; this script measures both, on the QD you give:

1. the relax protocol's settings as an ENERGY single point, which writes the PBE wavefunction;
2. the hybrid protocol's PBE0 single point from the atomic guess (the reference);
3. the same from the PBE wavefunction;
4. the same from the PBE wavefunction with ``SCREEN_ON_INITIAL_P``.

One line per point: ``<name> seconds=<s> scf_steps=<n> dE_mHa=<x> dhomo_meV=<y> dlumo_meV=<z> dgap_meV=<w>``
(differences against point 2), then the ratios of the wall times of 3 and 4 to 2.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/hybrid_restart.py \
        --structure tests/data/cp2k/relaxed/in4pf9_fast.xyz --protocol fast [--charge 0] [--keep runs/]
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import re
import shutil
import sys
import tempfile

from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from protocol_soundness import (  # noqa: E402
    RESTART,
    SCREEN,
    boxed_geometries,
    load_qd,
    pbe_energy_parameters,
    protocol_parameters,
    run_point,
)


def scf_steps(text: str) -> int:
    """SCF iterations of the (last) SCF cycle in a CP2K output."""
    match = re.findall(r'\*\*\* SCF run converged in\s+(\d+) steps', text)
    return int(match[-1]) if match else -1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--structure', required=True, type=pathlib.Path, help='the QD (any format ASE reads)')
    parser.add_argument('--protocol', required=True, help='fast, moderate or precise')
    parser.add_argument('--charge', type=int, default=0)
    parser.add_argument('--multiplicity', type=int, default=1)
    parser.add_argument('--keep', type=pathlib.Path, help='keep the CP2K folders here')
    args = parser.parse_args(argv)

    atoms, structure, executable = load_qd(parser, args.structure)
    pbe = pbe_energy_parameters(structure, args.protocol, args.charge, args.multiplicity)
    _, vacuum, _ = protocol_parameters(structure, args.protocol, 'relax', args.charge, args.multiplicity, None)
    hybrid, hybrid_vacuum, _ = protocol_parameters(structure, args.protocol, 'hybrid', args.charge,
                                                   args.multiplicity, None)
    # one box for all points (the wavefunction is independent of the box, the grid is not: keep it the same)
    moved = boxed_geometries(atoms, max(vacuum, hybrid_vacuum))['baseline'][0]
    root = args.keep or pathlib.Path(tempfile.mkdtemp(prefix='hybrid-restart-'))
    print(f'# {args.structure.name}: {len(atoms)} atoms, protocol {args.protocol}, box {moved.cell[0, 0]:.1f} Å',
          flush=True)
    points = {}
    runs = [('pbe', pbe), ('pbe0_atomic', hybrid), ('pbe0_restart', recursive_merge(copy.deepcopy(hybrid), RESTART)),
            ('pbe0_restart_screen_p', recursive_merge(recursive_merge(copy.deepcopy(hybrid), RESTART), SCREEN))]
    for name, parameters in runs:
        try:
            point = run_point(parameters, moved, root / name, executable)
        except ValueError as exc:
            print(f'{name} failed: {exc} (CP2K output: {root / name / "aiida.out"})', flush=True)
            return 2
        steps = scf_steps((root / name / 'aiida.out').read_text())
        points[name] = point
        line = f'{name} seconds={point.seconds:.1f} scf_steps={steps}'
        reference = points.get('pbe0_atomic')
        if name.startswith('pbe0') and reference is not None:
            line += (f' dE_mHa={1e3 * (point.energy - reference.energy):.4f}'
                     f' dhomo_meV={1e3 * (point.homo - reference.homo):.2f}'
                     f' dlumo_meV={1e3 * (point.lumo - reference.lumo):.2f}'
                     f' dgap_meV={1e3 * ((point.lumo - point.homo) - (reference.lumo - reference.homo)):.2f}')
        print(line, flush=True)
    atomic = points['pbe0_atomic'].seconds
    print(f"ratio_restart_to_atomic={points['pbe0_restart'].seconds / atomic:.2f} "
          f"ratio_restart_screen_p_to_atomic={points['pbe0_restart_screen_p'].seconds / atomic:.2f}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Is a protocol's CP2K input numerically sound on YOUR QD? Rigid-motion invariance of forces, energy and gap.

A rigid translation or rotation of an isolated QD changes nothing physical, so whatever it changes is numerical
error (in CP2K mostly the real-space grid's "egg-box"). This script builds the CP2K input through the protocol's own
``get_builder_from_protocol`` (relax stage: ``QdRelaxWorkChain``, as ENERGY_FORCE; hybrid stage:
``HybridScfWorkChain``, as ENERGY with the MO energies printed), puts the QD in the protocol's box, and runs
``cp2k.psmp`` on it as given, translated twice (two shift sizes) and rotated (in the same box, so on the same grid).
One line per point::

    baseline max_dF_Ha_bohr=0.00e+00 max_force_criterion=4.50e-04 dE_mHa=0.000 dgap_meV=... seconds=85.2
    translation max_dF_Ha_bohr=3.1e-05 ...

followed by a verdict per perturbation against the bounds the protocols are held to (force change ≤ half the relax
MAX_FORCE, energy change ≤ 0.1 mHa per atom, HOMO/LUMO/gap change ≤ 5 meV). ``--legacy-fast`` also runs one point
with the settings of the old GPW ``fast`` protocol (200 / 30 Ry, SZV, no GAPW) on the same QD and prints the wall-time
ratio of a sound point to it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/protocol_soundness.py --structure qd.xyz --protocol moderate \\
        [--stage relax|hybrid] [--from-pbe] [--charge Q] [--multiplicity M] [--legacy-fast] [--keep DIR] \\
        [--resume] [--only translation|translation_small|rotation ...] [--overrides JSON]

``--from-pbe`` (hybrid stage) starts every PBE0 point as the pipeline does: the relax protocol's PBE single point on
the same geometry writes a wavefunction, and the PBE0 restarts from it with ``SCREEN_ON_INITIAL_P``
(``HybridScfWorkChain``'s restart settings). ``seconds`` is then the PBE0's alone; the PBE's is printed after it. Use it
on QDs whose PBE0 SCF does not converge from the atomic guess with the protocol's mixing.

``--keep DIR --resume`` reads every point that an earlier run with the same settings finished in ``DIR`` (the same
input and coordinates, checked) instead of running it again: on a QD whose point costs half an hour, one more
perturbation (``--only translation_small``) then costs one point, not two.

Exit status 0: every perturbation within the bounds; 1: a bound broken; 2: a CP2K point did not finish or its SCF
did not converge (its folder is kept and named; the line after it gives the ``--overrides`` of the SCF settings with
which the workchains' SCF handler retries a diverged diagonalisation, to measure those instead) or ``--resume`` found
another input in ``DIR``. Needs the project
profile and the ``cp2k@localhost`` code (``make setup``); stores nothing. Measured figures of every protocol:
docs/protocols.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge
from ase.io import read

from aiida_qdtraps.analysis.soundness import (
    Point,
    compare_points,
    read_point,
    rigid_motions,
    soundness_line,
    verdict,
)

#: The ``fast`` protocol as it was before the soundness work (GPW, 200 / 30 Ry, SZV): the cost baseline.
LEGACY_FAST = {
    'FORCE_EVAL': {'DFT': {'MGRID': {'CUTOFF': 200, 'REL_CUTOFF': 30, 'NGRIDS': 4},
                           'QS': {'METHOD': 'GPW', 'EPS_DEFAULT': 1.0e-10},
                           'SCF': {'EPS_SCF': 1.0e-5, 'MAX_SCF': 100, 'DIAGONALIZATION': {'ALGORITHM': 'STANDARD'},
                                   'MIXING': {'METHOD': 'BROYDEN_MIXING', 'ALPHA': 0.3, 'NBROYDEN': 8}}}},
}


def protocol_parameters(structure, protocol: str, stage: str, charge: int, multiplicity: int,
                        overrides: dict | None) -> tuple[dict, float, float | None]:
    """``(cp2k parameters, box vacuum, relax MAX_FORCE)`` of the protocol, made by its ``get_builder_from_protocol``."""
    from aiida import orm

    from aiida_qdtraps.workchains.electronic_state import electronic_state_changes
    from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
    from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

    code = orm.load_code('cp2k@localhost')
    relax = QdRelaxWorkChain.get_builder_from_protocol(code, structure, protocol=protocol)
    criterion = relax.base.cp2k.parameters['MOTION']['GEO_OPT'].get('MAX_FORCE', 4.5e-4)
    if stage == 'relax':
        parameters = relax.base.cp2k.parameters.get_dict()
        parameters.pop('MOTION', None)
        parameters['GLOBAL']['RUN_TYPE'] = 'ENERGY_FORCE'
        parameters['FORCE_EVAL']['PRINT'] = {'FORCES': {}}
        vacuum = relax.box_vacuum.value
    else:
        hybrid = HybridScfWorkChain.get_builder_from_protocol(code, structure, protocol=protocol)
        parameters = hybrid.scf.cp2k.parameters.get_dict()
        parameters['GLOBAL']['RUN_TYPE'] = 'ENERGY'
        printed = parameters['FORCE_EVAL']['DFT'].setdefault('PRINT', {})
        for section in ('MO_MOLDEN', 'E_DENSITY_CUBE', 'PDOS'):  # files the measurement does not need
            printed.pop(section, None)
        printed['MO'] = {'ENERGIES': True, 'OCCUPATION_NUMBERS': True, 'NDIGITS': 8, 'EACH': {'QS_SCF': 0}}
        vacuum = hybrid.box_vacuum.value
    parameters = recursive_merge(parameters, electronic_state_changes(charge, multiplicity))
    if overrides:
        parameters = recursive_merge(parameters, copy.deepcopy(overrides))
    return parameters, vacuum, criterion


#: the wavefunction file CP2K writes for PROJECT aiida, and the restart of a PBE0 point from the PBE point beside it
WFN = 'aiida-RESTART.wfn'
RESTART = {'FORCE_EVAL': {'DFT': {'WFN_RESTART_FILE_NAME': f'../pbe/{WFN}', 'SCF': {'SCF_GUESS': 'RESTART'}}}}
#: the exact exchange screened on the restart's density matrix, as ``HybridScfWorkChain`` does on every restart
SCREEN = {'FORCE_EVAL': {'DFT': {'XC': {'HF': {'SCREENING': {'SCREEN_ON_INITIAL_P': True}}}}}}


def pbe_energy_parameters(structure, protocol: str, charge: int, multiplicity: int) -> dict:
    """The relax protocol's settings as an ENERGY single point that writes its wavefunction (no forces printed)."""
    pbe, _, _ = protocol_parameters(structure, protocol, 'relax', charge, multiplicity, None)
    pbe['GLOBAL']['RUN_TYPE'] = 'ENERGY'
    pbe['FORCE_EVAL'].pop('PRINT', None)
    pbe['FORCE_EVAL']['DFT']['SCF']['PRINT'] = {'RESTART': {'BACKUP_COPIES': 0}}
    return pbe


def run_point(parameters: dict, atoms, folder: pathlib.Path, executable: str,
              resume: bool = False) -> tuple[Point, bool]:
    """Write the input as aiida-cp2k's Cp2kCalculation does, run CP2K, read energy, forces and HOMO/LUMO; return the
    point and whether it was read from an earlier run.

    With ``resume`` a folder that holds this very input (the same ``aiida.inp`` and coordinates) and a finished CP2K
    output is read instead of run again (its ``seconds`` from CP2K's own timer); an unfinished one is run again.

    :raises FileExistsError: if the folder holds another input (``--resume`` on another QD, protocol or setting).
    """
    from aiida_cp2k.calculations import _atoms_to_xyz
    from aiida_cp2k.utils import Cp2kInput

    from aiida_qdtraps.parsers.cp2k_files import parse_total_walltime

    inp = Cp2kInput(copy.deepcopy(parameters))
    inp.add_keyword('GLOBAL/PROJECT', 'aiida')
    for index, letter in enumerate('ABC'):
        inp.add_keyword(f'FORCE_EVAL/SUBSYS/CELL/{letter}', '{:<15} {:<15} {:<15}'.format(*atoms.cell[index]))
    inp.add_keyword('FORCE_EVAL/SUBSYS/TOPOLOGY/COORD_FILE_NAME', 'aiida.coords.xyz')
    inp.add_keyword('FORCE_EVAL/SUBSYS/TOPOLOGY/COORD_FILE_FORMAT', 'XYZ')
    text, coords = inp.render(), _atoms_to_xyz(atoms)
    if resume and folder.is_dir():
        kept = [folder / name for name in ('aiida.inp', 'aiida.coords.xyz')]
        if not all(path.is_file() for path in kept) or [path.read_text() for path in kept] != [text, coords]:
            raise FileExistsError(f'{folder} holds another input than this run would write (another QD, protocol, '
                                  'stage or --overrides): give --keep a new folder')
        output = folder / 'aiida.out'
        finished = output.read_text() if output.is_file() else ''
        if 'PROGRAM ENDED AT' in finished:
            return read_point(finished, parse_total_walltime(finished)), True
        shutil.rmtree(folder)  # stopped before CP2K finished: run it again
    elif folder.exists():
        raise FileExistsError(f'{folder} exists: give --keep a new folder, or --resume to read the points an earlier '
                              'run finished there')
    folder.mkdir(parents=True)
    (folder / 'aiida.inp').write_text(text)
    (folder / 'aiida.coords.xyz').write_text(coords)
    start = time.perf_counter()
    with open(folder / 'aiida.out', 'w') as handle:
        subprocess.run([executable, '-i', 'aiida.inp'], cwd=folder, stdout=handle, stderr=subprocess.STDOUT,
                       check=False)
    seconds = time.perf_counter() - start
    return read_point((folder / 'aiida.out').read_text(), seconds), False


def boxed_geometries(atoms, vacuum: float) -> dict:
    """The reference and its rigid motions, all in one cubic box that holds each with ``vacuum`` Å on every side."""
    from aiida_qdtraps.builder.qd import put_in_box

    reference = put_in_box(atoms, vacuum)
    motions = rigid_motions(reference.positions)
    length = reference.cell[0, 0]
    for positions, _ in motions.values():
        extent = positions.max(0) - positions.min(0)
        length = max(length, float(np.ceil(extent.max() + 2 * vacuum)))
    shift = 0.5 * length - 0.5 * (reference.positions.max(0) + reference.positions.min(0))
    geometries = {}
    for name, (positions, rotation) in [('baseline', (reference.positions, np.eye(3))), *motions.items()]:
        moved = reference.copy()
        moved.set_cell([length] * 3)
        moved.positions = positions + shift
        geometries[name] = (moved, rotation)
    return geometries


def rescue_overrides() -> dict:
    """The SCF settings with which ``QdCp2kBaseWorkChain`` retries a diverged diagonalisation, as ``--overrides``."""
    from aiida_qdtraps.workchains import cp2k_base

    return {'FORCE_EVAL': {'DFT': {'SCF': {
        'MIXING': {'METHOD': 'DIRECT_P_MIXING', 'ALPHA': cp2k_base.DIVERGED_ALPHA},
        'MAX_SCF': cp2k_base.DIVERGED_MAX_SCF, 'ADDED_MOS': cp2k_base.SMEAR_ADDED_MOS,
        'SMEAR': dict(cp2k_base.SMEARING)}}}}


def load_qd(parser: argparse.ArgumentParser, path: pathlib.Path):
    """``(atoms, unstored StructureData, cp2k executable)`` of the QD file, in the project profile; a missing CP2K is
    a usage error."""
    from aiida import orm

    from aiida_qdtraps.profile import load_project_profile

    load_project_profile()
    executable = shutil.which('cp2k.psmp') or shutil.which('cp2k')
    if executable is None:
        parser.error('cp2k.psmp is not on PATH (make setup)')
    atoms = read(path)
    atoms.pbc = False
    return atoms, orm.StructureData(ase=atoms), executable


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--structure', required=True, type=pathlib.Path, help='the QD (any format ASE reads)')
    parser.add_argument('--protocol', required=True, help='fast, moderate, precise or xtb (relax stage)')
    parser.add_argument('--stage', choices=('relax', 'hybrid'), default='relax')
    parser.add_argument('--from-pbe', action='store_true',
                        help='hybrid stage: start each PBE0 point from a PBE wavefunction of the same geometry, as '
                             'the pipeline does')
    parser.add_argument('--charge', type=int, default=0)
    parser.add_argument('--multiplicity', type=int, default=1)
    parser.add_argument('--legacy-fast', action='store_true',
                        help='also time one point with the old GPW 200 / 30 Ry fast settings on the same QD')
    parser.add_argument('--only', nargs='+', choices=('translation', 'translation_small', 'rotation'),
                        help='run only these perturbations')
    parser.add_argument('--overrides', type=json.loads, default=None,
                        help='JSON dict merged into the CP2K parameters (to measure a variation)')
    parser.add_argument('--keep', type=pathlib.Path, help='keep the CP2K folders here')
    parser.add_argument('--resume', action='store_true',
                        help='with --keep: read the points that an earlier run with the same settings finished there '
                             'instead of running them again (e.g. the baseline, for one more perturbation)')
    args = parser.parse_args(argv)
    if args.from_pbe and args.stage != 'hybrid':
        parser.error('--from-pbe needs --stage hybrid')
    if args.resume and not args.keep:
        parser.error('--resume needs --keep DIR (the folder of the earlier run)')

    atoms, structure, executable = load_qd(parser, args.structure)
    parameters, vacuum, criterion = protocol_parameters(structure, args.protocol, args.stage, args.charge,
                                                        args.multiplicity, args.overrides)
    pbe = None
    if args.from_pbe:
        pbe = pbe_energy_parameters(structure, args.protocol, args.charge, args.multiplicity)
        parameters = recursive_merge(recursive_merge(parameters, copy.deepcopy(RESTART)), copy.deepcopy(SCREEN))
    geometries = boxed_geometries(atoms, vacuum)
    if args.only:
        geometries = {k: v for k, v in geometries.items() if k == 'baseline' or k in args.only}
    root = args.keep or pathlib.Path(tempfile.mkdtemp(prefix='soundness-'))
    dft = parameters['FORCE_EVAL']['DFT']
    grid = f"{dft['MGRID'].get('CUTOFF')} Ry" if 'MGRID' in dft else 'none (no grid)'
    print(f'# {args.structure.name}: {len(atoms)} atoms, protocol {args.protocol}, stage {args.stage}, charge '
          f'{args.charge}, box {geometries["baseline"][0].cell[0, 0]:.1f} Å, CUTOFF {grid}, QS METHOD '
          f'{dft.get("QS", {}).get("METHOD", "GPW")}'
          + (', PBE0 from the PBE wavefunction' if pbe else ''), flush=True)
    reference = None
    failures = 0
    for name, (moved, rotation) in geometries.items():
        start, start_reused = None, False
        try:
            if pbe is not None:
                start, start_reused = run_point(pbe, moved, root / name / 'pbe', executable, args.resume)
                point, reused = run_point(parameters, moved, root / name / 'pbe0', executable, args.resume)
            else:
                point, reused = run_point(parameters, moved, root / name, executable, args.resume)
        except FileExistsError as exc:
            print(f'error: {exc}', flush=True)
            return 2
        except ValueError as exc:  # unfinished or unconverged SCF: nothing to compare
            print(f'{name} failed: {exc} (CP2K outputs under {root / name})', flush=True)
            print("# the workchains' SCF handler retries a diverged diagonalisation with its rescue settings; to "
                  f"measure those: --overrides '{json.dumps(rescue_overrides())}'", flush=True)
            return 2
        if reference is None:
            reference = point
        values = compare_points(reference, point, rotation)
        values.update(max_force_criterion=criterion if args.stage == 'relax' else float('nan'), seconds=point.seconds)
        line = soundness_line(name, values)
        broken = [] if name == 'baseline' else verdict(values, n_atoms=len(atoms))
        failures += bool(broken)
        comments = [] if name == 'baseline' else ['; '.join(broken) or 'sound']
        if start is not None:
            comments.append(f'PBE start {start.seconds:.1f} s')
        if reused or start_reused:
            comments.append(f'read from the finished run in {root / name} (seconds: CP2K\'s own timer)')
        print(line + (f"  # {' | '.join(comments)}" if comments else ''), flush=True)
    if args.legacy_fast:
        legacy = recursive_merge(copy.deepcopy(parameters), copy.deepcopy(LEGACY_FAST))
        for kind in legacy['FORCE_EVAL']['SUBSYS']['KIND']:
            kind['BASIS_SET'] = 'SZV-MOLOPT-SR-GTH'  # also drops the AUX_FIT basis: the old fast had no ADMM
            kind.pop('HARD_EXP_RADIUS', None)
        legacy['FORCE_EVAL']['DFT'].pop('AUXILIARY_DENSITY_MATRIX_METHOD', None)
        legacy['FORCE_EVAL']['DFT']['SCF'].pop('OT', None)
        legacy['FORCE_EVAL']['DFT']['SCF'].pop('OUTER_SCF', None)
        from aiida_qdtraps.builder.qd import put_in_box

        point, _ = run_point(legacy, put_in_box(atoms, 3.5), root / 'legacy_fast', executable, args.resume)
        print(f'legacy_fast seconds={point.seconds:.1f} ratio_sound_to_legacy={reference.seconds / point.seconds:.2f}')
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())

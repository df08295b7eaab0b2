"""The `moderate` protocol end to end on a realistic 35-atom QD: relax → PBE0 (ADMM) → trap labels.

    source env.sh
    verdi run examples/moderate_cdse.py                 # fast pre-relax, then the moderate pipeline
    verdi run examples/moderate_cdse.py --no-prerelax   # the moderate pipeline from the library geometry itself
    verdi run examples/moderate_cdse.py --structure MY_QD.xyz --charge 0
    verdi run examples/moderate_cdse.py --start PK      # the pipeline from a stored (e.g. pre-relaxed) structure
    verdi run examples/moderate_cdse.py --build         # the builder's own Cd16Se13Cl6 (xtb → fast → moderate)

The QD is Cd16Se13Cl6 of the nlesc-nano model library (a Cd-rich zincblende CdSe core with six Cl, charge-balanced,
optimised by its authors with the HLE17 functional; shipped in the package, MIT licence). Its PBE minimum lies close
to the HLE17 one (largest PBE force 4.6e-3 Ha/bohr there), but `moderate` asks for forces below 4.5e-4. A `fast`
relax (the same GAPW/DZVP-MOLOPT-SR-GTH model chemistry on a 200 Ry grid, forces sound to 1e-4 Ha/bohr on this QD)
first takes it to the `fast` criteria at a quarter of the cost per step; the `moderate`
pipeline (400 Ry, 5 Å vacuum, forces to 4.5e-4 Ha/bohr, PBE0 + ADMM from the relax's wavefunction) then relaxes,
runs the hybrid single point and labels the traps. Both relaxes are nodes of the same provenance graph.

Prints the pipeline table, the wall time of every stage and the work chains' reports (the handler log). Measured on
a 2-core machine with one CP2K thread (docs/protocols.md): the `fast` pre-relax 615 s (4 LBFGS steps); the `moderate`
relax 83 min of CP2K (3 LBFGS steps, 7 evaluations of 15–27 SCF steps of ~30 s at 400 Ry in a 22 Å box), the PBE0
922 s, the labels seconds: PBE0 gap 4.213 eV, no trap centre. About 1.8 CPU-hours in all: a cluster node's job.

`--build` starts from the builder's default CdSe QD instead, `build_qd('CdSe', 10.0, ligand='Cl')`: also
Cd16Se13Cl6, but bulk-terminated, with four two-coordinate Cd and four terminal Cl. The PBE SCF diverges on that
geometry (docs/protocols.md), so its `fast` pre-relax starts with a GFN1-xTB pre-relaxation (`prerelax='xtb'`, a
few minutes), after which the SCF converges with the protocol's own settings. `--xtb` does the same for any QD.
Measured with `--build --protocol fast --no-prerelax` (the `fast` pipeline with the xTB pre-relaxation): 2,616 s in
all, PBE0 gap 3.912 eV, one shallow electron-trap state on a Cd–Cd contact (docs/protocols.md). `--build` itself:
the xTB + `fast` pre-relax 1,508 s; the `moderate` relax of this isomer slides along a soft surface mode (7 LBFGS
steps, 103 min of CP2K, largest gradient still 1.4e-3 Ha/bohr when it was stopped). BFGS does better there (no
uphill first step; the forces met the criteria after 9 steps), so `--build` relaxes with BFGS unless `--optimizer`
says otherwise. `moderate` ends a relax on its forces (MAX_DR 3e-2 bohr); the pipeline from the geometry where the
forces were met (`--structure STEP9.xyz --no-prerelax --optimizer BFGS`): relax 1 step, 1,549 s; PBE0 964 s; PBE0 gap
3.958 eV, one shallow electron trap on the Cd-Cd contact; 2,527 s in all (docs/protocols.md). Plan for about 2.5
hours on one core (estimated: the single `--build` run has not been timed) and 6 GB of memory.
"""

import argparse
import time
from importlib.resources import files

from aiida import orm
from aiida.cmdline.utils.common import get_workchain_report
from aiida.engine import run_get_node

from aiida_qdtraps.report import format_table, pipeline_rows
from aiida_qdtraps.workchains.build import build_qd_structure, import_structure
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
parser.add_argument('--structure', help='xyz (or any ASE format) of the QD; default: the library Cd16Se13Cl6')
parser.add_argument('--charge', type=int, default=0)
parser.add_argument('--protocol', default='moderate', help='of the pipeline (default moderate)')
parser.add_argument('--prerelax', default='fast', help='protocol of the pre-relax (default fast)')
parser.add_argument('--no-prerelax', action='store_true', help='relax with --protocol only')
parser.add_argument('--start', type=int, help='pk of a stored StructureData to run the pipeline on (no pre-relax)')
parser.add_argument('--build', action='store_true',
                    help="the builder's build_qd('CdSe', 10.0, ligand='Cl') instead of the library QD (implies --xtb)")
parser.add_argument('--xtb', action='store_true', help='start the first relax with a GFN1-xTB pre-relaxation')
parser.add_argument('--optimizer', choices=('BFGS', 'LBFGS', 'CG'),
                    help="CP2K GEO_OPT optimizer of the pipeline's relax (default: the protocol's; BFGS with --build)")
parser.add_argument('--code', default='cp2k@localhost')
args = parser.parse_args()

code = orm.load_code(args.code)
if args.start is not None:
    structure = orm.load_node(args.start)
    if not isinstance(structure, orm.StructureData):
        raise SystemExit(f'--start {args.start} is a {type(structure).__name__}, not a StructureData')
elif args.build:
    if args.structure:
        raise SystemExit('give --build or --structure, not both')
    structure = build_qd_structure(orm.Dict({'material': 'CdSe', 'diameter': 10.0, 'ligand': 'Cl'}))
else:
    path = args.structure or str(files('aiida_qdtraps') / 'demo_data' / 'Cd16Se13Cl6_HLE17_12ang_opt.xyz')
    structure = import_structure(orm.SinglefileData(path), orm.Dict({'charge': args.charge}))
xtb = 'xtb' if (args.xtb or args.build) else None
print(f'{structure.get_formula()} ({len(structure.sites)} atoms, charge {args.charge:+d}): '
      f'StructureData<{structure.pk}>', flush=True)

stages = []
if not (args.no_prerelax or args.start is not None):
    begin = time.perf_counter()
    builder = QdRelaxWorkChain.get_builder_from_protocol(code, structure, protocol=args.prerelax, charge=args.charge,
                                                         prerelax=xtb)
    _, prerelax = run_get_node(builder)
    stages.append((f'{args.prerelax} pre-relax', prerelax, time.perf_counter() - begin))
    if not prerelax.is_finished_ok:
        print(get_workchain_report(prerelax, 'REPORT'))
        raise SystemExit(f'QdRelaxWorkChain<{prerelax.pk}> failed: exit status {prerelax.exit_status}')
    structure = prerelax.outputs.relaxed_structure
    print(f'pre-relax ({args.prerelax}) finished in {stages[-1][2]:.0f} s: StructureData<{structure.pk}>', flush=True)

begin = time.perf_counter()
first = xtb if (args.no_prerelax or args.start is not None) else None  # else the pre-relax above had it
overrides = None
optimizer = args.optimizer or ('BFGS' if args.build else None)
if optimizer:
    overrides = {'relax': {'base': {'cp2k': {'parameters': {'MOTION': {'GEO_OPT': {'OPTIMIZER': optimizer}}}}}}}
builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(code, structure, protocol=args.protocol,
                                                            charge=args.charge, prerelax=first, overrides=overrides)
_, pipeline = run_get_node(builder)
stages.append((f'{args.protocol} pipeline', pipeline, time.perf_counter() - begin))

for name, node, seconds in stages:
    print(f'--- {name}: {node.process_label}<{node.pk}> exit {node.exit_status}, {seconds:.0f} s')
    print(get_workchain_report(node, 'REPORT'))
if pipeline.is_finished_ok:
    print(format_table(pipeline_rows(pipeline)))
print(f'verdi process report {pipeline.pk}')
raise SystemExit(0 if pipeline.is_finished_ok else 1)

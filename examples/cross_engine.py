"""Cross-engine check on one InP QD: CP2K and Quantum ESPRESSO relaxations, geometries and Bader charges side by side.

    source env.sh
    OMP_NUM_THREADS=1 verdi run examples/cross_engine.py          # everything, then the table
    OMP_NUM_THREADS=1 verdi run examples/cross_engine.py qe       # only the QE relax + density + Bader
    OMP_NUM_THREADS=1 verdi run examples/cross_engine.py cp2k     # only the CP2K relax + PBE density + Bader
    OMP_NUM_THREADS=1 verdi run examples/cross_engine.py all 80   # everything plus a pw.x force check at 80 Ry

QD: In4PCl9 (14 atoms, 120 valence electrons) from the builder (RECIPE). Same GTH-PBE potentials in both engines; by
default both relaxations start from the same built geometry and use their engine's ``fast`` protocol, whose force
thresholds match (CP2K max force 4.5e-3 Ha/bohr, pw.x forc_conv_thr 9e-3 Ry/bohr: 0.23 eV/Å).

What was run for docs/qe.md::

    QE_START_CALC=1202 QE_START_PW=1625 RECORD_DIR=tests/data/qe/in4pcl9 verdi run examples/cross_engine.py all 60

i.e. both engines relax (``fast``) from the last frame of an earlier, stopped CP2K GEO_OPT of the built QD
(CalcJob<1202>), and QE continues its own earlier relax (PwCalculation<1625>, stopped for time after 9 BFGS
evaluations with the same settings) from its last frame; both relaxes converged.

1. CP2K: ``QdRelaxWorkChain`` protocol ``fast`` (SZV-MOLOPT-SR-GTH, 200 Ry, 3.5 Å vacuum, wavelet Poisson); its PBE
   valence density from a CP2K PBE single point on the relaxed QD (``HybridScfWorkChain`` fast with the HF part
   removed), since the relax prints no density;
2. QE: ``QdRelaxWorkChain`` with ``pw@localhost``, protocol ``fast`` (40 Ry for In/P/Cl, ``ecutrho`` 160 Ry; neutral, so
   no Martyna-Tuckerman) in a 2.5 Å vacuum box instead of 3.5 Å to save time; pp.x valence density;
3. both densities through the same ``BaderChargeFlowWorkChain`` (baderkit);
4. projwfc.x on the QE relax (Löwdin charges, PBE HOMO/LUMO, PDOS figure; ``analyse_projwfc``);
5. optional: pw.x SCF + forces at higher cutoffs (argv[2:], Ry) on the 40 Ry QE geometry: the residual forces are the
   force error of 40 Ry there;
6. ``compare_relaxed_qds`` calcfunction: RMSD after optimal rotation/translation (ase), In-P / In-Cl bond lengths,
   mean Bader Δq per element; printed as the table of docs/qe.md and stored as a Dict node.

With AiiDA caching on (``qdtraps setup`` enables it) a second run reuses every finished CalcJob and only prints.
``RECORD_DIR=tests/data/qe/in4pcl9`` also writes the files of the recorded-output regression test there.
"""

import json
import os
import pathlib
import sys

from aiida import orm
from aiida.engine import calcfunction, run_get_node

from aiida_qdtraps.protocols import element_settings
from aiida_qdtraps.workchains.build import build_qd_structure
from aiida_qdtraps.workchains.charge_flow import BaderChargeFlowWorkChain
from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.qe import compare_relaxed_qds, format_comparison, qe_scf_builder
from aiida_qdtraps.workchains.relax import QdRelaxWorkChain

RECIPE = {'material': 'InP', 'diameter': 5.2, 'ligand': 'Cl', 'charge': 0, 'center': 'anion', 'vacuum': 2.5,
          'min_core_bonds': 1}
#: 2.5 Å vacuum instead of the fast protocol's 3.5 Å (1.7x fewer plane waves). The protocol gives this neutral QD plain
#: periodic boundaries (no Martyna-Tuckerman, which needs a box twice its extent; docs/qe.md).
QE_OVERRIDES = {'box_vacuum': 2.5}
STAGE = sys.argv[1] if len(sys.argv) > 1 else 'all'
#: QE_START_CALC=<pk of a CP2K GEO_OPT CalcJob>: QE starts from that run's last geometry (cp2k_last_frame) instead of
#: the built QD, to need fewer BFGS steps on a loaded machine.
QE_START_CALC = os.environ.get('QE_START_CALC')
#: QE_START_PW=<pk of an unfinished (stopped) PwCalculation relax>: QE continues from that run's last geometry in its
#: ``aiida.out`` (pw_last_frame), e.g. a relax stopped for time; the CP2K side is unchanged.
QE_START_PW = os.environ.get('QE_START_PW')
CHECK_CUTOFFS = tuple(float(v) for v in sys.argv[2:])


@calcfunction
def cp2k_last_frame(remote_folder: orm.RemoteData, structure: orm.StructureData) -> orm.StructureData:
    """Last frame of a CP2K GEO_OPT trajectory (``aiida-pos-1.xyz`` in its local work folder), cell of ``structure``."""
    from ase.io import read

    frame = read(pathlib.Path(remote_folder.get_remote_path()) / 'aiida-pos-1.xyz', index=-1)
    atoms = structure.get_ase()
    if frame.get_chemical_symbols() != atoms.get_chemical_symbols():
        raise ValueError('trajectory and structure hold different atoms')
    atoms.positions = frame.positions
    return orm.StructureData(ase=atoms)


@calcfunction
def pw_last_frame(remote_folder: orm.RemoteData, structure: orm.StructureData) -> orm.StructureData:
    """Last geometry of a (possibly stopped) pw.x relax (``aiida.out`` in its work folder), cell of ``structure``."""
    from ase.io import read

    frame = read(pathlib.Path(remote_folder.get_remote_path()) / 'aiida.out', format='espresso-out', index=-1)
    atoms = structure.get_ase()
    if frame.get_chemical_symbols() != atoms.get_chemical_symbols():
        raise ValueError('pw.x output and structure hold different atoms')
    atoms.positions = frame.positions
    return orm.StructureData(ase=atoms)


def checked(node):
    assert node.is_finished_ok, (node.process_label, node.pk, node.exit_status, node.exit_message)
    return node


def bader(structure, cube, code):
    """Bader charge flow of ``cube`` with the GTH valence charges (the same for both engines)."""
    valence = {el: element_settings()[el]['valence'] for el in set(structure.get_kind_names())}
    results, node = run_get_node(BaderChargeFlowWorkChain, structure=structure, density_cube=cube, charge=orm.Int(0),
                                 valence=orm.Dict(valence), bader={'code': code})
    checked(node)
    return results


def cp2k_pbe_density(code, structure):
    """CP2K PBE single point (HybridScfWorkChain fast without HF) on ``structure``: its density cube."""
    builder = HybridScfWorkChain.get_builder_from_protocol(code, structure, protocol='fast')
    parameters = builder.scf.cp2k.parameters.get_dict()
    xc = parameters['FORCE_EVAL']['DFT']['XC']
    xc.pop('HF')
    xc['XC_FUNCTIONAL'] = {'_': 'PBE'}
    builder.scf.cp2k.parameters = orm.Dict(parameters)
    results, node = run_get_node(builder)
    checked(node)
    return results


def run_cp2k(structure, cp2k, baderkit):
    results, node = run_get_node(QdRelaxWorkChain.get_builder_from_protocol(cp2k, structure, protocol='fast'))
    relaxed = checked(node).outputs.relaxed_structure
    print(f'CP2K relax: QdRelaxWorkChain<{node.pk}> relaxed <{relaxed.pk}>', flush=True)
    scf = cp2k_pbe_density(cp2k, relaxed)
    flow = bader(scf['structure'], scf['density_cube'], baderkit)
    print(f"CP2K PBE density: <{scf['density_cube'].pk}>, Bader <{flow['summary'].pk}>", flush=True)
    return relaxed, flow


def qe_projwfc(qe_node, qe_results, code):
    """projwfc.x on the finished QE relax's folder (as ``QdRelaxWorkChain`` does with ``projwfc_code``): Löwdin
    charges, HOMO/LUMO and the PDOS figure of the QE-relaxed QD."""
    from aiida.plugins import CalculationFactory

    from aiida_qdtraps.workchains.qe import QeRelaxProtocol, analyse_projwfc

    protocol = QeRelaxProtocol.get_protocol_inputs('fast')['projwfc']
    _, calc = run_get_node(CalculationFactory('quantumespresso.projwfc'), code=code,
                           parent_folder=qe_results['remote_folder'], parameters=orm.Dict(protocol['parameters']),
                           metadata=protocol['metadata'])
    checked(calc)
    relax = [c for c in qe_node.called_descendants if c.process_label == 'PwCalculation'][-1]
    analysis = analyse_projwfc(calc.outputs.retrieved, qe_results['relaxed_structure'], relax.outputs.output_parameters,
                               projections=calc.outputs.projections, **qe_node.inputs.qe.pw.pseudos)
    summary = analysis['orbital_summary'].get_dict()
    print(f"QE projwfc.x: ProjwfcCalculation<{calc.pk}>, Löwdin (mean per element) "
          f"{ {el: round(q, 3) for el, q in summary['lowdin_charge_by_element'].items()} }, spilling "
          f"{summary['spilling']}, HOMO {summary['homo']:.3f} / LUMO {summary['lumo']:.3f} eV (gap "
          f"{summary['gap']:.3f}), PDOS figure SinglefileData<{analysis['pdos_plot'].pk}>", flush=True)
    return analysis


def run_qe(structure, pw, pp, baderkit):
    results, node = run_get_node(QdRelaxWorkChain.get_builder_from_protocol(
        pw, structure, protocol='fast', overrides=QE_OVERRIDES, pp_code=pp))
    checked(node)
    relaxed = results['relaxed_structure']
    print(f'QE relax: QdRelaxWorkChain<{node.pk}> relaxed <{relaxed.pk}>', flush=True)
    flow = bader(relaxed, results['density_cube'], baderkit)
    print(f"QE density: <{results['density_cube'].pk}>, Bader <{flow['summary'].pk}>", flush=True)
    return node, results, flow


def main():
    cp2k = orm.load_code('cp2k@localhost')
    pw, pp = orm.load_code('pw@localhost'), orm.load_code('pp@localhost')
    baderkit = orm.load_code('baderkit@localhost')
    structure = build_qd_structure(orm.Dict(RECIPE))
    start = structure
    if STAGE in ('all', 'qe', 'cp2k'):
        if QE_START_CALC:
            calc = orm.load_node(int(QE_START_CALC))
            start = cp2k_last_frame(calc.outputs.remote_folder, calc.inputs.structure)
            print(f'QE starts from the last frame of CP2K CalcJob<{calc.pk}>: <{start.pk}>', flush=True)
    qe_start = start
    if STAGE in ('all', 'qe') and QE_START_PW:
        calc = orm.load_node(int(QE_START_PW))
        qe_start = pw_last_frame(calc.outputs.remote_folder, calc.inputs.structure)
        print(f'QE continues from the last frame of PwCalculation<{calc.pk}>: <{qe_start.pk}>', flush=True)
    if STAGE in ('all', 'qe'):
        qe_node, qe_results, qe_bader = run_qe(qe_start, pw, pp, baderkit)
    if STAGE in ('all', 'cp2k'):  # CP2K relaxes (fast) from the same start as QE
        cp2k_relaxed, cp2k_bader = run_cp2k(start, cp2k, baderkit)
    if STAGE != 'all':
        return
    qe_relaxed = qe_results['relaxed_structure']
    qe_orbitals = qe_projwfc(qe_node, qe_results, orm.load_code('projwfc@localhost'))
    ecut = qe_node.inputs.qe.pw.parameters['SYSTEM']['ecutwfc']
    checks = {}
    for cutoff in CHECK_CUTOFFS:
        _, node = run_get_node(qe_scf_builder(pw, qe_relaxed, cutoff))
        checks[f'check_{cutoff:g}'] = checked(node).outputs.output_trajectory
        print(f'QE SCF at {cutoff:g} Ry on the QE geometry: PwBaseWorkChain<{node.pk}>', flush=True)
    comparison = compare_relaxed_qds(
        cp2k_relaxed=cp2k_relaxed, qe_relaxed=qe_relaxed,
        cp2k_charges=cp2k_bader['bader_charges'], qe_charges=qe_bader['bader_charges'],
        qe_trajectory=qe_results['output_trajectory'], **checks)
    print(f'comparison: Dict<{comparison.pk}> (QE relax at {ecut} Ry)')
    print(format_comparison(comparison.get_dict()))
    if os.environ.get('RECORD_DIR'):
        record(pathlib.Path(os.environ['RECORD_DIR']), cp2k_relaxed, qe_node, cp2k_bader, qe_bader, comparison, ecut,
               qe_orbitals)


def record(directory, cp2k_relaxed, qe_node, cp2k_bader, qe_bader, comparison, ecut, qe_orbitals):
    """Files of the recorded-output test: pw.x relax and projwfc.x outputs, CP2K geometry, Bader and Löwdin charges
    and the comparison."""
    directory.mkdir(parents=True, exist_ok=True)
    pw_calc = [c for c in qe_node.called_descendants if c.process_label == 'PwCalculation'][-1]
    (directory / 'pw_relax.out').write_text(pw_calc.outputs.retrieved.base.repository.get_object_content('aiida.out'))
    cp2k_relaxed.get_ase().write(directory / 'cp2k_relaxed.xyz', format='xyz')
    projwfc = qe_orbitals['lowdin_charges'].creator.inputs.retrieved
    (directory / 'projwfc.out').write_text(projwfc.base.repository.get_object_content('aiida.out'))
    parameters = qe_node.inputs.qe.pw.parameters.get_dict()
    reference = {
        'source': 'examples/cross_engine.py', 'qe_relax': qe_node.pk, 'pw_calculation': pw_calc.pk,
        'qe': {'ecutwfc': ecut, 'forc_conv_thr': parameters['CONTROL']['forc_conv_thr'],
               'relax_steps': comparison['qe_relax_steps'],
               'bader_charges': qe_bader['bader_charges'].get_array('charges').round(4).tolist(),
               'vacuum_charge': qe_bader['summary']['vacuum_charge'],
               'lowdin_charges': qe_orbitals['lowdin_charges'].get_array('charges').round(4).tolist(),
               'orbital_summary': qe_orbitals['orbital_summary'].get_dict()},
        'cp2k': {'relaxed_structure': cp2k_relaxed.pk,
                 'bader_charges': cp2k_bader['bader_charges'].get_array('charges').round(4).tolist(),
                 'vacuum_charge': cp2k_bader['summary']['vacuum_charge']},
        'comparison': comparison.get_dict(),
    }
    (directory / 'reference.json').write_text(json.dumps(reference, indent=1) + '\n')
    print(f'recorded into {directory}')


if __name__ == '__main__':
    main()

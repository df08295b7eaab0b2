"""CP2K PBE0 and PySCF PBE0/def2-SVP on QDs of the shipped library, through AiiDA: gaps, band edges, labels, time.

Run: ``OMP_NUM_THREADS=1 verdi run benchmarks/hybrid_engines_library.py [--formulas Cl9In4P F9In4P F6In6P4]
[--cp2k-protocols fast] [--pyscf-protocol fast] [--cp2k-code cp2k@localhost] [--pyscf-code dp-python@localhost]``

Each QD is the geometry a labelling of ``tests/data/library/library.aiida`` ran on (the archive is imported into the
profile the first time), with that labelling's net charge. Per QD and engine it runs ``HybridScfWorkChain``
(``engine='cp2k'`` with each CP2K protocol, ``engine='pyscf'``) and ``TrapLabelingWorkChain`` on its window, and prints
one row: HOMO, LUMO and gap, the band edges VBM and CBM of the labels (eV), hole and electron traps, how many atom
labels differ from the PySCF row and the wall time of the hybrid work chain (s, creation to last change of
its node, or ``cached`` when every CalcJob of it came from the cache; the machine's load average at the start is
printed with it). Everything is stored: rerunning with caching on reuses the runs.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

from aiida import orm
from aiida.engine import run_get_node

import aiida_qdtraps
from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.traps import TrapLabelingWorkChain

GROUP = 'qdtraps/library'
#: ``verdi run`` does not set ``__file__`` to the script: the archive is found from the (editable) package.
ARCHIVE = pathlib.Path(aiida_qdtraps.__file__).resolve().parents[1] / 'tests' / 'data' / 'library' / 'library.aiida'


def library() -> orm.Group:
    try:
        return orm.load_group(GROUP)
    except Exception:  # noqa: BLE001 (NotExistent): import the shipped archive once
        from aiida.tools.archive import import_archive

        import_archive(ARCHIVE)
        return orm.load_group(GROUP)


def library_qd(group: orm.Group, formula: str) -> tuple[orm.StructureData, int]:
    """The structure and net charge of the first labelling of ``formula`` in the library."""
    from aiida_qdtraps import provenance

    for node in sorted(group.nodes, key=lambda n: n.pk):
        label = provenance.labeling(node)
        structure = label.inputs.structure
        if structure.get_formula() == formula:
            pbe0 = provenance.scf_calcjob(label.inputs.mo_window)
            return structure, int(pbe0.inputs.parameters['FORCE_EVAL']['DFT'].get('CHARGE', 0))
    formulas = sorted({provenance.labeling(n).inputs.structure.get_formula() for n in group.nodes})
    raise SystemExit(f'{formula} is not in {GROUP}: {formulas}')


def atom_label_names(atom_labels: orm.ArrayData) -> list[str]:
    names = atom_labels.base.attributes.get('label_names')
    return [names[k] for k in atom_labels.get_array('label')]


def run(structure, charge, engine: str, protocol: str, cp2k_code, pyscf_code) -> dict:
    load = os.getloadavg()[0]
    kwargs = {'engine': 'pyscf', 'pyscf_code': pyscf_code} if engine == 'pyscf' else {}
    builder = HybridScfWorkChain.get_builder_from_protocol(cp2k_code, structure, protocol=protocol, charge=charge,
                                                          **kwargs)
    _, scf = run_get_node(builder)
    if not scf.is_finished_ok:
        return {'failed': f'HybridScfWorkChain<{scf.pk}> {scf.exit_status}: {scf.exit_message}'}
    _, labels = run_get_node(TrapLabelingWorkChain, structure=scf.outputs.structure, mo_window=scf.outputs.mo_window,
                             protocol=orm.Str(f'{engine}-{protocol}'))
    if not labels.is_finished_ok:
        return {'failed': f'TrapLabelingWorkChain<{labels.pk}> {labels.exit_status}: {labels.exit_message}'}
    spin = labels.outputs.summary['spins'][0]
    traps = [t.get_dict() for t in labels.outputs.traps.values()] if 'traps' in labels.outputs else []
    calcjobs = [n for n in scf.called_descendants if isinstance(n, orm.CalcJobNode)]
    cached = bool(calcjobs) and all(n.base.caching.is_created_from_cache for n in calcjobs)
    return {'homo': spin['homo_ev'], 'lumo': spin['lumo_ev'], 'vbm': spin['vbm_ev'], 'cbm': spin['cbm_ev'],
            'holes': sum(t['carrier'] == 'hole' for t in traps), 'electrons': sum(t['carrier'] == 'electron'
                                                                                    for t in traps),
            'atom_labels': atom_label_names(labels.outputs.atom_labels),
            'seconds': None if cached else (scf.mtime - scf.ctime).total_seconds(), 'load': load, 'pk': scf.pk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--formulas', nargs='+', default=['Cl9In4P', 'F9In4P', 'F6In6P4'])
    parser.add_argument('--cp2k-protocols', nargs='+', default=['fast'])
    parser.add_argument('--pyscf-protocol', default='fast')
    parser.add_argument('--cp2k-code', default='cp2k@localhost')
    parser.add_argument('--pyscf-code', default='dp-python@localhost')
    args = parser.parse_args()
    cp2k_code, pyscf_code = orm.load_code(args.cp2k_code), orm.load_code(args.pyscf_code)
    group = library()
    header = (f"{'QD':<10} {'engine':<12} {'HOMO':>8} {'LUMO':>8} {'gap':>6} {'VBM':>8} {'CBM':>8} {'holes':>5} "
              f"{'elec.':>5} {'labels≠':>7} {'time/s':>7} {'load':>5}")
    rows = []
    for formula in args.formulas:
        structure, charge = library_qd(group, formula)
        print(f'{formula}: {len(structure.sites)} atoms, charge {charge}', flush=True)
        results = {('pyscf', args.pyscf_protocol): None}
        results.update({('cp2k', p): None for p in args.cp2k_protocols})
        for engine, protocol in results:
            start = time.perf_counter()
            results[engine, protocol] = run(structure, charge, engine, protocol, cp2k_code, pyscf_code)
            print(f'  {engine} {protocol}: {time.perf_counter() - start:.0f} s', flush=True)
        reference = results['pyscf', args.pyscf_protocol].get('atom_labels')
        for (engine, protocol), r in results.items():
            name = f'{engine} {protocol}'
            if 'failed' in r:
                rows.append(f"{formula:<10} {name:<12} {r['failed']}")
                continue
            differ = '-'
            if reference is not None:
                differ = str(sum(a != b for a, b in zip(r['atom_labels'], reference)))
            rows.append(f"{formula:<10} {name:<12} {r['homo']:8.3f} {r['lumo']:8.3f} {r['lumo'] - r['homo']:6.3f} "
                        f"{r['vbm']:8.3f} {r['cbm']:8.3f} {r['holes']:5d} {r['electrons']:5d} {differ:>7} "
                        + ('  cached' if r['seconds'] is None else f"{r['seconds']:7.0f}") + f" {r['load']:5.1f}")
        print(header, *rows[-len(results):], sep='\n', flush=True)
    print('all QDs:', header, *rows, sep='\n')


if __name__ == '__main__':
    main()

"""Calcfunctions of the Quantum ESPRESSO branch (:mod:`.qe`) and of the CP2K / QE comparison.

- :func:`analyse_projwfc`: projwfc.x's Löwdin charges, HOMO/LUMO and a PDOS figure of the relaxed QD;
- :func:`extract_density_cube`: pp.x's valence density cube (e/bohr³) as the ``density_cube`` output;
- :func:`compare_relaxed_qds`: a CP2K and a QE relaxation of one QD side by side (:func:`format_comparison` writes
  the table of docs/qe.md).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

#: File pp.x writes the cube to (``PpCalculation``'s ``fileout``) and the name of the ``density_cube`` output.
PP_FILEOUT = 'aiida.fileout'
DENSITY_CUBE_FILENAME = 'valence_density.cube'


@calcfunction
def analyse_projwfc(retrieved: orm.FolderData, structure: orm.StructureData, relax_parameters: orm.Dict,
                    projections: orm.ProjectionData | None = None, **pseudos) -> dict:
    """Löwdin charges (always) and, for a spin-restricted run (``projections`` given), HOMO/LUMO and a PDOS figure.

    ``pseudos``: the relax's UPF nodes by kind (their ``z_valence`` turn populations into charges);
    ``relax_parameters``: pw.x's ``output_parameters`` (``number_of_electrons``).
    """
    import io

    import numpy as np

    from ..analysis.cross_engine import (
        atom_band_weights,
        mean_by_element,
        parse_projwfc_lowdin,
    )
    from ..analysis.plots import pdos_plot

    stdout = retrieved.base.repository.get_object_content('aiida.out')
    lowdin = parse_projwfc_lowdin(stdout)
    kinds = [site.kind_name for site in structure.sites]
    if len(lowdin['populations']) != len(kinds):
        raise ValueError(f"projwfc.x gave {len(lowdin['populations'])} Löwdin atoms for {len(kinds)} sites")
    valence = np.array([pseudos[kind].z_valence for kind in kinds], dtype=float)
    populations = np.array(lowdin['populations'])
    charges = valence - populations
    charges_node = orm.ArrayData()
    charges_node.set_array('populations', populations)
    charges_node.set_array('charges', charges)
    charges_node.base.attributes.set('spilling', lowdin['spilling'])
    charges_node.base.attributes.set('by_l', lowdin['by_l'])
    atoms = structure.get_ase()
    summary = {'spilling': lowdin['spilling'],
               'lowdin_charge_by_element': mean_by_element(atoms.get_chemical_symbols(), charges)}
    outputs = {'lowdin_charges': charges_node}
    if projections is not None:
        pairs = projections.get_projections()  # (orbital, |<phi|psi>|^2 per k-point and band) for every orbital
        weights = atom_band_weights([orbital.get_orbital_dict()['position'] for orbital, _ in pairs],
                                    [array[0] for _, array in pairs], atoms.positions)
        energies = projections.get_reference_bandsdata().get_bands()[0]
        n_occupied = round(relax_parameters['number_of_electrons']) // 2
        homo, lumo = float(energies[n_occupied - 1]), float(energies[n_occupied])
        summary.update({'homo': homo, 'lumo': lumo, 'gap': lumo - homo, 'n_bands': len(energies)})
        symbols = np.array(atoms.get_chemical_symbols())
        groups = {el: symbols == el for el in dict.fromkeys(symbols)}
        png = pdos_plot(energies, weights, groups, homo, lumo,
                        title=f'{atoms.get_chemical_formula()}: pw.x PBE, projwfc.x PDOS (HOMO/LUMO dashed)')
        outputs['pdos_plot'] = orm.SinglefileData(io.BytesIO(png), filename='qe_pdos.png')
    outputs['orbital_summary'] = orm.Dict(summary)
    return outputs


@calcfunction
def extract_density_cube(retrieved: orm.FolderData) -> orm.SinglefileData:
    """The valence density cube pp.x wrote (``aiida.fileout``, e/bohr³) as a ``SinglefileData``."""
    with retrieved.base.repository.open(PP_FILEOUT, 'rb') as handle:
        return orm.SinglefileData(handle, filename=DENSITY_CUBE_FILENAME)


@calcfunction
def compare_relaxed_qds(cp2k_relaxed: orm.StructureData, qe_relaxed: orm.StructureData, cp2k_charges: orm.ArrayData,
                        qe_charges: orm.ArrayData, qe_trajectory: orm.TrajectoryData, **checks) -> orm.Dict:
    """Side-by-side numbers of a CP2K and a QE relaxation of one QD (same atom order), stored as a ``Dict``.

    ``checks``: ``check_<ecut>`` -> pw.x ``output_trajectory`` of an SCF at a higher cutoff on the QE geometry; its
    largest force component is the force error of the relax cutoff at that geometry.
    """
    import numpy as np

    from ..analysis.cross_engine import (
        aligned_rmsd,
        bond_lengths_by_pair,
        mean_by_element,
    )

    a, b = cp2k_relaxed.get_ase(), qe_relaxed.get_ase()
    rmsd, max_dev, per_atom = aligned_rmsd(a, b)
    symbols = a.get_chemical_symbols()
    result = {
        'formula': a.get_chemical_formula(), 'n_atoms': len(a),
        'rmsd': rmsd, 'max_deviation': max_dev, 'max_deviation_atom': f'{symbols[int(per_atom.argmax())]}'
                                                                       f'{int(per_atom.argmax())}',
        'bonds': bond_lengths_by_pair([a, b]),
        'bader_dq': {'cp2k': mean_by_element(symbols, cp2k_charges.get_array('charges')),
                     'qe': mean_by_element(symbols, qe_charges.get_array('charges'))},
        'qe_relax_steps': len(qe_trajectory.get_array('energy')),
        'qe_final_max_force': float(np.abs(qe_trajectory.get_array('forces')[-1]).max()),
        'qe_force_check': {key.removeprefix('check_'): float(np.abs(traj.get_array('forces')[-1]).max())
                           for key, traj in checks.items()},
    }
    return orm.Dict(result)


def format_comparison(result: dict) -> str:
    """Markdown table of :func:`compare_relaxed_qds`'s ``Dict`` (docs/qe.md)."""
    lines = ['| quantity | CP2K | QE | Δ (QE − CP2K) |', '|---|---|---|---|']
    for pair, (cp2k, qe) in result['bonds'].items():
        lines.append(f"| {pair} mean bond (Å, {cp2k['n']} bonds) | {cp2k['mean']:.3f} | {qe['mean']:.3f} | "
                     f"{qe['mean'] - cp2k['mean']:+.3f} |")
        lines.append(f"| {pair} min / max (Å) | {cp2k['min']:.3f} / {cp2k['max']:.3f} | "
                     f"{qe['min']:.3f} / {qe['max']:.3f} | |")
    for element, dq in result['bader_dq']['cp2k'].items():
        other = result['bader_dq']['qe'][element]
        lines.append(f'| Bader Δq {element} (e, mean) | {dq:+.3f} | {other:+.3f} | {other - dq:+.3f} |')
    lines.append(f"| RMSD after alignment, {result['n_atoms']} atoms (Å) | | | {result['rmsd']:.3f} "
                 f"(max {result['max_deviation']:.3f}, {result['max_deviation_atom']}) |")
    lines.append(f"| QE relax: BFGS steps / final max force (eV/Å) | | {result['qe_relax_steps']} / "
                 f"{result['qe_final_max_force']:.3f} | |")
    for ecut, force in result['qe_force_check'].items():
        lines.append(f'| QE max force at {ecut} Ry on the QE geometry (eV/Å) | | {force:.3f} | |')
    return '\n'.join(lines)

"""``qdtraps charge-flow``: charge-flow vectors from a structure and an existing Bader output (plain files, no
AiiDA)."""

from __future__ import annotations

import csv
import pathlib
import re

import click

from .root import cli


def parse_valence(values: tuple[str, ...]) -> dict[str, float]:
    """``('In=13', 'P=5')`` → ``{'In': 13.0, 'P': 5.0}``."""
    valence = {}
    for item in values:
        match = re.fullmatch(r'\s*([A-Z][a-z]?)\s*=\s*([0-9.]+)\s*', item)
        if not match:
            raise click.BadParameter(f'{item!r} is not of the form El=Z (e.g. In=13)', param_hint='--valence')
        valence[match.group(1)] = float(match.group(2))
    return valence


def valence_from_cp2k_input(text: str) -> dict[str, float]:
    """Element → Z_val from the ``&KIND`` ``POTENTIAL`` lines of a CP2K input file."""
    from aiida_qdtraps.protocols import valence_from_potential

    valence, element = {}, None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == '&KIND':
            element = words[1]
        elif element and words and words[0].upper() == 'POTENTIAL' and len(words) >= 2:
            valence[element] = float(valence_from_potential(words[1]))
        elif words and words[0].upper().startswith('&END') and element and len(words) <= 2:
            element = None if len(words) == 1 or words[1].upper() == 'KIND' else element
    return valence


@cli.command('charge-flow')
@click.argument('structure', type=click.Path(exists=True, dir_okay=False))
@click.argument('bader_file', type=click.Path(exists=True, dir_okay=False))
@click.option('--valence', 'valence_items', multiple=True, metavar='El=Z',
              help='Valence charge of an element\'s pseudopotential (repeat per element).')
@click.option('--cp2k-input', type=click.Path(exists=True, dir_okay=False),
              help='Read the valence charges from the &KIND POTENTIAL names of this CP2K input file.')
@click.option('--charge', type=float, default=0.0, show_default=True, help='Net charge of the QD (e).')
@click.option('--scale', type=float, default=1.2, show_default=True, help='Bond if d < scale·(r_i + r_j).')
@click.option('--regularization', type=float, default=0.0, show_default=True, help='Tikhonov λ (0 = minimum norm).')
@click.option('--tolerance', type=float, default=0.1, show_default=True,
              help='Largest accepted |Bader electrons + vacuum − valence electrons| (e).')
@click.option('--csv', 'csv_path', type=click.Path(dir_okay=False), help='Write one row per atom to this CSV.')
@click.option('--plot', 'plot_path', type=click.Path(dir_okay=False), help='Write a planar map PNG.')
@click.option('--plane', type=int, nargs=3, default=(0, 0, 1), show_default=True, metavar='H K L',
              help='Miller indices of the map plane (cubic frame of the structure).')
@click.option('--thickness', type=float, default=2.5, show_default=True, help='Slab thickness of the map (Å).')
@click.option('--elements', help='Comma-separated elements to draw on the map (default: all).')
def charge_flow(structure, bader_file, valence_items, cp2k_input, charge, scale, regularization, tolerance, csv_path,
                plot_path, plane, thickness, elements):
    """Charge flow of STRUCTURE (any ase-readable file) from BADER_FILE (ACF.dat or baderkit atom_summary.tsv).

    Prints the electron bookkeeping and per-element averages; atoms must be in the same order in both files.
    """
    import numpy as np
    from ase.io import read

    from aiida_qdtraps.analysis import bader, bonds
    from aiida_qdtraps.analysis import charge_flow as cf

    atoms = read(structure)
    symbols = atoms.get_chemical_symbols()
    valence = valence_from_cp2k_input(pathlib.Path(cp2k_input).read_text()) if cp2k_input else {}
    valence.update(parse_valence(valence_items))
    if not valence:
        raise click.UsageError('give the valence charges: --valence El=Z per element or --cp2k-input FILE')
    try:
        z_val = bader.valence_charges(symbols, valence)
        result = bader.read_bader_file(bader_file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if len(result.populations) != len(atoms):
        raise click.ClickException(f'{bader_file} lists {len(result.populations)} atoms but {structure} has '
                                   f'{len(atoms)}')
    check = bader.check_electron_conservation(result, z_val.sum() - charge, tolerance)
    click.echo(f"electrons: {check['electrons_in_basins']:.4f} in basins + {check['vacuum_charge']:.4f} vacuum = "
               f"{check['electrons_total']:.4f}; valence electrons {check['valence_electrons']:.4f} "
               f"(difference {check['difference']:+.4f} e)")
    if not check['conserved']:
        raise click.ClickException(f"electrons not conserved: |difference| {abs(check['difference']):.4f} e > "
                                   f'tolerance {tolerance} e (wrong valence charges, units or atom order?)')
    dq = cf.charge_transfer(z_val, result.populations)
    pairs = bonds.bond_pairs(atoms.positions, symbols, scale=scale, same_element_scale=None)
    flow = cf.solve_charge_flow(dq, pairs, regularization)
    vectors = cf.atom_vectors(atoms.positions, pairs, flow.flows)
    click.echo(f'{len(pairs)} bonds, {len(flow.component_charge)} connected component(s), Σ Δq = '
               f'{flow.net_charge:+.4f} e, residual ‖Δq − A x‖ = {np.linalg.norm(flow.residual):.4f} e')
    for element in sorted(set(symbols)):
        mask = np.array(symbols) == element
        click.echo(f'  {element:>2}: {mask.sum():5d} atoms, mean Δq {dq[mask].mean():+.4f} e, '
                   f'mean |v| {np.linalg.norm(vectors[mask], axis=1).mean():.4f} e')
    if csv_path:
        rows = cf.charge_flow_table(symbols, dq, vectors)
        with open(csv_path, 'w', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        click.echo(f'wrote {csv_path} ({len(rows)} atoms)')
    if plot_path:
        select = np.isin(symbols, elements.split(',')) if elements else None
        pmap = cf.planar_map(atoms.positions, vectors, cf.plane_normal(miller=plane), thickness=thickness,
                             select=select)
        cf.plot_planar_map(pmap, plot_path,
                           title=f'{atoms.get_chemical_formula()} charge flow, ({" ".join(map(str, plane))})')
        click.echo(f'wrote {plot_path} ({len(pmap.indices)} atoms in the slab)')

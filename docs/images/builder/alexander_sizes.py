"""Print the docs table of InP/GaP tetrahedra and cuboctahedra of 1.7-2.7 nm (Alexander et al.'s library sizes)
with each core rule: the defaults, ``prefer='coordination'`` and ``prefer='coordination', min_core_bonds=1``.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python docs/images/builder/alexander_sizes.py [--ligand Cl]``. F and Cl give the
same cores and ligand sites (both −1 e on the cations); only the ligand element differs.
"""

from __future__ import annotations

import argparse

import numpy as np

from aiida_qdtraps.builder import qd, shapes
from aiida_qdtraps.builder.crystal import check_material, nearest_neighbour_distance

SIZES = (17.0, 20.0, 23.0, 27.0)
RULES = {'defaults': {}, 'prefer coordination': {'prefer': 'coordination'},
         'prefer coordination, min_core_bonds 1': {'prefer': 'coordination', 'min_core_bonds': 1}}


def core_counts(atoms, material: str) -> tuple[str, int, int]:
    """Core formula, anions with fewer than 4 core bonds, cations with a single core bond."""
    core = atoms[atoms.arrays['qd_domain'] == 'core']
    cn = shapes.bond_counts(core.positions, 1.1 * nearest_neighbour_distance(material))
    anion = core.arrays['qd_role'] == 'anion'
    return core.get_chemical_formula(), int((anion & (cn < 4)).sum()), int((~anion & (cn == 1)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ligand', default='Cl')
    args = parser.parse_args()
    print('| model | D (nm) | ' + ' | '.join(RULES) + ' |')
    print('|---|---|' + '---|' * len(RULES))
    for material in ('InP', 'GaP'):
        cation = check_material(material)[1]
        for shape in ('tetrahedron', 'cuboctahedron'):
            for diameter in SIZES:
                cells = []
                for options in RULES.values():
                    atoms = qd.build_qd(material, diameter, ligand=args.ligand, shape=shape, **options)
                    formula, p_low, single = core_counts(atoms, material)
                    n_ligands = int(np.sum(atoms.arrays['qd_role'] == 'ligand'))
                    size = atoms.info['qd_build']['core_diameter'] / 10
                    cells.append(f'{formula} + {n_ligands} {args.ligand}, {size:.2f} nm, **{p_low}** P<4'
                                 + (f', {single} {cation}1' if single else ''))
                print(f'| {material} {shape} | {diameter / 10:.1f} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
    main()

"""Render the builder gallery of docs/builder.md and print its composition table.

Run from the repository root: ``OMP_NUM_THREADS=1 .venv/bin/python docs/images/builder/make_gallery.py``.
Images: ase's PNG writer (element colours; core@shell cross-sections coloured by domain).
"""

from __future__ import annotations

import pathlib

import numpy as np

from aiida_qdtraps.builder import qd

HERE = pathlib.Path(__file__).parent
DOMAIN_COLOURS = {'core': '#3b6fb6', 'interlayer': '#f39c34', 'shell': '#c0392b', 'ligand': '#2ecc71'}

GALLERY = [
    ('inp_tetrahedron_f_default', 'InP tetrahedron 2.0 nm, F⁻, defaults (Alexander et al.)',
     {'material': 'InP', 'diameter': 20.0, 'ligand': 'F', 'shape': 'tetrahedron'}),
    ('inp_cuboctahedron_cl_default', 'InP cuboctahedron 2.7 nm, Cl⁻, defaults (Alexander et al.)',
     {'material': 'InP', 'diameter': 27.0, 'ligand': 'Cl', 'shape': 'cuboctahedron'}),
    ('inp_cuboctahedron_cl_complete', 'InP cuboctahedron 2.7 nm, Cl⁻ on every In bond, no atom below four bonds '
     '(Alexander et al.)',
     {'material': 'InP', 'diameter': 27.0, 'ligand': 'Cl', 'shape': 'cuboctahedron', 'passivation': 'complete'}),
    ('gap_cuboctahedron_cl_complete', 'GaP cuboctahedron 2.7 nm, Cl⁻ on every Ga bond, no atom below four bonds '
     '(Alexander et al.)',
     {'material': 'GaP', 'diameter': 27.0, 'ligand': 'Cl', 'shape': 'cuboctahedron', 'passivation': 'complete'}),
    ('inp_sphere_f', 'InP sphere 2.0 nm, F⁻ (Alexander et al.)',
     {'material': 'InP', 'diameter': 20.0, 'ligand': 'F', 'center': 'cation'}),
    ('inp_tetrahedron_cl', 'InP tetrahedron 2.2 nm, Cl⁻',
     {'material': 'InP', 'diameter': 22.0, 'ligand': 'Cl', 'center': 'cation', 'shape': 'tetrahedron'}),
    ('gap_cuboctahedron_cl', 'GaP cuboctahedron 2.6 nm, Cl⁻',
     {'material': 'GaP', 'diameter': 26.0, 'ligand': 'Cl', 'center': 'cation', 'shape': 'cuboctahedron'}),
    ('pbs_cube_cl', 'PbS cube 2.2 nm, Cl⁻ (rock salt)',
     {'material': 'PbS', 'diameter': 22.0, 'ligand': 'Cl', 'center': 'cation', 'shape': 'cube'}),
    ('inas_truncated_reconstructed', 'InAs truncated tetrahedron 2.5 nm, ⅔ of 3c-As → Cl (Llusar et al.)',
     {'material': 'InAs', 'diameter': 25.0, 'ligand': 'Cl', 'center': 'anion', 'shape': 'truncated_tetrahedron',
      'reconstruct': 0.667}),
    ('inp_acetate', 'InP sphere 2.0 nm, acetate',
     {'material': 'InP', 'diameter': 20.0, 'ligand': 'OAc', 'center': 'cation'}),
    ('inp_pair_vacancy', 'InP sphere 2.0 nm, F⁻, InP pair vacancy, re-neutralised',
     {'material': 'InP', 'diameter': 20.0, 'ligand': 'F', 'center': 'cation', 'vacancy': 'pair', 'vacancy_site': 2,
      'neutralize': True}),
    ('cdse_cd17se28h22', 'Cd17Se28H22, Se-rich, H⁺ on Se (Bhati et al.)',
     {'material': 'CdSe', 'model': 'Cd17Se28H22'}),
    ('cdse_cd28se17cl22', 'Cd28Se17Cl22, Cd-rich, Cl⁻ on Cd (Bhati et al.)',
     {'material': 'CdSe', 'model': 'Cd28Se17Cl22'}),
    ('cspbbr3_cube_csbr', 'CsPbBr3 nanocube 1.8 nm, CsBr-terminated (Usman and Infante)',
     {'material': 'CsPbBr3', 'diameter': 17.6, 'shape': 'cube', 'termination': 'CsBr'}),
    ('cspbbr3_cube_pbbr2', 'CsPbBr3 nanocube 1.8 nm, PbBr2-terminated (Usman and Infante)',
     {'material': 'CsPbBr3', 'diameter': 17.6, 'shape': 'cube', 'termination': 'PbBr2'}),
    ('cdse_se_rich_h', 'Se-rich Cd19Se28 + H⁺ on Se (carved)',
     {'material': 'CdSe', 'diameter': 13.25, 'ligand': 'H', 'center': 'cation', 'min_core_bonds': 1}),
    ('cdse_cd_rich_cl', 'Cd-rich Cd28Se19 + Cl⁻ on Cd (swapped sublattices)',
     {'material': 'CdSe', 'diameter': 13.25, 'ligand': 'Cl', 'center': 'cation', 'min_core_bonds': 1,
      'stoichiometry': 'swapped'}),
    ('inas_cdse_abrupt', 'InAs@CdSe 3 ML, abrupt (cut, by domain)',
     {'material': 'InAs', 'diameter': 16.0, 'ligand': 'Cl', 'center': 'cation', 'shell': 'CdSe', 'monolayers': 3,
      'interlayer': 'abrupt'}),
    ('inas_cdse_alloyed', 'InAs@CdSe 3 ML, alloyed interlayer (cut, by domain)',
     {'material': 'InAs', 'diameter': 16.0, 'ligand': 'Cl', 'center': 'cation', 'shell': 'CdSe', 'monolayers': 3,
      'interlayer': 'alloyed'}),
    ('inas_cdse_ordered', 'InAs@CdSe 3 ML, ordered ⟨111⟩-(2×2) interlayer (cut, by domain; Llusar et al.)',
     {'material': 'InAs', 'diameter': 16.0, 'ligand': 'Cl', 'center': 'cation', 'shell': 'CdSe', 'monolayers': 3,
      'interlayer': 'ordered'}),
    ('cdse_wulff_polar', 'CdSe Wulff shape 2.0 nm, Cl⁻, γ(100) 1, γ(111) 0.9, γ(-1-1-1) 1.2',
     {'material': 'CdSe', 'diameter': 20.0, 'ligand': 'Cl', 'shape': 'wulff',
      'facets': {'100': 1.0, '111': 0.9, '-1-1-1': 1.2}}),
]


def render(name: str, recipe: dict) -> qd.QdReport:
    atoms = qd.build_qd(**recipe)
    report = qd.describe(atoms)
    colours = None
    if 'shell' in recipe:  # cross-section through the centre, coloured by domain
        centre = atoms.positions[atoms.arrays['qd_domain'] == 'core'].mean(0)
        atoms = atoms[atoms.positions[:, 2] < centre[2] + 0.5]
        colours = [DOMAIN_COLOURS[d] for d in atoms.arrays['qd_domain']]
    atoms.set_cell(np.zeros((3, 3)))
    atoms.write(HERE / f'{name}.png', rotation='0x' if colours else '-70x,20y',
                scale=16 if len(atoms) < 200 else 11, show_unit_cell=0, **({'colors': colours} if colours else {}))
    return report


def main() -> None:
    for name, title, _ in GALLERY:
        print(f'<figure style="display:inline-block;width:30%;margin:0.3em"><img src="images/builder/{name}.png" '
              f'width="100%" alt="{title}"><figcaption>{title}</figcaption></figure>')
    print()
    print('| model | recipe | formula | atoms | net charge (e) | diameter (nm) | CN histogram |')
    print('|---|---|---|---|---|---|---|')
    for name, title, recipe in GALLERY:
        report = render(name, recipe)
        cn = '; '.join(f'{el}: ' + ' '.join(f'{c}c×{n}' for c, n in h.items())
                       for el, h in sorted(report.coordination.items()))
        options = ', '.join(f'{k}={v}' for k, v in recipe.items() if k not in ('material',))
        print(f'| ![{title}](images/builder/{name}.png) {title} | `{recipe["material"]}`, {options} | '
              f'{report.formula} | {report.n_atoms} | {report.net_charge} | {report.diameter / 10:.2f} | {cn} |')
    print(sum(p.stat().st_size for p in HERE.glob('*.png')), 'bytes of images')


if __name__ == '__main__':
    main()

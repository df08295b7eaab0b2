"""CP2K's GTH pseudopotentials as norm-conserving UPF v2 files for Quantum ESPRESSO.

:func:`gth_to_upf` tabulates the analytic GTH form (:mod:`aiida_qdtraps.pseudos.gth`) on a logarithmic radial grid
(Rydberg units: ``PP_LOCAL`` = 2 V_loc, ``PP_BETA`` = r·p_i^l, ``PP_DIJ`` = 2 h_ij), so aiida-quantumespresso (which
accepts only ``UpfData``) can use the very same potentials and valence charges as the CP2K path. ``PP_PSWFC`` and
``PP_RHOATOM`` come from the self-consistent pseudo-atom of :mod:`aiida_qdtraps.pseudos.atom` (pw.x starting
wavefunctions, projwfc.x PDOS); they do not change the Hamiltonian. :func:`write_upf_family` writes one file per
element. No aiida import here.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from .atom import solve_gth_atom
from .gth import (
    ANGULAR_LABELS,
    BETA_TOLERANCE,
    DX,
    XMIN,
    GthPotential,
    find_gth_potentials_file,
    local_potential,
    model_valence_density,
    parse_gth_potential,
    projector,
    radial_grid,
)


def _rounded(values: np.ndarray, digits: int = 9) -> np.ndarray:
    """``values`` to ``digits`` significant digits, values below 1e-30 set to 0 (stable text across BLAS builds)."""
    values = np.asarray(values, dtype=float)
    out = np.array([float(f'{v:.{digits - 1}e}') for v in values])
    out[np.abs(out) < 1.0e-30] = 0.0
    return out


def _format(values: np.ndarray, per_line: int = 4) -> str:
    lines = []
    for start in range(0, len(values), per_line):
        lines.append(' '.join(f'{v: .14E}' for v in values[start:start + per_line]))
    return '\n'.join(lines)


def gth_to_upf(pot: GthPotential, functional: str = 'PBE', wavefunctions: bool = True) -> str:
    """Norm-conserving UPF v2 text of ``pot`` tabulated on :func:`radial_grid` (Rydberg units, as UPF).

    :param wavefunctions: also write pseudo-atomic orbitals (``PP_PSWFC``, for pw.x's starting wavefunctions and
        projwfc.x) and the self-consistent atomic valence density (``PP_RHOATOM``) of the pseudo-atom solved by
        :func:`aiida_qdtraps.pseudos.atom.solve_gth_atom`; ``False``: no orbitals and a Gaussian model density.

    The result is deterministic: the same GTH entry always gives the same file (same md5; orbitals and density are
    written to 9 significant digits, far above the solver's round-off), so files made at set-up time on different
    machines are interchangeable.
    """
    z = pot.atomic_number
    r, rab = radial_grid(z)
    vloc = 2.0 * local_potential(pot, r)
    betas = []
    for l, (r_l, h) in enumerate(pot.projectors):
        for i in range(len(h)):
            rbeta = r * projector(r_l, l, i + 1, r)
            above = np.nonzero(np.abs(rbeta) > BETA_TOLERANCE)[0]
            cutoff = int(above[-1]) + 2
            cutoff += cutoff % 2  # QE integrates up to an odd number of points (1-based index)
            cutoff = min(cutoff, len(r) - 1)
            rbeta[cutoff:] = 0.0
            betas.append((l, i, rbeta, cutoff))
    nbeta = len(betas)
    dij = np.zeros((nbeta, nbeta))
    offset = 0
    for r_l, h in pot.projectors:
        n = len(h)
        dij[offset:offset + n, offset:offset + n] = 2.0 * h
        offset += n
    orbitals = []
    if wavefunctions:
        atom = solve_gth_atom(pot)
        orbitals = atom.orbitals
        rho = _rounded(atom.radial_density)
    else:
        rho = model_valence_density(pot, r)
    c_text = ' '.join(f'{c:.8f}' for c in pot.c_loc)
    info = [f'GTH pseudopotential {pot.element} {pot.name} from CP2K GTH_POTENTIALS, tabulated by aiida_qdtraps',
            f'electrons per l: {" ".join(map(str, pot.electrons_per_l))}; r_loc {pot.r_loc:.8f} bohr; C_i {c_text} Ha']
    for l, (r_l, h) in enumerate(pot.projectors):
        info.append(f'l={l} r_l={r_l:.8f} bohr h_ij(Ha)=' + ' '.join(f'{v:.8f}' for v in h[np.triu_indices(len(h))]))
    if orbitals:
        info.append('PP_PSWFC / PP_RHOATOM: self-consistent spherical PBE pseudo-atom (aiida_qdtraps.pseudos.atom), '
                    'eigenvalues (Ry) ' + ' '.join(f'{o.label} {2 * o.energy:.5f}' for o in orbitals))
    else:
        info.append('PP_RHOATOM is a Gaussian model density (starting guess only); no PP_PSWFC')
    header = {
        'generated': 'aiida_qdtraps.pseudos.gth_to_upf (analytic GTH form on a log grid)',
        'author': 'CP2K GTH_POTENTIALS (Goedecker, Teter, Hutter; Krack)',
        'date': '', 'comment': f'{pot.element} {pot.name}', 'element': pot.element, 'pseudo_type': 'NC',
        'relativistic': 'scalar', 'is_ultrasoft': 'F', 'is_paw': 'F', 'is_coulomb': 'F', 'has_so': 'F',
        'has_wfc': 'F', 'has_gipaw': 'F', 'paw_as_gipaw': 'F', 'core_correction': 'F', 'functional': functional,
        'z_valence': f'{pot.z_valence:.8E}', 'total_psenergy': '0.0', 'wfc_cutoff': '0.0', 'rho_cutoff': '0.0',
        'l_max': str(max(pot.l_max, 0)), 'l_max_rho': str(2 * max(pot.l_max, 0)), 'l_local': '-3',
        'mesh_size': str(len(r)), 'number_of_wfc': str(len(orbitals)), 'number_of_proj': str(nbeta),
    }
    out = ['<UPF version="2.0.1">', '  <PP_INFO>']
    out += [f'    {line}' for line in info]
    out += ['  </PP_INFO>', '  <PP_HEADER']
    out += [f'    {key}="{value}"' for key, value in header.items()]
    out += ['  />']
    out.append(f'  <PP_MESH dx="{DX:.8E}" mesh="{len(r)}" xmin="{XMIN:.8E}" rmax="{r[-1]:.8E}" zmesh="{z:.8E}">')
    out += [f'    <PP_R type="real" size="{len(r)}" columns="4">', _format(r), '    </PP_R>']
    out += [f'    <PP_RAB type="real" size="{len(r)}" columns="4">', _format(rab), '    </PP_RAB>', '  </PP_MESH>']
    out += [f'  <PP_LOCAL type="real" size="{len(r)}" columns="4">', _format(vloc), '  </PP_LOCAL>']
    out.append('  <PP_NONLOCAL>')
    for index, (l, i, rbeta, cutoff) in enumerate(betas, start=1):
        out.append(f'    <PP_BETA.{index} type="real" size="{len(r)}" columns="4" index="{index}" '
                   f'label="{i + 1}{ANGULAR_LABELS[l]}" angular_momentum="{l}" cutoff_radius_index="{cutoff}" '
                   f'cutoff_radius="{r[cutoff - 1]:.8E}" ultrasoft_cutoff_radius="0.0">')
        out += [_format(rbeta), f'    </PP_BETA.{index}>']
    out += [f'    <PP_DIJ type="real" size="{nbeta * nbeta}" columns="4">', _format(dij.ravel()) if nbeta else '',
            '    </PP_DIJ>', '  </PP_NONLOCAL>']
    out.append('  <PP_PSWFC>')
    for index, orbital in enumerate(orbitals, start=1):
        out.append(f'    <PP_CHI.{index} type="real" size="{len(r)}" columns="4" index="{index}" '
                   f'label="{orbital.label}" l="{orbital.l}" occupation="{orbital.occupation:.4f}" n="{orbital.n}" '
                   f'pseudo_energy="{2 * orbital.energy:.8E}" cutoff_radius="0.0" ultrasoft_cutoff_radius="0.0">')
        out += [_format(_rounded(orbital.u)), f'    </PP_CHI.{index}>']
    out.append('  </PP_PSWFC>')
    out += [f'  <PP_RHOATOM type="real" size="{len(r)}" columns="4">', _format(rho), '  </PP_RHOATOM>', '</UPF>', '']
    return '\n'.join(out)


def upf_filename(pot: GthPotential) -> str:
    """File name of the UPF of ``pot``, e.g. ``In.pbe-gth-q13.upf``."""
    return f"{pot.element}.{pot.name.lower().replace('gth-pbe', 'pbe-gth')}.upf"


def write_upf_family(directory: str | os.PathLike, potentials: dict[str, str],
                     path: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """Write one UPF per element into ``directory`` (created) and return the files.

    :param potentials: element → GTH potential name, e.g. ``{'In': 'GTH-PBE-q13'}``.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    source = pathlib.Path(path) if path is not None else find_gth_potentials_file()
    files = []
    for element, name in sorted(potentials.items()):
        pot = parse_gth_potential(element, name, source)
        target = directory / upf_filename(pot)
        target.write_text(gth_to_upf(pot))
        files.append(target)
    return files

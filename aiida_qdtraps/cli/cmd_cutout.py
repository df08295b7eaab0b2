"""``qdtraps interpolate``: the three highest occupied MOs along a geodesic path between two geometries.

See docs/cutouts.md.

Works on plain XYZ files with PySCF in-process: no AiiDA profile is needed or touched.
"""

from __future__ import annotations

import pathlib

import click

from .root import cli

CSV_HEADER = 'frame,homo_ev,homo_1_ev,homo_2_ev'


def top_occupied(mf, count: int = 3) -> list[float]:
    """The ``count`` highest occupied MO energies (eV, highest first; the alpha channel of an unrestricted SCF)."""
    import numpy as np

    from ..parsers.pyscf import HARTREE_TO_EV

    energies, occupations = np.asarray(mf.mo_energy), np.asarray(mf.mo_occ)
    if energies.ndim == 2:
        energies, occupations = energies[0], occupations[0]
    occupied = np.sort(energies[occupations > 1e-3])[::-1]
    if occupied.size < count:
        raise click.ClickException(f'the molecule has only {occupied.size} occupied MOs; {count} are needed')
    return [float(e * HARTREE_TO_EV) for e in occupied[:count]]


@cli.command('interpolate')
@click.argument('start', type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.argument('end', type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option('--frames', '-n', type=int, default=100, show_default=True, help='Frames including both end points.')
@click.option('--charge', '-q', type=int, default=0, show_default=True, help='Total charge (e); PLi4+ has +1.')
@click.option('--multiplicity', type=int, default=1, show_default=True, help='Spin multiplicity 2S+1.')
@click.option('--functional', default='pbe0', show_default=True, help='PySCF exchange-correlation functional.')
@click.option('--basis', default='def2-svp', show_default=True, help='PySCF basis (def2 ECPs added where defined).')
@click.option('--output', '-o', type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help=f'CSV file with the header {CSV_HEADER}.')
@click.option('--frames-out', type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help='Also write the interpolated geometries (multi-frame XYZ).')
def interpolate(start, end, frames, charge, multiplicity, functional, basis, output, frames_out):
    """Geodesic path from START to END (XYZ files, same atoms in the same order); a PySCF single point per frame.

    Prints per frame the three highest occupied MO energies (eV) and the HOMO splitting
    HOMO - mean(HOMO-1, HOMO-2); for a PLi4+ cutout path these are the P 3p levels (Alexander et al.).
    """
    import ase.io

    from ..analysis import cutout
    from ..calculations.pyscf import pyscf_parameters
    from ..calculations.pyscf_script import run_scf

    first, last = ase.io.read(start), ase.io.read(end)
    try:
        path = cutout.interpolate(first, last, frames)
        params = pyscf_parameters({'xc': functional, 'basis': basis, 'charge': charge, 'multiplicity': multiplicity},
                                  first.get_chemical_symbols())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if frames_out is not None:
        ase.io.write(frames_out, path, format='xyz')
    rows = [CSV_HEADER]
    click.echo(f"{'frame':>5} {'HOMO':>10} {'HOMO-1':>10} {'HOMO-2':>10} {'splitting':>10}  (eV, {functional}/{basis})")
    for k, frame in enumerate(path):
        mf, attempts = run_scf(frame.get_chemical_symbols(), frame.positions, params)
        if not mf.converged:
            raise click.ClickException(f'frame {k}: the SCF did not converge ({[a["step"] for a in attempts]})')
        homo, homo_1, homo_2 = top_occupied(mf)
        click.echo(f'{k:5d} {homo:10.4f} {homo_1:10.4f} {homo_2:10.4f} '
                   f'{cutout.homo_splitting([homo, homo_1, homo_2]):10.4f}')
        rows.append(f'{k},{homo:.6f},{homo_1:.6f},{homo_2:.6f}')
    if output is not None:
        output.write_text('\n'.join(rows) + '\n')
        click.echo(f'wrote {output}')


def cutout_inputs(labels, atom: int | None, frames: int, code) -> dict:
    """Inputs of ``CutoutInterpolationWorkChain`` from a trap labelling: a ``TrapLabelingWorkChain`` or a
    ``label_traps`` calculation node (its structure, MO window and trap records)."""
    from aiida import orm

    from ..workchains.traps import TrapLabelingWorkChain

    if isinstance(labels, orm.WorkChainNode) and labels.process_class is TrapLabelingWorkChain:
        labels = labels.base.links.get_outgoing(orm.CalcFunctionNode, link_label_filter='label_traps').one().node
    if not isinstance(labels, orm.CalcFunctionNode) or labels.process_label != 'label_traps':
        kind = getattr(labels, 'process_label', None) or type(labels).__name__
        raise click.ClickException(f'node {labels.pk} is a {kind}, not a '
                                   'trap labelling (TrapLabelingWorkChain or label_traps)')
    if not labels.is_finished_ok:
        raise click.ClickException(f'the labelling {labels.pk} did not finish ok')
    traps = {link.link_label.split('__')[-1]: link.node
             for link in labels.base.links.get_outgoing(link_label_filter='traps__%').all()}
    inputs = {'structure': labels.inputs.structure, 'mo_window': labels.inputs.mo_window, 'traps': traps,
              'frames': orm.Int(frames), 'pyscf': {'code': code}}
    if atom is not None:
        inputs['atom'] = orm.Int(atom)
    return inputs


@cli.command('cutout')
@click.argument('labels_pk', type=int)
@click.option('--atom', type=int, default=None, help='Centre atom index (default: every P-4c structural hole trap).')
@click.option('--frames', '-n', type=int, default=20, show_default=True, help='Frames of each interpolation.')
@click.option('--code', 'code_label', default='dp-python@localhost', show_default=True,
              help='Python code with pyscf that runs the single points.')
def cutout_command(labels_pk, atom, frames, code_label):
    """Submit PLi4+ cutout interpolations of the structural hole traps of a trap labelling (LABELS_PK: a
    TrapLabelingWorkChain or label_traps node) to the daemon; docs/cutouts.md."""
    from .cmd_traps import _load

    _load()
    from aiida import orm
    from aiida.engine import submit

    from ..workchains.cutout import CutoutInterpolationWorkChain

    if frames < 2:
        raise click.ClickException(f'--frames must be >= 2 (both end points), got {frames}')
    try:
        labels, code = orm.load_node(labels_pk), orm.load_code(code_label)
    except Exception as exc:  # noqa: BLE001 - aiida's NotExistent / MultipleObjectsError
        raise click.ClickException(str(exc)) from None
    node = submit(CutoutInterpolationWorkChain, **cutout_inputs(labels, atom, frames, code))
    click.echo(f'submitted CutoutInterpolationWorkChain<{node.pk}>; follow it with `verdi process report {node.pk}`')

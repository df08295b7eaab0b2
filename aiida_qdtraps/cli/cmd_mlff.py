"""``qdtraps mlff``: DeePMD models outside the provenance graph — ``mlff test`` evaluates a frozen model on any
labelled frames (plain files, no AiiDA profile)."""

from __future__ import annotations

import click

from .root import cli


@cli.group()
def mlff():
    """Machine-learned force fields (docs/mlff.md)."""


@mlff.command('test')
@click.argument('model', type=click.Path(exists=True, dir_okay=False))
@click.argument('frames', type=click.Path(exists=True, dir_okay=False))
@click.option('--parity', type=click.Path(dir_okay=False), help='Write a parity plot (PNG): per-atom energies with the '
              'mean offset removed, and force components.')
def mlff_test(model, frames, parity):
    """Errors of the frozen DeePMD MODEL on the labelled FRAMES (extended xyz with energy and forces, eV and eV/Å).

    Prints `force_rmse_eV_A=<x> energy_rmse_meV_atom=<y> frames=<n>`, the energy RMSE taken after removing the mean
    per-atom offset between model and reference (printed as energy_offset_meV_atom).
    """
    from ase.io import read

    from ..analysis.mlff_test import frame_labels, model_errors, predict

    try:
        atoms = read(frames, index=':')
        reference_e, reference_f = frame_labels(atoms)
        model_e, model_f = predict(model, atoms)
        errors = model_errors(model_e, model_f, reference_e, reference_f, [len(a) for a in atoms])
    except (ValueError, KeyError, OSError) as exc:
        raise click.ClickException(f'{frames}: {exc}') from exc
    click.echo(f"force_rmse_eV_A={errors['force_rmse_eV_A']:.4f} "
               f"energy_rmse_meV_atom={errors['energy_rmse_meV_atom']:.3f} frames={errors['frames']}")
    click.echo(f"energy_offset_meV_atom={errors['energy_offset_meV_atom']:.3f} (mean model − reference, removed)")
    if parity:
        import pathlib

        import numpy as np

        from ..analysis.mlff import parity_plot

        n_atoms = np.array([len(a) for a in atoms], dtype=float)
        shifted = model_e / n_atoms - errors['energy_offset_meV_atom'] / 1e3
        pathlib.Path(parity).write_bytes(parity_plot(reference_e / n_atoms, shifted, np.concatenate(reference_f),
                                                     np.concatenate(model_f)))
        click.echo(f'parity plot: {parity}')

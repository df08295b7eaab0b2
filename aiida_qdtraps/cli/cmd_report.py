"""``qdtraps report PK`` and ``qdtraps report --group NAME``: self-contained HTML reports of QDs."""

from __future__ import annotations

import click

from .root import cli


def _load():
    """Load the project profile, unless a profile is loaded already (a script or test that set one up)."""
    from aiida.manage import get_manager

    if get_manager().get_profile() is not None:
        return
    from aiida_qdtraps.profile import load_project_profile, profile_exists

    if not profile_exists():
        raise click.ClickException('the project profile does not exist yet: run `qdtraps setup` (or `make demo`).')
    load_project_profile()


@cli.command()
@click.argument('pk', type=int, required=False)
@click.option('-o', '--output', type=click.Path(dir_okay=True, file_okay=True),
              help='Report file (default: <formula>_<uuid>.html here); with --group the folder (default: reports).')
@click.option('--group', 'group_label', help='Write a report per QD of this Group and an index.html linking them.')
def report(pk, output, group_label):
    """Write a self-contained HTML report of a QD: PK of a pipeline run, a trap labelling (TrapLabelingWorkChain,
    label_traps, its atom_labels or a TrapRecord) or a labelled structure.

    The page works offline (3D view, figures, tables inlined): send it alone, or with an archive of the QD
    (`qdtraps archive create`) for the data.
    """
    if (pk is None) == (group_label is None):
        raise click.UsageError('give either a PK or --group NAME')
    _load()
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_qdtraps.html_report import ReportError, write_group_reports, write_report

    try:
        if group_label is not None:
            index, rows = write_group_reports(group_label, output or 'reports')
            written = [row for row in rows if 'href' in row]
            for row in rows:
                if 'error' in row:
                    click.echo(f"skipped node {row['pk']}: {row['error']}", err=True)
            size = sum((index.parent / row['href']).stat().st_size for row in written)
            click.echo(f'{len(written)} report(s) ({size / 1e6:.2f} MB) and the index {index}')
            if not written:
                raise click.ClickException(f'Group {group_label!r} holds no QD with a trap labelling')
            return
        try:
            node = orm.load_node(pk)
        except NotExistent as exc:
            raise click.BadParameter(f'no node with pk {pk}', param_hint='PK') from exc
        path = write_report(node, output)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f'{path} ({path.stat().st_size / 1e6:.2f} MB, self-contained)')

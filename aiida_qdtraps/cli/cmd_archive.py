"""``qdtraps archive create|check|import``: AiiDA archives with the density cubes optionally left out, and a version
check against the installed aiida-qdtraps (``aiida_qdtraps.archive``)."""

import click

from .root import cli


def _load():
    from aiida_qdtraps.profile import load_project_profile, profile_exists

    if not profile_exists():
        raise click.ClickException('the project profile does not exist yet: run `qdtraps setup` (or `make demo`).')
    load_project_profile()


def _size(n: int) -> str:
    return f'{n / 1e6:.2f} MB' if n >= 1e5 else f'{n / 1e3:.1f} kB'


@cli.group()
def archive():
    """Export, check and import AiiDA archives of the project profile."""


@archive.command('create')
@click.argument('output', type=click.Path(dir_okay=False))
@click.argument('identifiers', nargs=-1)
@click.option('-G', '--group', 'groups', multiple=True, help='Group label to export (repeatable).')
@click.option('--no-cubes', is_flag=True,
              help='Leave the density files (*.cube, CHGCAR, pp.x aiida.fileout) out; all nodes and links are kept.')
@click.option('--pattern', 'patterns', multiple=True,
              help='File name glob to leave out with --no-cubes instead of the defaults (repeatable).')
@click.option('-f', '--overwrite', is_flag=True, help='Overwrite OUTPUT if it exists.')
def create(output, identifiers, groups, no_cubes, patterns, overwrite):
    """Export nodes (pks or uuids) and groups, with their provenance, to OUTPUT; everything if none is given."""
    _load()
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from aiida_qdtraps.archive import CUBE_PATTERNS, archive_report, create_archive

    if patterns and not no_cubes:
        raise click.BadParameter('--pattern only applies together with --no-cubes', param_hint='--pattern')
    entities = []
    for identifier in identifiers:
        try:
            entities.append(orm.load_node(identifier))
        except (NotExistent, ValueError) as exc:
            raise click.BadParameter(f'no node {identifier!r}: {exc}', param_hint='IDENTIFIERS') from exc
    for label in groups:
        try:
            entities.append(orm.load_group(label=label))
        except NotExistent as exc:
            raise click.BadParameter(f'no group {label!r}', param_hint='--group') from exc
    try:
        stripped = create_archive(output, entities or None, no_cubes=no_cubes, patterns=patterns or CUBE_PATTERNS,
                                  overwrite=overwrite)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint='--pattern') from exc
    except FileExistsError as exc:
        raise click.ClickException(f'{output} exists; use --overwrite') from exc
    report = archive_report(output)
    click.echo(f'{output}: {report.n_nodes} nodes, {_size(report.size)}')
    if no_cubes:
        unique = {f.sha256: f.size for f in stripped}
        click.echo(f'left out {len(stripped)} file(s) ({len(unique)} distinct, {_size(sum(unique.values()))}) '
                   'from these nodes, which are kept with their links:')
        for item in stripped:
            kind = item.node_type.rstrip('.').split('.')[-1]
            click.echo(f'  {kind}<{item.uuid[:8]}>  {item.path}  {_size(item.size)}')


@archive.command('check')
@click.argument('path', type=click.Path(exists=True, dir_okay=False))
def check(path):
    """Compare the aiida-qdtraps version that wrote PATH with the installed one (exit 1 if they differ)."""
    from aiida_qdtraps.archive import archive_report, compare_versions

    try:
        report = archive_report(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    status, message = compare_versions(report)
    click.echo(f'{path}: {report.n_nodes} nodes, {report.n_traps} trap records, aiida-core '
               f'{", ".join(sorted(report.core_versions)) or "-"}, {len(report.stripped)} file(s) left out')
    click.echo(message)
    if status in ('older', 'newer'):
        raise SystemExit(1)


@archive.command('import')
@click.argument('path', type=click.Path(exists=True, dir_okay=False))
@click.option('--force', is_flag=True, help='Import an archive written by a newer aiida-qdtraps anyway.')
def import_(path, force):
    """Import PATH into the project profile after checking which aiida-qdtraps version wrote it."""
    _load()
    from aiida_qdtraps.archive import import_archive

    try:
        status, message = import_archive(path, force=force)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if status in ('older', 'newer'):
        click.echo(f'Warning: {message}', err=True)
    click.echo(f'imported {path}')

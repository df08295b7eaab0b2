"""``qdtraps traps``: list trap records with filters; ``qdtraps trace PK``: walk a trap back to its QD."""

import click

from .root import cli


def _load():
    from aiida_qdtraps.profile import load_project_profile, profile_exists

    if not profile_exists():
        raise click.ClickException('the project profile does not exist yet: run `qdtraps setup` (or `make demo`).')
    load_project_profile()


@cli.command()
@click.option('--material', help='Core material of the build recipe, e.g. InP.')
@click.option('--carrier', type=click.Choice(['hole', 'electron']))
@click.option('--min-depth', type=float, help='Minimum depth from the band edge (eV).')
@click.option('--max-depth', type=float, help='Maximum depth from the band edge (eV).')
@click.option('--element', 'center_element', help='Element of the trap centre, e.g. P.')
@click.option('--coordination', 'center_coordination', type=int, help='Coordination number of the trap centre.')
@click.option('--kind', type=click.Choice(['structural', 'under-coordinated']))
@click.option('--protocol', help='Protocol of the calculations (fast / moderate / precise).')
@click.option('--formula', help='Hill formula of the QD, e.g. F9In4P.')
def traps(**criteria):
    """List trap states in the project profile (deepest first), with the pk of each trap record."""
    _load()
    from aiida_qdtraps.query import find_traps, trap_table
    from aiida_qdtraps.report import format_trap_table

    try:
        records = find_traps(**criteria)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(format_trap_table(trap_table(records)))
    click.echo(f'{len(records)} trap state(s); walk one back to its QD with `qdtraps trace PK`.')


@cli.command()
@click.argument('pk', type=int)
def trace(pk):
    """Walk a trap record back to the calculations and the built structure it came from."""
    _load()
    from aiida import orm

    from aiida_qdtraps.data import TrapRecord
    from aiida_qdtraps.query import trap_provenance

    node = orm.load_node(pk)
    if not isinstance(node, TrapRecord):
        raise click.BadParameter(f'node {pk} is a {type(node).__name__}, not a TrapRecord')
    click.echo(f"TrapRecord<{pk}>: {node['carrier']} trap, depth {node['depth']:.3f} eV, centre "
               f"{node['center_element']}{node['center']} ({node['center_coordination']}-coordinated, {node['kind']})")
    for key, value in trap_provenance(node).items():
        label = '-' if value is None else f'{type(value).__name__}<{value.pk}>'
        extra = ''
        if isinstance(value, orm.Dict) and key == 'recipe':
            extra = f'  {value.get_dict()}'
        elif isinstance(value, orm.StructureData):
            extra = f'  {value.get_formula(mode="hill")}'
        click.echo(f'  {key:<18} {label}{extra}')

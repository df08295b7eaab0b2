"""``qdtraps demo``: run the end-to-end demonstration on the project profile."""

import click

from .root import cli


@cli.command()
@click.option(
    '--protocol',
    default='fast',
    show_default=True,
    help='Input protocol of the demo calculations (fast / moderate / precise).',
)
def demo(protocol):
    """Run the demo pipeline on a small quantum dot and print the result table."""
    from aiida_qdtraps.profile import load_project_profile, profile_exists

    if not profile_exists():
        raise click.ClickException('the project profile does not exist yet: run `qdtraps setup` (or `make demo`).')
    load_project_profile()

    from aiida_qdtraps.demo import run_demo

    run_demo(protocol=protocol)

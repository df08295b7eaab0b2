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
@click.option('--pipeline', is_flag=True,
              help='Run the whole pipeline (relax, PBE0, labels, Bader) on a tiny InP QD instead (about 25 min).')
def demo(protocol, pipeline):
    """Label the traps of a CdSe QD and of the same QD with one Cl⁻ vacancy, print both and write their reports
    (a few minutes); with --pipeline, run the whole pipeline on a tiny InP QD."""
    from aiida_qdtraps.profile import load_project_profile, profile_exists

    if not profile_exists():
        raise click.ClickException('the project profile does not exist yet: run `qdtraps setup` (or `make demo`).')
    load_project_profile()

    from aiida_qdtraps.demo import run_demo

    run_demo(protocol=protocol, pipeline=pipeline)

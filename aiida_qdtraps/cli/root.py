"""The root ``qdtraps`` click group."""

import click


@click.group(context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(package_name='aiida-qdtraps')
def cli():
    """Find, explain and predict trap states in colloidal quantum dots with AiiDA.

    Every command works on the project-local AiiDA profile `qdtraps` in `<repo>/.aiida`
    (or `$QDTRAPS_AIIDA_PATH`), whatever `AIIDA_PATH` says.
    """
    from aiida_qdtraps.profile import activate

    activate()  # sets AIIDA_PATH before any command imports aiida

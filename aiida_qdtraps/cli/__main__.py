"""Allow ``python -m aiida_qdtraps.cli``."""

from aiida_qdtraps.cli import cli

if __name__ == '__main__':
    cli()

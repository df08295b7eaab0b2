"""Where the project lives: the repository root, the AiiDA configuration folder of the project profile, and the
record of one idempotent set-up step.

No aiida import: ``AIIDA_PATH`` must be settable before aiida is first imported. :mod:`.profile` (the profile) and
:mod:`.services` (daemon mode: RabbitMQ, PostgreSQL, the daemon) both build on this module.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

AIIDA_PATH_ENV = 'QDTRAPS_AIIDA_PATH'
CONFIG_DIR_NAME = '.aiida'  # aiida's own convention: AIIDA_PATH=/x means /x/.aiida unless it already ends in .aiida


@dataclasses.dataclass(frozen=True)
class SetupStep:
    """The outcome of one idempotent set-up step: ``status`` is ``created``, ``exists`` or ``updated``."""

    name: str
    status: str
    detail: str = ''

    def __str__(self) -> str:
        text = f'{self.name:<22} {self.status}'
        return f'{text}  ({self.detail})' if self.detail else text


def project_root() -> pathlib.Path:
    """Return the repository root: the parent of the ``aiida_qdtraps`` package directory."""
    return pathlib.Path(__file__).resolve().parent.parent


def aiida_path() -> pathlib.Path:
    """Return the AiiDA configuration folder of the project profile.

    ``$QDTRAPS_AIIDA_PATH`` overrides the default ``<repo>/.aiida``. As for aiida's own ``AIIDA_PATH``, a value that
    does not end in ``.aiida`` means ``<value>/.aiida``, so the folder is the same whether aiida or we resolve it.
    """
    override = os.environ.get(AIIDA_PATH_ENV)
    path = pathlib.Path(override).expanduser() if override else project_root() / CONFIG_DIR_NAME
    path = path.absolute()
    if path.name != CONFIG_DIR_NAME:
        path = path / CONFIG_DIR_NAME
    return path

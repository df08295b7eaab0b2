"""Fixtures of the DeePMD calculation tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def prepare_calcjob():
    """``prepare_calcjob(process_class, inputs)``: ``(folder, calcinfo)`` of the CalcJob's ``prepare_for_submission``
    in a sandbox folder, without running it."""
    from aiida.common.folders import SandboxFolder
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    def prepare(process_class, inputs):
        process = instantiate_process(get_manager().get_runner(), process_class, **inputs)
        folder = SandboxFolder()
        return folder, process.prepare_for_submission(folder)

    return prepare

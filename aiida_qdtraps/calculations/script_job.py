"""What the CalcJobs that run one of the package's Python scripts share: serial defaults, the script and its JSON
input in the working directory, and one command line whose output goes to a log."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Callable

from aiida import orm
from aiida.common import CalcInfo, CodeInfo
from aiida.common.folders import Folder

#: The JSON input file of a script job.
INPUT_FILE = 'input.json'


def define_script_job(spec, parser_name: str, *, structure_help: str | None = None,
                      parameters_help: str | None = None, check: Callable[[Any], None] | None = None) -> None:
    """Option defaults of a job that runs one Python script: one machine, one process, no MPI, and its parser.

    :param structure_help: if given, the job takes a ``structure`` (StructureData) described by it.
    :param parameters_help: if given, the job takes optional ``parameters`` (Dict) described by them.
    :param check: ``check(inputs)`` raises ``ValueError`` for bad inputs; its message is the validation error, so
        nothing is stored.
    """
    if structure_help:
        spec.input('structure', valid_type=orm.StructureData, help=structure_help)
    if parameters_help:
        spec.input('parameters', valid_type=orm.Dict, required=False, help=parameters_help)
    if check is not None:
        spec.inputs.validator = _validator(check)
    options = spec.inputs['metadata']['options']
    options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    options['withmpi'].default = False
    options['parser_name'].default = parser_name


def _validator(check: Callable[[Any], None]) -> Callable:
    def validate(inputs, _):
        try:
            check(inputs)
        except ValueError as exception:
            return str(exception)
        return None

    return validate


def parameters_of(inputs) -> dict:
    """The job's ``parameters`` as a dict (empty when not given)."""
    return inputs['parameters'].get_dict() if 'parameters' in inputs else {}


def write_script_job(folder: Folder, script: pathlib.Path, parameters: dict) -> None:
    """Write ``parameters`` as :data:`INPUT_FILE` and a copy of ``script`` (under its own name) into ``folder``."""
    with folder.open(INPUT_FILE, 'w') as handle:
        json.dump(parameters, handle, indent=1)
    with folder.open(script.name, 'w') as handle:
        handle.write(script.read_text())


def script_calcinfo(code: orm.AbstractCode, script: pathlib.Path, arguments: list[str], log: str,
                    retrieve: list[str], local_copy_list: list | None = None) -> CalcInfo:
    """The CalcInfo of ``<code> <script> <arguments...>`` with stdout and stderr joined into ``log``."""
    codeinfo = CodeInfo()
    codeinfo.code_uuid = code.uuid
    codeinfo.cmdline_params = [script.name, *arguments]
    codeinfo.stdout_name = log
    codeinfo.join_files = True
    calcinfo = CalcInfo()
    calcinfo.codes_info = [codeinfo]
    calcinfo.local_copy_list = list(local_copy_list or [])
    calcinfo.remote_copy_list = []
    calcinfo.retrieve_list = list(retrieve)
    return calcinfo

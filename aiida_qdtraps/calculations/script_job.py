"""What the CalcJobs that run one of the package's Python scripts share: serial defaults, the script and its JSON
input in the working directory, and one command line whose output goes to a log."""

from __future__ import annotations

import json
import pathlib

from aiida import orm
from aiida.common import CalcInfo, CodeInfo
from aiida.common.folders import Folder

#: The JSON input file of a script job.
INPUT_FILE = 'input.json'


def define_script_job(spec, parser_name: str) -> None:
    """Option defaults of a job that runs one Python script: one machine, one process, no MPI, and its parser."""
    options = spec.inputs['metadata']['options']
    options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    options['withmpi'].default = False
    options['parser_name'].default = parser_name


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

"""Validation of user strings that end up in job scripts, so that they cannot inject shell commands.

AiiDA quotes command-line arguments and stdin/stdout names when it writes ``_aiidasubmit.sh`` (single quotes by
default; double quotes, in which ``$(...)`` and backticks still run, when a computer or code is set up with
``use_double_quotes``). It writes some CalcJob options verbatim, though:

* ``environment_variables`` keys (``export KEY='value'``): ``{'A=1; rm -rf ~; B': 'x'}`` runs ``rm``;
* ``queue_name``, ``account``, ``qos`` and the scheduler output paths in ``#SBATCH``/``#PBS`` lines: a newline in the
  value ends the comment and starts a command;
* ``custom_scheduler_commands``: meant for scheduler directives, but any line of it is executed.

``prepend_text`` and ``append_text`` are shell code on purpose (like a code's own ``prepend_text``) and are left as
they are. The checks here refuse anything else that could run code, with a ``ValueError`` naming the option and value.
They are used by :mod:`aiida_qdtraps.resources` and by the ``bader.options`` port of ``BaderChargeFlowWorkChain``
(so also the pipeline's ``charge_flow.bader.options``).
"""

from __future__ import annotations

import re
import typing as t

__all__ = ('check_argument', 'check_filename', 'check_options', 'options_port_validator')

#: A plain file name: letters, digits, ``. _ + -``; not starting with ``-`` or ``.``; no ``/``, spaces or quotes.
SAFE_FILENAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}')
#: One command-line argument that needs no quoting: no whitespace, quotes, ``$ ` ; | & < > ( ) * ? ~ ! \``.
SAFE_ARGUMENT = re.compile(r'[A-Za-z0-9_.,:=+@%/{}-]{1,4096}')
#: A scheduler name (queue/partition, account, QOS): like a file name, also ``:`` and ``@``.
SAFE_NAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9._:@+-]{0,254}')
#: A POSIX environment variable name.
ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]{0,254}')
#: Environment values: anything printable but command substitution and line breaks (``$VAR`` stays allowed).
UNSAFE_VALUE = re.compile(r'[\x00-\x1f\x7f`]|\$\(')

NAME_OPTIONS = ('queue_name', 'account', 'qos')
FILE_OPTIONS = ('input_filename', 'output_filename')
PATH_OPTIONS = ('scheduler_stdout', 'scheduler_stderr')


def check_filename(value: t.Any, what: str = 'file name') -> str:
    """Return ``value`` if it is a plain file name (:data:`SAFE_FILENAME`), else raise ``ValueError`` naming it."""
    if not isinstance(value, str) or not SAFE_FILENAME.fullmatch(value):
        raise ValueError(f'{what} {value!r} is not a plain file name (letters, digits, "._+-", not starting with "." '
                         'or "-", no "/", spaces, quotes or shell characters)')
    return value


def check_argument(value: t.Any, what: str = 'argument') -> str:
    """Return ``value`` if it is a command-line argument that needs no quoting, else raise ``ValueError``."""
    if not isinstance(value, str) or not SAFE_ARGUMENT.fullmatch(value):
        raise ValueError(f'{what} {value!r} contains characters that are not allowed in a command-line argument '
                         '(only letters, digits and "_.,:=+@%/{}-"; no spaces, quotes, "$", backticks, ";", "|", "&", '
                         '"<", ">", newlines)')
    return value


def check_options(options: t.Mapping[str, t.Any], what: str = 'options') -> None:
    """Refuse CalcJob options whose strings could inject shell commands into the job script (``ValueError``)."""
    if not isinstance(options, t.Mapping):
        raise TypeError(f'{what} must be a dictionary, got {type(options).__name__}')
    for key in NAME_OPTIONS:
        if options.get(key) is not None and not (isinstance(options[key], str) and SAFE_NAME.fullmatch(options[key])):
            raise ValueError(f'{what}.{key} {options[key]!r} is not a plain scheduler name (letters, digits, '
                             '"._:@+-"; no spaces, newlines or shell characters)')
    for key in FILE_OPTIONS:
        if options.get(key) is not None:
            check_filename(options[key], f'{what}.{key}')
    for key in PATH_OPTIONS:
        if options.get(key) is not None:
            for part in str(options[key]).split('/'):
                if part not in ('', '.', '..'):
                    check_filename(part, f'{what}.{key} part')
    for name, value in (options.get('environment_variables') or {}).items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise ValueError(f'{what}.environment_variables: {name!r} is not a valid environment variable name')
        if not isinstance(value, (str, int, float)) or UNSAFE_VALUE.search(str(value)):
            raise ValueError(f'{what}.environment_variables[{name!r}] = {value!r}: line breaks, backticks and "$(" '
                             'are not allowed in a value')
    for argument in options.get('mpirun_extra_params') or []:
        check_argument(argument, f'{what}.mpirun_extra_params item')
    commands = options.get('custom_scheduler_commands')
    if commands:
        for line in str(commands).splitlines():
            if line.strip() and not line.lstrip().startswith('#'):
                raise ValueError(f'{what}.custom_scheduler_commands line {line!r} is not a scheduler directive '
                                 '(lines must start with "#", e.g. "#SBATCH --constraint=cpu"); put shell set-up in '
                                 "the code's prepend_text")


def options_port_validator(value, _=None) -> str | None:
    """Port validator (plumpy signature) for a ``Dict`` of CalcJob options: the error message, or ``None``."""
    if value is None:
        return None
    try:
        check_options(value.get_dict() if hasattr(value, 'get_dict') else value, 'bader.options')
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None

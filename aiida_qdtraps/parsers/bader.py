"""Parser ``qdtraps.bader`` for a Bader run launched through aiida-shell (``ShellJob``).

Set ``metadata.options.parser_name = 'qdtraps.bader'`` on the ShellJob. It handles both programs:

* ``baderkit bader CHGCAR -f vasp`` → ``atom_summary.tsv`` (fractional positions, populations, volumes, vacuum);
* Henkelman ``bader CHGCAR`` → ``ACF.dat`` (Cartesian positions in Å for a CHGCAR input).

Output ``bader_populations`` (ArrayData): ``populations`` (e), ``volumes`` (Å³), ``positions`` (Å, CHGCAR frame),
with attributes ``program``, ``vacuum_charge`` (e), ``vacuum_volume`` (Å³), ``electrons_total`` (e). The
electron-conservation check needs the valence charges, which the parser cannot see; the work chain does it. A
truncated or garbled table gives ``ERROR_INVALID_OUTPUT`` (the reason in the job's log) and no output.
Being a class registered as an entry point (not a pickled callable) it also runs for jobs on remote computers.
"""

from __future__ import annotations

import pathlib

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida_shell.parsers.shell import ShellParser

from ..analysis.bader import (
    BADERKIT_ATOM_FILE,
    HENKELMAN_ATOM_FILE,
    parse_acf,
    parse_baderkit_atoms,
)


def chgcar_lattice(text: str) -> np.ndarray:
    """Lattice vectors (rows, Å) from the header of a CHGCAR/POSCAR (line 2 scale, lines 3–5 vectors)."""
    lines = text.splitlines()
    scale = float(lines[1].split()[0])
    return scale * np.array([[float(v) for v in lines[k].split()[:3]] for k in (2, 3, 4)])


class BaderShellParser(ShellParser):
    """Captures stdout/stderr like ``core.shell`` and parses the Bader per-atom table."""

    def parse(self, **kwargs):
        dirpath = pathlib.Path(kwargs['retrieved_temporary_folder'])
        self.parse_custom_outputs(dirpath)
        exit_code = self.parse_default_outputs(dirpath)
        if exit_code.status not in (0, self.exit_codes.ERROR_STDERR_NOT_EMPTY.status):
            return exit_code  # the program failed (e.g. non-zero exit status): report it as aiida-shell does
        try:
            if (dirpath / BADERKIT_ATOM_FILE).is_file():
                result = parse_baderkit_atoms((dirpath / BADERKIT_ATOM_FILE).read_text())
                result.positions = result.positions @ self._lattice()
            elif (dirpath / HENKELMAN_ATOM_FILE).is_file():
                result = parse_acf((dirpath / HENKELMAN_ATOM_FILE).read_text())
            else:
                return self.exit_code('ERROR_OUTPUT_FILEPATHS_MISSING',
                                      missing_filepaths=f'{BADERKIT_ATOM_FILE} or {HENKELMAN_ATOM_FILE}')
        except ValueError as exc:  # a truncated or garbled table (UnicodeDecodeError included): the reader names it
            self.logger.error(f'could not read the Bader output: {exc}')
            return self.exit_codes.ERROR_INVALID_OUTPUT
        node = orm.ArrayData()
        node.set_array('populations', result.populations)
        node.set_array('volumes', result.volumes)
        node.set_array('positions', result.positions)
        node.base.attributes.set_many({
            'program': result.program, 'vacuum_charge': result.vacuum_charge,
            'vacuum_volume': None if np.isnan(result.vacuum_volume) else result.vacuum_volume,
            'electrons_total': result.total_electrons, 'units': {'populations': 'e', 'volumes': 'angstrom^3',
                                                                  'positions': 'angstrom'}})
        self.out('bader_populations', node)
        return ExitCode()

    def _lattice(self) -> np.ndarray:
        nodes = self.node.inputs.nodes
        for key in nodes:
            node = nodes[key]
            if isinstance(node, orm.SinglefileData):
                with node.open(mode='r') as handle:
                    header = ''.join(handle.readline() for _ in range(5))
                try:
                    return chgcar_lattice(header)
                except (IndexError, ValueError):
                    continue
        raise ValueError('no CHGCAR among the ShellJob input nodes: cannot turn fractional positions into Å')

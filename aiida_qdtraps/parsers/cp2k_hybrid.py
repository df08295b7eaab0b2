"""Parser for the CP2K hybrid SCF: everything of ``qdtraps.cp2k`` plus MOs, PDOS and density cube.

Registered as ``qdtraps.cp2k_hybrid``. Outputs (in addition to ``output_parameters``):

- ``mo_energies`` (ArrayData): ``energies`` (nspin, nmo) eV and ``occupations`` of all computed MOs, from
  the MOLDEN file (so they match the coefficients exactly).
  The window of MO coefficients around the gap is cut from the retrieved MOLDEN file by the
  ``extract_mo_window`` calcfunction (its size is an input of the workchain, which a parser cannot see).
- ``pdos`` (ArrayData): per kind ``<kind>_projections`` (nmo, ncol) and ``<kind>_energies``; the column
  labels are in the array node's attribute ``columns``.
- ``density_cube`` (SinglefileData): the valence electron density written by CP2K.

The HOMO/LUMO/gap put into ``output_parameters`` (``homo_ev``, ``lumo_ev``, ``gap_ev``) are taken from the
MO energies and occupations, never from aiida-cp2k's band gap (wrong for PBE0 outputs).

The MOLDEN and PDOS files are read completely before any of these outputs is registered: a truncated or garbled file
gives ``ERROR_OUTPUT_PARSE`` (the reader's message in the calculation's log) and leaves only what ``qdtraps.cp2k``
leaves on a failure (``atomic_charges``, and the structure of an optimisation).
"""

from __future__ import annotations

import fnmatch

from aiida import orm

from .cp2k import QdCp2kParser
from .cp2k_files import homo_lumo, read_molden, read_pdos

MOLDEN_FILE = 'aiida-MOS-1_0.molden'
CUBE_FILE = 'aiida-ELECTRON_DENSITY-1_0.cube'


class Cp2kHybridParser(QdCp2kParser):
    """Parse a CP2K single point run with ``&MO_MOLDEN``, ``&PDOS`` and ``&E_DENSITY_CUBE``."""

    def parse(self, **kwargs):
        self._mo_outputs = {}  # mo_energies and pdos, registered only when the whole run parsed without error
        exit_code = super().parse(**kwargs)
        if exit_code.status != 0:
            return exit_code
        for label, node in self._mo_outputs.items():
            self.out(label, node)
        files = self.retrieved.base.repository.list_object_names()
        if CUBE_FILE in files:
            with self.retrieved.base.repository.open(CUBE_FILE, 'rb') as handle:
                self.out('density_cube', orm.SinglefileData(handle, filename='density.cube'))
        return exit_code

    def _parse_finished_run(self, result: dict):
        """Add the MO summary (HOMO, LUMO, gap from the MOLDEN energies) to ``output_parameters``."""
        if MOLDEN_FILE not in self.retrieved.base.repository.list_object_names():
            self.logger.error(f'the retrieved folder has no {MOLDEN_FILE}; was &DFT &PRINT &MO_MOLDEN set?')
            return self.exit_codes.ERROR_OUTPUT_MISSING
        try:
            summary, energies = self._parse_mos()
        except ValueError as exc:  # UnicodeDecodeError included
            self.logger.error(f'could not read the MOs from {MOLDEN_FILE}: {exc}')
            return self.exit_codes.ERROR_OUTPUT_PARSE
        try:
            pdos = self._parse_pdos(self.retrieved.base.repository.list_object_names())
        except ValueError as exc:
            self.logger.error(f'could not read the PDOS: {exc}')
            return self.exit_codes.ERROR_OUTPUT_PARSE
        result.update(summary)
        self._mo_outputs = {'mo_energies': energies} | ({'pdos': pdos} if pdos is not None else {})
        return None

    def _parse_mos(self) -> tuple[dict, orm.ArrayData]:
        """The MO summary for ``output_parameters`` and the ``mo_energies`` node (not yet registered)."""
        data = read_molden(self.retrieved.base.repository.get_object_content(MOLDEN_FILE))
        nspin = data.energies.shape[0]
        energies = orm.ArrayData()
        energies.set_array('energies', data.energies)
        energies.set_array('occupations', data.occupations)
        energies.base.attributes.set('units', 'eV')
        edges = [homo_lumo(data.energies[s], data.occupations[s]) for s in range(nspin)]

        summary = {'n_mo': int(data.energies.shape[1]), 'n_ao': int(data.overlap.shape[0]), 'nspin': nspin}
        for spin, (homo, lumo) in enumerate(edges):
            suffix = '' if nspin == 1 else ('_alpha', '_beta')[spin]
            summary[f'homo_ev{suffix}'] = float(data.energies[spin][homo])
            summary[f'lumo_ev{suffix}'] = float(data.energies[spin][lumo])
            summary[f'homo_index{suffix}'] = homo
        if nspin == 2:
            summary['homo_ev'] = max(summary['homo_ev_alpha'], summary['homo_ev_beta'])
            summary['lumo_ev'] = min(summary['lumo_ev_alpha'], summary['lumo_ev_beta'])
        summary['gap_ev'] = summary['lumo_ev'] - summary['homo_ev']
        return summary, energies

    def _parse_pdos(self, files) -> orm.ArrayData | None:
        """The ``pdos`` node (not yet registered), None without PDOS files.

        :raises ValueError: naming the PDOS file that cannot be read.
        """
        pdos_files = sorted(fnmatch.filter(files, 'aiida-*.pdos'))
        if not pdos_files:
            return None
        node = orm.ArrayData()
        columns = {}
        for name in pdos_files:
            try:
                pdos = read_pdos(self.retrieved.base.repository.get_object_content(name))
            except ValueError as exc:
                raise ValueError(f'{name}: {exc}') from exc
            spin = next((f'_{s.lower()}' for s in ('ALPHA', 'BETA') if s in name), '')
            key = f"{pdos['kind']}{spin}"
            node.set_array(f'{key}_energies', pdos['energies'])
            node.set_array(f'{key}_occupations', pdos['occupations'])
            node.set_array(f'{key}_projections', pdos['projections'])
            columns[key] = pdos['columns']
        node.base.attributes.set('columns', columns)
        node.base.attributes.set('units', 'eV')
        return node

"""``qdtraps.cp2k``: aiida-cp2k's base parser that also refuses unconverged SCF cycles.

CP2K 2023.1 only prints ``*** WARNING ... SCF run NOT converged ***`` and carries on (with GEO_OPT it
even continues optimising on unconverged forces), and aiida-cp2k's parser only recognises the ABORT
variant of that message, so such runs would pass as successful. This parser returns
``ERROR_SCF_NOT_CONVERGED`` for them, which the work chains' SCF handler then treats: for a single point, for an
unfinished run (optimisation step limit, incomplete output) with any unconverged cycle, and for a finished
optimisation whose last step or final re-evaluation did not converge (:func:`final_scf_not_converged`). A finished
optimisation with unconverged cycles only on its way is accepted; ``output_parameters['scf_not_converged_count']``
counts them and the work chain reports them.

It reads the energy with :func:`~.cp2k_files.parse_total_energy`, which knows the ``energy [a.u.]:`` line of CP2K up to
2024.x and the ``energy [hartree]`` line of 2025.1 on, and puts CP2K's version in ``output_parameters['cp2k_version']``;
an output of a version outside :data:`~.cp2k_files.TESTED_CP2K_VERSIONS` is parsed all the same, with a warning in
the calculation's log (docs/cp2k_versions.md).

It also adds CP2K's dipole moment (``dipole_debye``, ``dipole_norm_debye``; ``&DFT &PRINT &MOMENTS``) to
``output_parameters`` and outputs ``atomic_charges`` (ArrayData with ``mulliken``, ``lowdin``, ``hirshfeld`` net
charges per atom, whichever analyses CP2K printed).
"""

from __future__ import annotations

import ase
import numpy as np
from aiida import orm
from aiida.common import exceptions as common
from aiida_cp2k import utils
from aiida_cp2k.parsers import Cp2kBaseParser

from ..monitors import monitor_settings
from .cp2k_files import (
    POPULATION_ANALYSES,
    parse_atomic_charges,
    parse_cp2k_version,
    parse_dipole_moment,
    parse_grid_quality,
    parse_reported_gap,
    parse_total_energy,
    parse_total_walltime,
    untested_version_warning,
)
from .cp2k_progress import SCF_NOT_CONVERGED, lbfgs_stopped_above_criterion, stop_reason

OPTIMIZATION_STEP = 'OPTIMIZATION STEP:'


def final_scf_not_converged(output: str) -> bool:
    """Whether an SCF cycle that the run's results come from ended unconverged: any in a single point, any in the last
    optimisation step (and the re-evaluation at the minimum that follows it) of a GEO_OPT / CELL_OPT.

    A finished GEO_OPT whose early SCF cycles did not converge, but whose last step and final re-evaluation did, is a
    valid result: its geometry and forces come from converged SCF cycles (F6In6P3³⁺, docs/pipeline.md: its first SCF
    cycle unconverged, then GEOMETRY OPTIMIZATION COMPLETED at step 40). Refusing it restarted a converged relax with
    other mixing.
    """
    return SCF_NOT_CONVERGED in output[max(output.rfind(OPTIMIZATION_STEP), 0):]


class QdCp2kParser(Cp2kBaseParser):
    """Base CP2K parser + detection of SCF cycles that ended unconverged + CP2K's wall time.

    ``output_parameters`` gets ``walltime_s`` (CP2K's own timer), ``cp2k_reported_gap_ev`` (its last
    ``MO| Band gap`` line, if any), ``grid_electron_error`` and ``wavelet_edge_warnings`` (``parse_grid_quality``)
    besides what aiida-cp2k's base parser reads.
    """

    def _read_stdout(self):
        """aiida-cp2k's reading of the main output, with an output that is not UTF-8 text (a damaged file) refused as
        ``ERROR_OUTPUT_READ`` instead of raising."""
        try:
            return super()._read_stdout()
        except UnicodeDecodeError as exc:
            self.logger.error(f'the CP2K output is not UTF-8 text (damaged file?): {exc}')
            return self.exit_codes.ERROR_OUTPUT_READ, None

    def _parse_final_structure(self):
        """The structure in the restart file (aiida-cp2k's reader, given the file from ``&FORCE_EVAL`` on: the
        ``&MOTION`` section before it holds the ``&COORD`` of a Nosé–Hoover thermostat, which that reader would take
        for the atoms), with a damaged restart file (the reader fails with an AttributeError, IndexError, KeyError or
        ValueError) or non-finite coordinates as ``ERROR_STRUCTURE_PARSE``."""
        name = self.node.process_class._DEFAULT_RESTART_FILE_NAME
        if name not in self.retrieved.base.repository.list_object_names():
            raise common.NotExistent("No restart file available, so the output trajectory can't be extracted")
        try:
            content = self.retrieved.base.repository.get_object_content(name)
        except OSError:
            return self.exit_codes.ERROR_OUTPUT_STDOUT_READ
        try:
            start = content.find('&FORCE_EVAL')
            structure = orm.StructureData(ase=ase.Atoms(**utils.parse_cp2k_trajectory(content[max(start, 0):])))
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            self.logger.error(f'could not read the structure from the CP2K restart file: {type(exc).__name__}: {exc}')
            return self.exit_codes.ERROR_STRUCTURE_PARSE
        atoms = structure.get_ase()
        if not len(atoms) or not (np.all(np.isfinite(atoms.positions)) and np.all(np.isfinite(atoms.cell))):
            self.logger.error('the CP2K restart file holds no atoms or coordinates that are not finite numbers')
            return self.exit_codes.ERROR_STRUCTURE_PARSE
        return structure

    def _parse_trajectory(self, structure):
        """aiida-cp2k's trajectory, skipped when the restart file could not be read (``structure`` is an exit code)."""
        if not isinstance(structure, orm.StructureData):
            return None
        return super()._parse_trajectory(structure)

    def _parse_stdout(self):
        exit_code, output_string = self._read_stdout()
        if exit_code:
            return exit_code
        exit_code = self._check_stdout_for_errors(output_string)
        if exit_code in self.SEVERE_ERRORS:
            return exit_code
        try:  # everything is read before anything is output: a garbled value leaves no half-parsed outputs
            try:
                result = utils.parse_cp2k_output(output_string)
            except IndexError as exc:  # aiida-cp2k reads the 9th word of every ENERGY| line: a line cut short
                raise ValueError(f'an "ENERGY|" line of the CP2K output is cut short ({exc})') from exc
            self._read_version_and_energy(output_string, result)
            result['walltime_s'] = parse_total_walltime(output_string)
            result['cp2k_reported_gap_ev'] = parse_reported_gap(output_string)
            result.update(parse_grid_quality(output_string))
            result['scf_not_converged_count'] = output_string.count(SCF_NOT_CONVERGED)
            dipole = parse_dipole_moment(output_string)
            if dipole is not None:
                result['dipole_debye'] = dipole
                result['dipole_norm_debye'] = float(np.linalg.norm(dipole))
            charges = self._read_atomic_charges(output_string)
        except ValueError as exc:  # the readers name the garbled line or value
            self.logger.error(f'could not read the CP2K output: {exc}')
            return self.exit_codes.ERROR_OUTPUT_PARSE
        if charges is not None:
            self.out('atomic_charges', charges)
        if exit_code is None:
            extra = self._parse_finished_run(result)
            if extra is not None:
                return extra
        self.out('output_parameters', orm.Dict(result))
        return exit_code

    def _read_version_and_energy(self, output_string: str, result: dict):
        """``cp2k_version`` (warned about when untested) and the last total energy in Hartree into ``result``.

        aiida-cp2k's ``parse_cp2k_output`` takes the 9th word of the last ``ENERGY|`` line, which is the energy in the
        layouts of CP2K 2023-2026 but would be the band gap after a ``gap`` line; the energy read here replaces it.
        """
        version = parse_cp2k_version(output_string)
        result['cp2k_version'] = version
        warning = untested_version_warning(version)
        if warning is not None:
            self.logger.warning(warning)
        try:
            energy = parse_total_energy(output_string)
        except ValueError as exc:  # an energy in another unit than Hartree: not passed on as 'a.u.'
            self.logger.warning(str(exc))
            result.pop('energy', None)
            result.pop('energy_units', None)
            return
        if energy is not None:
            result['energy'] = energy
            result['energy_units'] = 'a.u.'

    @staticmethod
    def _read_atomic_charges(output_string: str) -> orm.ArrayData | None:
        """``atomic_charges`` (ArrayData): the net atomic charges (e) of every population analysis CP2K printed."""
        node = orm.ArrayData()
        for analysis in POPULATION_ANALYSES:
            charges = parse_atomic_charges(output_string, analysis)
            if charges is not None:
                node.set_array(analysis, charges)
        if not node.get_arraynames():
            return None
        node.base.attributes.set('units', 'e (net charge: positive = electron loss)')
        return node

    def _stopped_by_monitor(self, output_string):
        """The exit code of an output that the ``cp2k_scf`` monitor stopped (None if it would not have stopped it).

        The monitor's reason is found again from the output with the monitor's own settings: a stalled or diverged
        SCF (or an unconverged one in a GEO_OPT/MD) is ``ERROR_SCF_NOT_CONVERGED``, a stalled optimisation
        ``ERROR_GEOMETRY_CONVERGENCE_NOT_REACHED``; both have handlers in the work chains.
        """
        settings = monitor_settings(self.node)
        if settings is None:
            return None
        reason = stop_reason(output_string, **settings)
        if reason is None:
            return None
        self.logger.warning(f'output stopped by the cp2k_scf monitor: {reason[1]}')
        if reason[0] == 'geometry_stalled':
            return self.exit_codes.ERROR_GEOMETRY_CONVERGENCE_NOT_REACHED
        return self.exit_codes.ERROR_SCF_NOT_CONVERGED

    def _parse_finished_run(self, result: dict):
        """Hook for subclasses: add to ``result`` from other files; return an exit code to fail."""
        return None

    def _check_stdout_for_errors(self, output_string):
        exit_code = super()._check_stdout_for_errors(output_string)
        stopped = lbfgs_stopped_above_criterion(output_string) if exit_code is None else None
        if stopped is not None:
            self.logger.warning(f'LBFGS ended the optimisation on its own criteria with the largest gradient at '
                                f'{stopped[0]:.2e} Ha/bohr, above the limit {stopped[1]:.2e}: not converged')
            return self.exit_codes.ERROR_GEOMETRY_CONVERGENCE_NOT_REACHED
        if exit_code == self.exit_codes.ERROR_OUTPUT_INCOMPLETE:
            stopped = self._stopped_by_monitor(output_string)
            if stopped is not None:
                return stopped
        if SCF_NOT_CONVERGED not in output_string:
            return exit_code
        if exit_code in (self.exit_codes.ERROR_MAXIMUM_NUMBER_OPTIMIZATION_STEPS_REACHED,
                         self.exit_codes.ERROR_OUTPUT_INCOMPLETE):
            return self.exit_codes.ERROR_SCF_NOT_CONVERGED  # an unfinished run that had unconverged SCF cycles
        if exit_code is None and final_scf_not_converged(output_string):
            return self.exit_codes.ERROR_SCF_NOT_CONVERGED
        return exit_code

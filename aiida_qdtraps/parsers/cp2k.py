"""``qdtraps.cp2k``: aiida-cp2k's base parser that also refuses unconverged SCF cycles.

CP2K 2023.1 only prints ``*** WARNING ... SCF run NOT converged ***`` and carries on (with GEO_OPT it
even continues optimising on unconverged forces), and aiida-cp2k's parser only recognises the ABORT
variant of that message, so such runs would pass as successful. This parser returns
``ERROR_SCF_NOT_CONVERGED`` for them, which the work chains' SCF handler then treats.
"""

from __future__ import annotations

from aiida_cp2k.parsers import Cp2kBaseParser

SCF_NOT_CONVERGED = 'SCF run NOT converged'


class QdCp2kParser(Cp2kBaseParser):
    """Base CP2K parser + detection of SCF cycles that ended unconverged."""

    def _check_stdout_for_errors(self, output_string):
        exit_code = super()._check_stdout_for_errors(output_string)
        not_converged = SCF_NOT_CONVERGED in output_string
        if not_converged and exit_code in (None, self.exit_codes.ERROR_MAXIMUM_NUMBER_OPTIMIZATION_STEPS_REACHED,
                                           self.exit_codes.ERROR_OUTPUT_INCOMPLETE):
            return self.exit_codes.ERROR_SCF_NOT_CONVERGED
        return exit_code

"""A real CP2K 2026.2 run through QdCp2kBaseWorkChain: its ELPA crash is retried with ScaLAPACK, and the run gives the
numbers of the same input on the Debian 2023.1 of `make setup`.

CP2K 2026.2 is Debian experimental's package in a chroot (``tools/cp2k_debian.sh experimental``, not part of
`make setup`); where it is not installed this module is skipped and the handler is tested on the recorded crash alone
(tests/workchains/test_cp2k_base_handlers.py).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.workchains.cp2k_base import QdCp2kBaseWorkChain

CP2K_2026 = shutil.which('cp2k-2026.2')

pytestmark = pytest.mark.skipif(CP2K_2026 is None,
                                reason='CP2K 2026.2 is not installed here (tools/cp2k_debian.sh experimental)')

#: the ``fast`` relax protocol's CP2K settings as one energy + forces evaluation
ENERGY_FORCE = {'scf_monitor': False, 'cp2k': {'parameters': {'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE'},
                                                             'FORCE_EVAL': {'PRINT': {'FORCES': {}}}}}}


def _inf3() -> orm.StructureData:
    """Planar InF3 centred in a 10 Å box: the smallest In/F system."""
    from ase import Atoms

    angles = np.radians([0.0, 120.0, 240.0])
    positions = [[0.0, 0.0, 0.0]] + [[1.95 * np.cos(a), 1.95 * np.sin(a), 0.0] for a in angles]
    atoms = Atoms('InF3', positions=positions, cell=[10.0, 10.0, 10.0])
    atoms.center()
    return orm.StructureData(ase=atoms).store()


@pytest.mark.slow
def test_real_cp2k_2026_crash_is_retried_with_scalapack_and_gives_the_2023_numbers(cp2k_code, aiida_code_installed):
    new = aiida_code_installed(label='cp2k-2026.2', default_calc_job_plugin='cp2k', filepath_executable=CP2K_2026,
                               prepend_text='export OMP_NUM_THREADS=1')
    structure = _inf3()
    nodes = {}
    for name, code in (('2023.1', cp2k_code), ('2026.2', new)):
        builder = QdCp2kBaseWorkChain.get_builder_from_protocol(code, structure, 'fast', overrides=ENERGY_FORCE)
        _, nodes[name] = run_get_node(builder)
        assert nodes[name].is_finished_ok, (name, nodes[name].exit_status, nodes[name].exit_message)

    calcs = sorted((n for n in nodes['2026.2'].called if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
    assert [calc.exit_status for calc in calcs] == [
        calcs[0].process_class.exit_codes.ERROR_OUTPUT_INCOMPLETE.status, 0]
    assert 'PREFERRED_DIAG_LIBRARY' not in calcs[0].inputs.parameters['GLOBAL']
    assert calcs[1].inputs.parameters['GLOBAL']['PREFERRED_DIAG_LIBRARY'] == 'SCALAPACK'
    assert 'parent_calc_folder' not in calcs[1].inputs
    reports = [log.message for log in orm.Log.collection.get_logs_for(nodes['2026.2'])]
    assert any('stopped by SIGFPE inside ELPA' in message for message in reports), reports

    (old_calc,) = [n for n in nodes['2023.1'].called if isinstance(n, orm.CalcJobNode)]
    old, recent = old_calc.outputs.output_parameters, calcs[1].outputs.output_parameters
    assert (old['cp2k_version'], recent['cp2k_version']) == ('2023.1', '2026.2')
    assert recent['energy'] == pytest.approx(old['energy'], abs=1e-8)
    old_text, new_text = (calc.outputs.retrieved.base.repository.get_object_content('aiida.out')
                          for calc in (old_calc, calcs[1]))
    assert 'ATOMIC FORCES in [a.u.]' in old_text and 'FORCES| Atomic forces [hartree/bohr]' in new_text
    from aiida_qdtraps.parsers.cp2k_files import parse_forces

    assert parse_forces(new_text) == pytest.approx(parse_forces(old_text), abs=1e-6)

"""The ``extract_mo_window`` calcfunction: the MOs around the gap, cut from the MOLDEN file a CP2K run retrieved.

A thin bridge to :mod:`aiida_qdtraps.parsers.cp2k_files` (read the file → pick the window → wrap as ArrayData).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from ..parsers.cp2k_files import homo_lumo, mo_window, read_molden


@calcfunction
def extract_mo_window(retrieved: orm.FolderData, window: orm.Dict) -> dict:
    """Cut the MOs around the gap from the MOLDEN file a CP2K run retrieved.

    :param window: ``{'occupied': n, 'virtual': m, 'molden_file': name}``.
    :returns: ``mo_window`` ArrayData with ``indices``, ``energies`` (eV), ``occupations``, ``coefficients``
        (nspin, nao, nwin), the AO ``overlap`` and ``ao_atom`` (AO → atom index).
    """
    settings = window.get_dict()
    molden = settings.get('molden_file', 'aiida-MOS-1_0.molden')
    data = read_molden(retrieved.base.repository.get_object_content(molden))
    nspin = data.energies.shape[0]
    n_occ = min([int(settings['occupied'])] + [homo_lumo(data.energies[s], data.occupations[s])[0] + 1
                                               for s in range(nspin)])
    indices = np.array([mo_window(data, n_occ, int(settings['virtual']), spin) for spin in range(nspin)])
    node = orm.ArrayData()
    node.set_array('indices', indices)
    node.set_array('energies', np.take_along_axis(data.energies, indices, axis=1))
    node.set_array('occupations', np.take_along_axis(data.occupations, indices, axis=1))
    node.set_array('coefficients', np.array([data.coefficients[s][:, w] for s, w in enumerate(indices)]))
    node.set_array('overlap', data.overlap)
    node.set_array('ao_atom', data.ao_atom)
    node.base.attributes.set('ao_labels', data.ao_labels)
    node.base.attributes.set('symbols', data.symbols)
    node.base.attributes.set('units', 'eV')
    return {'mo_window': node}

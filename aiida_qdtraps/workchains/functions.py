"""Calcfunctions bridging AiiDA nodes to the pure ``builder``/``parsers`` kernels (thin: unpack, call, wrap)."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

from ..builder import qd as qd_recipes
from ..parsers.cp2k_files import homo_lumo, mo_window, read_molden
from .build import copy_qd_tags, to_structure


@calcfunction
def update_cp2k_parameters(parameters: orm.Dict, changes: orm.Dict) -> orm.Dict:
    """CP2K input parameters with ``changes`` merged in recursively (used by the error handlers)."""
    return orm.Dict(recursive_merge(parameters.get_dict(), changes.get_dict()))


@calcfunction
def build_qd_structure(recipe: orm.Dict) -> orm.StructureData:
    """Build a QD model from a recipe (keyword arguments of :func:`aiida_qdtraps.builder.qd.build_qd`).

    The recipe Dict is this calcfunction's input, so a QueryBuilder from a recipe (e.g. filtering on
    ``attributes.material``) reaches every structure built from it, and every structure its recipe.
    """
    return to_structure(qd_recipes.build_qd(**recipe.get_dict()))


@calcfunction
def center_in_box(structure: orm.StructureData, vacuum: orm.Float) -> orm.StructureData:
    """The cluster centred in a cubic non-periodic box with at least ``vacuum`` Å on every side."""
    boxed = qd_recipes.put_in_box(structure.get_ase(), float(vacuum.value))
    result = orm.StructureData(ase=boxed)
    result.pbc = (False, False, False)
    copy_qd_tags(structure, result)  # per-site roles/domains follow the structure
    return result


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

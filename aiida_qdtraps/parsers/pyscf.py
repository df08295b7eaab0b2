"""Parser of ``PyscfCalculation`` (``qdtraps.pyscf``): energies, MOs, charges and the MO window around the gap.

Outputs:

- ``output_parameters`` (Dict): ``energy_ha``, ``energy_ev``, ``homo_ev``, ``lumo_ev``, ``gap_ev`` (per spin with
  ``_alpha``/``_beta`` suffixes for UKS, the overall edges without), ``homo_index``, ``converged``, ``scf_step`` and
  ``attempts`` of the SCF ladder, ``dipole_debye`` (about the origin of the Cartesian frame), ``wall_time_s``,
  ``pyscf_version``, ``xc``, ``basis``;
- ``mo_energies`` (ArrayData): ``energies`` (nspin, nmo) eV and ``occupations``;
- ``mo_window`` (ArrayData): the layout of :func:`aiida_qdtraps.workchains.mo_window.extract_mo_window` (CP2K):
  ``indices`` (nspin, nwin), ``energies`` (eV), ``occupations``, ``coefficients`` (nspin, nao, nwin), the AO
  ``overlap`` (nao, nao), ``ao_atom`` (nao,); attributes ``ao_labels``, ``symbols``, ``units``;
- ``charges`` (ArrayData): ``mulliken`` and ``lowdin`` per atom (e; valence charges where an ECP is used);
- ``cubes.mo_<index>`` (SinglefileData) for the MOs of ``cube_mos``.
"""

from __future__ import annotations

import fnmatch
import io
import json

import numpy as np
from aiida import orm
from aiida.parsers import Parser

#: CODATA 2018 Hartree energy in eV (PySCF's ``pyscf.data.nist.HARTREE2EV``).
HARTREE_TO_EV = 27.211386245988


def homo_lumo(occupations: np.ndarray) -> tuple[int, int]:
    """0-based indices of the highest occupied and lowest empty MO of one spin channel."""
    occupied = np.flatnonzero(occupations > 1e-3)
    empty = np.flatnonzero(occupations <= 1e-3)
    if not len(occupied) or not len(empty):
        raise ValueError(f'need occupied and empty MOs to place HOMO and LUMO, got {len(occupied)} and {len(empty)}')
    return int(occupied.max()), int(empty.min())


def window_indices(occupations: np.ndarray, n_occupied: int, n_virtual: int) -> np.ndarray:
    """Indices (nspin, nwin) of the ``n_occupied`` highest occupied and ``n_virtual`` lowest virtual MOs per spin,
    with the same counts in every spin channel (capped by the smallest channel)."""
    edges = [homo_lumo(occ) for occ in occupations]
    n_mo = occupations.shape[1]
    n_occ = min([n_occupied] + [homo + 1 for homo, _ in edges])
    n_virt = min([n_virtual] + [n_mo - lumo for _, lumo in edges])
    return np.array([np.arange(homo + 1 - n_occ, lumo + n_virt) for homo, lumo in edges])


class PyscfParser(Parser):
    """Parse the ``results.npz`` / ``results.json`` of the PySCF script."""

    def parse(self, **kwargs):
        files = self.retrieved.base.repository.list_object_names()
        if 'results.json' not in files or 'results.npz' not in files:
            log = self.retrieved.base.repository.get_object_content('pyscf.log') if 'pyscf.log' in files else ''
            if 'Traceback' in log or 'Error' in log:
                return self.exit_codes.ERROR_SCRIPT_FAILED.format(message=log.strip().splitlines()[-1])
            return self.exit_codes.ERROR_MISSING_OUTPUT
        result = json.loads(self.retrieved.base.repository.get_object_content('results.json'))
        with self.retrieved.base.repository.open('results.npz', 'rb') as handle:
            data = dict(np.load(io.BytesIO(handle.read())))
        params = json.loads(self.retrieved.base.repository.get_object_content('input.json')) \
            if 'input.json' in files else {}

        energies = data['mo_energy'] * HARTREE_TO_EV
        occupations = data['mo_occ']
        nspin = energies.shape[0]
        summary = {'energy_ha': result['energy_ha'], 'energy_ev': result['energy_ha'] * HARTREE_TO_EV,
                   'converged': result['converged'], 'scf_step': result['scf_step'], 'attempts': result['attempts'],
                   'nspin': nspin, 'n_mo': int(energies.shape[1]), 'n_ao': int(result['nao']),
                   'nelectron': result['nelectron'], 'dipole_debye': [float(x) for x in data['dipole']],
                   'wall_time_s': result['wall_time_s'], 'pyscf_version': result['pyscf_version'],
                   'xc': params.get('xc'), 'basis': params.get('basis'), 'charge': params.get('charge'),
                   'multiplicity': params.get('multiplicity'),
                   'units': {'energy_ha': 'Ha', 'energy_ev': 'eV', 'homo_ev': 'eV', 'lumo_ev': 'eV', 'gap_ev': 'eV',
                             'dipole_debye': 'D', 'wall_time_s': 's'}}
        try:
            edges = [homo_lumo(occupations[s]) for s in range(nspin)]
        except ValueError as exc:
            return self.exit_codes.ERROR_SCRIPT_FAILED.format(message=str(exc))
        for spin, (homo, lumo) in enumerate(edges):
            suffix = '' if nspin == 1 else ('_alpha', '_beta')[spin]
            summary[f'homo_ev{suffix}'] = float(energies[spin, homo])
            summary[f'lumo_ev{suffix}'] = float(energies[spin, lumo])
            summary[f'homo_index{suffix}'] = homo
        if nspin == 2:
            summary['homo_ev'] = max(summary['homo_ev_alpha'], summary['homo_ev_beta'])
            summary['lumo_ev'] = min(summary['lumo_ev_alpha'], summary['lumo_ev_beta'])
        summary['gap_ev'] = summary['lumo_ev'] - summary['homo_ev']
        self.out('output_parameters', orm.Dict(summary))

        mo_energies = orm.ArrayData()
        mo_energies.set_array('energies', energies)
        mo_energies.set_array('occupations', occupations)
        mo_energies.base.attributes.set('units', 'eV')
        self.out('mo_energies', mo_energies)

        window = params.get('mo_window', {'occupied': 20, 'virtual': 20})
        indices = window_indices(occupations, int(window['occupied']), int(window['virtual']))
        node = orm.ArrayData()
        node.set_array('indices', indices)
        node.set_array('energies', np.take_along_axis(energies, indices, axis=1))
        node.set_array('occupations', np.take_along_axis(occupations, indices, axis=1))
        node.set_array('coefficients', np.array([data['mo_coeff'][s][:, w] for s, w in enumerate(indices)]))
        node.set_array('overlap', data['overlap'])
        node.set_array('ao_atom', data['ao_atom'])
        node.base.attributes.set_many({'ao_labels': result['ao_labels'], 'units': 'eV',
                                       'symbols': self.node.inputs.structure.get_ase().get_chemical_symbols()})
        self.out('mo_window', node)

        charges = orm.ArrayData()
        charges.set_array('mulliken', data['mulliken'])
        charges.set_array('lowdin', data['lowdin'])
        charges.base.attributes.set('units', 'e')
        self.out('charges', charges)

        for name in fnmatch.filter(files, 'mo_*.cube'):
            with self.retrieved.base.repository.open(name, 'rb') as handle:
                self.out(f'cubes.{name[:-5]}', orm.SinglefileData(handle, filename=name))

        if not result['converged']:
            return self.exit_codes.ERROR_SCF_NOT_CONVERGED
        return None

"""``PyscfCalculation`` (``qdtraps.pyscf``): a molecular hybrid-DFT single point with PySCF (default PBE0/def2-SVP).

The code is a Python interpreter that has pyscf (the project's ``dp-python@localhost`` is the project venv's
Python and serves); the job copies :mod:`aiida_qdtraps.calculations.pyscf_script` into its folder and runs it with
the settings as ``input.json``. RKS for a singlet, UKS otherwise; a ladder of SCF settings (DIIS, level shift,
damping, Newton) inside the script. The parser (``qdtraps.pyscf``) returns the same ``mo_window`` node as the CP2K
hybrid SCF, so ``label_traps`` reads either. Charge, multiplicity and basis are checked before anything is stored.
"""

from __future__ import annotations

import pathlib
import warnings

from aiida import orm
from aiida.common import CalcInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob
from ase.data import atomic_numbers

from .pyscf_script import has_ecp
from .script_job import INPUT_FILE, define_script_job, parameters_of, script_calcinfo, write_script_job

SCRIPT = pathlib.Path(__file__).with_name('pyscf_script.py')

#: Settings and defaults: functional and basis (PySCF names; def2 ECPs are added for the elements that have one),
#: density fitting, total charge (e), spin multiplicity 2S+1, SCF convergence (Ha) and cycles per ladder step,
#: DFT grid level, the MO window around the gap (``occupied`` highest occupied, ``virtual`` lowest virtual MOs)
#: and the MOs written as cube files (0-based indices or 'homo', 'homo-1', 'lumo+2', ...); ``all_electron``: accept a
#: basis without an ECP for elements beyond Kr (refused otherwise, see :data:`ECP_FROM_Z`).
DEFAULT_PARAMETERS = {'xc': 'pbe0', 'basis': 'def2-svp', 'density_fit': False, 'charge': 0, 'multiplicity': 1,
                      'conv_tol': 1e-9, 'max_cycle': 100, 'grid_level': 3,
                      'mo_window': {'occupied': 20, 'virtual': 20}, 'cube_mos': [], 'all_electron': False}
#: Elements from this atomic number on (Rb, after Kr) need an effective core potential unless ``all_electron``: the
#: def2 and LANL2 bases, the field's choice for In, Cd, Pb, Cs, pair them with one.
ECP_FROM_Z = 37


def _check_basis(basis: str, elements, all_electron: bool = False) -> None:
    from pyscf import gto

    for element in elements:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                shells = gto.basis.load(basis, element)
            except Exception:  # noqa: BLE001 - PySCF raises several exception types for unknown names
                shells = None
        if not shells:
            raise ValueError(f'basis {basis!r} has no functions for element {element!r}')
        if atomic_numbers[element] >= ECP_FROM_Z and not all_electron and not has_ecp(basis, element):
            raise ValueError(f'basis {basis!r} has no ECP for element {element!r} (Z = {atomic_numbers[element]}): '
                             'an element beyond Kr needs an effective core potential (e.g. def2-svp, lanl2dz); set '
                             'all_electron=True to run this basis with all electrons')


def _check_xc(xc: str) -> None:
    from pyscf.dft import libxc

    try:
        libxc.parse_xc(xc)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f'unknown exchange-correlation functional {xc!r}: {exc}') from None


def pyscf_parameters(changes: dict, symbols=None) -> dict:
    """``DEFAULT_PARAMETERS`` updated with ``changes`` and checked against the structure's elements ``symbols``.

    :raises ValueError: naming an unknown key, a functional or basis PySCF does not know (and the element), or a
        charge and multiplicity that the number of electrons cannot have.
    """
    unknown = set(changes) - set(DEFAULT_PARAMETERS)
    if unknown:
        raise ValueError(f'unknown PySCF parameter(s) {sorted(unknown)}; allowed: {sorted(DEFAULT_PARAMETERS)}')
    params = {**DEFAULT_PARAMETERS, **changes}
    params['mo_window'] = {**DEFAULT_PARAMETERS['mo_window'], **(changes.get('mo_window') or {})}
    if set(params['mo_window']) != {'occupied', 'virtual'} or min(int(v) for v in params['mo_window'].values()) < 1:
        raise ValueError(f"mo_window must be {{'occupied': n >= 1, 'virtual': m >= 1}}, got {params['mo_window']}")
    multiplicity = params['multiplicity']
    if int(multiplicity) != multiplicity or multiplicity < 1:
        raise ValueError(f'multiplicity must be an integer >= 1, got {multiplicity}')
    if int(params['charge']) != params['charge']:
        raise ValueError(f"charge must be an integer, got {params['charge']}")
    if not float(params['conv_tol']) > 0 or int(params['max_cycle']) < 1:
        raise ValueError(f"need conv_tol > 0 and max_cycle >= 1, got {params['conv_tol']}, {params['max_cycle']}")
    if not 0 <= int(params['grid_level']) <= 9:
        raise ValueError(f"grid_level must be in 0..9, got {params['grid_level']}")
    for name in params['cube_mos']:
        if not isinstance(name, int) and not str(name).lower().replace(' ', '').startswith(('homo', 'lumo')):
            raise ValueError(f"cube_mos entries are MO indices or 'homo-k'/'lumo+k', got {name!r}")
    _check_xc(params['xc'])
    if symbols is not None:
        _check_basis(params['basis'], dict.fromkeys(symbols), bool(params['all_electron']))
        electrons = sum(atomic_numbers[s] for s in symbols) - int(params['charge'])
        unpaired = int(multiplicity) - 1
        if electrons < 1 or unpaired > electrons or (electrons - unpaired) % 2:
            raise ValueError(f"charge {params['charge']} and multiplicity {multiplicity} are impossible together: "
                             f'{electrons} electrons cannot have {unpaired} unpaired')
    return params


def check_inputs(inputs) -> None:
    """Raise ``ValueError`` for parameters that PySCF cannot run on this structure (:func:`pyscf_parameters`)."""
    symbols = None
    if 'structure' in inputs:
        kinds = {kind.name: kind.symbol for kind in inputs['structure'].kinds}
        symbols = [kinds[site.kind_name] for site in inputs['structure'].sites]
    pyscf_parameters(parameters_of(inputs), symbols)


class PyscfCalculation(CalcJob):
    """Kohn-Sham single point of a molecule or cluster with PySCF: energy, MOs, charges, the MO window."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        define_script_job(spec, 'qdtraps.pyscf', structure_help='Non-periodic molecule or cluster (Å).',
                          parameters_help='Settings (see DEFAULT_PARAMETERS): xc, basis, density_fit, charge, '
                                          'multiplicity, conv_tol, max_cycle, grid_level, mo_window, cube_mos.',
                          check=check_inputs)
        spec.output('output_parameters', valid_type=orm.Dict,
                    help='Total energy (Ha, eV), HOMO/LUMO/gap (eV), convergence and SCF ladder, timings, version.')
        spec.output('mo_energies', valid_type=orm.ArrayData,
                    help='`energies` (nspin, nmo) eV and `occupations` of all MOs.')
        spec.output('mo_window', valid_type=orm.ArrayData,
                    help='MOs around the gap in the layout `label_traps` reads: indices, energies (eV), occupations, '
                         'coefficients (nspin, nao, nwin), AO overlap, ao_atom.')
        spec.output('charges', valid_type=orm.ArrayData, help='Per-atom `mulliken` and `lowdin` charges (e).')
        spec.output_namespace('cubes', valid_type=orm.SinglefileData, dynamic=True, required=False,
                              help='Cube files of the MOs of `cube_mos`, named mo_<index>.')
        spec.exit_code(300, 'ERROR_MISSING_OUTPUT', message='The PySCF script wrote no results: see pyscf.log.')
        spec.exit_code(301, 'ERROR_SCRIPT_FAILED', message='The PySCF script stopped with an error: {message}')
        spec.exit_code(310, 'ERROR_SCF_NOT_CONVERGED',
                       message='The SCF did not converge with any step of the ladder (DIIS, level shift, damping, '
                               'Newton); outputs of the last step were attached.')

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        structure = self.inputs.structure
        atoms = structure.get_ase()
        params = pyscf_parameters(self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {},
                                  atoms.get_chemical_symbols())
        params['structure_file'] = 'structure.xyz'
        write_script_job(folder, SCRIPT, params)
        lines = [str(len(atoms)), 'structure (Angstrom)']
        lines += [f'{s} {x:.10f} {y:.10f} {z:.10f}' for s, (x, y, z) in zip(atoms.get_chemical_symbols(),
                                                                            atoms.positions)]
        with folder.open('structure.xyz', 'w') as handle:
            handle.write('\n'.join(lines) + '\n')
        return script_calcinfo(self.inputs.code, SCRIPT, [INPUT_FILE], 'pyscf.log',
                               ['results.npz', 'results.json', 'pyscf.log', INPUT_FILE, 'mo_*.cube'])

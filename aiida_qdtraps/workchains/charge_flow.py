"""``BaderChargeFlowWorkChain`` (``qdtraps.charge_flow``): density cube → Bader (aiida-shell) → charge flow → plots.

Steps, each a node in the provenance graph:

1. ``density_cube_to_chgcar`` (calcfunction): the cube (e/bohr³) → CHGCAR (ase, e/Å³ × V), which baderkit 0.10.2
   reads correctly whatever the grid shape and density magnitude (docs/charge_flow.md).
2. ``ShellJob`` (aiida-shell) running ``baderkit bader CHGCAR -f vasp`` or the Henkelman ``bader CHGCAR``, parsed by
   the ``qdtraps.bader`` parser.
3. Checks in the work chain: the Bader atoms are the structure's atoms, and populations + vacuum charge add up to the
   valence electrons (Σ Z_val − net charge) within ``electron_tolerance``; otherwise a named exit code and no
   charge-flow outputs.
4. ``compute_charge_flow`` (calcfunction): Δq, sparse minimum-norm/Tikhonov bond flows, atom vectors, domain summary.
5. ``plot_charge_flow_map`` and, with a ``mo_window``, ``compute_domain_pdos`` (calcfunctions): PNG plots and the
   domain-resolved PDOS / frontier-orbital composition.
"""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, if_
from aiida_shell import ShellJob
from aiida_shell.launch import prepare_shell_job_inputs

from .. import provenance
from ..analysis import bader as bader_files
from ..analysis import bonds as bond_graph
from ..analysis import charge_flow as cf
from ..analysis.populations import atomic_populations
from ..protocols import kinds_by_element, valence_from_potential
from ..shell_safety import options_port_validator

CHGCAR = 'CHGCAR'


def valence_from_parameters(parameters: dict) -> dict[str, int]:
    """Element → Z_val from the ``&KIND`` ``POTENTIAL`` names of CP2K input parameters (e.g. ``GTH-PBE-q13``)."""
    return {element: valence_from_potential(kind['POTENTIAL'])
            for element, kind in kinds_by_element(parameters).items() if 'POTENTIAL' in kind}


def net_charge_from_parameters(parameters: dict) -> int:
    """``FORCE_EVAL/DFT/CHARGE`` of CP2K input parameters (0 if absent)."""
    return int(parameters.get('FORCE_EVAL', {}).get('DFT', {}).get('CHARGE', 0))


def bader_program(code: orm.AbstractCode) -> str:
    """``'baderkit'`` if the code's executable is baderkit, else ``'bader'`` (Henkelman)."""
    executable = str(getattr(code, 'filepath_executable', '') or code.label)
    return 'baderkit' if 'baderkit' in pathlib.PurePath(executable).name.lower() or code.label == 'baderkit' \
        else 'bader'


def structure_domains(structure: orm.StructureData) -> tuple[list[str] | None, str]:
    """Domain tags of a structure: the builder's (:func:`aiida_qdtraps.provenance.domains`, found through the
    provenance), else its own ``qd_domains`` attribute whatever its length; ``(None, 'none')`` if neither exists."""
    domains = provenance.domains(structure)
    if domains:
        return list(domains), 'builder'
    domains = structure.base.attributes.get(provenance.DOMAIN_ATTRIBUTE, None)
    if domains:
        return list(domains), 'structure attribute'
    return None, 'none'


@calcfunction
def density_cube_to_chgcar(density_cube: orm.SinglefileData) -> dict:
    """CHGCAR (ase, e/Å³·V) from a cube in e/bohr³; ``grid`` Dict with ∫ρdV (e), grid shape, cell volume (Å³)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / CHGCAR
        with density_cube.open(mode='r') as handle:
            info = bader_files.cube_to_chgcar(handle, path)
        chgcar = orm.SinglefileData(path, filename=CHGCAR)
    return {'chgcar': chgcar, 'grid': orm.Dict(info)}


@calcfunction
def compute_charge_flow(structure: orm.StructureData, bader_populations: orm.ArrayData, valence: orm.Dict,
                        settings: orm.Dict, domains: orm.List | None = None) -> dict:
    """Δq, bond flows, atom vectors and domain summaries.

    :param settings: ``{'bond_scale': 1.2, 'pair_scale': {'In-F': 1.3}, 'regularization': 0.0, 'net_charge': 0,
        'electron_tolerance': 0.1}``.
    :returns: ``bader_charges`` (ArrayData: ``charges`` = Δq, ``populations``, ``volumes``, ``valence``),
        ``charge_flow`` (ArrayData: ``bonds``, ``bond_flows``, ``atom_vectors``, ``magnitudes``, ``dq``,
        ``residual``, ``component``) and ``summary`` (Dict).
    """
    opts = settings.get_dict()
    atoms = structure.get_ase()
    symbols = atoms.get_chemical_symbols()
    z_val = bader_files.valence_charges(symbols, valence.get_dict())
    populations = bader_populations.get_array('populations')
    if domains is not None:
        tags, source = list(domains.get_list()), 'input'
    else:
        tags, source = structure_domains(structure)
    if tags is None:
        tags, source = cf.infer_domains(symbols).tolist(), 'inferred from elements (ligands = ligand, rest = core)'
    result = cf.analyse_charge_flow(
        symbols, atoms.positions, z_val, populations, tags,
        vacuum_charge=float(bader_populations.base.attributes.get('vacuum_charge', 0.0)),
        net_charge=opts.get('net_charge', 0), bond_scale=opts.get('bond_scale', bond_graph.CHARGE_FLOW_SCALE),
        pair_scale={tuple(key.split('-')): value for key, value in opts.get('pair_scale', {}).items()},
        regularization=opts.get('regularization', 0.0))

    charges = orm.ArrayData()
    charges.set_array('charges', result.dq)
    charges.set_array('populations', populations)
    charges.set_array('volumes', bader_populations.get_array('volumes'))
    charges.set_array('valence', z_val)
    charges.base.attributes.set('units', {'charges': 'e (Z_val - N_Bader)', 'populations': 'e',
                                          'volumes': 'angstrom^3', 'valence': 'e'})
    flow = result.flow
    flow_node = orm.ArrayData()
    for name, array in (('bonds', flow.bonds), ('bond_flows', flow.flows), ('atom_vectors', result.vectors),
                        ('magnitudes', result.magnitudes), ('dq', result.dq), ('residual', flow.residual),
                        ('component', flow.component)):
        flow_node.set_array(name, array)
    flow_node.base.attributes.set('domains', list(tags))
    flow_node.base.attributes.set('units', 'e; bond_flows: electrons from bonds[:,0] to bonds[:,1]')
    summary = {'program': bader_populations.base.attributes.get('program', None), **result.summary,
               'domain_source': source}
    return {'bader_charges': charges, 'charge_flow': flow_node, 'summary': orm.Dict(summary)}


@calcfunction
def plot_charge_flow_map(structure: orm.StructureData, charge_flow: orm.ArrayData, plot: orm.Dict) -> dict:
    """PNG planar map: ``plot`` = ``{'miller': [h, k, l]}`` or ``{'normal': [x, y, z]}``, optional ``lattice``
    (3×3 Å), ``thickness`` (Å, default 2.5), ``elements`` (atoms to draw, default all), ``facets``
    (label → Miller indices)."""
    opts = plot.get_dict()
    atoms = structure.get_ase()
    normal = cf.plane_normal(miller=opts.get('miller'), normal=opts.get('normal'), lattice=opts.get('lattice'))
    select = None
    if opts.get('elements'):
        select = np.isin(atoms.get_chemical_symbols(), opts['elements'])
    pmap = cf.planar_map(atoms.positions, charge_flow.get_array('atom_vectors'), normal,
                         thickness=opts.get('thickness', 2.5), select=select)
    facets = cf.facet_label_positions(pmap, opts.get('facets', {}), lattice=opts.get('lattice'))
    plane = opts.get('miller') or opts.get('normal')
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / 'charge_flow_map.png'
        cf.plot_planar_map(pmap, path, title=f'{atoms.get_chemical_formula()} charge flow, plane {plane}',
                           facets=facets)
        node = orm.SinglefileData(path, filename='charge_flow_map.png')
    node.base.attributes.set('n_atoms_shown', len(pmap.indices))
    return {'charge_flow_map': node}


@calcfunction
def compute_domain_pdos(mo_window: orm.ArrayData, charge_flow: orm.ArrayData, settings: orm.Dict) -> dict:
    """Domain-resolved PDOS and HOMO/LUMO composition by domain from the MO window (Löwdin populations).

    Domains are the ones recorded on ``charge_flow``. ``settings``: ``{'sigma': 0.1}`` (Gaussian width, eV).
    """
    sigma = settings.get('sigma', 0.1)
    domains = charge_flow.base.attributes.get('domains')
    coefficients = mo_window.get_array('coefficients')[0]
    populations = atomic_populations(coefficients, mo_window.get_array('overlap'), mo_window.get_array('ao_atom'),
                                     len(domains))
    names, weights = cf.domain_populations(populations, domains)
    energies, occupations = mo_window.get_array('energies')[0], mo_window.get_array('occupations')[0]
    composition = cf.frontier_composition(energies, occupations, weights)
    node = orm.ArrayData()
    node.set_array('energies', energies)
    node.set_array('domain_weights', weights)
    node.base.attributes.set_many({'domains': names, 'homo_composition': composition['homo'].tolist(),
                                   'lumo_composition': composition['lumo'].tolist(), 'sigma_ev': sigma,
                                   'spin_channel': 0})
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / 'domain_pdos.png'
        cf.plot_domain_pdos(energies, weights, names, composition, path, sigma=sigma)
        plot = orm.SinglefileData(path, filename='domain_pdos.png')
    return {'domain_pdos': node, 'domain_pdos_plot': plot}


def validate_inputs(inputs, _):
    """Refuse parameters out of range and domain lists that do not cover the structure."""
    for key, low in (('bond_scale', 0.0), ('electron_tolerance', 0.0)):
        if key in inputs and not inputs[key].value > low:
            return f'{key} must be > {low}, got {inputs[key].value}'
    if 'regularization' in inputs and not inputs['regularization'].value >= 0:
        return f"regularization must be >= 0, got {inputs['regularization'].value}"
    if 'domains' in inputs and 'structure' in inputs:
        n_tags, n_atoms = len(inputs['domains'].get_list()), len(inputs['structure'].sites)
        if n_tags != n_atoms:
            return f'domains has {n_tags} tags but the structure has {n_atoms} atoms'
    if 'plane' in inputs:
        plane = inputs['plane'].get_list()
        if len(plane) != 3 or not any(plane):
            return f'plane must be three Miller indices, not all zero; got {plane}'
    return None


class BaderChargeFlowWorkChain(WorkChain):
    """Bader charges of a QD density and the charge flow along its bonds (Llusar et al.), with plots."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The QD the density belongs to (same atom order).')
        spec.input('density_cube', valid_type=orm.SinglefileData,
                   help='Valence electron density as a Gaussian cube in e/bohr³ (CP2K E_DENSITY_CUBE or pp.x).')
        spec.input('parameters', valid_type=orm.Dict, required=False,
                   help='CP2K input parameters of the SCF that wrote the density: valence from &KIND POTENTIAL names, '
                        'net charge from FORCE_EVAL/DFT/CHARGE.')
        spec.input('valence', valid_type=orm.Dict, required=False,
                   help='Element → valence charge Z_val (e) of the pseudopotentials; wins over `parameters`.')
        spec.input('charge', valid_type=orm.Int, required=False,
                   help='Net charge of the QD (e); default: from `parameters`, else 0.')
        spec.input_namespace('bader', help='The Bader program run through aiida-shell.')
        spec.input('bader.code', valid_type=orm.AbstractCode,
                   help='`baderkit` (baderkit CLI) or the Henkelman `bader` executable.')
        spec.input('bader.program', valid_type=orm.Str, required=False,
                   help="'baderkit' or 'bader'; default: guessed from the code's executable name.")
        spec.input('bader.options', valid_type=orm.Dict, required=False, help='CalcJob metadata options.',
                   validator=options_port_validator)  # no shell injection through option strings
        spec.input('bond_scale', valid_type=orm.Float, default=lambda: orm.Float(bond_graph.CHARGE_FLOW_SCALE),
                   help='Bond if d < s·(r_i + r_j), Cordero radii.')
        spec.input('pair_scale', valid_type=orm.Dict, required=False, help="Per-pair scale overrides {'In-F': 1.3}.")
        spec.input('regularization', valid_type=orm.Float, default=lambda: orm.Float(0.0),
                   help='Tikhonov λ ≥ 0 (0 = minimum-norm least squares).')
        spec.input('electron_tolerance', valid_type=orm.Float, default=lambda: orm.Float(0.1),
                   help='Largest accepted |Bader electrons + vacuum − valence electrons| (e).')
        spec.input('domains', valid_type=orm.List, required=False,
                   help="Per-atom domain tags ('core', 'interlayer', 'shell', 'ligand'); default: builder's tags.")
        spec.input('mo_window', valid_type=orm.ArrayData, required=False,
                   help='MO window of the hybrid SCF (for domain PDOS and frontier-orbital composition).')
        spec.input('plane', valid_type=orm.List, default=lambda: orm.List([0, 0, 1]),
                   help='Miller indices of the map plane (Cartesian cubic frame unless `plot.lattice` is given).')
        spec.input('plot', valid_type=orm.Dict, required=False,
                   help='Extra map settings: thickness (Å), elements, facets, lattice.')
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            cls.convert_density,
            cls.run_bader,
            cls.inspect_bader,
            cls.analyse,
            if_(cls.has_mo_window)(cls.analyse_domains),
        )
        spec.output('chgcar', valid_type=orm.SinglefileData, help='The density as given to the Bader program.')
        spec.output('bader_charges', valid_type=orm.ArrayData, help='charges (Δq), populations, volumes, valence.')
        spec.output('charge_flow', valid_type=orm.ArrayData,
                    help='bonds, bond_flows, atom_vectors, magnitudes, dq, residual, component.')
        spec.output('summary', valid_type=orm.Dict,
                    help='Neutrality, residuals, electron bookkeeping, per-domain totals/averages, vacuum charge.')
        spec.output('charge_flow_map', valid_type=orm.SinglefileData, help='Planar map (PNG).')
        spec.output('domain_pdos', valid_type=orm.ArrayData, required=False)
        spec.output('domain_pdos_plot', valid_type=orm.SinglefileData, required=False, help='PNG.')
        spec.exit_code(301, 'ERROR_MISSING_VALENCE', message='No valence charge for element(s) {elements}: {hint}')
        spec.exit_code(302, 'ERROR_BAD_DENSITY', message='Cannot read the density cube: {message}')
        spec.exit_code(401, 'ERROR_BADER_FAILED', message='The Bader program failed: {message}')
        spec.exit_code(402, 'ERROR_ATOM_MISMATCH', message='The Bader atoms are not the structure atoms: {message}')
        spec.exit_code(403, 'ERROR_ELECTRONS_NOT_CONSERVED',
                       message='Bader populations + vacuum = {total:.4f} e but the calculation has {valence:.4f} '
                               'valence electrons (difference {difference:+.4f} e, tolerance {tolerance} e).')

    def has_mo_window(self):
        return 'mo_window' in self.inputs

    def setup(self):
        """Valence charges (explicit Dict, else the CP2K &KIND potentials) and the net charge."""
        parameters = self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {}
        valence = valence_from_parameters(parameters) if parameters else {}
        if 'valence' in self.inputs:
            valence.update(self.inputs.valence.get_dict())
        elements = sorted(set(self.inputs.structure.get_kind_names()))
        symbols = sorted(set(self.inputs.structure.get_ase().get_chemical_symbols()))
        missing = [el for el in symbols if el not in valence]
        if missing:
            return self.exit_codes.ERROR_MISSING_VALENCE.format(
                elements=missing, hint='give `valence` {element: Z} or the CP2K `parameters` with &KIND POTENTIAL')
        self.ctx.valence = {el: valence[el] for el in symbols}
        self.ctx.kinds = elements
        if 'charge' in self.inputs:
            self.ctx.net_charge = self.inputs.charge.value
        else:
            self.ctx.net_charge = net_charge_from_parameters(parameters)
        return None

    def convert_density(self):
        try:
            results = density_cube_to_chgcar(self.inputs.density_cube)
        except Exception as exc:  # noqa: BLE001 - any unreadable cube ends in a named exit code
            return self.exit_codes.ERROR_BAD_DENSITY.format(message=str(exc))
        self.ctx.chgcar, self.ctx.grid = results['chgcar'], results['grid']
        grid = self.ctx.grid
        self.report(f"density on a {grid['grid']} grid integrates to {grid['electrons_on_grid']:.4f} e")
        return None

    def run_bader(self):
        code = self.inputs.bader.code
        program = self.inputs.bader.program.value if 'program' in self.inputs.bader else bader_program(code)
        if program not in bader_files.BADER_PROGRAMS:
            return self.exit_codes.ERROR_BADER_FAILED.format(message=f'unknown program {program!r}')
        self.ctx.program = program
        arguments = ['bader', '{chgcar}', '-f', 'vasp'] if program == 'baderkit' else ['{chgcar}']
        options = {'parser_name': 'qdtraps.bader', 'resources': {'num_machines': 1, 'tot_num_mpiprocs': 1}}
        if 'options' in self.inputs.bader:
            options.update(self.inputs.bader.options.get_dict())
        output = bader_files.BADERKIT_ATOM_FILE if program == 'baderkit' else bader_files.HENKELMAN_ATOM_FILE
        inputs = prepare_shell_job_inputs(code, arguments=arguments, nodes={'chgcar': self.ctx.chgcar},
                                          filenames={'chgcar': CHGCAR}, outputs=[output],
                                          metadata={'options': options, 'call_link_label': 'bader'})
        inputs.pop('parser', None)
        node = self.submit(ShellJob, **{k: v for k, v in inputs.items() if v is not None})
        self.report(f'launched ShellJob<{node.pk}> ({program} on the CHGCAR)')
        return ToContext(bader_job=node)

    def inspect_bader(self):
        """Refuse failed runs, atoms that are not the structure's, and populations that lose electrons."""
        job = self.ctx.bader_job
        if not job.is_finished_ok or 'bader_populations' not in job.outputs:
            return self.exit_codes.ERROR_BADER_FAILED.format(
                message=f'ShellJob<{job.pk}> exit status {job.exit_status}: {job.exit_message}')
        result = job.outputs.bader_populations
        positions = result.get_array('positions')
        structure_positions = self.inputs.structure.get_ase().positions
        try:
            bader_files.check_same_atoms(structure_positions, positions)
        except ValueError as exc:
            return self.exit_codes.ERROR_ATOM_MISMATCH.format(message=str(exc))
        z_val = bader_files.valence_charges(self.inputs.structure.get_ase().get_chemical_symbols(), self.ctx.valence)
        bader_result = bader_files.BaderResult(
            populations=result.get_array('populations'), volumes=result.get_array('volumes'), positions=positions,
            vacuum_charge=result.base.attributes.get('vacuum_charge', 0.0), vacuum_volume=float('nan'),
            program=self.ctx.program)
        check = bader_files.check_electron_conservation(bader_result, z_val.sum() - self.ctx.net_charge,
                                                        self.inputs.electron_tolerance.value)
        self.report(f"Bader ({self.ctx.program}): {check['electrons_in_basins']:.4f} e in basins + "
                    f"{check['vacuum_charge']:.4f} e vacuum vs {check['valence_electrons']:.4f} valence electrons")
        if not check['conserved']:
            return self.exit_codes.ERROR_ELECTRONS_NOT_CONSERVED.format(
                total=check['electrons_total'], valence=check['valence_electrons'], difference=check['difference'],
                tolerance=check['tolerance'])
        return None

    def analyse(self):
        settings = {'bond_scale': self.inputs.bond_scale.value, 'regularization': self.inputs.regularization.value,
                    'net_charge': self.ctx.net_charge}
        if 'pair_scale' in self.inputs:
            settings['pair_scale'] = self.inputs.pair_scale.get_dict()
        kwargs = {'domains': self.inputs.domains} if 'domains' in self.inputs else {}
        results = compute_charge_flow(self.inputs.structure, self.ctx.bader_job.outputs.bader_populations,
                                      orm.Dict(self.ctx.valence), orm.Dict(settings), **kwargs)
        plot = self.inputs.plot.get_dict() if 'plot' in self.inputs else {}
        plot['miller'] = list(self.inputs.plane.get_list())
        plot_result = plot_charge_flow_map(self.inputs.structure, results['charge_flow'], orm.Dict(plot))
        self.out('chgcar', self.ctx.chgcar)
        self.out_many(results)
        self.out('charge_flow_map', plot_result['charge_flow_map'])
        self.ctx.charge_flow = results['charge_flow']
        summary = results['summary']
        self.report(f"charge flow: {summary['n_bonds']} bonds, Σ Δq = {summary['sum_dq']:+.4f} e, "
                    f"max |v| = {summary['max_magnitude']:.3f} e")

    def analyse_domains(self):
        results = compute_domain_pdos(self.inputs.mo_window, self.ctx.charge_flow, orm.Dict({'sigma': 0.1}))
        self.out_many(results)


__all__ = ('BaderChargeFlowWorkChain', 'compute_charge_flow', 'compute_domain_pdos', 'density_cube_to_chgcar',
           'plot_charge_flow_map')

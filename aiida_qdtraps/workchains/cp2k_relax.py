"""``QdCp2kRelaxWorkChain``: the CP2K engine of ``QdRelaxWorkChain`` -- PBE GEO_OPT of a non-periodic QD.

Boxes the QD (``center_in_box``), checks the CP2K kinds and the spin state, optionally pre-relaxes it -- with a
cheaper CP2K GEO_OPT (``prerelax``, e.g. the ``xtb`` protocol's GFN1-xTB) or with a frozen DeePMD model
(``mlff_prerelax``) -- and runs the GEO_OPT through ``QdCp2kBaseWorkChain`` (restarts on SCF, wall-time and geometry
failures). Protocols: ``relax.yaml``.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction, if_

from ..analysis.bonds import rearrangement
from ..builder.foreign import FORMAL_CHARGES
from ..protocols import functional_name
from .build import copy_qd_tags
from .cp2k_base import QdCp2kBaseWorkChain
from .stage import QdCp2kStageWorkChain, define_relax_outputs


@calcfunction
def prerelax_verdict(structure: orm.StructureData, prerelaxed: orm.StructureData) -> dict:
    """The geometry the GEO_OPT starts from after a CP2K pre-relaxation of ``structure``: ``prerelaxed``, unless it
    bonds two atoms of like formal charge that ``structure`` did not bond (a change of chemistry, not a relaxation:
    GFN1-xTB bonds three F of the built In4PF9 to its P); then ``structure`` itself.

    :returns: ``structure`` (the chosen positions, with the kinds and QD tags of the input) and ``output_parameters``
        (``accepted``, ``reason``, ``rmsd`` and ``max_displacement`` in Å, ``bonds_made``, ``bonds_broken``,
        ``like_charge_bonds``).
    """
    before, after = structure.get_ase(), prerelaxed.get_ase()
    if after.get_chemical_symbols() != before.get_chemical_symbols():
        raise ValueError(f'the pre-relaxed structure ({after.get_chemical_formula()}, {len(after)} atoms) is not the '
                         f'input QD ({before.get_chemical_formula()}, {len(before)} atoms) atom by atom')
    summary = rearrangement(before.positions, after.positions, before.get_chemical_symbols(), FORMAL_CHARGES)
    moved = (f"RMSD {summary['rmsd']:.3f} Å, largest move {summary['max_displacement']:.3f} Å, "
             f"{summary['bonds_made']} bonds made and {summary['bonds_broken']} broken")
    accepted = not summary['like_charge_bonds']
    if accepted:
        reason = f'accepted: {moved}'
    else:
        like = summary['like_charge_bonds']
        named = ', '.join(like[:8]) + (f', ... {len(like)} in all' if len(like) > 8 else '')
        reason = f'refused: it bonds atoms of like formal charge ({named}; {moved})'
    chosen = structure.clone()
    if accepted:
        chosen.reset_sites_positions([tuple(p) for p in after.positions])
    copy_qd_tags(structure, chosen)
    return {'structure': chosen, 'output_parameters': orm.Dict({**summary, 'accepted': accepted, 'reason': reason,
                                                                'units': {'length': 'Å'}})}


def validate_prerelaxes(inputs, _):
    """One pre-relaxation at most: a CP2K one (``prerelax``) or the MLFF one (``mlff_model``)."""
    if inputs.get('prerelax') and 'mlff_model' in inputs:
        return 'give one pre-relaxation: `prerelax` (a CP2K GEO_OPT) or `mlff_model` (a DeePMD model), not both'
    return None


class QdCp2kRelaxWorkChain(QdCp2kStageWorkChain):
    """Relax a QD with CP2K PBE (GEO_OPT) in a non-periodic box, with restarts on failure."""

    protocol_file = 'relax.yaml'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        cls.expose_cp2k(spec, help='Inputs of QdCp2kBaseWorkChain (CP2K GEO_OPT).')
        spec.input('mlff_model', valid_type=orm.SinglefileData, required=False,
                   help='A frozen DeePMD model (.pth, e.g. from MlffActiveLearningWorkChain) that pre-relaxes the QD '
                        '(ASE BFGS, `mlff_prerelax` calcfunction) before the GEO_OPT.')
        spec.input_namespace('mlff_ensemble', valid_type=orm.SinglefileData, dynamic=True, required=False,
                             help='Further frozen models (e.g. the `models` output of MlffActiveLearningWorkChain): '
                                  'the pre-relaxed geometry is used only where they agree with `mlff_model` '
                                  '(force deviation at most `max_deviation`).')
        spec.input('mlff_prerelax', valid_type=orm.Dict, required=False,
                   help='Settings of the MLFF pre-relaxation: `fmax` (eV/Å), `steps`, `maxstep` (Å), `max_move` (Å), '
                        '`max_deviation` (eV/Å, with `mlff_ensemble`).')
        spec.expose_inputs(QdCp2kBaseWorkChain, namespace='prerelax', exclude=('cp2k.structure',),
                           namespace_options={'required': False, 'populate_defaults': False,
                                              'help': 'Inputs of a cheaper CP2K GEO_OPT run first, in the same box '
                                                      '(`get_builder_from_protocol(..., prerelax="xtb")`); its '
                                                      'geometry is the start of the GEO_OPT unless it bonds atoms of '
                                                      'like formal charge (`prerelax_verdict`).'})
        spec.inputs.validator = validate_prerelaxes
        spec.outline(
            cls.setup,
            if_(cls.should_box)(cls.put_in_box),
            cls.validate_inputs,
            if_(cls.should_cp2k_prerelax)(cls.run_cp2k_prerelax, cls.inspect_cp2k_prerelax),
            if_(cls.should_prerelax)(cls.prerelax),
            cls.run_relax,
            cls.inspect_relax,
            cls.results,
        )
        define_relax_outputs(spec)
        spec.exit_code(401, 'ERROR_RELAX_FAILED', message='The CP2K relaxation failed: {message}')
        spec.exit_code(402, 'ERROR_NO_RELAXED_STRUCTURE', message='The CP2K run finished without a structure.')

    @classmethod
    def get_builder_from_protocol(cls, code: orm.AbstractCode, structure: orm.StructureData,
                                  protocol: str | None = None, overrides: dict | None = None, charge: int = 0,
                                  multiplicity: int = 1, options: dict | None = None, prerelax: str | None = None):
        """Builder for ``structure`` with the ``fast``/``moderate``/``precise`` protocol of ``relax.yaml``.

        :param overrides: nested dict with the input layout of ``relax.yaml`` (``base.cp2k.parameters...``,
            ``box_vacuum``, ``basis_set``, ...), merged last.
        :param options: CalcJob options merged into ``base.cp2k.metadata.options`` (e.g. resources).
        :param prerelax: a protocol of ``relax.yaml`` (typically ``xtb``) whose GEO_OPT runs first, in this protocol's
            box; the ``prerelax`` namespace. It opens the Kohn–Sham gap of a built QD whose PBE SCF diverges on the
            bulk-terminated geometry (docs/protocols.md).
        """
        builder, _ = cls._builder_from_protocol(code, structure, protocol, overrides, charge, multiplicity, options)
        if prerelax is not None:
            available = cls.get_available_protocols()
            if prerelax not in available:
                raise ValueError(f'prerelax protocol {prerelax!r} is not one of {sorted(available)}')
            cp2k, _ = cls.cp2k_builder_from_protocol(code, structure, prerelax, None, options)
            builder.prerelax = cp2k._inputs(prune=True)
        return builder

    def should_cp2k_prerelax(self):
        return bool(self.inputs.get('prerelax'))

    def run_cp2k_prerelax(self):
        level = functional_name(self.inputs.prerelax.cp2k.parameters.get_dict())
        return self.submit_cp2k('prerelax', f'CP2K {level} pre-relaxation GEO_OPT', namespace='prerelax',
                                context='prerelax')

    def inspect_cp2k_prerelax(self):
        """Start the GEO_OPT from the pre-relaxed geometry if the pre-relaxation finished and changed no chemistry
        (:func:`prerelax_verdict`); a failed pre-relaxation is reported and the GEO_OPT starts from the input."""
        node = self.ctx.prerelax
        if not node.is_finished_ok or 'output_structure' not in node.outputs:
            self.report(f'pre-relaxation {node.process_label}<{node.pk}> did not finish (exit status '
                        f'{node.exit_status}); the GEO_OPT starts from the input geometry')
            return
        result = prerelax_verdict(self.ctx.structure, node.outputs.output_structure)
        self.ctx.structure = result['structure']
        energy = node.outputs.output_parameters.get('energy')
        level = functional_name(self.inputs.prerelax.cp2k.parameters.get_dict())
        self.report(f"pre-relaxation ({level}, E = {energy} Ha) {result['output_parameters']['reason']}; the GEO_OPT "
                    f"starts from the {'pre-relaxed' if result['output_parameters']['accepted'] else 'input'} geometry")

    def should_prerelax(self):
        return 'mlff_model' in self.inputs or bool(self.inputs.get('mlff_ensemble'))

    def prerelax(self):
        """Pre-relax ``ctx.structure`` with the DeePMD model; the GEO_OPT starts from the result."""
        from .mlff_prerelax import mlff_prerelax, prerelax_settings

        parameters = self.inputs.mlff_prerelax if 'mlff_prerelax' in self.inputs else orm.Dict({})
        try:
            prerelax_settings(parameters.get_dict())
            if 'mlff_model' not in self.inputs:
                raise ValueError(f"mlff_ensemble ({', '.join(self.inputs.mlff_ensemble)}) needs mlff_model, the "
                                 'model that drives the pre-relaxation')
        except ValueError as exception:
            return self.exit_codes.ERROR_RELAX_FAILED.format(message=str(exception))
        result = mlff_prerelax(self.ctx.structure, self.inputs.mlff_model, parameters,
                               **dict(self.inputs.get('mlff_ensemble', {})))
        summary = result['output_parameters']
        self.ctx.structure = result['structure']  # the input geometry if the model relaxation was not accepted
        start = 'the model-relaxed geometry' if summary['accepted'] else 'the input geometry'
        self.report(f"MLFF pre-relaxation: {summary['reason']}; the GEO_OPT starts from {start}")
        return None

    def run_relax(self):
        level = functional_name(self.inputs[self._namespace].cp2k.parameters.get_dict())
        return self.submit_cp2k('relax', f'CP2K {level} GEO_OPT')

    def inspect_relax(self):
        message = self.failed_child_message()
        if message:
            return self.exit_codes.ERROR_RELAX_FAILED.format(message=message)
        if 'output_structure' not in self.ctx.workchain.outputs:
            return self.exit_codes.ERROR_NO_RELAXED_STRUCTURE
        return None

    def results(self):
        outputs = self.out_relaxation(self.ctx.workchain.outputs)
        level = functional_name(self.inputs[self._namespace].cp2k.parameters.get_dict())
        self.report(f"relaxed: E({level}) = {outputs.output_parameters.get('energy')} Ha")

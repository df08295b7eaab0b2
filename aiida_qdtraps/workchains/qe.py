"""Quantum ESPRESSO settings of the QD work chains and their GTH-PBE UPF pseudopotential family.

- :func:`~aiida_qdtraps.pseudo_family.ensure_upf_family`: the aiida-pseudo family ``qdtraps-gth-pbe-upf`` of
  norm-conserving UPF files tabulated from CP2K's ``GTH_POTENTIALS`` (:mod:`aiida_qdtraps.pseudos`), the very
  potentials and valence charges of the CP2K path; made offline at set-up time (:mod:`aiida_qdtraps.pseudo_family`).
- :func:`qe_protocol_inputs`: the ``fast``/``moderate``/``precise`` protocols of ``qe_relax.yaml``, with the cutoff
  of the structure's elements; :func:`isolation_for_charge`, :func:`qe_electronic_state` and
  :func:`check_qe_electronic_state`: the pw.x settings of an isolated QD of given charge and spin.
- :func:`qe_scf_builder`: a pw.x SCF with forces with the relax settings (cutoff convergence).

The work chain that runs pw.x relax, pp.x and projwfc.x on a QD is
:class:`~aiida_qdtraps.workchains.qe_relax.QdQeRelaxWorkChain` (the QE engine of ``QdRelaxWorkChain``). The
calcfunctions (``analyse_projwfc``, ``extract_density_cube``, ``compare_relaxed_qds``) are in :mod:`.qe_functions`
and importable from here as well.
"""

from __future__ import annotations

from aiida import orm
from aiida.plugins import CalculationFactory
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from ..pseudo_family import (  # noqa: F401  (re-exported: the family this engine uses)
    PSEUDO_FAMILY_LABEL,
    PseudoPotentialFamily,
    UpfData,
    ensure_upf_family,
    gth_potential_names,
    upf_family,
)
from .electronic_state import spin_state_problem
from .qe_functions import (  # noqa: F401  (re-exported: their public import path)
    DENSITY_CUBE_FILENAME,
    PP_FILEOUT,
    analyse_projwfc,
    compare_relaxed_qds,
    extract_density_cube,
    format_comparison,
)
from .stage import QdProtocolMixin

PpCalculation = CalculationFactory('quantumespresso.pp')
ProjwfcCalculation = CalculationFactory('quantumespresso.projwfc')


class QeRelaxProtocol(QdProtocolMixin):
    """Reads ``qe_relax.yaml`` with aiida-quantumespresso's protocol machinery."""

    protocol_file = 'qe_relax.yaml'


def qe_protocol_inputs(structure: orm.StructureData, protocol: str | None = None,
                       overrides: dict | None = None) -> dict:
    """Merged protocol inputs with ``ecutwfc``/``ecutrho`` chosen for the structure's elements.

    ``overrides`` uses the layout of ``qe_relax.yaml`` (``qe.pw.parameters...``, ``pp...``, ``box_vacuum``).

    :raises ValueError: for elements without a measured cutoff in the protocol.
    """
    inputs = QeRelaxProtocol.get_protocol_inputs(protocol, overrides)
    elements = sorted(set(structure.get_kind_names()))
    table = inputs.pop('ecutwfc')
    missing = [el for el in elements if el not in table]
    if missing:
        raise ValueError(f'no measured QE cutoff for element(s) {missing} in protocol {protocol!r}; '
                         f'have {sorted(table)}')
    ecutwfc = max(float(table[el]) for el in elements)
    system = inputs['qe']['pw']['parameters']['SYSTEM']
    system.setdefault('ecutwfc', ecutwfc)
    system.setdefault('ecutrho', inputs['dual'] * system['ecutwfc'])
    return inputs


def isolation_for_charge(charge: int) -> str:
    """pw.x ``assume_isolated`` for a QD of net ``charge``: ``'mt'`` (Martyna-Tuckerman) if charged, else ``'none'``.

    MT is exact only in a box about twice the extent of the density; in the protocols' boxes (3.5-8 Å of vacuum) it
    puts eV/Å errors on the forces of outer atoms (measured: Cl of InCl3 with 2.5 Å vacuum, -0.107 Ry/bohr with MT
    vs -0.016 with plain periodic images and -0.016 with MT in a 16 Å box; docs/qe.md). A neutral QD's periodic images
    interact only through multipoles, so plain periodic boundaries give better forces in the same box; a charged QD
    needs MT (and a large enough box).
    """
    return 'mt' if charge else 'none'


def qe_electronic_state(charge: int, multiplicity: int) -> dict:
    """pw.x ``SYSTEM`` settings for net charge (e) and spin multiplicity 2S+1."""
    system = {'tot_charge': float(charge)}
    if multiplicity > 1:
        system.update({'nspin': 2, 'tot_magnetization': float(multiplicity - 1)})
    return {'SYSTEM': system}


def check_qe_electronic_state(structure: orm.StructureData, pseudos: dict, charge: int,
                              multiplicity: int) -> tuple[str | None, str]:
    """``(None, '')`` if every kind has a pseudopotential and charge/multiplicity fit, else ``(problem, message)``."""
    missing = [kind for kind in sorted(set(structure.get_kind_names())) if kind not in pseudos]
    if missing:
        return 'kinds', f'no pseudopotential for kind(s) {missing}'
    valence = {kind: pseudos[kind].z_valence for kind in pseudos}
    n_electrons = round(sum(valence[site.kind_name] for site in structure.sites)) - charge
    return spin_state_problem(n_electrons, charge, multiplicity)


def qe_scf_builder(code: orm.AbstractCode, structure: orm.StructureData, ecutwfc: float, dual: float = 4.0,
                   conv_thr: float = 1.0e-8, family_label: str = PSEUDO_FAMILY_LABEL, charge: int = 0,
                   multiplicity: int = 1):
    """``PwBaseWorkChain`` builder of a pw.x SCF with forces on an already boxed ``structure``.

    The settings of the relax branch (isolation by charge, Gamma point, smearing, local-TF) at cutoff ``ecutwfc`` (Ry):
    used for cutoff convergence of forces on a QD (residual forces at a higher cutoff on a geometry relaxed at a lower
    one are the force error of the lower cutoff).
    """
    family = upf_family(family_label)
    pw = QeRelaxProtocol.get_protocol_inputs()['qe']['pw']  # SYSTEM / ELECTRONS / settings of the relax protocols
    parameters = recursive_merge(
        {'CONTROL': {'calculation': 'scf', 'tprnfor': True}, 'SYSTEM': pw['parameters']['SYSTEM'],
         'ELECTRONS': pw['parameters']['ELECTRONS']},
        {'SYSTEM': {'ecutwfc': float(ecutwfc), 'ecutrho': float(dual * ecutwfc),
                    'assume_isolated': isolation_for_charge(charge)},
         'ELECTRONS': {'conv_thr': conv_thr}})
    parameters = recursive_merge(parameters, qe_electronic_state(charge, multiplicity))
    builder = PwBaseWorkChain.get_builder()
    builder.pw.code = code
    builder.pw.structure = structure
    builder.pw.pseudos = family.get_pseudos(structure=structure)
    builder.pw.parameters = orm.Dict(parameters)
    builder.pw.settings = orm.Dict(pw['settings'])
    builder.pw.metadata.options = recursive_merge(pw['metadata']['options'], {'max_wallclock_seconds': 7200})
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([1, 1, 1])
    builder.kpoints = kpoints
    builder.max_iterations = orm.Int(2)
    return builder

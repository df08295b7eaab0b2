"""``HybridScfWorkChain`` with ``engine: pyscf``: protocol builders, input checks before anything is stored, and the
PySCF job it submits; the pipeline passes the engine through and refuses the Bader stage with it. Nothing is run."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_qdtraps.calculations.pyscf import PyscfCalculation
from aiida_qdtraps.workchains.hybrid_scf import HybridScfWorkChain
from aiida_qdtraps.workchains.pipeline import QdTrapsPipelineWorkChain

#: In4PF9: 4 × 49 + 15 + 9 × 9 electrons (all-electron count, as the job's check counts them)
IN4PF9_ELECTRONS = 292


def stored_processes() -> int:
    return orm.QueryBuilder().append(orm.ProcessNode).count()


@pytest.fixture
def cdse_35():
    """Cd16Se13Cl6 (35 atoms, 29 core), the default CdSe QD of 10 Å through the building calcfunction."""
    from aiida_qdtraps.workchains.build import build_qd_structure

    return build_qd_structure(orm.Dict({'material': 'CdSe', 'diameter': 10.0, 'ligand': 'Cl'}))


@pytest.mark.parametrize('protocol, density_fit, grid_level, conv_tol, window', [
    ('fast', True, 3, 1e-7, {'occupied': 10, 'virtual': 10}),
    ('moderate', True, 3, 1e-8, {'occupied': 20, 'virtual': 20}),
    ('precise', False, 4, 1e-9, {'occupied': 20, 'virtual': 20}),
])
def test_pyscf_builder_is_pbe0_def2svp(pyscf_code, tiny_qd, protocol, density_fit, grid_level, conv_tol, window):
    builder = HybridScfWorkChain.get_builder_from_protocol(None, tiny_qd, protocol=protocol, engine='pyscf',
                                                           pyscf_code=pyscf_code)
    assert builder.engine.value == 'pyscf'
    assert builder.pyscf.parameters.get_dict() == {'xc': 'pbe0', 'basis': 'def2-svp', 'density_fit': density_fit,
                                                   'grid_level': grid_level, 'conv_tol': conv_tol, 'max_cycle': 100}
    assert builder.pyscf.code.uuid == pyscf_code.uuid
    assert builder.mo_window.get_dict() == window  # In4PF9 has 5 core atoms: the protocol's numbers stand
    inputs = builder._inputs(prune=True)
    assert 'box_vacuum' not in inputs and 'scf' not in inputs
    assert builder.pyscf.metadata['options']['max_wallclock_seconds'] == (3600 if protocol == 'fast' else 86400)


def test_cp2k_builder_has_no_engine_input(recorded_cp2k_code, tiny_qd):
    """The CP2K path keeps its inputs: no ``engine`` node, no ``pyscf`` inputs."""
    builder = HybridScfWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast')
    inputs = builder._inputs(prune=True)
    assert 'engine' not in inputs and 'pyscf' not in inputs
    assert inputs['scf']['cp2k']['code'].uuid == recorded_cp2k_code.uuid


@pytest.mark.parametrize('protocol', ['fast', 'moderate'])
def test_pyscf_window_scales_with_the_core_like_cp2k(pyscf_code, cdse_35, protocol):
    """29 core atoms: 29 occupied and 29 + 3 virtual MOs, as the CP2K window (docs/traps.md)."""
    builder = HybridScfWorkChain.get_builder_from_protocol(None, cdse_35, protocol=protocol, engine='pyscf',
                                                           pyscf_code=pyscf_code)
    assert builder.mo_window.get_dict() == {'occupied': 29, 'virtual': 32}
    given = HybridScfWorkChain.get_builder_from_protocol(None, cdse_35, protocol=protocol, engine='pyscf',
                                                         pyscf_code=pyscf_code,
                                                         overrides={'mo_window': {'virtual': 40}})
    assert given.mo_window.get_dict() == {'occupied': 29, 'virtual': 40}


def test_overrides_and_options_reach_the_job(pyscf_code, tiny_qd):
    builder = HybridScfWorkChain.get_builder_from_protocol(
        None, tiny_qd, protocol='fast', engine='pyscf', pyscf_code=pyscf_code,
        overrides={'pyscf': {'parameters': {'basis': 'def2-tzvp', 'density_fit': False}}},
        options={'max_wallclock_seconds': 600})
    assert builder.pyscf.parameters['basis'] == 'def2-tzvp' and builder.pyscf.parameters['density_fit'] is False
    assert builder.pyscf.metadata['options']['max_wallclock_seconds'] == 600


@pytest.mark.parametrize('kwargs, message', [
    ({'engine': 'siesta'}, "engine 'siesta' is not available"),
    ({'engine': 'pyscf', 'pyscf_code': None}, "engine 'pyscf' needs `pyscf_code`"),
    ({'engine': 'pyscf', 'charge': 1},
     f'charge 1 and multiplicity 1 are impossible together: {IN4PF9_ELECTRONS - 1} electrons cannot have 0 unpaired'),
    ({'engine': 'pyscf', 'overrides': {'pyscf': {'parameters': {'basis': '6-31g'}}}},
     "basis '6-31g' has no functions for element 'In'"),
    ({'engine': 'pyscf', 'overrides': {'pyscf': {'parameters': {'charge': 1}}}},
     r"pyscf.parameters must not set \['charge'\]"),
    ({'engine': 'pyscf', 'protocol': 'cheapest'}, '`cheapest` is not a protocol of the pyscf engine'),
], ids=['engine', 'no-code', 'charge', 'basis', 'own-key', 'protocol'])
def test_builder_refuses_with_the_value_named(pyscf_code, tiny_qd, kwargs, message):
    kwargs = {'protocol': 'fast', 'pyscf_code': pyscf_code, **kwargs}
    with pytest.raises(ValueError, match=message):
        HybridScfWorkChain.get_builder_from_protocol(None, tiny_qd, **kwargs)


def _pyscf_builder(pyscf_code, structure):
    return HybridScfWorkChain.get_builder_from_protocol(None, structure, protocol='fast', engine='pyscf',
                                                        pyscf_code=pyscf_code)


@pytest.mark.parametrize('change, message', [
    (lambda b, _: setattr(b, 'multiplicity', orm.Int(2)),
     f'charge 0 and multiplicity 2 are impossible together: {IN4PF9_ELECTRONS} electrons cannot have 1 unpaired'),
    (lambda b, _: setattr(b.pyscf, 'parameters', orm.Dict({'xc': 'pbe7'})),
     "unknown exchange-correlation functional 'pbe7'"),
    (lambda b, _: setattr(b.pyscf, 'parameters', orm.Dict({'mo_window': {'occupied': 3, 'virtual': 3}})),
     r"must not set \['mo_window'\]"),
    (lambda b, cp2k: setattr(b, 'scf', cp2k.scf._inputs(prune=True)),
     "engine 'pyscf' takes the `pyscf` inputs, not `scf`"),
    (lambda b, _: setattr(b, 'engine', orm.Str('cp2k')), "engine 'cp2k' takes the `scf` inputs, not `pyscf`"),
    (lambda b, _: b.pyscf.pop('code'), "engine 'pyscf' needs the `pyscf` inputs with a `code`"),
], ids=['multiplicity', 'functional', 'own-key', 'cp2k-inputs', 'engine-cp2k', 'no-code'])
def test_bad_inputs_refused_at_launch_nothing_stored(pyscf_code, recorded_cp2k_code, tiny_qd, change, message):
    builder = _pyscf_builder(pyscf_code, tiny_qd)
    change(builder, HybridScfWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast'))
    before = stored_processes()
    with pytest.raises(ValueError, match=message):
        run_get_node(builder)
    assert stored_processes() == before


def test_a_parent_folder_is_refused_with_pyscf(pyscf_code, tiny_qd, aiida_localhost, tmp_path):
    builder = _pyscf_builder(pyscf_code, tiny_qd)
    builder.parent_calc_folder = orm.RemoteData(computer=aiida_localhost, remote_path=str(tmp_path))
    with pytest.raises(ValueError, match='`parent_calc_folder` .* cannot be used'):
        run_get_node(builder)


def test_submits_the_pyscf_job_with_the_work_chains_state(pyscf_code, tiny_qd, generate_workchain, monkeypatch):
    """An unboxed QD is fine for a molecular job; charge, multiplicity and window go into the job's parameters."""
    atoms = tiny_qd.get_ase()
    atoms.set_cell([0, 0, 0])
    atoms.pbc = False
    unboxed = orm.StructureData(ase=atoms)
    builder = _pyscf_builder(pyscf_code, unboxed)
    builder.mo_window = orm.Dict({'occupied': 6, 'virtual': 7})
    process = generate_workchain(HybridScfWorkChain, builder._inputs(prune=True))
    submitted = []
    monkeypatch.setattr(process, 'submit', lambda cls, **inputs: submitted.append((cls, inputs)) or orm.CalcJobNode())
    process.setup()
    assert not process.should_box()
    assert process.validate_inputs() is None
    process.run_scf()
    (cls, inputs), = submitted
    assert cls is PyscfCalculation
    assert inputs['parameters'].get_dict() == {'xc': 'pbe0', 'basis': 'def2-svp', 'density_fit': True,
                                               'grid_level': 3, 'conv_tol': 1e-7, 'max_cycle': 100, 'charge': 0,
                                               'multiplicity': 1, 'mo_window': {'occupied': 6, 'virtual': 7}}
    assert inputs['structure'].uuid == unboxed.uuid and inputs['code'].uuid == pyscf_code.uuid
    assert inputs['metadata']['call_link_label'] == 'hybrid_scf'
    assert inputs['metadata']['options']['max_wallclock_seconds'] == 3600


def test_pipeline_passes_the_engine_through(recorded_cp2k_code, pyscf_code, tiny_qd):
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast',
                                                                 hybrid_engine='pyscf', pyscf_code=pyscf_code)
    assert builder.relax.base.cp2k.code.uuid == recorded_cp2k_code.uuid  # the relax stays CP2K
    assert builder.hybrid_scf.engine.value == 'pyscf'
    assert builder.hybrid_scf.pyscf.code.uuid == pyscf_code.uuid
    assert 'scf' not in builder._inputs(prune=True)['hybrid_scf']
    assert builder.hybrid_scf.pyscf.parameters['basis'] == 'def2-svp'
    assert 'box_vacuum' not in builder.hybrid_scf
    assert builder.protocol.value == 'pyscf-fast'  # trap records of the two levels of theory stay apart
    cp2k = QdTrapsPipelineWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast')
    assert 'engine' not in cp2k.hybrid_scf and cp2k.protocol.value == 'fast'


def test_pipeline_refuses_bader_with_pyscf_before_anything_runs(recorded_cp2k_code, pyscf_code, baderkit_code,
                                                                  tiny_qd):
    with pytest.raises(ValueError, match="hybrid_engine 'pyscf' writes no density cube"):
        QdTrapsPipelineWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast',
                                                           hybrid_engine='pyscf', pyscf_code=pyscf_code,
                                                           bader_code=baderkit_code)
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast',
                                                                 hybrid_engine='pyscf', pyscf_code=pyscf_code)
    builder.charge_flow.bader.code = baderkit_code
    before = stored_processes()
    with pytest.raises(ValueError, match="hybrid_scf.engine 'pyscf' writes no density cube"):
        run_get_node(builder)
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast',
                                                                 hybrid_engine='pyscf', pyscf_code=pyscf_code)
    builder.charge = orm.Int(1)
    with pytest.raises(ValueError, match='charge 1 and multiplicity 1 are impossible'):
        run_get_node(builder)
    assert stored_processes() == before


def test_pipeline_runs_pyscf_without_the_relax_wavefunction(recorded_cp2k_code, pyscf_code, tiny_qd,
                                                            generate_workchain, monkeypatch, aiida_localhost,
                                                            tmp_path, process_nodes):
    """The relaxed structure goes to the PySCF stage, the relax's remote folder does not; a window without a
    conduction edge asks for a new PySCF run with twice the virtual MOs (no ADDED_MOS, no parent folder)."""
    builder = QdTrapsPipelineWorkChain.get_builder_from_protocol(recorded_cp2k_code, tiny_qd, protocol='fast',
                                                                 hybrid_engine='pyscf', pyscf_code=pyscf_code)
    process = generate_workchain(QdTrapsPipelineWorkChain, builder._inputs(prune=True))
    submitted = []
    monkeypatch.setattr(process, 'submit',
                        lambda cls, **inputs: submitted.append((cls, inputs)) or orm.WorkflowNode().store())
    remote = orm.RemoteData(computer=aiida_localhost, remote_path=str(tmp_path)).store()
    process.ctx.relax = process_nodes.workflow('qdtraps.relax', relaxed_structure=tiny_qd, remote_folder=remote)
    process.run_hybrid_scf()
    cls, inputs = submitted[-1]
    assert cls is HybridScfWorkChain and 'parent_calc_folder' not in inputs
    assert inputs['engine'].value == 'pyscf' and inputs['structure'].uuid == tiny_qd.uuid
    assert 'scf_parameters' not in process.ctx

    process.ctx.add_virtuals = {'virtual': 20, 'added_mos': 20}
    process.ctx.hybrid_scf = process_nodes.workflow('qdtraps.hybrid_scf', structure=tiny_qd)
    process.run_more_virtuals()
    cls, inputs = submitted[-1]
    assert inputs['mo_window'].get_dict() == {'occupied': 10, 'virtual': 20}
    assert 'parent_calc_folder' not in inputs and 'scf' not in inputs
    assert inputs['metadata']['call_link_label'] == 'hybrid_scf_more_virtuals_1'


"""AiiDA parsers on recorded CP2K outputs: ``qdtraps.cp2k`` and ``qdtraps.cp2k_hybrid``."""

from __future__ import annotations

import pytest

from aiida_qdtraps.parsers.cp2k import QdCp2kParser, final_scf_not_converged
from aiida_qdtraps.parsers.cp2k_hybrid import Cp2kHybridParser

PBE0_FILES = ['aiida.out', 'aiida-MOS-1_0.molden', 'aiida-k1-1.pdos', 'aiida-k2-1.pdos', 'aiida-k3-1.pdos',
              'aiida-ELECTRON_DENSITY-1_0.cube']


@pytest.fixture
def pbe0_calc(generate_cp2k_calc, data_dir):
    folder = data_dir / 'cp2k' / 'pbe0_success'
    return generate_cp2k_calc({name: folder / name for name in PBE0_FILES})


def test_hybrid_parser_success(pbe0_calc, data_regression):
    results, calcfunction = Cp2kHybridParser.parse_from_node(pbe0_calc, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    params = results['output_parameters'].get_dict()
    assert params['gap_ev'] == pytest.approx(2.28084693, abs=1e-5)
    # the gap from the MOLDEN energies agrees with CP2K's own band-gap line to 1 meV
    assert abs(params['gap_ev'] - params['cp2k_reported_gap_ev']) < 1e-3
    energies = results['mo_energies']
    assert energies.get_array('energies').shape == (1, 70)
    pdos = results['pdos']
    assert pdos.base.attributes.get('columns') == {'F': ['s', 'p'], 'In': ['s', 'p', 'd'], 'P': ['s', 'p']}
    assert pdos.get_array('In_projections').shape == (76, 3)
    assert results['density_cube'].filename == 'density.cube'
    data_regression.check({key: params[key] for key in (
        'homo_ev', 'lumo_ev', 'gap_ev', 'homo_index', 'n_mo', 'n_ao', 'nspin', 'energy', 'walltime_s',
        'cp2k_reported_gap_ev')} | {'outputs': sorted(results)})


def test_hybrid_parser_without_molden_fails(generate_cp2k_calc, data_dir):
    node = generate_cp2k_calc({'aiida.out': data_dir / 'cp2k' / 'pbe0_success' / 'aiida.out'})
    _, calcfunction = Cp2kHybridParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == 210  # ERROR_OUTPUT_MISSING


@pytest.mark.parametrize('recorded, expected', [
    ('scf_not_converged.out', 450),           # ENERGY run: CP2K 2023.1 only warns
    ('scf_not_converged_geo_opt.out', 450),   # GEO_OPT carries on with unconverged forces: refused
    ('walltime.out', 400),
    ('geo_max_iter.out', 501),
    ('incomplete.out', 303),
    ('xtb_lbfgs_stopped_above_criterion.out', 500),  # LBFGS's own stop at 1.7e-3 Ha/bohr, MAX_FORCE 4.5e-4
])
def test_failure_exit_codes(generate_cp2k_calc, data_dir, recorded, expected):
    node = generate_cp2k_calc({'aiida.out': data_dir / 'cp2k' / 'failed' / recorded})
    _, calcfunction = QdCp2kParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == expected


def test_base_parser_adds_cp2k_walltime(generate_cp2k_calc, data_dir):
    node = generate_cp2k_calc({'aiida.out': data_dir / 'cp2k' / 'pbe0_success' / 'aiida.out'})
    results, calcfunction = QdCp2kParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok
    assert results['output_parameters']['walltime_s'] == pytest.approx(74.088)


def test_structure_of_a_nose_hoover_md_is_the_atoms_not_the_thermostat(generate_cp2k_calc, data_dir):
    """A real CP2K 2023.1 NVT run of InF3 with a Nosé–Hoover chain (aiida.inp next to it): its restart file holds the
    thermostat's &COORD under &MOTION before the atoms' under &FORCE_EVAL; the output structure is the atoms."""
    folder = data_dir / 'cp2k' / 'md_nose'
    node = generate_cp2k_calc({name: folder / name for name in ('aiida.out', 'aiida-1.restart', 'aiida-pos-1.xyz')},
                              parameters={'GLOBAL': {'RUN_TYPE': 'MD'}})
    results, calcfunction = QdCp2kParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, calcfunction.exit_message
    atoms = results['output_structure'].get_ase()
    assert atoms.get_chemical_symbols() == ['In', 'F', 'F', 'F']
    assert atoms.positions[0] == pytest.approx([5.0359469297, 5.5423546509, 5.4968387093])
    assert atoms.cell.lengths() == pytest.approx([11.0, 11.0, 11.0])


def test_finished_geo_opt_with_an_early_unconverged_scf_is_accepted(generate_cp2k_calc, data_dir):
    """Recorded F6In6P3³⁺ fast GEO_OPT (steps 1-39 cut out): its first SCF cycle stopped unconverged at 100 steps,
    CP2K carried on, and the optimisation COMPLETED at step 40 with converged cycles, re-evaluation included. The
    result stands (refusing it made the SCF handler restart a converged relax with P-mixing, which then
    diverged); the unconverged cycles are counted."""
    folder = data_dir / 'cp2k' / 'failed'
    name = 'scf_unconverged_early_geo_opt_completed'
    files = {'aiida.out': folder / f'{name}.out', 'aiida-1.restart': folder / f'{name}-1.restart',
             'aiida-pos-1.xyz': folder / f'{name}-pos-1.xyz'}
    node = generate_cp2k_calc(files, parameters={'GLOBAL': {'RUN_TYPE': 'GEO_OPT'}})
    results, calcfunction = QdCp2kParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.is_finished_ok, (calcfunction.exit_status, calcfunction.exit_message)
    assert results['output_parameters']['scf_not_converged_count'] == 1
    assert results['output_parameters']['energy'] == pytest.approx(-501.6103, abs=1e-3)


def test_final_scf_not_converged():
    step = ' OPTIMIZATION STEP:      {}\n'
    bad, good = ' *** SCF run NOT converged ***\n', '  *** SCF run converged in    15 steps ***\n'
    assert final_scf_not_converged(bad)  # a single point
    assert not final_scf_not_converged(good)
    assert not final_scf_not_converged(bad + step.format(1) + good + step.format(2) + good + ' COMPLETED\n' + good)
    assert final_scf_not_converged(bad + step.format(1) + good + step.format(2) + bad)
    assert final_scf_not_converged(step.format(1) + good + step.format(2) + good + ' COMPLETED\n' + bad)

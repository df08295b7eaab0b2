"""The acetate MLFF production MD (``examples/mlff_md_acetate.py``): 10 ps of Cd6Se4(OAc)4 at 300 K with the shipped
DeePMD ensemble, its RDFs and carboxylate binding modes stored as nodes of the trajectory."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope='module')
def example(load_script):
    return load_script('examples/mlff_md_acetate.py')


@pytest.mark.slow
def test_ten_ps_of_the_acetate_qd_with_rdfs_and_binding_modes(aiida_localhost, dp_python, example):
    # the example's defaults: 10 ps at 300 K driven by member 1 (compressed in the job), frames every 10 fs, the Cd6Se4
    # core held fixed
    result = example.run(code=dp_python)
    trajectory, report = result['trajectory'], result['report']
    compressed = result['md'].outputs.output_parameters['compressed']
    assert list(compressed) == ['model_0'] and compressed['model_0']['max_force_difference_eV_A'] < 1e-6
    times = trajectory.get_array('times')
    assert len(times) == 1001 and times[-1] == pytest.approx(10000.0)
    assert trajectory.creator.uuid == result['md'].uuid and result['md'].is_finished_ok
    # in the trained region all along (the MD would have stopped at 1.5 eV/Å) and thermalised at 300 K
    assert report['deviation_max'] <= example.STOP_DEVI_F
    assert report['deviation_median'] < 0.3
    assert 240 < report['mean_temperature_K'] < 360
    positions = trajectory.get_positions()
    core = [i for i, s in enumerate(trajectory.symbols) if s in example.FROZEN_CORE]
    assert len(core) == report['frozen_atoms'] == 10 and np.allclose(positions[:, core], positions[0, core])
    assert np.abs(positions[-1] - positions[0]).max() < 8.0

    rdf = result['rdf']
    assert rdf.creator.inputs.trajectory.uuid == trajectory.uuid
    assert rdf.base.attributes.get('pairs') == example.PAIRS
    assert rdf.base.attributes.get('n_frames') == 801  # from 2 ps on
    peaks = example.rdf_peaks(rdf)
    # no O or C collapsed onto a Cd (the holes of the free-core MDs open below 2 Å); the carboxylate O in a broad first
    # shell (GFN1-xTB, ligands on a frozen core: bridging and tilted bridging); the frozen core's Cd–Se bonds
    assert 1.9 < peaks['Cd-O']['onset'] < 2.4 and 2.2 < peaks['Cd-O']['r_peak'] < 3.1
    assert peaks['Cd-C']['onset'] > 2.4 and peaks['Cd-C']['r_peak'] < 4.2
    assert 2.4 < peaks['Cd-Se']['r_peak'] < 2.7

    modes = result['binding_modes']
    fractions = modes['fractions']
    assert modes['fractions'].creator.inputs.trajectory.uuid == trajectory.uuid
    assert fractions['n_ligands'] == 4 and fractions['n_frames'] == 801 and fractions['metal'] == 'Cd'
    assert sum(fractions['fractions'].values()) == pytest.approx(1.0)
    assert fractions['fractions']['unbound'] < 0.05
    r1 = modes['distances'].get_array('r1')
    assert r1.shape == (801, 4) and np.all((r1 > 1.5) & (r1 < 4.0))


def test_an_md_that_leaves_the_trained_region_is_a_clear_error(aiida_localhost, dp_python, example, tmp_path):
    with pytest.raises(example.MdLeftTrainedRegion, match=r'left the trained region at 0\.\d\d ps of 0\.2 ps: '
                                                          r'ensemble force deviation .* > 0\.001 eV/Å'):
        example.run(time_ps=0.2, code=dp_python, driver=0, stop_devi_f=0.001, compress=False)
    with pytest.raises(FileNotFoundError, match='must hold the frozen members model_\\*.pth and start.xyz'):
        example.run(models_dir=tmp_path, code=dp_python)

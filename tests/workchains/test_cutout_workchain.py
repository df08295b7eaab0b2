"""``CutoutInterpolationWorkChain`` at PBE0/def2-SVP on a see-saw PLi4+ 'QD' whose own PySCF HOMO is the trap orbital.

The cutout of that structure is the structure itself (P-Li already at the default distance), so the last frame's
HOMO must have the trap orbital's orientation (cosine 1), and the HOMO rises and splits along the path.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_qdtraps.analysis.cutout import PLI4_DISTANCE
from aiida_qdtraps.calculations.pyscf import PyscfCalculation
from aiida_qdtraps.data import TrapRecord
from aiida_qdtraps.workchains.cutout import CutoutInterpolationWorkChain

#: Alexander et al.'s level of theory, PBE0/def2-SVP, with density fitting and a coarse grid (a few s per frame).
FAST = {'basis': 'def2-svp', 'density_fit': True, 'charge': 1, 'grid_level': 2, 'conv_tol': 1e-8,
        'mo_window': {'occupied': 5, 'virtual': 2}}


def seesaw(a_deg: float, b_deg: float, d: float = PLI4_DISTANCE) -> Atoms:
    a, b = np.radians(a_deg) / 2, np.radians(b_deg) / 2
    v = np.array([(np.sin(a), 0, np.cos(a)), (-np.sin(a), 0, np.cos(a)), (0, np.sin(b), -np.cos(b)),
                  (0, -np.sin(b), -np.cos(b))])
    return Atoms('PLi4', positions=np.vstack([np.zeros(3), d * v]) + [0.3, -0.2, 0.1])


@pytest.fixture
def labelled(pyscf_code):
    """The see-saw structure, its PySCF MO window and a hand-made hole-trap record on the P (the window's HOMO)."""
    structure = orm.StructureData(ase=seesaw(160.0, 120.0))
    structure.pbc = (False, False, False)
    results, node = run_get_node(PyscfCalculation, code=pyscf_code, structure=structure, parameters=orm.Dict(FAST))
    assert node.is_finished_ok
    window = results['mo_window']
    homo_column = int(np.flatnonzero(window.get_array('occupations')[0] > 0).max())
    trap = TrapRecord({'carrier': 'hole', 'kind': 'structural', 'center': 0, 'center_element': 'P',
                       'center_coordination': 4, 'spin': 0, 'mo_indices': [homo_column]})
    return structure, window, {'trap_0': trap}


def test_path_levels_and_orientation(pyscf_code, labelled):
    structure, window, traps = labelled
    results, node = run_get_node(CutoutInterpolationWorkChain, structure=structure, traps=traps, mo_window=window,
                                 frames=orm.Int(5), pyscf={'code': pyscf_code, 'parameters': orm.Dict(FAST)})
    assert node.is_finished_ok, node.exit_message
    path = results['centres']['atom_0']['path']
    levels = path.get_array('levels')
    assert levels.shape == (5, 3) and np.all(levels[:, 0] >= levels[:, 1]) and np.all(levels[:, 1] >= levels[:, 2])
    assert levels[0, 0] - levels[0, 2] < 1e-3  # ideal tetrahedron: the three P 3p levels are degenerate
    # the see-saw signature: the HOMO rises by tenths of an eV and splits from HOMO-1/HOMO-2 at every frame
    assert np.all(np.diff(levels[:, 0]) > 0) and levels[-1, 0] - levels[0, 0] > 0.2
    assert np.all(np.diff(path.get_array('splitting')) > 0) and path.get_array('splitting')[-1] > 0.5
    assert path.get_array('orientation_cosine')[-1] == pytest.approx(1.0, abs=1e-6)
    assert path.base.attributes.get('orientation_defined') is True
    overlap = path.get_array('ligand_overlap')
    assert overlap.shape == (5, 3, 4) and np.all((overlap > 0) & (overlap < 1))
    # the trap HOMO avoids the Li: less density in the Li spheres than the deepest p level at the see-saw end
    assert overlap[-1, 0].sum() < overlap[-1, 2].sum()
    cutout = results['centres']['atom_0']['cutout'].get_ase()
    assert np.allclose(np.linalg.norm(cutout.positions[1:] - cutout.positions[0], axis=1), PLI4_DISTANCE)
    assert results['centres']['atom_0']['plot'].get_content('rb')[:4] == b'\x89PNG'


def test_errors(pyscf_code, labelled):
    structure, window, traps = labelled
    pyscf = {'code': pyscf_code, 'parameters': orm.Dict(FAST)}
    _, node = run_get_node(CutoutInterpolationWorkChain, structure=structure, traps=traps, atom=orm.Int(2),
                           pyscf=pyscf)
    assert node.exit_status == 302 and 'atom 2 (Li) is 1-coordinate' in node.exit_message
    _, node = run_get_node(CutoutInterpolationWorkChain, structure=structure, pyscf=pyscf)
    assert node.exit_status == 300
    other = {'trap_0': TrapRecord({**traps['trap_0'].get_dict(), 'center': 3, 'center_element': 'Li'})}
    _, node = run_get_node(CutoutInterpolationWorkChain, structure=structure, traps=other, atom=orm.Int(0),
                           pyscf=pyscf)
    assert node.exit_status == 301 and 'atom 0' in node.exit_message
    with pytest.raises(ValueError, match='frames must be >= 2'):
        run_get_node(CutoutInterpolationWorkChain, structure=structure, traps=traps, frames=orm.Int(1), pyscf=pyscf)

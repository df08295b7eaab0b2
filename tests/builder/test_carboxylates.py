"""Acetate binding modes (monodentate, chelating, bridging, mixed) and the named Pb19S6(OAc)26 cluster (Sowa et al.)."""

import numpy as np
import pytest
from ase.data import covalent_radii

from aiida_qdtraps.builder.named import NAMED_MODELS, octahedral_frame
from aiida_qdtraps.builder.passivation import BINDINGS, CARBOXYLATE_FRAME, net_charge, passivate
from aiida_qdtraps.builder.qd import build_qd, describe
from aiida_qdtraps.builder.roles import ligand_units, roles_of


def _angle(a, b, c):
    u, v = a - b, c - b
    return np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))


def _closest_pairs(atoms):
    """Smallest distance / (sum of covalent radii) over the non-bonded pairs: atoms of different units (core,
    or one acetate each), less the O–cation bonds (< 2.7 Å) and the carboxyl C to a cation its O binds."""
    roles = roles_of(atoms)
    units = ligand_units(atoms)
    unit = np.full(len(atoms), -1)
    for k, u in enumerate(units):
        unit[u] = k
    symbols = np.array(atoms.get_chemical_symbols())
    radii = covalent_radii[atoms.numbers]
    d = atoms.get_all_distances()
    ratio = d / (radii[:, None] + radii[None])
    cation = roles == 'cation'
    bonded_o = ((symbols[:, None] == 'O') & cation[None] & (d < 2.7))
    bonded_c = np.zeros_like(bonded_o)
    for u in units:  # carboxyl C (index 1 of the unit) to the cations its O bind: a 1-3 pair
        metals = np.flatnonzero(bonded_o[u[[0, 2]]].any(0))
        bonded_c[u[1], metals] = True
    bonded = bonded_o | bonded_o.T | bonded_c | bonded_c.T
    core = roles != 'ligand'
    same = (unit[:, None] == unit[None]) & (unit[:, None] >= 0)
    mask = ~same & ~(core[:, None] & core[None]) & ~bonded & ~np.eye(len(atoms), dtype=bool)
    return float(ratio[mask].min())


def _acetate_geometry(atoms):
    """Per acetate: C–O lengths, O–C–O angle, C–C length, and the O–cation distances of its two O."""
    roles = roles_of(atoms)
    cations = atoms.positions[roles == 'cation']
    rows = []
    for u in ligand_units(atoms):
        o1, c, o2, cm = atoms.positions[u[:4]]
        mo = [float(np.linalg.norm(cations - o, axis=1).min()) for o in (o1, o2)]
        rows.append((np.linalg.norm(o1 - c), np.linalg.norm(o2 - c), _angle(o1, c, o2), np.linalg.norm(cm - c), mo))
    return rows


def test_carboxylate_frame_geometry():
    o1, c, o2, cm, *hs = CARBOXYLATE_FRAME
    assert np.linalg.norm(o1 - c) == pytest.approx(1.26, abs=1e-3)
    assert np.linalg.norm(o2 - c) == pytest.approx(1.26, abs=1e-3)
    assert _angle(o1, c, o2) == pytest.approx(122.0, abs=0.1)
    assert np.linalg.norm(cm - c) == pytest.approx(1.50, abs=1e-3)
    for h in hs:
        assert np.linalg.norm(h - cm) == pytest.approx(1.09, abs=1e-3)
        assert _angle(c, cm, h) == pytest.approx(109.47, abs=0.1)


@pytest.mark.parametrize('material, diameter', [('PbS', 15.0), ('InP', 14.0), ('CdSe', 16.0)])
@pytest.mark.parametrize('binding', BINDINGS)
def test_bindings_are_neutral_sensible_and_clash_free(material, diameter, binding):
    qd = build_qd(material, diameter, ligand='OAc', binding=binding)
    assert describe(qd).net_charge == 0
    rows = _acetate_geometry(qd)
    assert len(rows) == len(ligand_units(qd)) > 0
    for co1, co2, oco, cc, mo in rows:
        assert 1.24 <= co1 <= 1.28 and 1.24 <= co2 <= 1.28
        assert 120.0 <= oco <= 125.0
        assert cc == pytest.approx(1.50, abs=1e-3)
        if binding in ('chelating', 'bridging'):  # both O on a cation at the M–O length
            assert max(mo) < 2.45
    assert _closest_pairs(qd) >= 0.7


def test_chelate_holds_both_o_on_one_metal_and_bridge_two():
    pbs = {b: build_qd('PbS', 15.0, ligand='OAc', binding=b, center='cation') for b in ('chelating', 'bridging')}
    for binding, qd in pbs.items():
        roles = roles_of(qd)
        cations = np.flatnonzero(roles == 'cation')
        for u in ligand_units(qd):
            metals = [cations[np.argmin(np.linalg.norm(qd.positions[cations] - qd.positions[i], axis=1))]
                      for i in u[[0, 2]]]
            assert (metals[0] == metals[1]) == (binding == 'chelating')
            for i, m in zip(u[[0, 2]], metals):
                assert np.linalg.norm(qd.positions[i] - qd.positions[m]) == pytest.approx(2.40, abs=1e-6)
            if binding == 'bridging':
                assert np.linalg.norm(qd.positions[metals[0]] - qd.positions[metals[1]]) == \
                    pytest.approx(5.936 / np.sqrt(2), abs=1e-3)


def test_binding_keeps_the_acetate_count_and_mixed_is_seeded():
    counts = {b: len(ligand_units(build_qd('InP', 14.0, ligand='OAc', binding=b, center='cation')))
              for b in ('monodentate', 'chelating', 'mixed')}
    assert len(set(counts.values())) == 1
    a = build_qd('PbS', 15.0, ligand='OAc', binding='mixed', center='cation', seed=1)
    b = build_qd('PbS', 15.0, ligand='OAc', binding='mixed', center='cation', seed=1)
    c = build_qd('PbS', 15.0, ligand='OAc', binding='mixed', center='cation', seed=2)
    assert np.array_equal(a.positions, b.positions)
    assert not np.array_equal(a.positions, c.positions)


def test_default_binding_is_monodentate_atom_for_atom():
    plain = build_qd('PbS', 15.0, ligand='OAc', center='cation')
    explicit = build_qd('PbS', 15.0, ligand='OAc', center='cation', binding='monodentate')
    assert np.array_equal(plain.positions, explicit.positions)
    assert plain.get_chemical_symbols() == explicit.get_chemical_symbols()


def test_bridging_counts_only_shared_sites():
    frame = octahedral_frame('PbS')
    with pytest.raises(ValueError, match='shared by two neighbouring cations'):
        passivate(frame, 'OAc', charge=-7, binding='bridging')  # 33 acetates, 32 bridgeable sites
    assert net_charge(passivate(frame, 'OAc', charge=-6, binding='bridging')) == -6


@pytest.mark.parametrize('kwargs, match', [
    ({'ligand': 'OAc', 'binding': 'tridentate'}, "'tridentate'"),
    ({'ligand': 'Cl', 'binding': 'bridging'}, "'Cl'"),
    ({'ligand': 'OAc', 'binding': 'chelating', 'shell': 'CdS'}, "'chelating'"),
])
def test_bad_binding_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_qd('InP', 14.0, **kwargs)


def test_pb19s6_oac26_named_model():
    assert 'Pb19S6(OAc)26' in NAMED_MODELS
    qd = build_qd('PbS', model='Pb19S6(OAc)26')
    symbols = qd.get_chemical_symbols()
    assert {s: symbols.count(s) for s in set(symbols)} == {'Pb': 19, 'S': 6, 'O': 52, 'C': 52, 'H': 78}
    report = describe(qd)
    assert report.net_charge == 0
    assert len(ligand_units(qd)) == 26
    assert report.build['core_diameter'] == pytest.approx(5.936 * 2, abs=1e-3)  # vertex to vertex: 1.2 nm
    pb = qd.positions[np.array(symbols) == 'Pb']
    o = qd.positions[np.array(symbols) == 'O']
    d = np.linalg.norm(o[:, None] - pb[None], axis=2)
    assert np.all((d.min(1) >= 2.3) & (d.min(1) <= 2.5))  # every O bonds a Pb
    # octahedron with (111) facets: every inorganic atom inside |x| + |y| + |z| <= a (the vertices on it)
    core = qd.positions[roles_of(qd) != 'ligand']
    centred = core - core[np.array(symbols)[roles_of(qd) != 'ligand'] == 'Pb'][0]
    assert np.abs(centred).sum(1).max() == pytest.approx(5.936, abs=1e-6)
    # every surface Pb (the 18 but the central one) carries O
    assert np.sort((d < 2.5).sum(0))[1] >= 1
    assert _closest_pairs(qd) >= 0.7
    other = build_qd('PbS', model='Pb19S6(OAc)26', arrangement=1)
    assert describe(other).net_charge == 0 and not np.allclose(other.positions, qd.positions)


def test_pb19s6_refuses_carve_keys_and_monodentate_models_refuse_binding():
    with pytest.raises(ValueError, match='diameter'):
        build_qd('PbS', 12.0, model='Pb19S6(OAc)26')
    with pytest.raises(ValueError, match="'bridging'"):
        build_qd('CdSe', model='Cd17Se28H22', binding='bridging')

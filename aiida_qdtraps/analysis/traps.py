"""Band edges, trap states and per-atom trap labels of a QD from a window of MOs around the gap (pure; no AiiDA).

The procedure follows Alexander et al., Structural Hole Traps in III-V QDs (docs/references.md), and its predecessor's
public script, whose thresholds are the defaults (docs/traps.md). All energies in eV, lengths in Å.

1. **Atom classes.** Bonds from Cordero covalent radii × 1.25 (× 1.1 for same-element pairs)
   (:mod:`.bonds`); every atom is a *cation*, *anion* or *ligand*: the builder's tags when the structure has them,
   else from the element tables of :mod:`aiida_qdtraps.builder.roles` (halides, H, carboxylate C/O and amine N are
   ligands), and a core atom is *under-coordinated* (UC) when it has fewer than ``full_coordination`` (4 in
   zincblende) bonds, *fully coordinated* (FC) otherwise.
2. **Populations.** Löwdin populations of every window MO on every atom, renormalised over the non-ligand atoms
   (``p̃``), and the authors' participation ratio ``PR = 1 / (M Σ p̃²)`` over the M non-ligand atoms.
3. **Band test.** A valence state is *band-like* when ``PR ≥ 0.5 · (n_anion / M) / α_anion`` and
   ``α_UC-anion ≤ 1.5 · n_UC-anion / (n_anion − n_UC-anion) · α_FC-anion`` (α = summed p̃ on the class); the
   conduction test is the same with cations.
4. **Scan.** The VBM is the first band-like state scanning down from the HOMO; the CBM the first band-like state
   scanning up from the LUMO, except that band-like states among the first ``quantum_confined_virtuals`` (3)
   virtual orbitals are flagged *quantum-confined* and skipped (neither CBM nor trap); so are the states among them
   that fail the band test but belong to a confined state's multiplet (our rule: within ``qc_multiplet_window``,
   same centre atom, population cosine ≥ ``qc_multiplet_similarity``; :func:`_same_multiplet`).
5. **Localization (the part of the paper's procedure that is not public; our rule).** Canonical MOs in dense
   regions are "unrepresentatively delocalized" mixtures. The scan region (from the HOMO down to the VBM, from the
   LUMO up to the CBM) is split into near-degenerate clusters: runs of consecutive MOs closer than
   ``degeneracy_tol`` (0.05 eV) to their neighbour. Every cluster of 2 to ``max_cluster_size`` (4) MOs is replaced
   by its Pipek–Mezey orbitals (Löwdin populations, :mod:`.localization`), which span the same space, with
   expectation energies ``ε̃ = Σ_k U_k² ε_k``; then the scan is repeated on the refined spectrum. If the band edge
   moves into a cluster not yet localized, that cluster is localized and the scan repeated, until the band edges
   are stable. Single MOs stay canonical, and so do larger clusters: Pipek–Mezey localizes *any* set of orbitals,
   so localizing a dense band manifold would turn band states into atom-centred orbitals that fail the band test.
   The rule therefore unmixes a trap from the few states it is degenerate with (and symmetry-equivalent traps from
   each other), but cannot find a trap buried inside a dense manifold (large QDs, where level spacings near the
   edges fall below ``degeneracy_tol``). Set ``localize=False`` for the plain canonical scan.
6. **Traps.** Every state strictly between VBM and CBM that is not band-like (and not quantum-confined) is a trap:
   hole trap on the occupied side (depth ``ε − ε_VBM``), electron trap on the virtual side (depth ``ε_CBM − ε``).
   Its centre is the non-ligand atom with the largest in-state population (its ``ligand_share``, the population on
   ligands before renormalisation, is recorded: a ligand-dominated "trap" is a warning sign of a QD too small for
   the band picture or of ligand states above the anion band); it is *structural* when the centre has
   ≥ 4 bonds and *under-coordinated* otherwise; centres with ≥ 5 bonds or bonded to an atom of the same element
   (homo-atomic dimer) are flagged.
7. **Per-atom labels** (the classifier's samples): for each non-ligand atom take the state nearest the gap —
   scanning up from the LUMO for cations, down from the HOMO for anions — in which the atom's share is at least
   ``0.9 ×`` the largest atom share of that state; if that state lies at or beyond its band edge (or is a
   quantum-confined state, or no such state is in the window) the atom is *bulk*, otherwise *structural* (> 3 bonds)
   or *under-coordinated* (≤ 3 bonds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..builder.crystal import MATERIALS
from ..builder.roles import CATION_ELEMENTS, LIGAND_ELEMENTS, infer_roles, material_of  # noqa: F401  (the one table)
from . import bonds, localization, populations

ATOM_LABELS = ('ligand', 'bulk', 'structural', 'under-coordinated')


#: Bonds of a fully coordinated core atom per crystal structure of :data:`~aiida_qdtraps.builder.crystal.MATERIALS`.
FULL_COORDINATION = {'zincblende': 4, 'rocksalt': 6}


def full_coordination_of(material: str | None, symbols=()) -> int:
    """The coordination of a bulk core atom of ``material`` (a key of ``MATERIALS``; when None, the material whose
    cation and anion are both in ``symbols``): 6 for rock-salt PbS and PbSe, 4 for the zincblende materials and for
    anything unknown."""
    material = material or material_of(symbols)
    return FULL_COORDINATION.get(MATERIALS[material][0], 4) if material in MATERIALS else 4


@dataclass(frozen=True)
class LabelingParameters:
    """Thresholds of the trap-labeling procedure (defaults: Alexander et al.'s code; docs/traps.md)."""

    bond_scale: float = bonds.LABELING_SCALE
    same_element_bond_scale: float = bonds.LABELING_SAME_ELEMENT_SCALE
    full_coordination: int = 4
    pr_factor: float = 0.5
    uc_factor: float = 1.5
    quantum_confined_virtuals: int = 3
    #: a virtual state among the first ``quantum_confined_virtuals`` that fails the band test but lies within
    #: ``qc_multiplet_window`` eV of a quantum-confined state, has its largest population on the same atom and the
    #: same distribution over the core atoms (cosine of their population vectors ≥ ``qc_multiplet_similarity``) is a
    #: member of that confined multiplet, split off by the QD's shape (the 1S_e triplet of a sub-nanometre PbS
    #: cluster), not a trap; a similarity above 1 switches this off
    qc_multiplet_window: float = 0.2
    qc_multiplet_similarity: float = 0.9
    atom_share: float = 0.9
    localize: bool = True
    degeneracy_tol: float = 0.05
    max_cluster_size: int = 4
    population_method: str = 'lowdin'
    #: traps less deep than this (eV from their band edge) are flagged ``shallow``: Alexander et al. call the P-4c hole
    #: traps of their intact, fully coordinated InP and GaP QDs shallow, the deepest 0.25 eV
    shallow_depth: float = 0.3

    def __post_init__(self):
        if self.population_method not in populations.POPULATION_METHODS:
            raise ValueError(f'population_method must be one of {populations.POPULATION_METHODS}, '
                             f'got {self.population_method!r}')
        for name in ('bond_scale', 'same_element_bond_scale', 'pr_factor', 'uc_factor', 'degeneracy_tol',
                     'shallow_depth', 'qc_multiplet_window', 'qc_multiplet_similarity'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be positive, got {getattr(self, name)}')
        if not 0 < self.atom_share <= 1:
            raise ValueError(f'atom_share must be in (0, 1], got {self.atom_share}')
        if self.max_cluster_size < 2:
            raise ValueError(f'max_cluster_size must be ≥ 2, got {self.max_cluster_size}')
        if self.quantum_confined_virtuals < 0 or self.full_coordination < 1:
            raise ValueError('quantum_confined_virtuals must be ≥ 0 and full_coordination ≥ 1, got '
                             f'{self.quantum_confined_virtuals} and {self.full_coordination}')


@dataclass
class States:
    """The (canonical or refined) states of one spin channel, sorted by energy."""

    energies: np.ndarray          # (ns,) eV
    occupied: np.ndarray          # (ns,) bool
    populations: np.ndarray       # (ns, N) Löwdin populations on all atoms
    shares: np.ndarray            # (ns, M) populations renormalised over the non-ligand atoms
    participation: np.ndarray     # (ns,) PR over the non-ligand atoms
    localized: np.ndarray         # (ns,) bool: a Pipek–Mezey orbital rather than a canonical MO
    orbitals: np.ndarray          # (nao, ns) the states in the Löwdin-orthogonal AO basis
    sources: list = field(default_factory=list)  # canonical window columns each state is made of


@dataclass
class TrapLabels:
    """Result of :func:`label_traps` for one spin channel."""

    vbm: float
    cbm: float
    homo: float
    lumo: float
    states: States
    band_like: np.ndarray          # (ns,) bool
    state_kind: np.ndarray         # (ns,) str: valence / conduction / hole-trap / electron-trap / quantum-confined
    traps: list[dict]
    coordination: np.ndarray       # (N,) int
    roles: np.ndarray              # (N,) str
    atom_label: np.ndarray         # (N,) str, one of ATOM_LABELS
    atom_state: np.ndarray         # (N,) int index into states, -1 if none
    bonds: np.ndarray              # (n_bonds, 2)
    n_localized_clusters: int = 0


#: Which per-atom label wins when the spin channels disagree (most informative first).
SPIN_LABEL_PRIORITY = ('under-coordinated', 'structural', 'bulk', 'ligand')


def merge_spin_labels(labels, states) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One label per atom from the labels of every spin channel (:attr:`TrapLabels.atom_label` per channel).

    Each atom takes its most informative label over the channels (:data:`SPIN_LABEL_PRIORITY`: under-coordinated,
    structural, bulk, ligand), with the state it was assigned in that channel and the channel's index; on a tie
    the lower channel keeps it.

    :param labels: per channel, a label per atom (``nspin`` sequences of N labels of :data:`ATOM_LABELS`).
    :param states: per channel, the assigned state per atom (:attr:`TrapLabels.atom_state`).
    :returns: ``(labels, state, spin)``, each of length N.
    :raises ValueError: for no channel, channels of different lengths or a label not in :data:`ATOM_LABELS`.
    """
    labels = [np.asarray(channel, dtype=object) for channel in labels]
    states = [np.asarray(channel, dtype=int) for channel in states]
    if not labels or len(labels) != len(states):
        raise ValueError(f'need the labels and states of at least one spin channel, got {len(labels)} label and '
                         f'{len(states)} state channels')
    n_atoms = len(labels[0])
    if any(len(channel) != n_atoms for channel in (*labels, *states)):
        raise ValueError(f'the spin channels label different numbers of atoms: {[len(c) for c in labels]} labels, '
                         f'{[len(c) for c in states]} states')
    unknown = sorted({str(x) for channel in labels for x in channel} - set(SPIN_LABEL_PRIORITY))
    if unknown:
        raise ValueError(f'unknown atom label(s) {unknown}; known: {list(SPIN_LABEL_PRIORITY)}')
    rank = [np.array([SPIN_LABEL_PRIORITY.index(x) for x in channel], dtype=int) for channel in labels]
    merged, state, spin = labels[0].copy(), states[0].copy(), np.zeros(n_atoms, int)
    best = rank[0].copy()
    for s in range(1, len(labels)):
        better = rank[s] < best
        merged[better], state[better], spin[better], best[better] = (labels[s][better], states[s][better], s,
                                                                     rank[s][better])
    return merged.astype(str), state, spin


def shallow_note(spin: dict, parameters: dict) -> str:
    """`` (2 of them shallow, < 0.3 eV from their band edge)`` for a spin summary with shallow traps, else ''."""
    shallow = spin.get('n_shallow_traps', 0)  # labellings stored before the shallow flag have no count
    if not shallow:
        return ''
    which = 'all' if shallow == spin['n_hole_traps'] + spin['n_electron_traps'] else f'{shallow} of them'
    return f" ({which} shallow, < {parameters.get('shallow_depth', 0.3):g} eV from their band edge)"


class BandEdgeNotFound(ValueError):
    """No band-like state on one side of the gap in the MO window (``side``: 'valence' or 'conduction'); the message
    says how many states of that side passed each criterion of the band test."""

    def __init__(self, message: str, side: str):
        super().__init__(message)
        self.side = side


def _band_tests(shares, participation, classes, side: str, params: LabelingParameters):
    """The criteria of the authors' band test for the states (rows of ``shares``) on the valence (anion) or conduction
    (cation) side: ``(pr_ok, uc_ok, on_role, pr_needed)``."""
    role = 'anion' if side == 'valence' else 'cation'
    in_role = classes[0] == role
    uc = in_role & classes[1]
    n_role, n_uc = int(in_role.sum()), int(uc.sum())
    if n_role == 0:
        raise ValueError(f'the QD has no {role} atoms: cannot find the {side} band edge')
    m = shares.shape[1]
    alpha_role = shares[:, in_role].sum(axis=1)
    alpha_uc = shares[:, uc].sum(axis=1)
    alpha_fc = alpha_role - alpha_uc
    with np.errstate(divide='ignore', invalid='ignore'):
        pr_needed = params.pr_factor * (n_role / m) / alpha_role
        uc_ratio = np.inf if n_uc == n_role else params.uc_factor * n_uc / (n_role - n_uc)
        uc_ok = alpha_uc <= uc_ratio * alpha_fc if np.isfinite(uc_ratio) else np.ones(len(shares), bool)
    return participation >= pr_needed, uc_ok, alpha_role > 0, pr_needed


def _band_like(shares, participation, classes, side: str, params: LabelingParameters) -> np.ndarray:
    """The authors' band test for the states (rows of ``shares``) on the valence (anion) or conduction side."""
    pr_ok, uc_ok, on_role, _ = _band_tests(shares, participation, classes, side, params)
    return pr_ok & uc_ok & on_role


def _no_edge_message(side: str, states: States, classes, params: LabelingParameters, n_window: int,
                     n_occupied: int) -> str:
    """Why the scan found no band edge on ``side``: how many states of that side passed each criterion."""
    role = 'anion' if side == 'valence' else 'cation'
    mask = states.occupied if side == 'valence' else ~states.occupied
    pr_ok, uc_ok, on_role, needed = _band_tests(states.shares[mask], states.participation[mask], classes, side, params)
    band = pr_ok & uc_ok & on_role
    kind = 'occupied' if side == 'valence' else 'virtual'
    text = (f'no band-like {side} state in the MO window of {n_window} MOs ({n_occupied} occupied): of its '
            f'{int(mask.sum())} {kind} states {int((pr_ok & on_role).sum())} pass the participation test (PR ≥ '
            f'{params.pr_factor:g}·(n_{role}/M)/α_{role}), {int((uc_ok & on_role).sum())} the under-coordination '
            f'test (α_UC-{role} ≤ {params.uc_factor:g}·n_UC/(n_{role} − n_UC)·α_FC-{role}), {int(band.sum())} both')
    if (~on_role).any():
        text += f'; {int((~on_role).sum())} have no weight on {role} atoms'
    if side == 'conduction' and band.any():
        text += (f', and each of these is among the first {params.quantum_confined_virtuals} virtual MOs, which are '
                 'taken as quantum-confined and skipped (quantum_confined_virtuals)')
    failing = np.flatnonzero(on_role & ~pr_ok)
    if len(failing):
        ratio = states.participation[mask][failing] / needed[failing]
        best = failing[int(np.argmax(ratio))]
        text += (f'; closest to the participation test: the state at {states.energies[mask][best]:.3f} eV, PR '
                 f'{states.participation[mask][best]:.3f} of the {needed[best]:.3f} needed')
    more = ('virtual MOs (mo_window.virtual and ADDED_MOS)' if side == 'conduction'
            else 'occupied MOs (mo_window.occupied)')
    return f'{text}. Enlarge the window: more {more}'


def _state_block(orbitals, ao_atom, n_atoms, core, method, overlap, coefficients):
    if method == 'lowdin':
        pops = np.zeros((orbitals.shape[1], n_atoms))
        np.add.at(pops.T, np.asarray(ao_atom, dtype=int), orbitals ** 2)
    else:
        pops = populations.atomic_populations(coefficients, overlap, ao_atom, n_atoms, method='mulliken')
    shares = populations.renormalize(pops, core)
    return pops, shares, populations.participation_ratio(shares)


def _same_multiplet(index: int, qc: np.ndarray, energies, shares, params) -> bool:
    """Whether state ``index`` lies within ``qc_multiplet_window`` of a quantum-confined state with the same centre
    (atom of largest population) whose population vector over the core atoms points the same way (cosine ≥
    ``qc_multiplet_similarity``)."""
    if shares is None or not qc.any():
        return False
    centres = np.argmax(shares, axis=1)
    near = np.flatnonzero(qc & (np.abs(energies - energies[index]) <= params.qc_multiplet_window)
                          & (centres == centres[index]))
    if not len(near):
        return False
    unit = shares / np.maximum(np.linalg.norm(shares, axis=1, keepdims=True), 1e-300)
    return bool((unit[near] @ unit[index] >= params.qc_multiplet_similarity).any())


def _scan(energies, band_like, occupied, params, side, shares=None):
    """Index (into the energy-sorted states) of the band edge on one side; QC flags for the conduction side
    (band-like states among the first ``quantum_confined_virtuals`` virtual MOs, and the members of their multiplets,
    :func:`_same_multiplet`)."""
    qc = np.zeros(len(energies), dtype=bool)
    if side == 'valence':
        order = np.flatnonzero(occupied)[::-1]
        for idx in order:
            if band_like[idx]:
                return int(idx), qc
        return None, qc
    order = np.flatnonzero(~occupied)
    for rank, idx in enumerate(order):
        confined_window = rank < params.quantum_confined_virtuals
        if confined_window and (band_like[idx] or _same_multiplet(idx, qc, energies, shares, params)):
            qc[idx] = True
            continue
        if band_like[idx]:
            return int(idx), qc
    return None, qc


def _clusters(energies: np.ndarray, tol: float) -> list[np.ndarray]:
    """Runs of consecutive (sorted) energies whose neighbour spacing is below ``tol``."""
    breaks = np.flatnonzero(np.diff(energies) >= tol) + 1
    return np.split(np.arange(len(energies)), breaks)


def label_traps(symbols, positions, energies, occupations, coefficients, overlap, ao_atom,
                params: LabelingParameters | None = None, roles=None) -> TrapLabels:
    """Label the band edges, trap states and atoms of one spin channel.

    :param symbols: element per atom (N,); :param positions: Cartesian coordinates (N, 3) in Å.
    :param energies: MO energies of the window (nwin,) in eV, any order; :param occupations: their occupations.
    :param coefficients: window MO coefficients (nao, nwin); :param overlap: AO overlap (nao, nao);
    :param ao_atom: atom of every AO (nao,).
    :param roles: optional 'cation'/'anion'/'ligand' per atom (default: :func:`~aiida_qdtraps.builder.roles.infer_roles`
        of the elements).
    :raises ValueError: for inconsistent sizes, an overlap that is not positive definite, or a window without both
        HOMO and LUMO (each message names the offending value); :class:`BandEdgeNotFound` (a ``ValueError``) for a
        window without a band-like state on one side, saying how many states passed each criterion.
    """
    params = params or LabelingParameters()
    symbols = list(symbols)
    positions = np.asarray(positions, dtype=float)
    n_atoms = len(symbols)
    if positions.shape != (n_atoms, 3):
        raise ValueError(f'positions have shape {positions.shape} but there are {n_atoms} atoms')
    energies = np.asarray(energies, dtype=float)
    occupations = np.asarray(occupations, dtype=float)
    coefficients = np.asarray(coefficients, dtype=float)
    ao_atom = np.asarray(ao_atom, dtype=int)
    if energies.ndim != 1 or occupations.shape != energies.shape:
        raise ValueError(f'energies {energies.shape} and occupations {occupations.shape} must be equal 1-D arrays')
    if coefficients.ndim != 2 or coefficients.shape[1] != len(energies):
        raise ValueError(f'coefficients have shape {coefficients.shape}; expected (nao, {len(energies)})')
    if len(ao_atom) != coefficients.shape[0]:
        raise ValueError(f'ao_atom has {len(ao_atom)} entries but the coefficients have {coefficients.shape[0]} AOs')
    if ao_atom.size and ao_atom.max() >= n_atoms:
        raise ValueError(f'ao_atom refers to atom {int(ao_atom.max())} but the structure has {n_atoms} atoms')
    occupied_mask = occupations > 1e-3
    if not occupied_mask.any() or occupied_mask.all():
        raise ValueError(f'the MO window must contain the HOMO and the LUMO: it has {int(occupied_mask.sum())} '
                         f'occupied and {int((~occupied_mask).sum())} virtual MOs')

    roles = infer_roles(symbols) if roles is None else np.asarray(roles)
    if roles.shape != (n_atoms,) or not set(roles) <= {'cation', 'anion', 'ligand'}:
        raise ValueError(f'roles must be one of cation/anion/ligand per atom ({n_atoms}), got {sorted(set(roles))}')
    pairs = bonds.bond_pairs(positions, symbols, params.bond_scale, params.same_element_bond_scale)
    cn = bonds.coordination_numbers(pairs, n_atoms)
    core = roles != 'ligand'
    if not core.any():
        raise ValueError('the structure has no cation or anion atoms')
    core_roles = roles[core]
    core_uc = cn[core] < params.full_coordination
    classes = (core_roles, core_uc)

    order = np.argsort(energies, kind='stable')
    energies, occupied_mask, coefficients = energies[order], occupied_mask[order], coefficients[:, order]
    orth = populations.overlap_sqrt_times(overlap, coefficients, ao_positions=positions[ao_atom])
    norms = np.einsum('ij,ij->j', orth, orth)
    if np.abs(norms - 1).max() > 1e-3:
        bad = int(np.argmax(np.abs(norms - 1)))
        raise ValueError(f'window MO {int(order[bad])} is not normalised in the given overlap (norm {norms[bad]:.4f}): '
                         'are coefficients, overlap and AO order from the same calculation?')

    def build(orbitals, state_energies, occ, loc, sources, coeff):
        pops, shares, pr = _state_block(orbitals, ao_atom, n_atoms, core, params.population_method, overlap, coeff)
        return States(state_energies, occ, pops, shares, pr, loc, orbitals, sources)

    canonical = build(orth, energies, occupied_mask, np.zeros(len(energies), bool),
                      [[int(order[k])] for k in range(len(energies))], coefficients)
    states = canonical
    localized_clusters: set[tuple[int, ...]] = set()
    for _ in range(len(energies) + 1):
        band = np.zeros(len(states.energies), bool)
        for side, mask in (('valence', states.occupied), ('conduction', ~states.occupied)):
            band[mask] = _band_like(states.shares[mask], states.participation[mask], classes, side, params)[:]
        vbm_i, _ = _scan(states.energies, band, states.occupied, params, 'valence')
        cbm_i, qc = _scan(states.energies, band, states.occupied, params, 'conduction', states.shares)
        if vbm_i is None or cbm_i is None:
            side = 'valence' if vbm_i is None else 'conduction'
            raise BandEdgeNotFound(_no_edge_message(side, states, classes, params, len(energies),
                                                    int(occupied_mask.sum())), side)
        if not params.localize:
            break
        # Clusters of the canonical spectrum inside the scan region (HOMO→VBM, LUMO→CBM), edges included.
        low, high = states.energies[vbm_i], states.energies[cbm_i]
        todo = []
        for side_mask in (occupied_mask, ~occupied_mask):
            idx = np.flatnonzero(side_mask)
            for cluster in _clusters(energies[idx], params.degeneracy_tol):
                members = idx[cluster]
                if not 2 <= len(members) <= params.max_cluster_size:
                    continue
                span = energies[members]
                if span.max() >= low - 1e-9 and span.min() <= high + 1e-9 and tuple(members) not in localized_clusters:
                    todo.append(tuple(members))
        if not todo:
            break
        localized_clusters.update(todo)
        states = _refine(canonical, energies, orth, coefficients, ao_atom, n_atoms, sorted(localized_clusters),
                         build)

    kinds = np.full(len(states.energies), '', dtype=object)
    kinds[qc] = 'quantum-confined'
    traps = []
    vbm, cbm = float(states.energies[vbm_i]), float(states.energies[cbm_i])
    core_index = np.flatnonzero(core)
    neighbours = bonds.neighbour_lists(pairs, n_atoms)
    for s in range(len(states.energies)):
        if kinds[s]:
            continue
        if states.occupied[s]:
            kinds[s] = 'valence' if s <= vbm_i else 'hole-trap'  # no band-like state lies between VBM and HOMO
        else:
            kinds[s] = 'conduction' if s >= cbm_i else 'electron-trap'  # band-like ones below the CBM are QC
        if kinds[s] in ('hole-trap', 'electron-trap'):
            centre = int(core_index[int(np.argmax(states.shares[s]))])
            hole = kinds[s] == 'hole-trap'
            same = [int(j) for j in neighbours[centre] if symbols[j] == symbols[centre]]
            depth = float(states.energies[s] - vbm) if hole else float(cbm - states.energies[s])
            traps.append({
                'state': s, 'carrier': 'hole' if hole else 'electron', 'energy': float(states.energies[s]),
                'depth': depth, 'shallow': bool(depth < params.shallow_depth),
                'participation_ratio': float(states.participation[s]), 'center': centre,
                'center_element': symbols[centre], 'center_coordination': int(cn[centre]),
                'center_share': float(states.shares[s].max()),
                'ligand_share': float(states.populations[s, ~core].sum() / states.populations[s].sum()),
                'kind': 'structural' if cn[centre] >= params.full_coordination else 'under-coordinated',
                'homo_dimer': bool(same), 'high_coordination': bool(cn[centre] > params.full_coordination),
                'localized': bool(states.localized[s]), 'mo_indices': list(states.sources[s]),
            })
    labels, atom_state = _atom_labels(states, kinds, core, roles, cn, params, vbm_i, cbm_i)
    homo = float(energies[occupied_mask].max())
    lumo = float(energies[~occupied_mask].min())
    return TrapLabels(vbm, cbm, homo, lumo, states, band, np.array(kinds, dtype=str), traps, cn, roles, labels,
                      atom_state, pairs, len(localized_clusters))


def _refine(canonical: States, energies, orth, coefficients, ao_atom, n_atoms, clusters, build) -> States:
    """The canonical states with every cluster replaced by its Pipek–Mezey orbitals, re-sorted by energy."""
    in_cluster = np.zeros(len(energies), bool)
    keep = None
    columns, coeffs, new_energies, occ, loc, sources = [], [], [], [], [], []
    for members in clusters:
        members = np.array(members)
        in_cluster[members] = True
        u = localization.localize_pipek_mezey(orth[:, members], ao_atom, n_atoms)
        columns.append(orth[:, members] @ u)
        coeffs.append(coefficients[:, members] @ u)
        new_energies.append((u ** 2).T @ energies[members])
        occ.append(np.full(len(members), canonical.occupied[members[0]]))
        loc.append(np.ones(len(members), bool))
        sources.extend([[canonical.sources[m][0] for m in members]] * len(members))
    keep = np.flatnonzero(~in_cluster)
    orbitals = np.concatenate([orth[:, keep]] + columns, axis=1)
    rotated = np.concatenate([coefficients[:, keep]] + coeffs, axis=1)
    state_energies = np.concatenate([energies[keep]] + new_energies)
    occupied = np.concatenate([canonical.occupied[keep]] + occ)
    localized = np.concatenate([np.zeros(len(keep), bool)] + loc)
    sources = [canonical.sources[k] for k in keep] + sources
    order = np.argsort(state_energies, kind='stable')
    return build(orbitals[:, order], state_energies[order], occupied[order], localized[order],
                 [sources[k] for k in order], rotated[:, order])


def _atom_labels(states: States, kinds, core, roles, cn, params, vbm_i, cbm_i):
    """Per-atom labels (ATOM_LABELS) and the state each non-ligand atom was assigned (-1: none)."""
    n_atoms = len(roles)
    labels = np.full(n_atoms, 'ligand', dtype=object)
    atom_state = np.full(n_atoms, -1, dtype=int)
    core_index = np.flatnonzero(core)
    dominant = states.shares >= params.atom_share * states.shares.max(axis=1, keepdims=True)  # (ns, M)
    for role, scan in (('anion', np.flatnonzero(states.occupied)[::-1]), ('cation', np.flatnonzero(~states.occupied))):
        columns = np.flatnonzero(roles[core] == role)
        if not len(columns):
            continue
        hits = dominant[np.ix_(scan, columns)]
        found = hits.any(axis=0)
        first = np.argmax(hits, axis=0)
        for col, ok, rank in zip(columns, found, first):
            atom = core_index[col]
            if not ok:
                labels[atom] = 'bulk'
                continue
            s = int(scan[rank])
            atom_state[atom] = s
            beyond = (s <= vbm_i) if role == 'anion' else (s >= cbm_i)
            if beyond or kinds[s] in ('quantum-confined', 'valence', 'conduction'):
                labels[atom] = 'bulk'
            else:
                labels[atom] = 'structural' if cn[atom] > params.full_coordination - 1 else 'under-coordinated'
    return np.array(labels, dtype=str), atom_state

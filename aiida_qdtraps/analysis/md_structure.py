"""Structural analyses of an MD trajectory of a finite cluster (pure; numpy/scipy): radial distribution functions
per element pair and root-mean-square fluctuations after rigid-body alignment.

Conventions (docs/dynamics/rdf.md, docs/dynamics/rmsf.md):

* RDF of a finite cluster, no periodic images. For the pair A–B the primary quantity is the pair-distance density
  ``n_AB(r) = counts_AB(r) / (N_A · F · Δr)`` (Å⁻¹): the mean number of B atoms at distance r..r+Δr from an A atom,
  per Å. Its running integral ``N_AB(r)`` is the mean coordination number of A by B within r, exact for any
  cluster. ``g_AB(r) = n_AB(r) / (4π r² ρ_B)`` divides by the ideal-gas count at the density of B inside the
  cluster, ``ρ_B = N_B / V`` (``N_B − 1`` for A = B), with ``V`` the volume of the convex hull of all atoms (mean
  over up to 10 frames). For a finite cluster g(r) is not 1 at large r: it falls to 0 at the cluster's diameter
  (a uniform sphere of radius R gives ``1 − 3r/4R + r³/16R³``). A flat or linear cluster has no volume: its g(r)
  is NaN, n(r) and N(r) stay exact.
* RMSF: every frame is rigidly superimposed (Kabsch, optionally mass-weighted) on a reference — the first frame,
  then the mean of the aligned frames (two passes) — and ``RMSF_i = sqrt(<|x_i(t) − <x_i>|²>_t)`` (Å).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError, cKDTree

#: Frames processed at once by the chunked kernels.
CHUNK_FRAMES = 256


def _positions(positions) -> np.ndarray:
    array = np.asarray(positions)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1:
        raise ValueError(f'positions have shape {array.shape}, expected (frames, atoms, 3)')
    return array


def parse_pair(pair: str | tuple[str, str]) -> tuple[str, str]:
    """``'Pb-O'`` or ``('Pb', 'O')`` → ``('Pb', 'O')``; ValueError naming a malformed pair."""
    if isinstance(pair, str):
        parts = pair.split('-')
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"element pair {pair!r} is not of the form 'A-B' (e.g. 'Pb-O')")
        return parts[0], parts[1]
    if len(pair) != 2:
        raise ValueError(f'element pair {pair!r} does not have two elements')
    return str(pair[0]), str(pair[1])


def cluster_volume(positions) -> float:
    """Mean convex-hull volume (Å³) of up to 10 evenly spaced frames of ``positions`` (F, N, 3)."""
    positions = _positions(positions)
    if positions.shape[1] < 4:
        raise ValueError(f'a cluster volume needs at least 4 atoms, got {positions.shape[1]}')
    picks = np.unique(np.linspace(0, positions.shape[0] - 1, min(10, positions.shape[0])).astype(int))
    try:
        return float(np.mean([ConvexHull(np.asarray(positions[k], dtype=float)).volume for k in picks]))
    except QhullError:
        raise ValueError('the cluster is flat or linear (its atoms span no volume)') from None


def rdf(symbols, positions, pairs, r_max: float = 8.0, dr: float = 0.02, volume: float | None = None,
        skin: float = 1.0) -> dict:
    """Radial distribution functions of element ``pairs`` (``['Pb-O', ...]``) of a finite cluster.

    Pair distances of every frame come from a Verlet list: a :class:`scipy.spatial.cKDTree` search up to
    ``r_max + skin`` (Å), rebuilt whenever an atom has moved more than ``skin/2`` since the last build, so no pair
    within ``r_max`` is missed; histograms of width ``dr`` (Å) are summed over frames.
    Returns ``{'r': bin centres (Å), 'volume': V (Å³),
    'pairs': {'A-B': {'g': g(r), 'n': n(r) (Å⁻¹), 'coordination': N(r), 'n_a': N_A, 'n_b': N_B}}}``.
    """
    symbols = [str(s) for s in symbols]
    positions = _positions(positions)
    if positions.shape[1] != len(symbols):
        raise ValueError(f'{len(symbols)} symbols for {positions.shape[1]} atoms')
    if not r_max > 0 or not dr > 0 or dr >= r_max:
        raise ValueError(f'need 0 < dr < r_max, got dr={dr}, r_max={r_max}')
    parsed = [parse_pair(p) for p in pairs]
    if not parsed:
        raise ValueError('no element pair given')
    elements = sorted(set(symbols))
    for a, b in parsed:
        for element in (a, b):
            if element not in elements:
                raise ValueError(f"element {element!r} of pair '{a}-{b}' is not in the cluster (elements {elements})")
    kind = np.array([elements.index(s) for s in symbols])
    n_kinds, n_bins = len(elements), int(np.ceil(r_max / dr))
    edges = np.arange(n_bins + 1) * dr
    wanted = np.zeros((n_kinds, n_kinds), dtype=bool)
    for a, b in parsed:
        wanted[elements.index(a), elements.index(b)] = wanted[elements.index(b), elements.index(a)] = True
    slots = n_bins + 1  # one overflow bin per kind pair for the Verlet list's pairs beyond r_max
    counts = np.zeros(n_kinds * n_kinds * slots, dtype=np.int64)
    for pair_code, distances in _pair_distances(positions, kind, wanted, edges[-1], skin):
        b = np.minimum(distances * np.float32(1.0 / dr), n_bins).astype(np.int32)  # (P, C)
        counts += np.bincount((b + (pair_code * slots)[:, None]).ravel(), minlength=counts.size)
    counts = counts.reshape(n_kinds * n_kinds, slots)[:, :n_bins].ravel()
    counts = counts.reshape(n_kinds, n_kinds, n_bins)
    n_frames = positions.shape[0]
    if volume is None:
        try:
            volume = cluster_volume(positions)
        except ValueError:  # a flat or linear cluster has n(r) and N(r) but no density: g(r) is NaN
            volume = float('nan')
    volume = float(volume)
    r = 0.5 * (edges[1:] + edges[:-1])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    result = {'r': r, 'volume': volume, 'r_max': float(edges[-1]), 'dr': float(dr), 'n_frames': int(n_frames),
              'pairs': {}}
    for a, b in parsed:
        ka, kb = elements.index(a), elements.index(b)
        n_a, n_b = int(np.sum(kind == ka)), int(np.sum(kind == kb))
        unordered = counts[min(ka, kb), max(ka, kb)].astype(float)
        per_a = 2.0 * unordered if ka == kb else unordered  # each A-A pair is a neighbour of both its atoms
        n_r = per_a / (n_a * n_frames * dr)
        partners = n_b - 1 if ka == kb else n_b
        rho_b = partners / volume
        if partners and np.isfinite(volume):
            g = np.divide(n_r * dr, rho_b * shell, out=np.zeros_like(n_r), where=shell > 0)
        else:
            g = np.full_like(n_r, np.nan if not np.isfinite(volume) else 0.0)
        result['pairs'][f'{a}-{b}'] = {'g': g, 'n': n_r, 'coordination': np.cumsum(n_r) * dr, 'n_a': n_a,
                                       'n_b': n_b}
    return result


def _pair_distances(positions, kind, wanted, r_max: float, skin: float):
    """Yield ``(pair codes (P,), distances (C, P))`` for chunks of frames: the distances of every atom pair of a
    wanted kind combination that may be within ``r_max`` (Verlet list with ``skin``, rebuilt when needed)."""
    if not skin >= 0:
        raise ValueError(f'skin must be non-negative, got {skin}')
    n_kinds = wanted.shape[0]
    reference = i = j = code = None
    n_frames, start = positions.shape[0], 0
    while start < n_frames:
        chunk = np.asarray(positions[start:start + CHUNK_FRAMES // 8], dtype=np.float32)
        if reference is not None:
            moved = np.sqrt(np.max(np.sum((chunk - reference) ** 2, axis=2), axis=1))
            stale = np.flatnonzero(moved > 0.5 * skin)
            if stale.size:
                chunk = chunk[:stale[0]]
        if reference is None or not len(chunk):  # (re)build the list on the first frame of the chunk
            reference = np.asarray(positions[start], dtype=np.float32)
            pairs = cKDTree(reference).query_pairs(r_max + skin, output_type='ndarray')
            if len(pairs):
                ki, kj = kind[pairs[:, 0]], kind[pairs[:, 1]]
                keep = wanted[ki, kj]
                pairs, ki, kj = pairs[keep], ki[keep], kj[keep]
                code = np.minimum(ki, kj) * n_kinds + np.maximum(ki, kj)
            else:
                code = np.zeros(0, dtype=np.int64)
            i, j = pairs[:, 0], pairs[:, 1]
            continue
        if len(i):
            # Atom-major copy of the chunk: gathering whole rows (all frames of an atom) is the fast direction.
            rows = np.ascontiguousarray(chunk.transpose(1, 0, 2)).reshape(chunk.shape[1], -1)
            delta = (rows[i] - rows[j]).reshape(len(i), len(chunk), 3)
            yield code, np.sqrt(np.einsum('pfk,pfk->pf', delta, delta))
        start += len(chunk)


def kabsch_rotations(frames: np.ndarray, reference: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rotations (F, 3, 3) that best superimpose centred ``frames`` (F, N, 3) on the centred ``reference`` (N, 3):
    ``frames[k] @ R[k] ≈ reference`` in the weighted least-squares sense (proper rotations, det +1)."""
    h = np.einsum('fni,nj->fij', frames * weights[None, :, None], reference)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= d[:, None]
    return u @ vt


def _aligned_moments(positions, reference, weights):
    """Sum and sum of squares over frames of the frames superimposed on ``reference`` (centred), in float64."""
    n_atoms = positions.shape[1]
    total, squares = np.zeros((n_atoms, 3)), np.zeros(n_atoms)
    for start in range(0, positions.shape[0], CHUNK_FRAMES):
        chunk = np.asarray(positions[start:start + CHUNK_FRAMES], dtype=np.float64)
        chunk = chunk - np.einsum('fni,n->fi', chunk, weights)[:, None, :]
        aligned = chunk @ kabsch_rotations(chunk, reference, weights)
        total += aligned.sum(axis=0)
        squares += np.einsum('fni,fni->n', aligned, aligned)
    return total, squares


def rmsf(positions, masses=None, labels=None, symbols=None) -> dict:
    """Root-mean-square fluctuation (Å) of every atom about its mean position after rigid-body alignment.

    ``positions`` (F, N, 3) Å; ``masses`` (N,) for a mass-weighted superposition (default: equal weights).
    Averages are given per element (with ``symbols``) and per class (``labels``, e.g. core / surface / ligand).
    Returns ``{'rmsf': (N,), 'mean_positions': (N, 3), 'per_element': {...}, 'per_label': {...}}``.
    """
    positions = _positions(positions)
    n_frames, n_atoms, _ = positions.shape
    weights = np.ones(n_atoms) if masses is None else np.asarray(masses, dtype=float)
    if weights.shape != (n_atoms,) or np.any(weights <= 0) or not np.all(np.isfinite(weights)):
        raise ValueError(f'masses must be {n_atoms} positive numbers, got shape {weights.shape}')
    weights = weights / weights.sum()
    reference = np.asarray(positions[0], dtype=np.float64)
    reference = reference - weights @ reference
    for _ in range(2):  # first frame, then the mean of the frames aligned on it
        total, squares = _aligned_moments(positions, reference, weights)
        mean = total / n_frames
        reference = mean - weights @ mean
    values = np.sqrt(np.maximum(squares / n_frames - np.sum(mean ** 2, axis=1), 0.0))
    result = {'rmsf': values, 'mean_positions': mean, 'per_element': {}, 'per_label': {}}
    for name, groups in (('per_element', symbols), ('per_label', labels)):
        if groups is None:
            continue
        groups = np.asarray([str(g) for g in groups])
        if groups.shape != (n_atoms,):
            raise ValueError(f'{name[4:]} array has {groups.size} entries for {n_atoms} atoms')
        result[name] = {str(g): {'mean': float(values[groups == g].mean()), 'std': float(values[groups == g].std()),
                                 'count': int(np.sum(groups == g))} for g in sorted(set(groups))}
    return result


def site_classes(symbols, positions, roles=None, scale: float = 1.25) -> np.ndarray:
    """``'core'``, ``'surface'`` or ``'ligand'`` for every atom of one frame, for per-class RMSF averages.

    Ligand atoms are those of role ``'ligand'`` (``roles``, default from the elements,
    :func:`aiida_qdtraps.builder.roles.infer_roles`). A cation or anion is ``'core'`` when it has as many bonded
    counter-ions (covalent radii × ``scale``) as the most coordinated atom of its role in the cluster (4 in a
    zincblende, 6 in a rock-salt core), else ``'surface'``.
    """
    from ase import Atoms

    from ..builder.roles import bonded_pairs, infer_roles

    symbols = [str(s) for s in symbols]
    positions = np.asarray(positions, dtype=float)
    if positions.shape != (len(symbols), 3):
        raise ValueError(f'positions have shape {positions.shape}, expected ({len(symbols)}, 3)')
    roles = infer_roles(symbols) if roles is None else np.asarray([str(r) for r in roles])
    if roles.shape != (len(symbols),):
        raise ValueError(f'{roles.size} roles for {len(symbols)} atoms')
    pairs = bonded_pairs(Atoms(symbols, positions=positions), scale=scale)
    counter = {('cation', 'anion'), ('anion', 'cation')}
    keep = np.array([(roles[i], roles[j]) in counter for i, j in pairs], dtype=bool).reshape(-1)
    counts = np.bincount(pairs[keep].ravel(), minlength=len(symbols)) if keep.any() else np.zeros(len(symbols), int)
    classes = np.full(len(symbols), 'ligand', dtype='<U7')
    for role in ('cation', 'anion'):
        members = roles == role
        if members.any():
            full = counts[members].max()
            classes[members] = np.where(counts[members] >= full, 'core', 'surface')
    return classes


def frozen_atoms(symbols, positions, spec: str, roles=None) -> list[int]:
    """Indices of the atoms an MD holds fixed, from ``spec``: comma-separated element symbols (``'Cd,Se'``: the whole
    nanocrystal, Sowa et al.'s FF1) and/or ``'core'`` (the cations and anions with a full shell of counter-ions,
    :func:`site_classes`: the interior held, the surface free, their FF2).

    :raises ValueError: naming a token that selects nothing (an element the QD lacks; ``core`` in a QD whose every
        cation and anion is at the surface), ``core`` where it is every cation and anion (a cluster too small to have
        an interior: nothing of the nanocrystal would move), or an empty ``spec``.
    """
    symbols = [str(s) for s in symbols]
    tokens = [token.strip() for token in str(spec).split(',') if token.strip()]
    if not tokens:
        raise ValueError(f'{spec!r} names no elements and not `core`')
    chosen = set()
    for token in tokens:
        if token.lower() == 'core':
            classes = site_classes(symbols, positions, roles)
            core = np.flatnonzero(classes == 'core')
            if not len(core):
                raise ValueError(f"{spec!r}: the QD has no core atoms (every cation and anion lacks a full shell of "
                                 "counter-ions: all are surface)")
            if not (classes == 'surface').any():
                raise ValueError(f"{spec!r}: every cation and anion of the QD has as many counter-ions as the most "
                                 "coordinated of its kind, so `core` is the whole nanocrystal and no surface atom "
                                 "would move; name its elements to hold it all (FF1)")
            chosen.update(int(i) for i in core)
        elif token in symbols:
            chosen.update(i for i, symbol in enumerate(symbols) if symbol == token)
        else:
            raise ValueError(f"{spec!r}: the QD has no {token!r} (it has {sorted(set(symbols))}; or give `core`)")
    return sorted(chosen)

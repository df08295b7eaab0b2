"""Carboxylate binding modes along a trajectory (pure; numpy/scikit-learn), after Sowa et al. (MLFF ligands).

For every carboxylate (C with its two O) and frame: the *primary* metal M* is the metal atom nearest to the
midpoint of the two oxygens; ``r1 < r2`` are the two M*–O distances; ``r3`` is the shortest O–M distance to any
metal other than M*. No distance cut-off enters r1..r3. The modes (docs/dynamics/binding_modes.md):

* ``bridge``: the two O bind two different metals — r2 long, r3 short;
* ``tilted-bridge``: M* binds both O and a second metal binds one — r2 and r3 both short;
* ``chelate``: M* binds both O, no second metal — r2 short, r3 long;
* ``unidentate``: one M–O bond — r2 and r3 long;
* ``unbound``: even r1 beyond the bond cut-off.

Bridge and tilted-bridge are separated as in the paper, by k-means (scikit-learn, 2 clusters) on the (r2, r3)
points whose r3 is within the bond cut-off; a cluster whose centre has r2 within the cut-off is the tilted bridge,
the other the bridge (so a trajectory with only one of the two is not split in two). Chelate, unidentate and
unbound need the cut-off (default 3.0 Å, the distance Sowa et al. use for an O bound to no Pb).
"""

from __future__ import annotations

import numpy as np

MODES = ('bridge', 'tilted-bridge', 'chelate', 'unidentate', 'unbound')
#: Largest C–O distance (Å) of a carboxylate C=O / C–O bond.
CO_BOND = 1.45
#: M–O distance (Å) up to which an O counts as bound to a metal (chelate / unidentate / unbound only).
BOND_CUTOFF = 3.0


def find_carboxylates(symbols, positions, co_bond: float = CO_BOND) -> np.ndarray:
    """(L, 3) indices ``(C, O_a, O_b)`` of every carbon with exactly two oxygens within ``co_bond`` Å (one frame)."""
    symbols = np.asarray([str(s) for s in symbols])
    positions = np.asarray(positions, dtype=float)
    carbons, oxygens = np.flatnonzero(symbols == 'C'), np.flatnonzero(symbols == 'O')
    if not carbons.size or not oxygens.size:
        return np.zeros((0, 3), dtype=int)
    d = np.linalg.norm(positions[carbons][:, None] - positions[oxygens][None], axis=2)
    rows = []
    for k, c in enumerate(carbons):
        bonded = oxygens[d[k] <= co_bond]
        if bonded.size == 2:
            rows.append((c, *sorted(bonded)))
    return np.array(rows, dtype=int).reshape(-1, 3)


def check_carboxylates(symbols, positions, carboxylates, co_bond: float = 1.8) -> np.ndarray:
    """``carboxylates`` as (L, 3) ints, each ``(C, O, O)`` with two distinct O bonded (≤ ``co_bond`` Å, frame 0) to
    the C; ValueError naming the first carboxylate that is not one."""
    symbols = [str(s) for s in symbols]
    try:
        triples = np.asarray(carboxylates, dtype=int)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'carboxylates must be (C, O, O) index triples: {exc}') from None
    if triples.ndim != 2 or triples.shape[1] != 3:
        raise ValueError(f'carboxylates must be (C, O, O) index triples, got shape {triples.shape}')
    positions = np.asarray(positions, dtype=float)
    for k, (c, o1, o2) in enumerate(triples):
        if min(c, o1, o2) < 0 or max(c, o1, o2) >= len(symbols):
            raise ValueError(f'carboxylate {k} {(int(c), int(o1), int(o2))} has an atom index outside 0..'
                             f'{len(symbols) - 1}')
        kinds = (symbols[c], symbols[o1], symbols[o2])
        if kinds != ('C', 'O', 'O') or o1 == o2:
            raise ValueError(f'carboxylate {k} {(int(c), int(o1), int(o2))} is {"-".join(kinds)}, not a carbon with '
                             'two distinct oxygens')
        for o in (o1, o2):
            distance = float(np.linalg.norm(positions[o] - positions[c]))
            if distance > co_bond:
                raise ValueError(f'carboxylate {k}: O {int(o)} is {distance:.2f} Å from C {int(c)}, not bonded '
                                 f'(> {co_bond} Å)')
    return triples


def binding_distances(symbols, positions, carboxylates, metal: str = 'Pb') -> dict:
    """r1, r2, r3 (F, L) in Å and the primary metal's index (F, L) of every carboxylate and frame.

    ``positions`` (F, N, 3) Å; ``carboxylates`` (L, 3) ``(C, O, O)``; ``metal`` the element of the metal atoms
    (at least two of them).
    """
    symbols = np.asarray([str(s) for s in symbols])
    positions = np.asarray(positions, dtype=float)
    if positions.ndim == 2:
        positions = positions[None]
    if positions.ndim != 3 or positions.shape[1:] != (symbols.size, 3):
        raise ValueError(f'positions have shape {positions.shape}, expected (frames, {symbols.size}, 3)')
    triples = check_carboxylates(symbols, positions[0], carboxylates)
    metals = np.flatnonzero(symbols == metal)
    if metals.size < 2:
        raise ValueError(f'r3 needs at least two {metal} atoms, the structure has {metals.size}')
    o = positions[:, triples[:, 1:]]  # (F, L, 2, 3)
    m = positions[:, metals]  # (F, M, 3)
    mid = o.mean(axis=2)
    primary = np.argmin(np.linalg.norm(mid[:, :, None] - m[:, None], axis=3), axis=2)  # (F, L)
    d = np.linalg.norm(o[:, :, :, None] - m[:, None, None], axis=4)  # (F, L, 2, M)
    frames, ligands = np.indices(primary.shape)
    to_primary = d[frames, ligands, :, primary]  # (F, L, 2)
    others = d.copy()
    others[frames, ligands, :, primary] = np.inf
    return {'r1': to_primary.min(axis=2), 'r2': to_primary.max(axis=2), 'r3': others.min(axis=(2, 3)),
            'primary_metal': metals[primary], 'carboxylates': triples}


def classify(r1, r2, r3, bond_cutoff: float = BOND_CUTOFF, seed: int = 0) -> np.ndarray:
    """Mode label (one of :data:`MODES`) of every (r1, r2, r3) point; arrays of any equal shape."""
    from sklearn.cluster import KMeans

    r1, r2, r3 = (np.asarray(x, dtype=float) for x in (r1, r2, r3))
    if not (r1.shape == r2.shape == r3.shape):
        raise ValueError(f'r1, r2, r3 have shapes {r1.shape}, {r2.shape}, {r3.shape}')
    labels = np.full(r1.shape, 'unidentate', dtype=object)
    labels[(r3 > bond_cutoff) & (r2 <= bond_cutoff)] = 'chelate'
    bridging = (r3 <= bond_cutoff) & (r1 <= bond_cutoff)
    labels[r1 > bond_cutoff] = 'unbound'
    points = np.column_stack([r2[bridging], r3[bridging]])
    if len(np.unique(points.round(6), axis=0)) >= 2:
        kmeans = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(points)
        # Each cluster is named by its centre: r2 within the bond cut-off → tilted bridge. Two populations on
        # either side keep the k-means boundary; one population split in two keeps a single name.
        names = np.where(kmeans.cluster_centers_[:, 0] <= bond_cutoff, 'tilted-bridge', 'bridge')
        labels[bridging] = names[kmeans.labels_]
    else:  # a single (r2, r3) point: the cut-off decides
        labels[bridging] = np.where(r2[bridging] <= bond_cutoff, 'tilted-bridge', 'bridge')
    return labels.astype(str)


def binding_modes(symbols, positions, carboxylates=None, metal: str = 'Pb', bond_cutoff: float = BOND_CUTOFF,
                  bins: int = 60, r_range: tuple[float, float] = (2.0, 5.0), seed: int = 0) -> dict:
    """r1..r3, modes, mode fractions and the (r1, r3) and (r2, r3) 2D histograms (Sowa et al. Fig. 2b, c).

    ``carboxylates`` default: :func:`find_carboxylates` on frame 0. Fractions are over all ligand-frames.
    """
    positions = np.asarray(positions, dtype=float)
    if positions.ndim == 2:
        positions = positions[None]
    if carboxylates is None:
        carboxylates = find_carboxylates(symbols, positions[0])
        if not len(carboxylates):
            raise ValueError('the structure has no carboxylate (a C with exactly two O within '
                             f'{CO_BOND} Å)')
    distances = binding_distances(symbols, positions, carboxylates, metal=metal)
    modes = classify(distances['r1'], distances['r2'], distances['r3'], bond_cutoff=bond_cutoff, seed=seed)
    edges = np.linspace(r_range[0], r_range[1], bins + 1)
    h13, _, _ = np.histogram2d(distances['r1'].ravel(), distances['r3'].ravel(), bins=[edges, edges])
    h23, _, _ = np.histogram2d(distances['r2'].ravel(), distances['r3'].ravel(), bins=[edges, edges])
    fractions = {mode: float(np.mean(modes == mode)) for mode in MODES}
    return {**distances, 'modes': modes, 'fractions': fractions, 'edges': edges, 'hist_r1_r3': h13,
            'hist_r2_r3': h23, 'metal': metal, 'bond_cutoff': bond_cutoff}


def plot_histograms(result: dict, path, title: str | None = None) -> None:
    """PNG of the (r1, r3) and (r2, r3) histograms of :func:`binding_modes` (Sowa et al. Fig. 2b, c)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    edges, metal = result['edges'], result['metal']
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), constrained_layout=True)
    for ax, key, x_label in zip(axes, ('hist_r1_r3', 'hist_r2_r3'), ('r1', 'r2')):
        mesh = ax.pcolormesh(edges, edges, result[key].T, cmap='viridis', shading='flat')
        ax.set_xlabel(f'{x_label} ({metal}*–O) / Å')
        ax.set_ylabel(f'r3 (other {metal}–O) / Å')
        ax.set_aspect('equal')
        fig.colorbar(mesh, ax=ax, label='ligand-frames')
    fractions = ', '.join(f'{mode} {value:.0%}' for mode, value in result['fractions'].items() if value > 0)
    fig.suptitle(title or fractions)
    fig.savefig(path, dpi=120)
    plt.close(fig)

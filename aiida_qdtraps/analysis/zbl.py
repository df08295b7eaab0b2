"""The Ziegler–Biersack–Littmark (ZBL) universal screened nuclear repulsion, tabulated for DeePMD-kit's DP/ZBL model.

A DeePMD model knows nothing about atoms closer than any pair in its training data: a 10 ps MD can find such a
region (an H of one acetate 0.6 Å from a Cd, where the model's energy keeps falling) and heat up without bound.
DeePMD-kit's DP/ZBL model (``model.use_srtab``) adds this repulsion at short range and switches from it to the
network between ``sw_rmin`` and ``sw_rmax`` (the distance of an atom's nearest neighbour); above ``sw_rmax`` the model
is the network alone.

ZBL (Ziegler, Biersack and Littmark, *The Stopping and Range of Ions in Solids*, 1985), for nuclear charges Z1, Z2::

    E(r) = k Z1 Z2 / r * phi(r / a),   a = 0.46850 Å / (Z1**0.23 + Z2**0.23),   k = e²/(4 pi eps0) = 14.399645 eV Å
    phi(x) = 0.18175 exp(-3.19980 x) + 0.50986 exp(-0.94229 x) + 0.28022 exp(-0.40290 x) + 0.02817 exp(-0.20162 x)

Pure numpy + ase.data; no AiiDA import. Å and eV.
"""

from __future__ import annotations

import numpy as np
from ase.data import atomic_numbers

#: e²/(4 pi eps0) in eV Å
COULOMB = 14.399645
#: the universal screening length's prefactor, 0.8854 a0 (Å)
SCREENING = 0.46850
PHI_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
PHI_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)


def zbl_energy(r, z1: int, z2: int) -> np.ndarray:
    """ZBL pair energy (eV) of nuclear charges ``z1``, ``z2`` at distances ``r`` (Å, > 0)."""
    r = np.asarray(r, dtype=float)
    if np.any(r <= 0):
        raise ValueError(f'ZBL distances must be > 0 Å, got a smallest of {r.min()}')
    if min(z1, z2) < 1:
        raise ValueError(f'nuclear charges must be >= 1, got {z1}, {z2}')
    x = r / (SCREENING / (z1 ** 0.23 + z2 ** 0.23))
    phi = sum(c * np.exp(-e * x) for c, e in zip(PHI_COEFFICIENTS, PHI_EXPONENTS))
    return COULOMB * z1 * z2 / r * phi


def zbl_table(type_map: list[str], r_max: float, dr: float = 0.005) -> np.ndarray:
    """The DP/ZBL pair table of ``type_map``: column 0 the distance (``dr``, 2 ``dr``, …, ``r_max`` Å), then one column
    of ZBL energies (eV) per type pair in DeePMD-kit's order (0-0, 0-1, …, 0-(n−1), 1-1, 1-2, …, (n−1)-(n−1)).

    :raises ValueError: naming an unknown element or a bad ``r_max`` / ``dr``.
    """
    unknown = [symbol for symbol in type_map if symbol not in atomic_numbers]
    if unknown or not type_map:
        detail = f' (unknown: {unknown})' if unknown else ''
        raise ValueError(f'type_map must list elements, got {type_map!r}{detail}')
    if not 0 < dr < r_max:
        raise ValueError(f'need 0 < dr < r_max, got dr={dr}, r_max={r_max}')
    r = dr * np.arange(1, int(round(r_max / dr)) + 1)
    z = [atomic_numbers[symbol] for symbol in type_map]
    columns = [r] + [zbl_energy(r, z[i], z[j]) for i in range(len(z)) for j in range(i, len(z))]
    return np.column_stack(columns)

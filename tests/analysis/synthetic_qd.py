"""Synthetic QDs and MO sets with known answers for the trap-labeling kernels (imported by the tests and the
conftest of tests/analysis under a name no other test folder uses)."""

from __future__ import annotations

import numpy as np
from ase.build import bulk


def zincblende_cluster(radius: float = 7.0):
    """An In-centred zincblende InP sphere (bulk geometry, no ligands): symbols, positions."""
    crystal = bulk('InP', 'zincblende', a=5.869, cubic=True).repeat((4, 4, 4))
    centre = crystal.positions[[i for i, s in enumerate(crystal.get_chemical_symbols()) if s == 'In']].mean(0)
    cation = np.argmin(np.linalg.norm(crystal.positions - centre, axis=1)
                       + 100 * (np.array(crystal.get_chemical_symbols()) != 'In'))
    keep = np.linalg.norm(crystal.positions - crystal.positions[cation], axis=1) < radius
    atoms = crystal[keep]
    atoms.positions -= atoms.positions.mean(0)
    return atoms.get_chemical_symbols(), atoms.positions.copy()


def fourier_basis(n: int, count: int) -> np.ndarray:
    """``count`` orthonormal real Fourier vectors on ``n`` points (delocalized: |x_j|² ≤ 2/n)."""
    j = np.arange(n)
    vectors = [np.ones(n) / np.sqrt(n)]
    k = 1
    while len(vectors) < count:
        vectors.append(np.sqrt(2 / n) * np.cos(2 * np.pi * k * j / n))
        if len(vectors) < count:
            vectors.append(np.sqrt(2 / n) * np.sin(2 * np.pi * k * j / n))
        k += 1
    return np.array(vectors).T


class SyntheticQd:
    """One AO per atom, a non-orthogonal overlap S = 1 + 0.1·A (A: bond adjacency) and MOs C = S^{-1/2} X, where
    the columns of X (orthonormal) are: delocalized valence states on the anions, optional trap states, and
    delocalized conduction states on the cations."""

    def __init__(self, symbols, positions, traps=(), n_valence=6, n_conduction=8, mix=None):
        from aiida_qdtraps.analysis import bonds

        self.symbols, self.positions = list(symbols), np.asarray(positions)
        n = len(self.symbols)
        anions = np.array([i for i, s in enumerate(self.symbols) if s == 'P'])
        cations = np.array([i for i, s in enumerate(self.symbols) if s == 'In'])
        pairs = bonds.bond_pairs(self.positions, self.symbols)
        self.coordination = bonds.coordination_numbers(pairs, n)
        adjacency = bonds.adjacency(pairs, n).toarray().astype(float)
        self.overlap = np.eye(n) + 0.1 * adjacency
        trap_atoms = [atom for atom, _ in traps]
        valence_atoms = np.array([a for a in anions if a not in trap_atoms])
        columns, energies, occupations = [], [], []
        basis = fourier_basis(len(valence_atoms), n_valence)
        for k in range(n_valence):  # VB: -5.0 (VBM), -5.1, ...
            x = np.zeros(n)
            x[valence_atoms] = basis[:, k]
            columns.append(x)
            energies.append(-5.0 - 0.1 * k)
            occupations.append(2.0)
        for atom, energy in traps:
            x = np.zeros(n)
            x[atom] = 1.0
            columns.append(x)
            energies.append(energy)
            occupations.append(2.0 if energy < -3.0 else 0.0)
        basis = fourier_basis(len(cations), n_conduction)
        for k in range(n_conduction):  # CB: -1.0, -0.9, ...
            x = np.zeros(n)
            x[cations] = basis[:, k]
            columns.append(x)
            energies.append(-1.0 + 0.1 * k)
            occupations.append(0.0)
        x = np.array(columns).T
        if mix is not None:  # rotate two states (column indices) by an angle: a canonical mixture
            a, b, theta = mix
            ca, cb = x[:, a].copy(), x[:, b].copy()
            x[:, a], x[:, b] = np.cos(theta) * ca + np.sin(theta) * cb, -np.sin(theta) * ca + np.cos(theta) * cb
        self.orthogonal = x
        w, v = np.linalg.eigh(self.overlap)
        self.coefficients = (v / np.sqrt(w)) @ v.T @ x
        self.energies, self.occupations = np.array(energies), np.array(occupations)
        self.ao_atom = np.arange(n)
        self.anions, self.cations = anions, cations

    def kwargs(self):
        return {'symbols': self.symbols, 'positions': self.positions, 'energies': self.energies,
                    'occupations': self.occupations, 'coefficients': self.coefficients, 'overlap': self.overlap,
                    'ao_atom': self.ao_atom}

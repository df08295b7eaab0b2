"""PNG plots of the trajectory analyses (pure; matplotlib with the Agg backend): RDF, RMSF, spectra, dephasing."""

from __future__ import annotations

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def plot_rdf(r, g, n, pair: str, path) -> None:
    """g(r) and the running coordination N(r) of one element pair (Sowa et al. Fig. 3)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    ax.plot(r, g, color='k', label='g(r)')
    ax.set_xlabel('r / Å')
    ax.set_ylabel(f'g(r) {pair}')
    twin = ax.twinx()
    twin.plot(r, np.cumsum(n) * (r[1] - r[0]), color='tab:red', lw=1, label='N(r)')
    twin.set_ylabel('coordination N(r)', color='tab:red')
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_rmsf(rmsf, groups, path, title: str = 'RMSF') -> None:
    """RMSF per atom, coloured by group (element or class) (Bhati et al. Fig. 1b)."""
    plt = _pyplot()
    groups = np.asarray([str(g) for g in groups])
    rmsf = np.asarray(rmsf, dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    for group in sorted(set(groups)):
        index = np.flatnonzero(groups == group)
        ax.bar(index, np.asarray(rmsf)[index], width=1.0, label=f'{group} (mean {np.mean(rmsf[index]):.3f} Å)')
    ax.set_xlabel('atom index')
    ax.set_ylabel('RMSF / Å')
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_spectrum(wavenumber, curves: dict, path, ylabel: str, x_max: float | None = None) -> None:
    """Spectra (name → values) on a common wavenumber axis (cm⁻¹) (Bhati et al. Fig. 2a, Sowa et al. Fig. 4b)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    for k, (name, values) in enumerate(curves.items()):
        ax.plot(wavenumber, values, label=name, color='k' if k == 0 else None, lw=1.2 if k == 0 else 0.9)
    ax.set_xlabel('wavenumber / cm⁻¹')
    ax.set_ylabel(ylabel)
    if x_max is not None:
        ax.set_xlim(0, x_max)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_dephasing(time, dephasing, tau_fs: float, path) -> None:
    """The cumulant dephasing function and its Gaussian fit (Bhati et al. Fig. 5b)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    ax.plot(time, dephasing, color='k', label='D(t) = exp(−g(t))')
    ax.plot(time, np.exp(-0.5 * (np.asarray(time) / tau_fs) ** 2), '--', color='tab:red',
            label=f'Gaussian fit, τ = {tau_fs:.2f} fs')
    ax.set_xlim(0, min(float(time[-1]), 5 * tau_fs))
    ax.set_xlabel('t / fs')
    ax.set_ylabel('pure dephasing D(t)')
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)

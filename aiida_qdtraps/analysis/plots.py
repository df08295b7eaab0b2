"""Figures of the trap analysis as PNG bytes (pure; matplotlib with the Agg backend, no AiiDA)."""

from __future__ import annotations

import io

import numpy as np

KIND_STYLE = {
    'valence': ('tab:blue', 'valence band'),
    'conduction': ('tab:orange', 'conduction band'),
    'hole-trap': ('tab:red', 'hole trap'),
    'electron-trap': ('tab:purple', 'electron trap'),
    'quantum-confined': ('tab:green', 'quantum-confined'),
}


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=120, bbox_inches='tight', metadata={'Software': None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def _trap_annotations(traps: list[dict], energy_tol: float = 0.2, pr_tol: float = 0.03
                      ) -> dict[tuple[float, float], list[str]]:
    """Centre labels (``In12-2c``) of the traps, one annotation per point: traps closer than ``energy_tol`` (eV) and
    ``pr_tol`` share one, so that their labels do not overprint."""
    groups: dict[tuple[float, float], list[str]] = {}
    for trap in traps:
        name = f"{trap['center_element']}{trap['center']}-{trap['center_coordination']}c"
        point = (trap['energy'], trap['participation_ratio'])
        key = next((k for k in groups if abs(k[0] - point[0]) < energy_tol and abs(k[1] - point[1]) < pr_tol), point)
        groups.setdefault(key, []).append(name)
    return groups


def participation_plot(energies, participation, kinds, vbm: float, cbm: float, traps: list[dict],
                       title: str = '') -> bytes:
    """Participation ratio versus energy, band edges and traps labelled by centre (as in Alexander et al. Fig. 1)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    energies, participation, kinds = np.asarray(energies), np.asarray(participation), np.asarray(kinds)
    fig, ax = plt.subplots(figsize=(7.4, 3.6), layout='constrained')
    for kind, (colour, label) in KIND_STYLE.items():
        mask = kinds == kind
        if mask.any():
            ax.scatter(energies[mask], participation[mask], s=18, color=colour, label=label, zorder=3)
    ax.axvline(vbm, color='tab:blue', ls='--', lw=1)
    ax.axvline(cbm, color='tab:orange', ls='--', lw=1)
    ax.text(vbm, 1.02, 'VBM', ha='center', va='bottom', fontsize=8, transform=ax.get_xaxis_transform())
    ax.text(cbm, 1.02, 'CBM', ha='center', va='bottom', fontsize=8, transform=ax.get_xaxis_transform())
    for (energy, pr), names in _trap_annotations(traps).items():
        ax.annotate(', '.join(names), (energy, pr), textcoords='offset points', xytext=(3, 4), fontsize=7)
    ax.set_xlabel('MO energy (eV)')
    ax.set_ylabel('participation ratio  1/(N Σp²)')
    ax.set_ylim(0, 1.08)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return _png(fig)


def projected_dos(energies, populations, groups: dict[str, np.ndarray], sigma: float = 0.1, npoints: int = 800,
                  margin: float = 1.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Gaussian-broadened (σ in eV) DOS of the states projected on groups of atoms (boolean masks over atoms)."""
    energies = np.asarray(energies, dtype=float)
    grid = np.linspace(energies.min() - margin, energies.max() + margin, npoints)
    kernel = np.exp(-0.5 * ((grid[:, None] - energies[None, :]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    return grid, {name: kernel @ np.asarray(populations)[:, mask].sum(axis=1) for name, mask in groups.items()}


def pdos_plot(energies, populations, groups: dict[str, np.ndarray], vbm: float, cbm: float, sigma: float = 0.1,
              title: str = '') -> bytes:
    """PDOS of the MO window split into atom groups (e.g. element × coordination class)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    grid, curves = projected_dos(energies, populations, groups, sigma)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bottom = np.zeros_like(grid)
    for name, curve in curves.items():
        ax.fill_between(grid, bottom, bottom + curve, label=name, alpha=0.8, lw=0)
        bottom = bottom + curve
    ax.axvline(vbm, color='k', ls='--', lw=1)
    ax.axvline(cbm, color='k', ls='--', lw=1)
    ax.set_xlabel('energy (eV)')
    ax.set_ylabel(f'PDOS (states/eV, σ = {sigma} eV)')
    ax.legend(fontsize=7, frameon=False, ncol=2)
    if title:
        ax.set_title(title, fontsize=9)
    return _png(fig)

"""GTH pseudopotentials from CP2K's ``GTH_POTENTIALS`` file, written for Quantum ESPRESSO.

The Goedecker–Teter–Hutter / Hartwigsen–Goedecker–Hutter (GTH/HGH) form is analytic (atomic units, Hartree):

* local part ``V_loc(r) = -Z_ion/r erf(r / (√2 r_loc)) + exp(-x²/2) (C1 + C2 x² + C3 x⁴ + C4 x⁶)``, ``x = r/r_loc``;
* separable non-local part ``Σ_l Σ_ij |p_i^l Y_lm> h_ij^l <p_j^l Y_lm|`` with normalised Gaussian projectors
  ``p_i^l(r) = √2 r^(l+2(i-1)) exp(-r²/(2 r_l²)) / (r_l^(l+(4i-1)/2) √Γ(l+(4i-1)/2))`` (bohr^-3/2).

This module parses an entry and evaluates the analytic form on the radial grid of the UPF files;
:mod:`aiida_qdtraps.pseudos.upf` tabulates it as a norm-conserving UPF v2 file (with the pseudo-atom of
:mod:`aiida_qdtraps.pseudos.atom`, which builds on this module). :func:`gth_to_abinit_hgh` writes the ABINIT HGH
layout that pw.x reads directly from a ``*.gth`` file; it is the reference the UPF files are checked against. No
aiida import here.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess

import numpy as np
from ase.data import atomic_numbers, covalent_radii
from ase.units import Bohr
from scipy.special import erf, gamma

#: Where Debian/conda/source builds of CP2K keep ``GTH_POTENTIALS`` (``$CP2K_DATA_DIR`` is searched first).
CP2K_DATA_DIRS = ('/usr/share/cp2k', '/usr/share/cp2k/data', '/usr/local/share/cp2k', '/opt/cp2k/data')

#: Radial grid of the UPF files: r_i = exp(XMIN + i·DX) / Z (bohr), as QE's ld1.x; up to RMAX bohr.
XMIN, DX, RMAX = -7.0, 0.0125, 100.0
#: Projectors are tabulated until |r·p(r)| drops below this (bohr^-1/2).
BETA_TOLERANCE = 1.0e-12
ANGULAR_LABELS = 'spdf'


@dataclasses.dataclass(frozen=True)
class GthPotential:
    """One GTH pseudopotential in CP2K's parametrisation (lengths in bohr, energies in Hartree).

    :param electrons_per_l: valence electrons in the s, p, d, ... shells of the reference configuration.
    :param projectors: one ``(r_l, h)`` pair per angular momentum l = 0, 1, ...; ``h`` is the symmetric
        ``nprj × nprj`` matrix h_ij^l (Hartree), empty when the channel has no projector.
    """

    element: str
    name: str
    electrons_per_l: tuple[int, ...]
    r_loc: float
    c_loc: tuple[float, ...]
    projectors: tuple[tuple[float, np.ndarray], ...]

    @property
    def z_valence(self) -> int:
        return int(sum(self.electrons_per_l))

    @property
    def atomic_number(self) -> int:
        return atomic_numbers[self.element]

    @property
    def l_max(self) -> int:
        """Highest angular momentum with at least one projector (-1 if local only)."""
        ls = [l for l, (_, h) in enumerate(self.projectors) if len(h)]
        return max(ls) if ls else -1


def find_gth_potentials_file() -> pathlib.Path:
    """Return CP2K's ``GTH_POTENTIALS`` data file.

    Searched in ``$CP2K_DATA_DIR``, the usual data folders, and next to the ``cp2k.psmp`` executable.

    :raises FileNotFoundError: listing the places searched.
    """
    candidates = []
    if os.environ.get('CP2K_DATA_DIR'):
        candidates.append(pathlib.Path(os.environ['CP2K_DATA_DIR']))
    candidates.extend(pathlib.Path(d) for d in CP2K_DATA_DIRS)
    executable = shutil.which('cp2k.psmp') or shutil.which('cp2k')
    if executable:
        prefix = pathlib.Path(executable).resolve().parent.parent
        candidates.extend([prefix / 'share' / 'cp2k', prefix / 'share' / 'cp2k' / 'data'])
    for directory in candidates:
        if (directory / 'GTH_POTENTIALS').is_file():
            return directory / 'GTH_POTENTIALS'
    raise FileNotFoundError(f"CP2K's GTH_POTENTIALS not found in {[str(c) for c in candidates]}; "
                            'install cp2k-data or set $CP2K_DATA_DIR')


def _entry_lines(text: str, element: str, name: str) -> list[str]:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        words = line.split()
        if len(words) >= 2 and words[0] == element and name in words[1:]:
            body = []
            for following in lines[index + 1:]:
                stripped = following.split('#')[0].strip()
                if not stripped:  # a comment or blank line ends the entry (or precedes it)
                    if body:
                        break
                    continue
                if stripped[0].isalpha():
                    break
                body.append(stripped)
            return body
    raise KeyError(f'no potential {name!r} for element {element!r} in GTH_POTENTIALS')


def parse_gth_potential(element: str, name: str, path: str | os.PathLike | None = None) -> GthPotential:
    """Read potential ``name`` (e.g. ``GTH-PBE-q13``) of ``element`` from CP2K's ``GTH_POTENTIALS``.

    :raises KeyError: if the file has no such potential.
    :raises ValueError: for a non-local-core-correction (NLCC) or spin-orbit entry, which are not converted.
    """
    if element not in atomic_numbers:
        raise ValueError(f'unknown element {element!r}')
    path = pathlib.Path(path) if path is not None else find_gth_potentials_file()
    body = _entry_lines(path.read_text(), element, name)
    if any('NLCC' in line.upper() or 'KO' in line.upper() for line in body):
        raise ValueError(f'{element} {name}: NLCC / spin-orbit GTH entries are not supported')
    electrons = tuple(int(v) for v in body[0].split())
    tokens = ' '.join(body[1:]).split()
    pos = 0

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    r_loc = float(take())
    c_loc = tuple(float(take()) for _ in range(int(take())))
    projectors = []
    for _ in range(int(take())):
        r_l = float(take())
        nprj = int(take())
        h = np.zeros((nprj, nprj))
        for i in range(nprj):
            for j in range(i, nprj):
                h[i, j] = h[j, i] = float(take())
        projectors.append((r_l, h))
    if pos != len(tokens):
        raise ValueError(f'{element} {name}: {len(tokens) - pos} unread numbers in the GTH entry '
                         '(spin-orbit k_ij terms are not supported)')
    return GthPotential(element, name, electrons, r_loc, c_loc, tuple(projectors))


def radial_grid(atomic_number: int) -> tuple[np.ndarray, np.ndarray]:
    """Logarithmic grid ``r`` (bohr) and its derivative ``rab = dr/di`` used by the UPF files."""
    mesh = int((np.log(RMAX * atomic_number) - XMIN) / DX) + 1
    mesh += 1 - mesh % 2  # odd number of points for Simpson integration
    r = np.exp(XMIN + DX * np.arange(mesh)) / atomic_number
    return r, r * DX


def local_potential(pot: GthPotential, r: np.ndarray) -> np.ndarray:
    """GTH local potential V_loc(r) in Hartree (r in bohr, r > 0)."""
    x = r / pot.r_loc
    gauss = np.exp(-0.5 * x**2) * sum(c * x ** (2 * k) for k, c in enumerate(pot.c_loc))
    return -pot.z_valence / r * erf(x / np.sqrt(2.0)) + gauss


def projector(r_l: float, l: int, i: int, r: np.ndarray) -> np.ndarray:
    """Normalised GTH projector p_i^l(r) (bohr^-3/2), i = 1, 2, 3; ∫ p² r² dr = 1."""
    power = l + (4 * i - 1) / 2
    return np.sqrt(2.0) * r ** (l + 2 * (i - 1)) * np.exp(-0.5 * (r / r_l) ** 2) / (r_l**power * np.sqrt(gamma(power)))


def model_valence_density(pot: GthPotential, r: np.ndarray) -> np.ndarray:
    """A Gaussian valence density 4πr²ρ(r) holding ``z_valence`` electrons (e/bohr), only a starting guess.

    Its radial distribution 4πr²ρ peaks at the element's covalent radius (ase), a smooth guess that the plane-wave
    grid represents without negative density.
    """
    sigma = covalent_radii[pot.atomic_number] / Bohr / np.sqrt(2.0)
    alpha = 1.0 / (2.0 * sigma**2)
    return pot.z_valence * 4.0 * np.pi * r**2 * (alpha / np.pi) ** 1.5 * np.exp(-alpha * r**2)


def gth_to_abinit_hgh(pot: GthPotential, pspxc: int = 11) -> str:
    """ABINIT HGH layout (pspcod 10) of ``pot``, which pw.x reads from a file named ``*.gth``.

    Used as the analytic reference the tabulated UPF is checked against (pw.x then evaluates the GTH form in
    reciprocal space itself).
    """
    lmax = max(pot.l_max, 0)
    lines = [f'{pot.element} {pot.name} (CP2K GTH_POTENTIALS) in ABINIT HGH layout',
             f'{pot.atomic_number} {pot.z_valence} 010101',
             f'10 {pspxc} {lmax} 0 2001 0',
             f'{pot.r_loc:.8f} {len(pot.c_loc)} ' + ' '.join(f'{c:.8f}' for c in pot.c_loc)]
    # channels up to the highest l with a projector; a single empty channel when there is none (H)
    channels = pot.projectors[:lmax + 1] if pot.l_max >= 0 else ((0.0, np.zeros((0, 0))),)
    lines.append(str(len(channels)))
    for l, (r_l, h) in enumerate(channels):
        n = len(h)
        if n == 0:
            lines.append(f'{r_l:.8f} 0')
            continue
        lines.append(f'{r_l:.8f} {n} ' + ' '.join(f'{h[0, j]:.8f}' for j in range(n)))
        lines += [' '.join(f'{h[i, j]:.8f}' for j in range(i, n)) for i in range(1, n)]
        if l > 0:
            lines += [' '.join('0.0' for _ in range(i, n)) for i in range(n)]
    return '\n'.join(lines) + '\n'


_NUMBER = re.compile(r'[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][-+]?\d+)?')


def same_upf_content(first: str, second: str, rtol: float = 1.0e-6) -> bool:
    """True if two UPF texts differ at most in the last digits of their numbers (relative ``rtol``, absolute 1e-20).

    The text around the numbers must be identical. Used by the family installer so that rounding noise in the last
    printed digit (another BLAS build) does not count as a new pseudopotential.
    """
    if first == second:
        return True
    if _NUMBER.sub('#', first) != _NUMBER.sub('#', second):
        return False
    a = np.array([float(v.replace('d', 'e').replace('D', 'e')) for v in _NUMBER.findall(first)])
    b = np.array([float(v.replace('d', 'e').replace('D', 'e')) for v in _NUMBER.findall(second)])
    return bool(np.allclose(a, b, rtol=rtol, atol=1.0e-20))


def cp2k_version() -> str | None:
    """``cp2k.psmp --version`` first line (provenance note for the family description), or ``None``."""
    executable = shutil.which('cp2k.psmp') or shutil.which('cp2k')
    if executable is None:
        return None
    try:
        result = subprocess.run([executable, '--version'], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.splitlines()[0].strip() if result.stdout else None

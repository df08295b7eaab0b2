"""The parser and handler tests run on recorded outputs alone: on a machine without CP2K (``QDTRAPS_NO_ENGINES=1``,
no ``cp2k.psmp`` on PATH) they pass, and only the tests that need the binary are skipped."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent


def test_parser_and_handler_tests_pass_without_cp2k(tmp_path):
    bin_dir = tmp_path / 'bin'  # PATH without /usr/bin, where Debian installs cp2k.psmp
    bin_dir.mkdir()
    for tool in ('bash', 'env', 'true'):
        (bin_dir / tool).symlink_to(f'/usr/bin/{tool}')
    environment = dict(os.environ, QDTRAPS_NO_ENGINES='1', OMP_NUM_THREADS='1',
                       PATH=f'{pathlib.Path(sys.executable).parent}{os.pathsep}{bin_dir}')
    environment.pop('PYTEST_XDIST_WORKER', None)
    # the parsers' hypothesis fuzz tests feed them generated text, never an engine's output (the main run has them)
    fuzz = [f'--ignore={p.relative_to(ROOT)}' for p in sorted((ROOT / 'tests' / 'parsers').glob('test_fuzz_*.py'))]
    assert len(fuzz) == 3
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'no:xdist', '-m', 'not slow', '-rs',
         *fuzz, 'tests/parsers', 'tests/workchains/test_cp2k_base_handlers.py'],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(re.search(r'(\d+) passed', summary).group(1))
    skipped = re.findall(r'^SKIPPED .*$', result.stdout, re.M)
    assert passed > 80 and 'failed' not in summary and 'error' not in summary
    # only the `cp2k --check` of the handler's inputs needs the binary
    assert len(skipped) == 1 and 'cp2k.psmp is not installed' in skipped[0], skipped

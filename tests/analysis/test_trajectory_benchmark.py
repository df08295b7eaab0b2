"""benchmarks/trajectory_analysis.py on a small trajectory: its checks pass, and a missed target gives exit status 1
with the reason on the last line (the timing itself is measured by the benchmark, not asserted here)."""

from __future__ import annotations

import sys


def test_small_run_passes_and_a_missed_target_fails(monkeypatch, capsys, load_script):
    module = load_script('benchmarks/trajectory_analysis.py')
    monkeypatch.setattr(sys, 'argv', ['trajectory_analysis.py', '--frames', '2000', '--atoms', '300'])
    assert module.main() == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith('within targets, checks pass')
    monkeypatch.setattr(module, 'TARGET_SECONDS', 1e-6)
    assert module.main() == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert 'MISSED: time' in last and '>= 1e-06 s' in last

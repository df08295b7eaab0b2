"""Train, freeze and test one DeePMD model in one Python process: the script ``DeepmdTrainCalculation`` runs.

Usage: ``python deepmd_train_script.py <validation system dir or -> [<frozen model to start from or -> [pretrain]]``.
Equivalent to these three commands, each run when the one before succeeded::

    dp --pt train input.json [--init-frz-model init.pth [--use-pretrain-script]]
    dp --pt freeze -o model.pth
    dp --pt test -m model.pth -s <dir> -d validation

but importing torch and deepmd-kit once instead of three times (about 7 CPU-seconds each on this machine).
"""

from __future__ import annotations

import sys


def main(validation: str, init_model: str = '-', pretrain: str = 'pretrain') -> None:
    from deepmd.main import main as dp

    warm = ['--init-frz-model', init_model] if init_model != '-' else []
    if warm and pretrain == 'pretrain':  # the model section (with a recomputed `sel: auto`) from the frozen model
        warm.append('--use-pretrain-script')
    dp(['--pt', 'train', 'input.json', *warm])
    dp(['--pt', 'freeze', '-o', 'model.pth'])
    if validation != '-':
        dp(['--pt', 'test', '-m', 'model.pth', '-s', validation, '-n', '100000', '-d', 'validation'])


if __name__ == '__main__':
    main(*sys.argv[1:4])

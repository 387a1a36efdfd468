"""Train the wide LeNet (conv 3->64->128, fc 3200->512->256->10; 1,982,602 parameters), batch 64.

    python train_large.py --epochs 20
    python train_large.py --epochs 40 --augment --onecycle
"""
from pathlib import Path

import cli

DEFAULTS = dict(model="large", epochs=2, batch_size=64, lr=0.001, augment=False, onecycle=False)


def main(argv=None):
    return cli.main(DEFAULTS, argv, __doc__, Path(__file__).name)


if __name__ == "__main__":
    raise SystemExit(main())

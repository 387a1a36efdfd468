"""Train the PyTorch-tutorial LeNet (62,006 parameters) on CIFAR-10: batch 4, 2 epochs.

    python train_small.py                  # about a minute of training on a laptop CPU
    python train_small.py --epochs 4 --device cpu
"""
from pathlib import Path

import cli

# --no-onednn: at batch 4 oneDNN's fixed cost per convolution call outweighs the arithmetic.
DEFAULTS = dict(model="small", epochs=2, batch_size=4, lr=0.001, augment=False, onecycle=False,
                onednn=False)


def main(argv=None):
    return cli.main(DEFAULTS, argv, __doc__, Path(__file__).name)


if __name__ == "__main__":
    raise SystemExit(main())

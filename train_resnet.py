"""Train the CIFAR ResNet-18 (11,173,962 parameters): batch 128, augmentation, OneCycle, 40 epochs.

    python train_resnet.py --epochs 40 --device mps
    python train_resnet.py --epochs 2 --precision bf16 --channels-last   # a CPU with bf16
"""
from pathlib import Path

import cli

DEFAULTS = dict(model="resnet18", epochs=40, batch_size=128, max_lr=0.1, augment=True, onecycle=True)


def main(argv=None):
    return cli.main(DEFAULTS, argv, __doc__, Path(__file__).name)


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the PyTorch-tutorial LeNet (62,006 parameters) on CIFAR-10: batch 4, 2 epochs.

    python train_small.py                  # about a minute of training on a laptop CPU
    python train_small.py --epochs 4 --device cpu
"""
import cli


def main(argv=None):
    return cli.train_main("small", argv, __doc__, "train_small.py")


if __name__ == "__main__":
    raise SystemExit(main())

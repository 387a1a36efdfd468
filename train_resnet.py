"""Train the CIFAR ResNet-18 (11,173,962 parameters): batch 128, augmentation, OneCycle, 40 epochs.

    python train_resnet.py --epochs 40 --device mps
    python train_resnet.py --epochs 2 --precision bf16 --channels-last   # a CPU with bf16
"""
import cli


def main(argv=None):
    return cli.train_main("resnet18", argv, __doc__, "train_resnet.py")


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the wide LeNet (conv 3->64->128, fc 3200->512->256->10; 1,982,602 parameters), batch 64.

    python train_large.py --epochs 20
    python train_large.py --epochs 40 --augment --onecycle
"""
import cli


def main(argv=None):
    return cli.train_main("large", argv, __doc__, "train_large.py")


if __name__ == "__main__":
    raise SystemExit(main())

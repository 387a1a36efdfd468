"""Train airbench94's network (2x2 patch whitening, conv groups 64/256/256; 1,972,792 parameters),
batch 1024, 10 epochs, with its tricks: frozen whitening from training images, Dirac init, batch
norm without scale, logits x 1/9, label smoothing 0.2, Nesterov SGD on a triangular schedule with
64x the lr for batch-norm biases, lookahead, alternating flips, flip and translation TTA.
After Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU" (arXiv 2404.00498).

    python train_fast.py
    python train_fast.py --seeds 1111,1112,1113 --val 5000
"""
import cli


def main(argv=None):
    return cli.train_main("fast", argv, __doc__, "train_fast.py")


if __name__ == "__main__":
    raise SystemExit(main())

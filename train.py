"""``python train.py ...`` in a checkout runs ``melscribe-train ...`` (melscribe_torch/cli/train.py)."""

from melscribe_torch.cli.train import main

if __name__ == "__main__":
    main()

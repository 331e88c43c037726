"""``python evaluate.py ...`` in a checkout runs ``melscribe-evaluate ...`` (melscribe_torch/cli/evaluate.py)."""

from melscribe_torch.cli.evaluate import main

if __name__ == "__main__":
    main()

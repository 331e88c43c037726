"""Console scripts ``melscribe-train`` and ``melscribe-evaluate`` (Hydra apps on ``melscribe_torch/conf``)."""

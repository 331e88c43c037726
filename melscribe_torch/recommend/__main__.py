"""``python -m melscribe_torch.recommend``: the same as ``melscribe-recommend``."""

import sys

from .cli import main

sys.exit(main())

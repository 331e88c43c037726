"""melscribe-torch: natural-language music recommendation as dense retrieval over descriptor sets."""

__version__ = "0.1.0"

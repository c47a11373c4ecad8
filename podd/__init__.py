"""podd: Poster Dataset Distillation — distil a whole dataset into one poster (Shul et al.)."""

__version__ = "0.1.0"

"""corpusforge: image-text pretraining corpora from URL lists, on Spark."""

__version__ = "0.1.0"

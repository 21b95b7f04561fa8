"""Build and release tools run from a checkout (``make package``); never imported by ``pipeline/``."""

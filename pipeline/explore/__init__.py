"""``corpusforge explore``: a page on 127.0.0.1 to search and browse a dataset (docs/explore.md)."""

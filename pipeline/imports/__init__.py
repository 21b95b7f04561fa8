"""Importing datasets other tools downloaded (img2dataset) as raw shards of a corpusforge dataset."""

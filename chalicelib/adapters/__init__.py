"""Adapters to the outside world (S3, HTTP, hashing). AWS errors become domain errors here."""

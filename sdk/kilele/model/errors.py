"""Errors a model raises on purpose, that the platform treats differently from a crash."""
from __future__ import annotations


class InvalidQuery(ValueError):
    """Raise this from :meth:`BaseModel.predict` when a query is wrong for the model (wrong
    shape, wrong type, out of the domain it was trained on).

    The platform answers it as the caller's error (HTTP 400 ``invalid_input``, with this
    message). Any other exception from ``predict`` is the model's own failure (HTTP 502
    ``model_error``): the caller cannot fix it by changing the query. A subclass of
    ``ValueError``, so code that catches ``ValueError`` around a model still does.
    """

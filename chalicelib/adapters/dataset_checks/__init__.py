"""Twins of :class:`chalicelib.ports_datasets.DatasetCheckDispatcher`."""

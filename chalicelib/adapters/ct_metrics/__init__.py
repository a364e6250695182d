"""The twins of :class:`chalicelib.ports_continuous.CTMetricsSink`: ``emf`` (AWS) and ``local``."""

"""Kilele's service code: API blueprints, domain services, store, adapters and local runners."""

SERVICE_NAME = "kilele"
__version__ = "0.1.0"

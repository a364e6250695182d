"""Kilele's CDK app: one stack per stage, built from chalicelib/resources.py.

Import it with the repo root on sys.path (infra/app.py and tests/infra do that).
"""
from .stack import KileleStack

__all__ = ["KileleStack"]

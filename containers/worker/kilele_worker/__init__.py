"""Kilele's trial worker: ``kilele-worker run --message-file PATH``.

The supervisor (:mod:`kilele_worker.supervisor`) is trusted and holds the AWS credentials; the
uploaded model code runs only in the child process (:mod:`kilele_worker.child`), without them.
"""
__version__ = "0.1.0"

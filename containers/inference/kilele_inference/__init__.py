"""Kilele's inference server: one bundle (an ensemble of trained trials), served over the
SageMaker container contract (``GET /ping``, ``POST /invocations``) with adaptive batching."""
from kilele_inference.bundle import BundleSpec, MemberSpec, find_bundle_root, read_bundle
from kilele_inference.settings import ServerConfig
from kilele_inference.ensemble import Ensemble, load_ensemble

__version__ = "0.1.0"

__all__ = ["BundleSpec", "MemberSpec", "find_bundle_root", "read_bundle", "ServerConfig", "Ensemble",
           "load_ensemble", "__version__"]

"""The API's resources, one mixin each; :class:`kilele.Client` puts them together.

Every mixin builds on :class:`kilele._http.HttpClient` (``_request``), the ones that move files
on :class:`kilele._transfer.TransferMixin`.
"""
from kilele.resources.apps import ApplicationsMixin
from kilele.resources.auth import AuthMixin
from kilele.resources.bundles import BundlesMixin
from kilele.resources.capture import CaptureMixin
from kilele.resources.continuous_tests import ContinuousTestsMixin
from kilele.resources.datasets import DatasetsMixin
from kilele.resources.events import EventsMixin
from kilele.resources.images import ManagedImagesMixin
from kilele.resources.inference import InferenceJobsMixin, PredictionsMixin
from kilele.resources.platform_images import PlatformImagesMixin
from kilele.resources.models import ModelsMixin
from kilele.resources.projects import ProjectsMixin
from kilele.resources.stress_tests import StressTestsMixin
from kilele.resources.train_jobs import TrainJobsMixin
from kilele.resources.trials import TrialsMixin
from kilele.resources.users import UsersMixin

__all__ = ["AuthMixin", "UsersMixin", "DatasetsMixin", "ModelsMixin", "TrainJobsMixin", "TrialsMixin",
           "InferenceJobsMixin", "PredictionsMixin", "ApplicationsMixin", "BundlesMixin",
           "ProjectsMixin", "StressTestsMixin", "ContinuousTestsMixin", "ManagedImagesMixin", "CaptureMixin", "EventsMixin",
           "PlatformImagesMixin"]

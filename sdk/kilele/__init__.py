"""Kilele's Python SDK: ``from kilele import Client``."""
from kilele.client import Client
from kilele.constants import BudgetOption, InferenceBudgetOption, InputType, ModelAccessRight, Task, UserType
from kilele.errors import ConnectionFailedError, KileleError, StressTestFailedError, TrainJobErrored
from kilele.queues import EnqueueFailedError, InputQueue, OutputQueue, PredictionFailedError
from kilele.stress import CustomImage, Project, StressTestJob

__all__ = ["Client", "KileleError", "ConnectionFailedError", "UserType", "Task", "ModelAccessRight", "BudgetOption",
           "InferenceBudgetOption", "InputType", "InputQueue", "OutputQueue", "PredictionFailedError",
           "EnqueueFailedError", "Project", "StressTestJob", "CustomImage", "StressTestFailedError",
           "TrainJobErrored"]
__version__ = "0.1.0"

"""A one-class dataset is refused for classification (issue 10): a train job on it would fit
nothing, so create_train_job says so (422) before any trial runs."""
from __future__ import annotations

import pytest

from chalicelib.entities import Task, UserType
from chalicelib.errors import Unprocessable

ONE_CLASS = b"x1,x2,target\n1,2,setosa\n3,4,setosa\n5,6,setosa\n"
TWO_CLASSES = b"x1,x2,target\n1,2,setosa\n3,4,virginica\n"


def test_a_one_class_train_dataset_is_refused_for_classification(h):
    dev = h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")
    one = h.services.datasets.create_from_bytes(dev, "one", Task.TABULAR_CLASSIFICATION, ONE_CLASS)
    two = h.services.datasets.create_from_bytes(dev, "two", Task.TABULAR_CLASSIFICATION, TWO_CLASSES)
    model = h.model(dev)
    with pytest.raises(Unprocessable) as refused:
        h.services.train_jobs.create_train_job(dev, "app", Task.TABULAR_CLASSIFICATION, one["id"], two["id"], {},
                                               [model.id])
    assert "the train dataset 'one' has 1 class" in refused.value.message and "needs at least 2" in refused.value.message
    assert h.fakes.train_jobs.items == {}  # nothing was created
    # a one-class validation set is a fair (if small) test: the train set decides
    created = h.services.train_jobs.create_train_job(dev, "app", Task.TABULAR_CLASSIFICATION, two["id"], one["id"],
                                                     {}, [model.id])
    assert created["app_version"] == 1

"""A Kilele app version as a SageMaker Python SDK ``Model`` (``pip install 'kilele[sagemaker]'``),
for users who manage endpoints with their own SageMaker tooling.

::

    from kilele import Client
    from kilele.sagemaker_model import sagemaker_model

    client = Client.from_stack("kilele-prod")               # signed as your IAM user
    model = sagemaker_model(client, "iris", 3, role="arn:aws:iam::123456789012:role/my-sagemaker-role")
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.c5.large")
    predictor.predict({"queries": [[5.1, 3.5, 1.4, 0.2]]})  # {"predictions": [...]}

The model is what the platform's own endpoints run (chalicelib/adapters/endpoints/sagemaker.py):

- ``model_data``: the version's bundle (a ``model.tar.gz`` SageMaker unpacks into
  ``/opt/ml/model``), exported by ``POST /bundles``. Signed as an IAM user, the export lands under
  your own ``direct/<IAM user name>/`` prefix of the stack's data bucket and is used where it is;
  otherwise give ``upload_to="s3://your-bucket/prefix/"`` and the bundle is copied there with your
  credentials. Either way ``role`` must be able to read it.
- ``image_uri``: the image the version pins on that stack: its managed image (the inference
  image plus the models' dependencies) or the stack's inference image, as the API answers;
  ``image_uri=`` overrides it (for the GPU image, say).
- ``env``: what the inference image reads (``KILELE_BUNDLE``, plus any of its ``KILELE_*``
  batching settings you pass in ``env``), and network isolation as the platform deploys it.

The SageMaker Python SDK 2.x is needed: 3.0 removed ``sagemaker.model.Model``.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from kilele.errors import KileleError

#: Where SageMaker unpacks ``model_data`` in the container (the inference server's bundle).
MODEL_DIR = "/opt/ml/model"


def sagemaker_model(client: Any, app: str, app_version: int = -1, *, role: str, trial_id: Optional[str] = None,
                    image_uri: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                    upload_to: Optional[str] = None, sagemaker_session: Any = None, name: Optional[str] = None,
                    **model_kwargs: Any) -> Any:
    """A ``sagemaker.model.Model`` serving ``app`` v``app_version`` (or one trial) with Kilele's
    inference image; nothing is created in SageMaker until you call its ``deploy()`` or
    ``create()``.

    :param client: a :class:`kilele.Client` (signed with AWS credentials for the bundle to stay
        in the stack's bucket; else give ``upload_to``)
    :param role: the SageMaker execution role (ARN or name) that pulls the image and reads the bundle
    :param image_uri: instead of the image the API names for the version
    :param env: environment for the container, over the defaults (``KILELE_BUNDLE``)
    :param upload_to: ``s3://bucket/prefix/`` (or ``.../name.tar.gz``) to copy the bundle to
    :param sagemaker_session: a ``sagemaker.Session`` (default: one on the client's boto3 session)
    :param model_kwargs: passed to ``Model`` (``vpc_config``, ``predictor_cls``...)
    """
    try:
        from sagemaker.model import Model
    except ImportError as e:
        raise KileleError("kilele.sagemaker_model needs the SageMaker Python SDK 2.x: "
                          "pip install 'kilele[sagemaker]'", code="missing_extra") from e
    answer = client._export(app, app_version, trial_id)
    model_data = _model_data(client, answer, app, upload_to)
    image = image_uri or answer.get("image_uri")
    if not image:
        raise KileleError(f"the API names no inference image for {app} (the local stack runs none): give "
                          "image_uri= (a deployed stack's images are in its ECR repositories, "
                          "output InferenceRepositoryUri)", code="no_image")
    if sagemaker_session is None and getattr(client, "aws_session", None) is not None:
        import sagemaker

        sagemaker_session = sagemaker.Session(boto_session=client.aws_session)
    model_kwargs.setdefault("predictor_cls", _json_predictor)
    model_kwargs.setdefault("enable_network_isolation", True)  # as the platform deploys it: no network for model code
    return Model(image_uri=image, model_data=model_data, role=role, env={"KILELE_BUNDLE": MODEL_DIR, **(env or {})},
                 name=name, sagemaker_session=sagemaker_session, **model_kwargs)


def _json_predictor(endpoint_name: str, sagemaker_session: Any = None, **kwargs: Any) -> Any:
    """A ``Predictor`` that speaks the inference server's JSON (``{"queries": [...]}`` in,
    ``{"predictions": [...]}`` out)."""
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import JSONSerializer

    kwargs.setdefault("serializer", JSONSerializer())
    kwargs.setdefault("deserializer", JSONDeserializer())
    return Predictor(endpoint_name, sagemaker_session=sagemaker_session, **kwargs)


def _model_data(client: Any, answer: Mapping[str, Any], app: str, upload_to: Optional[str]) -> str:
    """The bundle's S3 URI: where the API wrote it for our IAM user, else a copy at ``upload_to``."""
    direct = answer.get("direct")
    if upload_to is None:
        if direct:
            return f"s3://{direct['bucket']}/{direct['key']}"
        raise KileleError(f"the bundle of {app} has no S3 location of yours (the client is not signed as an IAM "
                          "user): give upload_to='s3://bucket/prefix/' to copy it there", code="no_model_data")
    parts = urlsplit(upload_to)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"upload_to must be an s3://bucket/prefix URI, got {upload_to!r}")
    key = parts.path.lstrip("/")
    if not key.endswith(".tar.gz"):
        manifest = answer.get("manifest") or {}
        key = f"{key.rstrip('/') + '/' if key else ''}{manifest.get('app') or app}-v{manifest.get('app_version', '')}" \
              ".tar.gz"
    session = getattr(client, "aws_session", None)
    if session is None:
        raise KileleError("upload_to needs AWS credentials: Client(aws_session=boto3.Session(...))",
                          code="no_credentials")
    from kilele._s3_direct import upload_direct

    with tempfile.TemporaryDirectory(prefix="kilele-bundle-") as tmp:
        path = os.path.join(tmp, "model.tar.gz")
        client._download_file(answer, path, f"the bundle of {app}")
        upload_direct(session, {"bucket": parts.netloc, "key": key}, path, client.transfer,
                      f"the bundle of {app}", "the SageMaker model was not made")
    return f"s3://{parts.netloc}/{key}"

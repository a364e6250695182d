"""Model code uploads: one Python file per model, stored in S3, checked statically. A model's
dependencies resolve to the managed image its code runs in (``model_images.py``)."""
from __future__ import annotations

from typing import Any, Optional

from chalicelib.entities import AccessRight, Model, Task, User
from chalicelib.errors import Forbidden, NotFound, PayloadTooLarge
from chalicelib.model_files import check_model_source
from chalicelib.permissions import Action, can_view_model, owns_or_admin, require
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.services.model_images import ModelImages
from chalicelib.ports import BlobStore, ModelStore


class ModelService:
    def __init__(self, models: ModelStore, blobs: BlobStore, max_model_file_bytes: int, clock: Clock = utc_now,
                 images: Optional[ModelImages] = None):
        """``images``: resolves dependencies to managed images (None: dependencies are recorded
        only, and the worker checks them against its runtime)."""
        self._models = models
        self._blobs = blobs
        self._max_bytes = max_model_file_bytes
        self._clock = clock
        self._images = images

    def create(
        self,
        actor: User,
        name: str,
        task: Task,
        model_class: str,
        source: bytes,
        dependencies: Optional[dict[str, str]] = None,
        access_right: AccessRight = AccessRight.PRIVATE,
        docker_image: Optional[str] = None,
    ) -> dict[str, Any]:
        require(actor, Action.MANAGE_MODELS)
        if len(source) > self._max_bytes:
            raise PayloadTooLarge(f"the model file is {len(source)} bytes; the limit is {self._max_bytes}")
        check_model_source(source, model_class)
        # Before anything is stored: a dependency pip would not take is a 400, and the image's
        # build starts now, so it is likely READY by the time the model is trained. A model
        # naming its own docker_image runs in that image as given: nothing is built for it.
        if docker_image and self._images:  # run as given: only if the platform can (422 saying why not)
            docker_image = self._images.check_docker_image(docker_image)
        image = self._images.resolve(actor.id, dependencies or {}) if self._images and not docker_image else None
        model_id = new_id()
        model = Model(
            id=model_id,
            owner_id=actor.id,
            name=name,
            task=task,
            model_class=model_class,
            object_key=f"models/{model_id}/model.py",
            created_at=self._clock(),
            access_right=access_right,
            dependencies=dependencies or {},
            docker_image=docker_image,
            image=image,
        )
        self._blobs.put_bytes(model.object_key, source, content_type="text/x-python")
        try:
            self._models.add(model)
        except Exception:
            self._blobs.delete(model.object_key)  # the name was taken or the write failed
            raise
        if image and self._images:
            self._images.attach(model)  # its image cannot be deleted while the model is there
        return self._shown(model)

    def get(self, actor: User, model_id: str) -> dict[str, Any]:
        return self._shown(self._visible(actor, model_id))

    def _shown(self, model: Model) -> dict[str, Any]:
        """The model as users see it: ``image`` is its image's name, build status and reason."""
        data = model.to_dict()
        if self._images is not None:
            data["image"] = self._images.describe(model)
        return data

    def download(self, actor: User, model_id: str) -> tuple[Model, bytes]:
        model = self._visible(actor, model_id)
        return model, self._blobs.get_bytes(model.object_key)

    def list_available(self, actor: User, task: Optional[Task] = None) -> list[dict[str, Any]]:
        """The caller's own models and every PUBLIC one (admins: all models)."""
        require(actor, Action.VIEW_MODELS)
        if actor.user_type.is_admin:
            models = self._models.list_all()
        else:
            models = self._models.list_own_and_public(actor.id)
        models = [m for m in models if task is None or m.task is task]
        return [self._shown(m) for m in sorted(models, key=lambda m: m.created_at)]

    def delete(self, actor: User, model_id: str) -> dict[str, Any]:
        """Delete a model nobody trains with; its file goes after its record."""
        require(actor, Action.MANAGE_MODELS)
        model = self._visible(actor, model_id)
        if not owns_or_admin(actor, model.owner_id):
            raise Forbidden(f"model {model.name!r} belongs to another user")
        self._models.delete_unused(model)
        self._blobs.delete(model.object_key)
        if model.image and self._images:
            self._images.release(model)
        return model.to_dict()

    def _visible(self, actor: User, model_id: str) -> Model:
        require(actor, Action.VIEW_MODELS)
        model = self._models.get(model_id)
        if model is None or not can_view_model(actor, model):
            raise NotFound(f"no model {model_id!r}")
        return model  # type: ignore[return-value]

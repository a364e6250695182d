"""Managed images (issue 11): one item per image, keyed by its unique name."""
from __future__ import annotations

from typing import Any, Callable, Optional

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

from chalicelib.entities.images import BuildState, ImageBase, ManagedImage, PipRequirement
from chalicelib.errors import Conflict, NotFound
from chalicelib.store.models_rime import ManagedImageItem
from chalicelib.store.repositories import _dt, _failed_condition, _iso, _opt_dt, _opt_iso, _plain_map, set_status_if

_LISTING = "all"


def _stored(name: str, value: Any) -> Any:
    if name == "finished_at":
        return _opt_iso(value)
    if isinstance(value, BuildState):
        return value.value
    return value


class ManagedImageRepository:
    """:class:`chalicelib.ports.ManagedImageStore` on DynamoDB."""

    def add(self, image: ManagedImage) -> None:
        item = ManagedImageItem(
            image.name, listing=_LISTING, owner_id=image.owner_id, base=image.base.value,
            requirements=[r.to_dict() for r in image.requirements], content_key=image.content_key,
            status=image.status.value, created_at=_iso(image.created_at), build_id=image.build_id or None,
            image_ref=image.image_ref or None, installed=dict(image.installed), error=image.error,
            finished_at=_opt_iso(image.finished_at),
        )
        try:
            item.save(condition=ManagedImageItem.name.does_not_exist())
        except PutError as e:
            if _failed_condition(e):
                raise Conflict(f"a managed image named {image.name!r} already exists") from e
            raise

    def get(self, name: str) -> Optional[ManagedImage]:
        try:
            return self._entity(ManagedImageItem.get(name, consistent_read=True))
        except DoesNotExist:
            return None

    def list_page(self, after: str, limit: int,
                  matches: Optional[Callable[[ManagedImage], bool]] = None) -> tuple[list[ManagedImage], str]:
        # Filters match the installed map, which DynamoDB cannot test by key: read on in name
        # order until the page is full (pynamodb pages the query underneath).
        condition = ManagedImageItem.name > after if after else None
        found: list[ManagedImage] = []
        for item in ManagedImageItem.by_name.query(_LISTING, range_key_condition=condition):
            image = self._entity(item)
            if matches is not None and not matches(image):
                continue
            if len(found) == limit:
                return found, found[-1].name  # one more matches: there is a next page
            found.append(image)
        return found, ""

    def set_build(self, name: str, status: BuildState, only_from: tuple[BuildState, ...], **fields: Any) -> bool:
        actions = [getattr(ManagedImageItem, key).set(_stored(key, value))
                   for key, value in fields.items() if value is not None]
        return set_status_if(ManagedImageItem(name), ManagedImageItem.status, status, only_from, actions)

    def add_user(self, name: str, job_id: str) -> None:
        try:
            ManagedImageItem(name).update(actions=[ManagedImageItem.in_use_by.add({job_id})],
                                          condition=ManagedImageItem.name.exists())
        except UpdateError as e:
            if _failed_condition(e):
                raise NotFound(f"no managed image {name!r}") from e
            raise

    def remove_user(self, name: str, job_id: str) -> None:
        try:
            ManagedImageItem(name).update(actions=[ManagedImageItem.in_use_by.delete({job_id})],
                                          condition=ManagedImageItem.name.exists())
        except UpdateError as e:
            if not _failed_condition(e):  # gone already: nothing to release
                raise

    def with_content_key(self, key: str) -> list[ManagedImage]:
        # Read when a build ends (an EventBridge event), not per request: a filtered query of the
        # one listing partition is enough for a few thousand images.
        return [self._entity(item) for item in ManagedImageItem.by_name.query(
            _LISTING, filter_condition=ManagedImageItem.content_key == key)]

    def delete_unused(self, name: str) -> None:
        try:
            ManagedImageItem(name).delete(condition=ManagedImageItem.name.exists()
                                          & ManagedImageItem.in_use_by.does_not_exist())
        except DeleteError as e:
            if not _failed_condition(e):
                raise
            current = self.get(name)
            if current is None:
                raise NotFound(f"no managed image {name!r}") from e
            raise Conflict(f"managed image {name!r} is used by {', '.join(current.in_use_by)}: "
                           "delete it once they have finished") from e

    @staticmethod
    def _entity(item: ManagedImageItem) -> ManagedImage:
        requirements = tuple(PipRequirement(str(r["name"]), str(r.get("version_specifier") or ""))
                             for r in (_plain_map(r) for r in item.requirements or []))
        return ManagedImage(
            name=item.name, owner_id=item.owner_id, base=ImageBase(item.base), requirements=requirements,
            content_key=item.content_key, status=BuildState(item.status), created_at=_dt(item.created_at),
            build_id=item.build_id or "", image_ref=item.image_ref or "",
            installed={str(k): str(v) for k, v in (_plain_map(item.installed) or {}).items()},
            error=item.error, finished_at=_opt_dt(item.finished_at), in_use_by=tuple(sorted(item.in_use_by or ())),
        )


__all__ = ["ManagedImageRepository"]

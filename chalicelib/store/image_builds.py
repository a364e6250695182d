"""The image-build ledger on DynamoDB (:class:`chalicelib.ports.ImageBuildLedger`): one record per
content key, so concurrent requests for one requirement set start one CodeBuild build.

A claim is a conditional put: it succeeds only if no record exists, the key's last build FAILED,
or a claim never got a build started before ``stale_before`` (its Lambda died between the claim
and StartBuild). Everything after the claim is conditional on the claim's token or build id, so a
late writer never overwrites a newer build's record.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

from chalicelib.ports_images import BuildClaim
from chalicelib.store.models_rime import ImageBuildItem
from chalicelib.store.repositories import _dt, _failed_condition, _iso

STARTING, BUILDING, SUCCEEDED, FAILED = "STARTING", "BUILDING", "SUCCEEDED", "FAILED"


class ImageBuildRepository:
    """:class:`chalicelib.ports.ImageBuildLedger` on the ``image-builds`` table."""

    def claim(self, key: str, token: str, now: datetime, stale_before: datetime) -> Optional[BuildClaim]:
        item = ImageBuildItem(key, token=token, status=STARTING, claimed_at=_iso(now))
        free = (ImageBuildItem.key.does_not_exist() | (ImageBuildItem.status == FAILED)
                | ((ImageBuildItem.status == STARTING) & (ImageBuildItem.claimed_at < _iso(stale_before))))
        try:
            item.save(condition=free)
            return None
        except PutError as e:
            if not _failed_condition(e):
                raise
        held = self.get(key)
        if held is None:  # released between our put and our read: claim again (rare; once)
            return self.claim(key, token, now, stale_before)
        return held

    def started(self, key: str, token: str, codebuild_id: str) -> None:
        try:
            ImageBuildItem(key).update(
                actions=[ImageBuildItem.status.set(BUILDING), ImageBuildItem.codebuild_id.set(codebuild_id)],
                condition=(ImageBuildItem.token == token) & (ImageBuildItem.status == STARTING))
        except UpdateError as e:
            if not _failed_condition(e):
                raise
            # Our claim went stale and another took the key: that one's build is the key's build.

    def release(self, key: str, token: str) -> None:
        try:
            ImageBuildItem(key).delete(condition=(ImageBuildItem.token == token) & (ImageBuildItem.status == STARTING))
        except DeleteError as e:
            if not _failed_condition(e):
                raise

    def get(self, key: str) -> Optional[BuildClaim]:
        try:
            item = ImageBuildItem.get(key, consistent_read=True)
        except DoesNotExist:
            return None
        return BuildClaim(key=item.key, token=item.token, status=item.status, claimed_at=_dt(item.claimed_at),
                          codebuild_id=item.codebuild_id or "", reason=item.reason or "", log_url=item.log_url or "")

    def finish(self, key: str, codebuild_id: str, status: str, reason: str = "", log_url: str = "") -> bool:
        actions = [ImageBuildItem.status.set(status)]
        actions += [ImageBuildItem.reason.set(reason)] if reason else []
        actions += [ImageBuildItem.log_url.set(log_url)] if log_url else []
        try:
            ImageBuildItem(key).update(actions=actions, condition=(ImageBuildItem.codebuild_id == codebuild_id)
                                       & (ImageBuildItem.status == BUILDING))
            return True
        except UpdateError as e:
            if _failed_condition(e):
                return False
            raise


__all__ = ["ImageBuildRepository", "STARTING", "BUILDING", "SUCCEEDED", "FAILED"]

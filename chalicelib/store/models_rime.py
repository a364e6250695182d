"""pynamodb models of the stress-test side (projects, stress tests) and of managed images and
their builds. Bound with the others by :func:`chalicelib.store.models.bind`."""
from __future__ import annotations

from pynamodb.attributes import ListAttribute, MapAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.indexes import GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib import resources
from chalicelib.store.model_meta import index_meta as _index_meta, table_meta as _meta


class ProjectItem(Model):
    Meta = _meta(resources.PROJECTS)

    class ByOwner(GlobalSecondaryIndex):
        Meta = _index_meta("by_owner")
        owner_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    created_at = UnicodeAttribute()
    by_owner = ByOwner()


class StressTestItem(Model):
    Meta = _meta(resources.STRESS_TESTS)

    class ByOwner(GlobalSecondaryIndex):
        Meta = _index_meta("by_owner")
        owner_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    project_id = UnicodeAttribute()
    name = UnicodeAttribute()
    config = MapAttribute(default=dict)
    status = UnicodeAttribute()
    created_at = UnicodeAttribute()
    expires_at = NumberAttribute()  # epoch seconds (DynamoDB TTL); readers filter expired items
    test_run_id = UnicodeAttribute(null=True)
    started_at = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    progress = UnicodeAttribute(null=True)
    ram_request_megabytes = NumberAttribute()
    cpu_request_millicores = NumberAttribute()
    rime_managed_image = UnicodeAttribute(null=True)
    custom_image = MapAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    logs_key = UnicodeAttribute(null=True)
    results_prefix = UnicodeAttribute(null=True)
    summary = MapAttribute(default=dict)
    by_owner = ByOwner()


class ManagedImageItem(Model):
    Meta = _meta(resources.MANAGED_IMAGES)

    class ByName(GlobalSecondaryIndex):
        Meta = _index_meta("by_name")
        listing = UnicodeAttribute(hash_key=True)
        name = UnicodeAttribute(range_key=True)

    name = UnicodeAttribute(hash_key=True)
    listing = UnicodeAttribute(default="all")  # the one partition of by_name
    owner_id = UnicodeAttribute()
    base = UnicodeAttribute()
    requirements = ListAttribute(default=list)  # [{"name", "version_specifier"}]
    content_key = UnicodeAttribute()
    status = UnicodeAttribute()
    created_at = UnicodeAttribute()
    build_id = UnicodeAttribute(null=True)
    image_ref = UnicodeAttribute(null=True)
    installed = MapAttribute(default=dict)  # {canonical name: version}, from pip freeze
    error = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    in_use_by = UnicodeSetAttribute(null=True)  # job ids; DynamoDB drops an empty set
    by_name = ByName()


class ImageBuildItem(Model):
    """The CodeBuild build of one content key (store/image_builds.py)."""

    Meta = _meta(resources.IMAGE_BUILDS)

    key = UnicodeAttribute(hash_key=True)
    token = UnicodeAttribute()
    status = UnicodeAttribute()  # STARTING, BUILDING, SUCCEEDED, FAILED
    claimed_at = UnicodeAttribute()
    codebuild_id = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    log_url = UnicodeAttribute(null=True)

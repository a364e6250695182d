"""Names shared by the constructs: construct ids, environment variable names, deployed resource
names, and the logical-id scheme that keeps the concern constructs out of logical ids."""
from __future__ import annotations

import hashlib
import re
from typing import Callable, Iterable, Sequence


def pascal(name: str) -> str:
    """'api-keys' -> 'ApiKeys': construct ids, hence logical ids, must stay stable."""
    return "".join(part.capitalize() for part in re.split(r"[-_]", name))


def env_name(name: str) -> str:
    """'train-worker' -> 'TRAIN_WORKER', as pydantic-settings reads KILELE_TRAIN_WORKER_..."""
    return name.upper().replace("-", "_")


def resource_name(stage: str, logical_name: str) -> str:
    """``kilele-{stage}-{name}``: same rule as chalicelib.settings.Settings.resource_name."""
    return f"kilele-{stage}-{logical_name}"


# --- logical ids ------------------------------------------------------------------------------
# The stack was one flat construct before it was split into concern constructs (Data, Api, ...).
# CDK hashes a resource's construct path into its logical id, so moving a resource into a
# construct renames it, and CloudFormation replaces a renamed resource, creating the new one
# before deleting the old: that fails for every resource with a fixed name (tables, queues, state
# machines and their log groups, SQS event source mappings) and elsewhere gives a new, empty
# bucket (the old one, RETAIN, orphaned with its data) or a new RestApi (a new public URL).
# KileleStack therefore allocates logical ids as if those constructs were not there
# (flat_logical_id below): CDK's own "Default" rule (a construct with the id "Default" is left out
# of the path) applied to a few named constructs. Two of them creating the same child id collide,
# and synth fails ("section 'Resources' already contains ...") rather than merging them.

_HIDDEN_ID = "Default"  # left out of the path (and of the hash)
_HIDDEN_FROM_HUMAN_ID = "Resource"  # left out of the readable part, kept in the hash
_HASH_LEN = 8
_MAX_HUMAN_LEN = 240
_MAX_ID_LEN = 255


def _alphanumeric(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)


def _remove_dupes(path: Sequence[str]) -> list[str]:
    kept: list[str] = []
    for component in path:
        if not kept or not kept[-1].endswith(component):
            kept.append(component)
    return kept


def make_unique_id(components: Sequence[str]) -> str:
    """CDK's logical id of a stack-relative construct path (aws-cdk-lib core/lib/private/uniqueid:
    makeUniqueId): the path's ids run together, plus 8 hex digits of the path's MD5."""
    components = [c for c in components if c != _HIDDEN_ID]
    if not components:
        raise ValueError("no path components to make a logical id from")
    if len(components) == 1:
        candidate = _alphanumeric(components[0])
        if len(candidate) <= _MAX_ID_LEN:
            return candidate
    digest = hashlib.md5("/".join(components).encode()).hexdigest()[:_HASH_LEN].upper()
    human = "".join(_alphanumeric(c) for c in _remove_dupes(components) if c != _HIDDEN_FROM_HUMAN_ID)
    return human[:_MAX_HUMAN_LEN] + digest


def flat_logical_id(
    stack_path: str, element_path: str, flat_ids: Sequence[str], construct_paths: Callable[[], Iterable[str]],
) -> str:
    """The logical id of the element at ``element_path`` in the stack at ``stack_path``, with the
    stack's direct children named in ``flat_ids`` left out of the path.

    Some constructs name a child after another construct's Names.node_unique_id (which has the
    whole path in it): an SqsEventSource's mapping is ``SqsEventSource:<queue's unique id>``, a
    rule's Lambda permission ``AllowEventRule<rule's unique id>``. Such ids are rewritten to the
    unique id the construct would have outside the flat constructs; ``construct_paths`` (called
    only then) gives the paths of every construct of the stack. Without that, moving a queue into
    Data would rename its event source mapping, and CloudFormation cannot create the renamed
    mapping while the old one (same queue, same function) exists.
    """
    stack_depth = len(stack_path.split("/"))
    components = element_path.split("/")[stack_depth:]
    if len(components) > 1 and components[0] in flat_ids:
        components = components[1:]
    stack_prefix = "".join(_alphanumeric(c) for c in stack_path.split("/") if c != _HIDDEN_ID)
    if any(stack_prefix in component for component in components):
        renames = _flat_unique_ids(construct_paths(), stack_depth, flat_ids)
        for i, component in enumerate(components):
            for unique_id, flat_unique_id in renames.items():
                component = component.replace(unique_id, flat_unique_id)
            components[i] = component
    return make_unique_id(components)


def _flat_unique_ids(construct_paths: Iterable[str], stack_depth: int, flat_ids: Sequence[str]) -> dict[str, str]:
    """Names.node_unique_id of each construct under a flat construct -> its id without it."""
    renames: dict[str, str] = {}
    for path in construct_paths:
        parts = path.split("/")
        if len(parts) > stack_depth + 1 and parts[stack_depth] in flat_ids:
            renames[make_unique_id(parts)] = make_unique_id(parts[:stack_depth] + parts[stack_depth + 1:])
    return renames

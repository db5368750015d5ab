"""Configuration policies, manual configuration and each EC's desired configuration.

All functions run in the tenant's schema. How the layers combine is described
in :mod:`policies.models`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from audit.services import Actor, record_event
from onboarding.models import EdgeController, Tag
from policies.delivery import send_config_after_commit
from policies.models import DesiredConfig, ManualConfig, Policy, PolicyAssignment, PolicyVersion
from policies.schema import InvalidConfig, validate_config_body

logger = logging.getLogger(__name__)

MAX_POLICY_TAGS = 50


class PolicyError(ValueError):
    """A policy operation that cannot be done; ``code``/``detail`` go to the API, ``errors`` maps fields to messages."""

    def __init__(self, code: str, detail: str, *, errors: dict[str, list[str]] | None = None):
        self.code = code
        self.detail = detail
        self.errors = errors or {}
        super().__init__(detail)


def _validated(body, field: str = "body") -> dict:
    try:
        return validate_config_body(body, field=field)
    except InvalidConfig as error:
        raise PolicyError("invalid_config", f"The configuration does not match the EC configuration schema: "
                                            f"{error}.", errors=error.errors) from error


def _existing_tags(names: Iterable[str]) -> list[Tag]:
    """Return the tags named in ``names`` (any letter case); raise PolicyError naming every unknown one."""
    wanted = [str(name).strip() for name in names if str(name).strip()]
    if len(wanted) > MAX_POLICY_TAGS:
        raise PolicyError("invalid_tag", f"{len(wanted)} tags given; use at most {MAX_POLICY_TAGS}.")
    if not wanted:
        return []
    query = Q()
    for name in wanted:
        query |= Q(name__iexact=name)
    found = {tag.name.lower(): tag for tag in Tag.objects.filter(query)}
    missing = [name for name in wanted if name.lower() not in found]
    if missing:
        raise PolicyError("tag_not_found", f"No tag named {', '.join(repr(name) for name in missing)} in this "
                                           "tenant; create the tag first.", errors={"tags": missing})
    return list(found.values())


# Policies.

def create_policy(*, name: str, kind: str, body, actor: Actor, description: str = "",
                  tags: Iterable[str] = ()) -> Policy:
    """Create a policy with version 1 of ``body``; an auto policy applies at once to the ECs with its tags."""
    name = name.strip()
    if kind not in Policy.Kind.values:
        raise PolicyError("invalid_kind", f"Kind {kind!r} is not one of {', '.join(Policy.Kind.values)}.")
    tag_names = list(tags)
    if tag_names and kind != Policy.Kind.AUTO:
        raise PolicyError("tags_need_auto", "Only auto policies have tags; push an on-demand policy instead.")
    body = _validated(body)
    tag_objects = _existing_tags(tag_names)
    try:
        with transaction.atomic():
            policy = Policy.objects.create(name=name, kind=kind, description=description)
            PolicyVersion.objects.create(policy=policy, number=1, body=body, created_by=actor.name)
            policy.tags.set(tag_objects)
            record_event("policy.create", actor=actor, object_type="policy", object_id=str(policy.pk),
                         details={"name": name, "kind": kind, "tags": [tag.name for tag in tag_objects]})
            if tag_objects:
                refresh_desired_configs(_controller_ids_with_tags(tag_objects))
    except IntegrityError as error:
        raise PolicyError("policy_exists", f"A policy named {name!r} exists already; choose another name.") from error
    logger.info("Policy %s (%s) created by %s", policy.pk, name, actor.name)
    return policy


def update_policy(policy: Policy, *, actor: Actor, name: str | None = None, description: str | None = None) -> Policy:
    """Rename a policy or change its description; the body changes only through :func:`add_policy_version`."""
    changes = {}
    if name is not None and name.strip() != policy.name:
        changes["name"] = policy.name = name.strip()
    if description is not None and description != policy.description:
        changes["description"] = policy.description = description
    if not changes:
        return policy
    try:
        with transaction.atomic():
            policy.save()
            record_event("policy.update", actor=actor, object_type="policy", object_id=str(policy.pk),
                         details=changes)
    except IntegrityError as error:
        raise PolicyError("policy_exists", f"A policy named {policy.name!r} exists already; choose another "
                                           "name.") from error
    return policy


def add_policy_version(policy: Policy, body, *, actor: Actor) -> PolicyVersion:
    """Store ``body`` as the policy's next version.

    The ECs of an auto policy get it at once. An on-demand policy's ECs keep
    the version pushed to them until an admin pushes again.
    """
    body = _validated(body)
    with transaction.atomic():
        locked = Policy.objects.select_for_update().get(pk=policy.pk)
        number = (locked.versions.aggregate(top=Max("number"))["top"] or 0) + 1
        version = PolicyVersion.objects.create(policy=locked, number=number, body=body, created_by=actor.name)
        locked.save(update_fields=["updated_at"])
        record_event("policy.new_version", actor=actor, object_type="policy", object_id=str(policy.pk),
                     details={"version": number})
        if locked.kind == Policy.Kind.AUTO:
            refresh_desired_configs(_controller_ids_with_tags(locked.tags.all()))
    logger.info("Policy %s version %d created by %s", policy.pk, number, actor.name)
    return version


def set_policy_tags(policy: Policy, tag_names: Iterable[str], *, actor: Actor) -> Policy:
    """Attach exactly ``tag_names`` to an auto policy; ECs that gain or lose the policy get a new document."""
    if policy.kind != Policy.Kind.AUTO:
        raise PolicyError("tags_need_auto", f"Policy {policy.name!r} is on demand; only auto policies have tags.")
    tag_objects = _existing_tags(tag_names)
    with transaction.atomic():
        before = list(policy.tags.all())
        policy.tags.set(tag_objects)
        record_event("policy.set_tags", actor=actor, object_type="policy", object_id=str(policy.pk),
                     details={"tags": [tag.name for tag in tag_objects]})
        refresh_desired_configs(_controller_ids_with_tags([*before, *tag_objects]))
    return policy


def delete_policy(policy: Policy, *, actor: Actor) -> None:
    """Delete a policy with its versions; the ECs it applied to get a new document without it."""
    with transaction.atomic():
        affected = set(_controller_ids_with_tags(policy.tags.all())) if policy.kind == Policy.Kind.AUTO else set()
        affected.update(policy.assignments.values_list("edge_controller_id", flat=True))
        record_event("policy.delete", actor=actor, object_type="policy", object_id=str(policy.pk),
                     details={"name": policy.name})
        policy.delete()
        refresh_desired_configs(affected)


def assign_policy(version: PolicyVersion, controller_ids: Iterable[int], *, actor: Actor) -> None:
    """Record that on-demand policy ``version`` is pushed to the ECs; the caller refreshes their documents."""
    now = timezone.now()
    PolicyAssignment.objects.bulk_create(
        [PolicyAssignment(policy_id=version.policy_id, version=version, edge_controller_id=controller_id,
                          assigned_at=now, assigned_by=actor.name) for controller_id in controller_ids],
        update_conflicts=True, unique_fields=["policy", "edge_controller"],
        update_fields=["version", "assigned_at", "assigned_by"],
    )


def _controller_ids_with_tags(tags) -> list[int]:
    return list(EdgeController.objects.filter(tags__in=list(tags)).values_list("pk", flat=True).distinct())


# Manual configuration.

def set_manual_config(controller: EdgeController, body, *, actor: Actor) -> ManualConfig:
    """Set the EC's manual configuration, which overrides every policy key it names."""
    body = _validated(body)
    with transaction.atomic():
        manual, _created = ManualConfig.objects.update_or_create(
            edge_controller=controller, defaults={"body": body, "updated_by": actor.name})
        record_event("config.set_manual", actor=actor, object_type="edge_controller",
                     object_id=controller.product_id, details={"keys": sorted(body)})
        refresh_desired_configs([controller.pk])
    return manual


def clear_manual_config(controller: EdgeController, *, actor: Actor) -> bool:
    """Remove the EC's manual configuration; return whether it had one."""
    with transaction.atomic():
        deleted, _ = ManualConfig.objects.filter(edge_controller=controller).delete()
        if deleted:
            record_event("config.clear_manual", actor=actor, object_type="edge_controller",
                         object_id=controller.product_id)
            refresh_desired_configs([controller.pk])
    return bool(deleted)


# Desired configuration.

def _latest_versions(policy_ids) -> dict[int, PolicyVersion]:
    latest: dict[int, PolicyVersion] = {}
    for version in PolicyVersion.objects.filter(policy_id__in=policy_ids).order_by("policy_id", "-number") \
            .distinct("policy_id"):
        latest[version.policy_id] = version
    return latest


def refresh_desired_configs(controller_ids: Iterable[int], *, send: bool = True) -> list[DesiredConfig]:
    """Recompute the desired document of the onboarded ECs among ``controller_ids``; return the changed rows.

    A changed document gets the EC's next version number and, with ``send``,
    goes to the EC after commit. An EC that no policy or manual configuration
    ever applied to is left without a row. Runs a fixed number of queries whatever
    the number of ECs, because onboarding calls it for batches of 500.
    """
    ids = sorted(set(controller_ids))
    if not ids:
        return []
    # TODO: a new version or tag of an auto policy refreshes all its ECs inside the admin's request;
    # move refreshes of thousands of ECs to a Celery job like push jobs.
    with transaction.atomic():
        # Locked in primary key order, so two refreshes of overlapping ECs cannot deadlock.
        controllers = list(EdgeController.objects.select_for_update().filter(
            pk__in=ids, state=EdgeController.State.ONBOARDED).order_by("pk").only("pk", "product_id", "online"))
        if not controllers:
            return []
        ids = [controller.pk for controller in controllers]
        documents = _compute_documents(ids)
        existing = {row.edge_controller_id: row for row in DesiredConfig.objects.filter(edge_controller_id__in=ids)}

        created, updated = [], []
        for controller in controllers:
            body, sources = documents.get(controller.pk, ({}, []))
            row = existing.get(controller.pk)
            if row is None and not sources:
                continue
            if row is None:
                row = DesiredConfig(edge_controller_id=controller.pk, version=1, body=body, sources=sources)
                created.append(row)
            elif row.body != body:
                row.version += 1
                row.body, row.sources = body, sources
                updated.append(row)
            elif row.sources != sources:
                # Same document from other policies: the EC has nothing new to apply.
                row.sources = sources
                updated.append(row)
                continue
            else:
                continue
            if send and controller.online:
                send_config_after_commit(controller.product_id, row.version, row.body)
        now = timezone.now()
        for row in updated:
            # bulk_update skips auto_now fields.
            row.updated_at = now
        DesiredConfig.objects.bulk_create(created)
        DesiredConfig.objects.bulk_update(updated, ["version", "body", "sources", "updated_at"])
    return created + updated


def _compute_documents(ids: list[int]) -> dict[int, tuple[dict, list[dict]]]:
    """Return {EC id: (merged body, sources)} for the ECs that any policy or manual configuration applies to."""
    layers: dict[int, list[tuple[dict, dict]]] = defaultdict(list)

    auto_policies = list(Policy.objects.filter(kind=Policy.Kind.AUTO).order_by("created_at", "pk")
                         .prefetch_related("tags"))
    if auto_policies:
        latest = _latest_versions([policy.pk for policy in auto_policies])
        tags_of: dict[int, set[int]] = defaultdict(set)
        for controller_id, tag_id in EdgeController.tags.through.objects.filter(
                edgecontroller_id__in=ids).values_list("edgecontroller_id", "tag_id"):
            tags_of[controller_id].add(tag_id)
        for policy in auto_policies:
            version = latest.get(policy.pk)
            policy_tags = {tag.pk for tag in policy.tags.all()}
            if version is None or not policy_tags:
                continue
            source = {"layer": "auto", "policy": policy.name, "policy_id": policy.pk, "policy_version": version.number}
            for controller_id in ids:
                if tags_of[controller_id] & policy_tags:
                    layers[controller_id].append((version.body, source))

    for assignment in PolicyAssignment.objects.filter(edge_controller_id__in=ids).select_related(
            "policy", "version").order_by("assigned_at", "pk"):
        source = {"layer": "on_demand", "policy": assignment.policy.name, "policy_id": assignment.policy_id,
                  "policy_version": assignment.version.number}
        layers[assignment.edge_controller_id].append((assignment.version.body, source))

    for controller_id, body in ManualConfig.objects.filter(edge_controller_id__in=ids).values_list(
            "edge_controller_id", "body"):
        layers[controller_id].append((body, {"layer": "manual"}))

    documents = {}
    for controller_id, items in layers.items():
        merged: dict = {}
        for body, _source in items:
            # A later layer replaces each top-level key it names, whole.
            merged.update(body)
        documents[controller_id] = (merged, [source for _body, source in items])
    return documents


def config_state(controller: EdgeController) -> dict:
    """Return the EC's desired document, its applied version and last ack, for the API and the portal."""
    desired = DesiredConfig.objects.filter(edge_controller=controller).first()
    manual = ManualConfig.objects.filter(edge_controller=controller).values_list("body", flat=True).first()
    return {
        "product_id": controller.product_id,
        "desired_version": desired.version if desired else 0,
        "desired_body": desired.body if desired else {},
        "sources": desired.sources if desired else [],
        "applied_version": controller.applied_config_version,
        "in_sync": (desired.version if desired else 0) == controller.applied_config_version,
        "manual_body": manual,
        "last_ack": {
            "version": desired.last_ack_version, "status": desired.last_ack_status,
            "detail": desired.last_ack_detail, "at": desired.last_ack_at,
        } if desired and desired.last_ack_at else None,
    }

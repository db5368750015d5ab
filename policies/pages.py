"""The Director's policy pages: the list with a create form, and one policy with its versions, tags and pushes."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from onboarding.pages.common import controller_or_404, tenant_admin_page
from onboarding.views import tenant_actor
from policies import services
from policies.forms import ManualConfigForm, PolicyForm, PushForm, TagsForm, VersionForm, split_names
from policies.jobs import start_push_job
from policies.models import Policy
from policies.services import PolicyError


def _policy_or_404(policy_id: int) -> Policy:
    policy = Policy.objects.filter(pk=policy_id).first()
    if policy is None:
        raise Http404("No such policy in this tenant.")
    return policy


def _add_errors(form, error: PolicyError) -> None:
    """Put a service error on the form: each schema path under ``body``, anything else on the whole form."""
    if error.code == "invalid_config" and "body" in form.fields:
        for path, path_messages in error.errors.items():
            for message in path_messages:
                form.add_error("body", f"{path}: {message}")
    elif error.code in ("tag_not_found", "tags_need_auto") and "tags" in form.fields:
        form.add_error("tags", error.detail)
    else:
        form.add_error(None, error.detail)


@tenant_admin_page
def policy_list(request):
    form = PolicyForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                policy = services.create_policy(name=data["name"], kind=data["kind"], body=data["body"],
                                                description=data["description"], tags=split_names(data["tags"]),
                                                actor=tenant_actor(request))
            except PolicyError as error:
                _add_errors(form, error)
            else:
                messages.success(request, f"Created policy {policy.name} (version 1).")
                return redirect("policy-detail", policy_id=policy.pk)
        status = 400
    policies = Policy.objects.prefetch_related("tags").order_by("name")
    return render(request, "policies/policy_list.html", {
        "tenant": request.tenant, "nav": "policies", "policies": policies, "form": form,
    }, status=status)


def ec_config_context(controller) -> dict:
    """Return the EC detail page's configuration panel: desired vs applied, with the bodies as indented JSON."""
    state = services.config_state(controller)
    state["desired_body_json"] = json.dumps(state["desired_body"], indent=2, sort_keys=True)
    if state["manual_body"] is not None:
        state["manual_body_json"] = json.dumps(state["manual_body"], indent=2, sort_keys=True)
    return state


def _render_detail(request, policy: Policy, *, version_form=None, tags_form=None, push_form=None, status=200):
    tag_names = ", ".join(sorted(tag.name for tag in policy.tags.all()))
    return render(request, "policies/policy_detail.html", {
        "tenant": request.tenant,
        "nav": "policies",
        "policy": policy,
        "versions": [(version, json.dumps(version.body, indent=2, sort_keys=True))
                     for version in policy.versions.order_by("-number")],
        "tag_names": tag_names,
        "jobs": policy.push_jobs.select_related("version").order_by("-created_at")[:20],
        "version_form": version_form or VersionForm(initial={"body": policy.latest_version().body}),
        "tags_form": tags_form or TagsForm(initial={"tags": tag_names}),
        "push_form": push_form or PushForm(),
    }, status=status)


@tenant_admin_page
def policy_detail(request, policy_id: int):
    return _render_detail(request, _policy_or_404(policy_id))


@require_POST
@tenant_admin_page
def policy_new_version(request, policy_id: int):
    policy = _policy_or_404(policy_id)
    form = VersionForm(request.POST)
    if form.is_valid():
        try:
            version = services.add_policy_version(policy, form.cleaned_data["body"], actor=tenant_actor(request))
        except PolicyError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Saved version {version.number} of {policy.name}.")
            return redirect("policy-detail", policy_id=policy.pk)
    return _render_detail(request, policy, version_form=form, status=400)


@require_POST
@tenant_admin_page
def policy_tags(request, policy_id: int):
    policy = _policy_or_404(policy_id)
    form = TagsForm(request.POST)
    if form.is_valid():
        try:
            services.set_policy_tags(policy, split_names(form.cleaned_data["tags"]), actor=tenant_actor(request))
        except PolicyError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Saved the tags of {policy.name}.")
            return redirect("policy-detail", policy_id=policy.pk)
    return _render_detail(request, policy, tags_form=form, status=400)


@require_POST
@tenant_admin_page
def policy_push(request, policy_id: int):
    policy = _policy_or_404(policy_id)
    form = PushForm(request.POST)
    if form.is_valid():
        try:
            job = start_push_job(policy, actor=tenant_actor(request),
                                 product_ids=split_names(form.cleaned_data["product_ids"]),
                                 tag_names=split_names(form.cleaned_data["tags"]))
        except PolicyError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Pushing version {job.version.number} to {job.targeted} ECs; the counts "
                                      "below show its progress.")
            return redirect("policy-detail", policy_id=policy.pk)
    return _render_detail(request, policy, push_form=form, status=400)


@require_POST
@tenant_admin_page
def policy_delete(request, policy_id: int):
    policy = _policy_or_404(policy_id)
    services.delete_policy(policy, actor=tenant_actor(request))
    messages.success(request, f"Deleted policy {policy.name}; its ECs get a configuration without it.")
    return redirect("policies")


@require_POST
@tenant_admin_page
def manual_config(request, controller_id: int):
    controller = controller_or_404(controller_id)
    form = ManualConfigForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"The manual configuration was not saved: {form.errors['body'][0]}")
        return redirect("controller-detail", controller_id=controller.pk)
    try:
        services.set_manual_config(controller, form.cleaned_data["body"], actor=tenant_actor(request))
    except PolicyError as error:
        messages.error(request, f"The manual configuration was not saved. {error.detail}")
    else:
        messages.success(request, f"Saved the manual configuration of {controller.product_id}.")
    return redirect("controller-detail", controller_id=controller.pk)

"""Tag management: create, rename and delete the tenant's tags."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from onboarding.models import Tag
from onboarding.pages.common import tenant_admin_page
from onboarding.pages.forms import TagForm
from onboarding.services_portal import PortalError, create_tag, delete_tag, rename_tag
from onboarding.views import tenant_actor


def _tag_or_404(tag_id: int) -> Tag:
    tag = Tag.objects.filter(pk=tag_id).first()
    if tag is None:
        raise Http404("No such tag in this tenant.")
    return tag


def _render_tags(request, *, create_form=None, rename_forms=None, status: int = 200):
    """Render the tag list. ``rename_forms`` maps a tag id to its bound form with errors."""
    rename_forms = rename_forms or {}
    tags = list(Tag.objects.annotate(controller_count=Count("edge_controllers")).order_by("name"))
    for tag in tags:
        tag.rename_form = rename_forms.get(tag.pk) or TagForm(initial={"name": tag.name}, prefix=f"tag-{tag.pk}")
    return render(request, "onboarding/tags.html", {
        "tenant": request.tenant,
        "nav": "tags",
        "tags": tags,
        "create_form": create_form or TagForm(prefix="new"),
    }, status=status)


@tenant_admin_page
def tag_list(request):
    return _render_tags(request)


@require_POST
@tenant_admin_page
def tag_create(request):
    form = TagForm(request.POST, prefix="new")
    if form.is_valid():
        try:
            tag = create_tag(form.cleaned_data["name"], actor=tenant_actor(request))
        except PortalError as error:
            form.add_error(error.field, error.detail)
        else:
            messages.success(request, f"Created tag {tag.name}.")
            return redirect("tags")
    messages.error(request, "No tag was created; correct the field marked below.")
    return _render_tags(request, create_form=form, status=400)


@require_POST
@tenant_admin_page
def tag_rename(request, tag_id: int):
    tag = _tag_or_404(tag_id)
    form = TagForm(request.POST, prefix=f"tag-{tag.pk}")
    if form.is_valid():
        old_name = tag.name
        try:
            renamed = rename_tag(tag, form.cleaned_data["name"], actor=tenant_actor(request))
        except PortalError as error:
            form.add_error(error.field, error.detail)
        else:
            messages.success(request, f"Renamed tag {old_name} to {renamed.name}.")
            return redirect("tags")
    messages.error(request, f"Tag {tag.name} was not renamed; correct the field marked below.")
    return _render_tags(request, rename_forms={tag.pk: form}, status=400)


@require_POST
@tenant_admin_page
def tag_delete(request, tag_id: int):
    tag = _tag_or_404(tag_id)
    count = delete_tag(tag, actor=tenant_actor(request))
    messages.success(request, f"Deleted tag {tag.name}; {count} Edge Controller(s) had it.")
    return redirect("tags")

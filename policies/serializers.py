from rest_framework import serializers

from policies.models import Policy, PolicyVersion, PushJob


class PolicyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=Policy.Kind.choices)
    description = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)
    body = serializers.JSONField(help_text="EC configuration document; see policies.schema")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), max_length=50, required=False,
                                 default=list, help_text="Tags of an auto policy")


class PolicyUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)


class ConfigBodySerializer(serializers.Serializer):
    body = serializers.JSONField(help_text="EC configuration document; see policies.schema")


class TagsSerializer(serializers.Serializer):
    tags = serializers.ListField(child=serializers.CharField(max_length=64), max_length=50)


class PushSerializer(serializers.Serializer):
    product_ids = serializers.ListField(child=serializers.CharField(max_length=128), required=False, default=list,
                                        max_length=10_000)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list,
                                 max_length=50)

    def validate(self, attrs):
        if not attrs["product_ids"] and not attrs["tags"]:
            raise serializers.ValidationError("Name the ECs to push to in product_ids, tags or both.",
                                              code="no_targets")
        return attrs


class PolicyVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PolicyVersion
        fields = ["number", "body", "created_at", "created_by"]


class PolicySerializer(serializers.ModelSerializer):
    tags = serializers.SerializerMethodField()
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Policy
        fields = ["id", "name", "kind", "description", "tags", "latest_version", "created_at", "updated_at"]

    def get_tags(self, policy) -> list[str]:
        return sorted(tag.name for tag in policy.tags.all())

    def get_latest_version(self, policy) -> dict | None:
        version = policy.latest_version()
        return PolicyVersionSerializer(version).data if version else None


class PushJobSerializer(serializers.ModelSerializer):
    policy = serializers.CharField(source="policy.name")
    policy_version = serializers.IntegerField(source="version.number")

    class Meta:
        model = PushJob
        fields = ["id", "policy", "policy_version", "state", "targeted", "sent", "acked", "failed", "created_at",
                  "created_by", "finished_at"]


class LastAckSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.CharField()
    detail = serializers.CharField()
    at = serializers.DateTimeField()


class ConfigStateSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    desired_version = serializers.IntegerField()
    desired_body = serializers.JSONField()
    sources = serializers.JSONField()
    applied_version = serializers.IntegerField()
    in_sync = serializers.BooleanField()
    manual_body = serializers.JSONField(allow_null=True)
    last_ack = LastAckSerializer(allow_null=True)

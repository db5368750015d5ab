from rest_framework import serializers

from onboarding.models import EdgeController, OnboardRequest
from provisioning.serializers import FactsField


class OnboardSubmitSerializer(serializers.Serializer):
    product_id = serializers.CharField(max_length=200)
    csr = serializers.CharField(max_length=16384, trim_whitespace=False, help_text="PEM PKCS#10 CSR")
    facts = FactsField(required=False, default=dict)


class OnboardAcceptedSerializer(serializers.Serializer):
    request_id = serializers.UUIDField()
    status = serializers.CharField()
    poll_token = serializers.CharField()


class TunnelSerializer(serializers.Serializer):
    host = serializers.CharField()
    port = serializers.IntegerField()


class OnboardStatusSerializer(serializers.Serializer):
    request_id = serializers.UUIDField()
    product_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "approved", "rejected", "issued"])
    certificate = serializers.CharField(required=False, help_text="PEM, when issued")
    certificate_serial = serializers.CharField(required=False)
    ca_chain = serializers.CharField(required=False, help_text="PEM: issuing CA, then root CA")
    tunnel = TunnelSerializer(required=False)


class DecisionSerializer(serializers.Serializer):
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list,
                                 max_length=20)
    note = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class OnboardRequestSerializer(serializers.ModelSerializer):
    request_id = serializers.UUIDField(source="id", read_only=True)

    class Meta:
        model = OnboardRequest
        fields = ["request_id", "product_id", "status", "conflict", "facts", "source_address", "created_at",
                  "decided_at", "decided_by", "decision_note"]


class EdgeControllerSerializer(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = EdgeController
        fields = ["product_id", "state", "tags", "facts", "first_seen_at", "last_seen_at", "online",
                  "tunnel_connected_at", "last_heartbeat_at", "firmware", "applied_config_version"]

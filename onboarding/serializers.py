from rest_framework import serializers

from onboarding.models import EdgeController, OnboardRequest
from provisioning.serializers import FactsField


class OnboardSubmitSerializer(serializers.Serializer):
    product_id = serializers.CharField(max_length=200)
    csr = serializers.CharField(max_length=16384, trim_whitespace=False, help_text="PEM PKCS#10 CSR")
    facts = FactsField(required=False, default=dict)
    lookup_proof = serializers.CharField(max_length=500, required=False, help_text=(
        "The lookup_proof the ZTP lookup returned after the EC proved its device credential; without it, a "
        "request for a product with a device credential is flagged to the tenant admin."))


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
        fields = ["request_id", "product_id", "status", "channel", "conflict", "key_change", "device_proof", "facts",
                  "source_address",
                  "created_at", "decided_at", "decided_by", "decision_note"]


class EdgeControllerSerializer(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = EdgeController
        fields = ["product_id", "state", "tags", "facts", "first_seen_at", "last_seen_at", "online",
                  "tunnel_connected_at", "tunnel_disconnected_at", "tunnel_address", "last_heartbeat_at", "firmware",
                  "applied_config_version"]


class RevokeSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(
        choices=["key_compromise", "cessation_of_operation"], help_text="RFC 5280 reason written to the CRL",
        error_messages={"invalid_choice": '"{input}" is not a revocation reason an admin can give; use '
                                          "key_compromise or cessation_of_operation."},
    )


class DecommissionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class CertificateSerializer(serializers.Serializer):
    serial = serializers.CharField(source="serial_hex")
    product_id = serializers.CharField()
    source = serializers.CharField(help_text="onboard, tunnel_renewal, est_enroll or est_reenroll")
    issuing_ca = serializers.CharField(source="issuing_ca.key_id", help_text="SKI of the issuing CA, hex")
    not_before = serializers.DateTimeField()
    not_after = serializers.DateTimeField()
    issued_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    revocation_reason = serializers.CharField()
    request_id = serializers.UUIDField(source="onboard_request_id", allow_null=True)
    renewal_of = serializers.CharField(source="renewal_of.serial_hex", allow_null=True, default=None)

from rest_framework import serializers

from msp.models import MSP, TenantRegistration
from provisioning.models import Product

MAX_ITEMS_PER_CALL = 100_000


class ProductIdListSerializer(serializers.Serializer):
    product_ids = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=1024),
        allow_empty=False, max_length=MAX_ITEMS_PER_CALL,
    )


class MapProductsSerializer(ProductIdListSerializer):
    tenant_registration = serializers.IntegerField(help_text="Id of one of your tenant registrations.")


class RejectedItemSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="1-based list index, or CSV line number")
    value = serializers.CharField()
    reason = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    changed = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = RejectedItemSerializer(many=True)


class ProductSerializer(serializers.ModelSerializer):
    tenant_registration = serializers.PrimaryKeyRelatedField(read_only=True)
    ztp_status = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["product_id", "model_number", "state", "allocated_at", "claimed_at", "tenant_registration",
                  "mapped_at", "ztp_status", "last_lookup_at"]

    def get_ztp_status(self, product: Product) -> str:
        return "looked_up" if product.last_lookup_at else "never_seen"


class ApiTokenRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, default="api", allow_blank=True)


class TenantRegistrationSerializer(serializers.ModelSerializer):
    # A plain string: normalize_management_url is the one validator, with its own error code.
    management_url = serializers.CharField(max_length=255)
    access_key = serializers.CharField(write_only=True, min_length=20, max_length=512,
                                       help_text="The tenant access key; stored encrypted and never shown again.")

    class Meta:
        model = TenantRegistration
        fields = ["id", "name", "management_url", "access_key", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"name": {"max_length": 200}}


class TenantRegistrationKeySerializer(serializers.Serializer):
    access_key = serializers.CharField(min_length=20, max_length=512)


class HostedTenantSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    schema_name = serializers.CharField(max_length=63)
    domain = serializers.CharField(max_length=253)
    register = serializers.BooleanField(default=True,
                                        help_text="Also register the tenant's URL and key for ZTP lookups.")
    admin_username = serializers.CharField(max_length=150, required=False)
    admin_password = serializers.CharField(max_length=128, required=False, write_only=True)


class MSPSerializer(serializers.ModelSerializer):
    class Meta:
        model = MSP
        fields = ["id", "name", "slug", "is_active", "created_at"]
        read_only_fields = ["id", "created_at", "is_active"]
        extra_kwargs = {"slug": {"required": False}}

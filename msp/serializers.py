from django.conf import settings
from rest_framework import serializers

from msp.models import MSP, TenantRegistration
from provisioning.models import LookupEvent, Product
from provisioning.services.reports import ztp_status

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
    # Only the device's Director records whether it onboarded, and the
    # Provision Server never reads Director data, so there is no "onboarded" state.
    ztp_status = serializers.SerializerMethodField(
        help_text="never_seen; looked_up once the device has called the ZTP lookup; onboarded once the device "
                  "reported its tunnel up at the Director it is mapped to now."
    )

    class Meta:
        model = Product
        fields = ["product_id", "model_number", "state", "allocated_at", "claimed_at", "tenant_registration",
                  "mapped_at", "ztp_status", "last_lookup_at"]

    def get_ztp_status(self, product: Product) -> str:
        return ztp_status(product)


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


class TenantRegistrationUpdateSerializer(serializers.Serializer):
    """A partial update: any of name, management URL and access key; unknown fields are refused."""

    name = serializers.CharField(max_length=200, required=False)
    management_url = serializers.CharField(max_length=255, required=False)
    access_key = serializers.CharField(min_length=20, max_length=512, required=False, write_only=True)

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: ["This field cannot be changed."] for name in unknown})
        if not attrs:
            raise serializers.ValidationError("Send at least one of name, management_url, access_key.")
        return attrs


class RotateKeyRequestSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        required=False, min_value=0,
        help_text="Seconds the old key keeps working; 0 stops it at once (e.g. after a leak). "
                  "Default and maximum: the deployment's ZTSP_TENANT_KEY_GRACE_SECONDS.",
    )

    def validate_grace_seconds(self, value: int) -> int:
        limit = settings.ZTSP_TENANT_KEY_GRACE_SECONDS
        if value > limit:
            raise serializers.ValidationError(f"At most {limit} seconds are allowed; {value} were sent.",
                                              code="max_value")
        return value


class RotatedKeySerializer(serializers.Serializer):
    tenant_registration = serializers.IntegerField()
    management_url = serializers.CharField()
    key_id = serializers.CharField()
    access_key = serializers.CharField(help_text="The new tenant access key, shown only in this response.")
    previous_key_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="Until when the old key is still accepted; null when it stopped at once."
    )


class RouteResultSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="The HTTP status the ZTP lookup would return now.")
    code = serializers.CharField(help_text="The lookup's error code, or 'ok' when it returns a Director.")
    detail = serializers.CharField()
    retry_after = serializers.IntegerField(allow_null=True)


class RouteReasonSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    at = serializers.DateTimeField(allow_null=True)


class RouteRegistrationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class RouteSerializer(serializers.Serializer):
    """The route of a product now: the lookup result, the mapped Director and the reasons, without any key."""

    product_id = serializers.CharField()
    result = RouteResultSerializer()
    director_url = serializers.CharField(
        allow_null=True,
        help_text="The mapped tenant's URL, also when the result is not 200; null when not mapped.",
    )
    tenant_registration = RouteRegistrationSerializer(allow_null=True)
    reasons = RouteReasonSerializer(many=True)


class RouteMSPSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class VendorRouteSerializer(RouteSerializer):
    msp = RouteMSPSerializer(allow_null=True)


class LookupEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = LookupEvent
        fields = ["at", "product_id", "access_key_id", "status", "code", "source_address"]


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

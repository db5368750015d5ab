import json

from rest_framework import serializers

MAX_FACTS = 50
MAX_FACTS_BYTES = 4096


def _contains_nul(value) -> bool:
    """Return whether a JSON value has a NUL character in any string or key, at any depth.

    The walk uses a stack rather than recursion, because a body may nest
    JSON deeper than Python's recursion limit allows.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class FactsField(serializers.DictField):
    """Device facts: model, firmware, serial, MACs; free-form but bounded."""

    default_error_messages = {
        "null_characters_not_allowed": "Facts cannot contain NUL characters, which PostgreSQL cannot store.",
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if _contains_nul(value):
            self.fail("null_characters_not_allowed")
        if len(value) > MAX_FACTS:
            raise serializers.ValidationError(f"At most {MAX_FACTS} facts are accepted; {len(value)} were sent.")
        size = len(json.dumps(value, separators=(",", ":")).encode())
        if size > MAX_FACTS_BYTES:
            raise serializers.ValidationError(f"Facts take {size} bytes as JSON; send at most {MAX_FACTS_BYTES}.")
        return value


class DeviceProofSerializer(serializers.Serializer):
    challenge = serializers.CharField(max_length=200, help_text="The challenge of the last 401 device_proof_* answer.")
    key_sha256 = serializers.CharField(max_length=64, help_text=(
        "Hex SHA-256 of the DER SubjectPublicKeyInfo of the key the EC's CSR will carry; the Director counts the "
        "onboard request as proven only for that key."))
    signature = serializers.CharField(max_length=1024, help_text=(
        "Base64 signature of 'ztsp-lookup-proof/v1\\n<Product ID>\\n<challenge>\\n<key_sha256>': for a public "
        "key credential, ECDSA with SHA-256 (DER-encoded, not raw r||s), RSA PKCS#1 v1.5 with SHA-256, or Ed25519; "
        "for a secret, HMAC-SHA256 keyed with SHA-256(secret)."))


class LookupRequestSerializer(serializers.Serializer):
    product_id = serializers.CharField(max_length=200, trim_whitespace=True)
    facts = FactsField(required=False, default=dict)
    proof = DeviceProofSerializer(required=False, help_text=(
        "Proof of possession of the device credential, needed when the vendor imported one for this product."))


class LookupResponseSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    director_url = serializers.URLField()
    access_key = serializers.CharField(help_text="The tenant access key to present to the Director.")
    lookup_proof = serializers.CharField(required=False, help_text=(
        "Present when the EC proved possession of its device credential: send it to the Director as "
        "lookup_proof with the onboard request."))


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class DeviceProofErrorSerializer(ErrorSerializer):
    challenge = serializers.CharField(required=False, help_text="Sign this with the device credential.")
    challenge_expires_in = serializers.IntegerField(required=False, help_text="Seconds the challenge stays valid.")


class ReportRequestSerializer(serializers.Serializer):
    product_id = serializers.CharField(max_length=200)
    status = serializers.ChoiceField(choices=["onboarded"])
    director_url = serializers.CharField(max_length=255, help_text="The director_url the lookup returned.")
    certificate_serial = serializers.CharField(max_length=64, help_text="Serial of the issued certificate, hex.")


class ReportResponseSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    status = serializers.CharField()
    onboarded_at = serializers.DateTimeField()

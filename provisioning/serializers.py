from rest_framework import serializers


class FactsField(serializers.DictField):
    """Device facts: model, firmware, serial, MACs; free-form but bounded."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 facts are accepted.")
        return value


class LookupRequestSerializer(serializers.Serializer):
    product_id = serializers.CharField(max_length=200, trim_whitespace=True)
    facts = FactsField(required=False, default=dict)


class LookupResponseSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    director_url = serializers.URLField()
    access_key = serializers.CharField(help_text="The tenant access key to present to the Director.")


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()

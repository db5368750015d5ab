from django.apps import AppConfig


class MspConfig(AppConfig):
    name = "msp"
    verbose_name = "MSPs"

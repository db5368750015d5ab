from django.apps import AppConfig


class EstConfig(AppConfig):
    name = "est"
    verbose_name = "EST enrollment"

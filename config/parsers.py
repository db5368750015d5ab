"""Request body parsers of the APIs.

Kept apart from ``config.api`` because DRF reads ``DEFAULT_PARSER_CLASSES``
when ``rest_framework.views`` is first imported, and ``config.api`` imports
that module.
"""

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, which also rejects JSON nested too deeply to parse as a malformed body.

    Python's ``json`` module raises ``RecursionError``, not ``ValueError``, for
    nesting deeper than about 1,000 levels, and DRF's parser only turns
    ``ValueError`` into a 400.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise exceptions.ParseError("JSON nested too deeply; send a flatter document.") from error

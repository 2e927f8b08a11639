"""The HTTP API's strict JSON parser: `engines.strict_json` (one parser for every JSON a caller sends,
bodies and query values alike; it lives in engines/ so that every layer can use it)."""

from engines.strict_json import MAX_DEPTH, MAX_NUMBER_CHARS, BadJson, parse

__all__ = ["MAX_DEPTH", "MAX_NUMBER_CHARS", "BadJson", "parse"]

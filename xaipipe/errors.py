"""Exceptions with messages meant for the person running the pipeline."""


class XaipipeError(Exception):
    """Base class: the message names the problem and the fix."""


class DataUnavailableError(XaipipeError):
    """A raw data file could not be found locally, in the mirror, or downloaded."""


class ChecksumError(XaipipeError):
    """A file's checksum does not match the expected value."""


class ConfigError(XaipipeError):
    """A configuration value is invalid (beyond what the JSON schema can express)."""


class InputTextError(XaipipeError):
    """A text given to a model is empty or has no known word."""

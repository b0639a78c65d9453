"""The one error type a stage raises for bad input or bad configuration."""


class PipelineError(Exception):
    """A problem the user can fix: shown as one line, exit code 1, nothing written."""

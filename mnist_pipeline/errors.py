"""The one error type a stage raises for bad input or bad configuration."""


class PipelineError(Exception):
    """A problem the user can fix: shown as one line, exit code 1, nothing written."""


def first_line(error: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message, cut at `limit` characters (or the exception type's name when it
    has no message): what a one-line error says about its cause."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__

"""One exception type for user-facing problems; the CLI prints it as a single line."""


class YolactError(Exception):
    """A problem with the user's input (file, checkpoint, dataset, argument)."""


def warn(message: str) -> None:
    """One clean line on stderr for a problem with the user's data that does not stop the run:
    ``warning: <file>: <problem>`` (``message`` starts with the file). Not ``warnings.warn``,
    which would show this package's source line instead of the user's file. Written through
    ``tqdm.write``: above a running progress bar, never on its line."""
    import sys

    from tqdm import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)

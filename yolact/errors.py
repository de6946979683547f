"""One exception type for user-facing problems; the CLI prints it as a single line."""


class YolactError(Exception):
    """A problem with the user's input (file, checkpoint, dataset, argument)."""


class StoppedBySignal(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM after saving its state (``signum``: which): the CLI
    exits with 128 + ``signum`` as a process killed by it would (130 for Ctrl-C, 143 for
    SIGTERM), so process managers log the right one."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)


def warn(message: str) -> None:
    """One clean line on stderr for a problem with the user's data that does not stop the run:
    ``warning: <file>: <problem>`` (``message`` starts with the file). Not ``warnings.warn``,
    which would show this package's source line instead of the user's file. Written through
    ``tqdm.write``: above a running progress bar, never on its line."""
    import sys

    from tqdm import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)

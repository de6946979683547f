"""One exception type for user-facing problems; the CLI prints it as a single line."""


class YolactError(Exception):
    """A problem with the user's input (file, checkpoint, dataset, argument)."""

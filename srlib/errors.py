"""What srlib raises: ``SrlibError``, the one exception type users see (its message is a single line that
names the file and the fix), the one-line notes it prints beside its work, and the ways a training run
stops early."""
import sys


class SrlibError(Exception):
    """A user-facing error (bad data, bad checkpoint, bad parameter). The CLI prints it as one line."""


def note(message: str) -> None:
    """Tell the user something that does not stop the work, as one ``srlib: note:`` line on stderr."""
    print(f"srlib: note: {message}", file=sys.stderr, flush=True)


class Interrupted(Exception):
    """Training stopped on SIGINT or SIGTERM, after a checkpoint of the last whole iteration."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class TrainingDiverged(SrlibError):
    """The loss became NaN or infinite: the learning rate is too high for this optimizer."""


class BudgetSpent(SrlibError):
    """Training stopped at the end of its time budget (``report --budget``), after a checkpoint."""

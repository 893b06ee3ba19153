"""Bacula job status, level and type codes and the classes the exporter derives from them."""

from enum import StrEnum


class StatusClass(StrEnum):
    """What a JobStatus code means for monitoring."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    CANCELED = "canceled"
    DIFFERENCES = "differences"
    RUNNING = "running"
    WAITING = "waiting"


FINISHED = frozenset(
    {StatusClass.OK, StatusClass.WARNING, StatusClass.ERROR, StatusClass.CANCELED,
     StatusClass.DIFFERENCES}
)
FAILED = frozenset({StatusClass.ERROR, StatusClass.CANCELED, StatusClass.DIFFERENCES})
ACTIVE = frozenset({StatusClass.RUNNING, StatusClass.WAITING})

# Bacula src/jcr.h; Bareos uses the same letters. 'T' is refined by JobErrors in classify().
_STATUS: dict[str, StatusClass] = {
    "T": StatusClass.OK,
    "W": StatusClass.WARNING,
    "E": StatusClass.ERROR,
    "e": StatusClass.ERROR,
    "f": StatusClass.ERROR,
    "I": StatusClass.ERROR,
    "A": StatusClass.CANCELED,
    "D": StatusClass.DIFFERENCES,
    **dict.fromkeys("RBaiLluw", StatusClass.RUNNING),
    **dict.fromkeys("CFSmMsjcdtpqv", StatusClass.WAITING),
}

# Codes of statuses that are finished, for SQL IN lists (the reader builds its queries from these).
FINISHED_CODES = "".join(c for c, k in _STATUS.items() if k in FINISHED)
ACTIVE_CODES = "".join(c for c, k in _STATUS.items() if k in ACTIVE)
SUCCESS_CODES = "TW"

LEVEL_NAMES: dict[str, str] = {
    "F": "full",
    "f": "full",  # Virtual Full: counts as a full (the finished row usually says 'F' anyway)
    "I": "incremental",
    "D": "differential",
    "B": "base",
    "S": "since",
    "C": "verify-catalog",
    "V": "verify-init",
    "O": "verify-volume-to-catalog",
    "d": "verify-disk-to-catalog",
    "A": "verify-data",
    " ": "none",
}

# Job types the exporter reads; the rest (admin, console, scan...) never reach the state.
BACKUP = "B"
MIGRATED = "M"  # a backup whose data a migration moved to a new Type B row (PriorJobId = it)
COPY = "C"
RESTORE = "R"
# Jobs that prove or maintain rather than back up: each has its own last run and status.
# g: the control job of a migration; O: Bareos Always Incremental's consolidation.
CHECKS = {"V": "verify", "D": "admin", "g": "migration", "O": "consolidate"}


def classify(status: str, errors: int) -> StatusClass | None:
    """Return the status class of a JobStatus code, or None for a code Bacula does not define."""
    cls = _STATUS.get(status)
    if cls is StatusClass.OK and errors > 0:
        # Bacula never writes 'W': a backup that had errors ends 'T' with JobErrors > 0.
        return StatusClass.WARNING
    return cls


def is_success(cls: StatusClass, warning_is_success: bool = True) -> bool:
    """Tell whether a finished run counts as a good backup."""
    return cls is StatusClass.OK or (warning_is_success and cls is StatusClass.WARNING)


def level_name(code: str) -> str | None:
    """Return the lowercase level label for a Level code, or None when unknown."""
    return LEVEL_NAMES.get(code)

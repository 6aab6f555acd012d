"""A frame queued for publishing, the limits on its wait, and the log of frames dropped:
shared by the two publishers (`.loop`, `.thread`)."""

import logging
import threading
from dataclasses import dataclass

from realtime.frames import DeltaMessage

logger = logging.getLogger("realtime.publish")

# Longest one publish may take before the frame is given up.
PUBLISH_TIMEOUT = 2.0
# Frames waiting for the publisher; beyond this they are dropped, not queued.
QUEUE_CAPACITY = 1000
# A frame this old when its turn comes is dropped unsent: after a stuck Redis, publishing
# resumes with current changes instead of working through a backlog first.
MAX_FRAME_AGE = 5.0


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class Frame:
    queued_at: float
    group: str
    message: DeltaMessage


class Outage:
    """The frames a publisher dropped: the first of an outage is logged, and its end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dropped = 0

    def drop(self, message: DeltaMessage, reason: str) -> None:
        # Logged once per outage: a rush while Redis is down would otherwise log every frame.
        with self._lock:
            self._dropped += 1
            first = self._dropped == 1
        if first:
            logger.warning(
                "Live updates are not being published (%s): dropped version %s of event %s "
                "and will drop any more until publishing works again",
                reason,
                message["version"],
                message["event"],
            )

    def published(self) -> None:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            logger.warning("Publishing live updates again, after dropping %d", dropped)

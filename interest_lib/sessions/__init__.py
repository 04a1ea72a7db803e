"""bronze.events -> silver.sessions and silver.events_sessionized (gap + max-length sessions)."""

from interest_lib.sessions.job import SessionizeReport, run_sessionize
from interest_lib.sessions.sessionize import assign_sessions, session_features

__all__ = ["SessionizeReport", "run_sessionize", "assign_sessions", "session_features"]

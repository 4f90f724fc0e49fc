"""The job id users see and type: the first ``SHORT_ID`` characters of the job's
uuid4 hex id, shown in ``/history`` and taken by ``/show``."""

from __future__ import annotations

import re

from core.errors import InvalidRequest

SHORT_ID = 8
# Six characters is the least taken: fewer would name many jobs.
_JOB_ID = re.compile(r"#?([0-9a-f]{6,32})")


def short_id(job_id: str) -> str:
    return job_id[:SHORT_ID]


def parse_job_id(text: str) -> str:
    """The id as typed (``1a2b3c4d``, ``#1a2b3c4d`` or the full id), lower-cased;
    ``InvalidRequest`` for anything that is no job id."""
    match = _JOB_ID.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidRequest("not a job id", kind="show_bad_id")
    return match[1]

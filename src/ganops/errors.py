"""The one exception type for problems a user can fix: bad data, bad params, bad requests.

Stage entry points and the CLI print it on one line and exit non-zero; anything else is a bug
and keeps its traceback.
"""


class GanopsError(Exception):
    """A user-facing problem. The message names the file, row or key and what is wrong."""

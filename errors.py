"""The one exception type the project shows to users as a one-line error.

Modules raise ``UserError("what went wrong; what to do")``; every script's
``main`` turns it into ``error: ...`` on stderr and exit status 2.
"""


class UserError(Exception):
    """A problem the user can fix (bad flag, missing data, unwritable folder)."""

    exit_code = 2

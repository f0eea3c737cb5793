"""The one exception type for a user's mistake: the CLI prints it as one line and exits with 2."""


class UserError(ValueError):
    """Bad input from the user (a spec, a flag, a path); the message names what, where and the fix."""

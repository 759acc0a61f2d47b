"""Where lib/embedded.py finds lib.core.trace until it moves to lib/endpoints/ (issue 11).

Nothing else imports this module: remove it when lib/embedded.py no longer does.
"""

from lib.core.trace import *  # noqa: F403

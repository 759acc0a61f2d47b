"""Where lib/embedded.py finds lib.core.errors until it moves to lib/endpoints/ (issue 11).

Nothing else imports this module: remove it when lib/embedded.py no longer does.
"""

from lib.core.errors import *  # noqa: F403

"""Where lib/embedded.py finds lib.core.config until it moves to lib/endpoints/ (issue 11).

Nothing else imports this module: remove it when lib/embedded.py no longer does.
"""

from lib.core.config import *  # noqa: F403

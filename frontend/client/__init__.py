"""The one client of the PruneScope REST API: the dashboard, the command line and the notebook
client (``from prunescope import Client``) all reach the API through it, never the database, so
whatever the dashboard shows a script can fetch too.

- :mod:`frontend.client.types`: the answers' shapes, tested against ``/api/openapi.json``;
- :mod:`frontend.client.api`: :class:`ApiClient` (transport, errors, paging, one method per
  endpoint), the credential the dashboard forwards, and the pages' shared client;
- :mod:`frontend.client.rest`: :class:`RestClient`, for scripts: streamed uploads and
  downloads, jobs followed with progress bars.

Everything public is importable from here (``from frontend.client import ApiClient``).
"""

from frontend.client.api import *  # noqa: F403
from frontend.client.rest import *  # noqa: F403
from frontend.client.types import *  # noqa: F403

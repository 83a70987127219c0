"""The ASGI application: HTTP through Django, websockets through Channels."""

import os

from chameleon_site.env import exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chameleon_site.settings")
exit_on_config_error()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from core.db import reuse_connections  # noqa: E402
from core.handlers import Lifespan, get_asgi_application  # noqa: E402

reuse_connections()  # a web process: database connections outlive each request (core/db)
django_application = get_asgi_application()  # one thread hop per request (core/handlers.py)

from chameleon_site.routing import websocket_urlpatterns  # noqa: E402
from core.nodes import start_node, stop_node  # noqa: E402
from plugins_app.discovery.runtime import start_runtime, stop_runtime  # noqa: E402
from plugins_app.node import start_plugin_host, stop_plugin_host  # noqa: E402


def stop_web_node() -> None:
    """The server is shutting down: stop this node's plugins and runtime, mark it stopped."""
    stop_plugin_host()
    stop_runtime()
    stop_node()


application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        "lifespan": Lifespan(on_shutdown=stop_web_node),
    }
)

start_node("web")
start_runtime()  # service expiry, health checks, monitor and alert rules
start_plugin_host("web")

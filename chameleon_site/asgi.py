"""The ASGI application: HTTP through Django, websockets through Channels."""

import os

from chameleon_site.env import exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chameleon_site.settings")
exit_on_config_error()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from chameleon_site.routing import websocket_urlpatterns  # noqa: E402
from core.nodes import start_node  # noqa: E402
from plugins_app.discovery.runtime import start_runtime  # noqa: E402
from plugins_app.node import start_plugin_host  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

start_node("web")
start_runtime()  # service expiry, health checks, monitor and alert rules
start_plugin_host("web")

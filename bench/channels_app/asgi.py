"""ASGI entry: HTTP to Django, every WebSocket path to the room consumer."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.channels_app.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import re_path  # noqa: E402

http = get_asgi_application()  # sets Django up before the consumer is imported

from .consumers import RoomConsumer  # noqa: E402

application = ProtocolTypeRouter({
    "http": http,
    "websocket": URLRouter([re_path(r".*", RoomConsumer.as_asgi())]),
})

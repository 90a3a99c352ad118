"""Django settings for the baseline: Channels with its in-memory channel layer, nothing else."""

import secrets

SECRET_KEY = secrets.token_urlsafe(32)  # a throwaway per run: the baseline keeps no sessions
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["channels"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.channels_app.urls"
ASGI_APPLICATION = "bench.channels_app.asgi.application"
USE_TZ = True
# The in-memory layer's default capacity (100 per channel) drops frames in a 200-message burst;
# Channels' docs say to raise it for bursts, as a deployment would.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.InMemoryChannelLayer",
        "CONFIG": {"capacity": 10_000},
    }
}

"""Small command-line helpers: `python -m scripts.token`, `python -m scripts.web_config`."""

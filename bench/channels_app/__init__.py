"""The Django Channels baseline: the Channels tutorial's room consumer, behind uvicorn.

Runs in its own virtualenv (bench/.venv-channels, made by `bench.servers`), never in the app's.
"""

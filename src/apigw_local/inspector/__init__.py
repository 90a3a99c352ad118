"""The inspector: a page at `/_apigw-local/` on the HTTP port showing live connections, recent
invocations with their logs, the template's routes and tables, with a few actions.

`model.py` keeps what it shows, `api.py` serves it (and guards it), `static/` is the page
(plain ES modules, no build step).
"""

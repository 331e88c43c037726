"""Serving recommendations over HTTP: ``melscribe-recommend serve`` (needs the ``serve`` extra).

``batching`` groups concurrent requests into one encoder call, ``service`` holds the model and
the current index generation (reloads swap it), ``app`` is the FastAPI app (JSON API and the
web page in ``static/``), ``cli`` holds the command's options and starts uvicorn.
"""

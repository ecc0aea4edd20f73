"""Websocket routes. Websockets only push; every decision is an ordinary POST."""

websocket_urlpatterns: list = []

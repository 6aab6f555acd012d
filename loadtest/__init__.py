"""`manage.py loadtest`: an on-sale rush against a running server, checked afterwards.

A client of the site, not part of it: it talks to the server over HTTP and WebSocket, and
touches the project's models only to set a run up (preparation) and to ask the database
about double sales afterwards. Nothing in the site imports it.

Modules: http (a small keep-alive client), viewer (one simulated seat-map page), customer
(one buyer's requests and their outcomes), modes (rush, random, steady), runner (set-up,
load, settling), preparation (the ORM side: event, customers, the database's double-sale
check), stats (counting and timing), report (JSON, table, HTML), procmem (server RSS via
/proc), wrk (a booking script for wrk).
"""

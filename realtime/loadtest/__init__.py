"""`manage.py loadtest`: an on-sale rush against a running server, checked afterwards.

Modules: http (a small keep-alive client), viewer (one simulated seat-map page),
runner (customers, modes, settling), preparation (the ORM side: event, customers, the
database's double-sale check), report (JSON, table, HTML), procmem (server RSS via /proc).
"""

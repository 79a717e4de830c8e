"""``batchmig serve``: a live web dashboard of runs, with cutover from the browser.

* ``app`` — the aiohttp application: pages, JSON API, server-sent events, /metrics;
* ``security`` — the access token, the CSRF check and the Host check;
* ``server`` — starting it (loopback by default) for the command line.

It reads runs through ``batchmig.runsource.RunSource`` (run directories today, a
shared store later) and draws them with the HTML report's own script, so the
dashboard and the report show the same views.
"""

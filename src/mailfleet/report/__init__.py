"""``mailfleet report``: the dashboards' views as one static HTML page anyone can open offline.

* ``load``: detect each store's kind by its schema, run the dashboards' own queries (effectful).
* ``render_svg``, ``render_html``: charts and the page (pure).
* ``save``: write ``index.html`` atomically (effectful).
"""

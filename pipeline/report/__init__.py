"""``corpusforge report``: a static HTML page of figures about one dataset directory.

``collect`` reads stage outputs into plain data, ``figures`` draws them (matplotlib, Agg),
``html`` lays out the page and ``command`` ties them together and writes ``DIR/report/``.
"""

"""The ``espsec`` command: one module per command group, each a thin layer over the API."""

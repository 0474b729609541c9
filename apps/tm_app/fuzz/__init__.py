"""The fuzz drills: malformed entries into every consumed stream (:mod:`~tm_app.fuzz.dlq`,
:mod:`~tm_app.fuzz.entries`), schemathesis on every service (:mod:`~tm_app.fuzz.openapi`), over a
mesh of real processes (:mod:`~tm_app.fuzz.mesh`). ``python -m tm_app.fuzz`` (``make fuzz``)."""

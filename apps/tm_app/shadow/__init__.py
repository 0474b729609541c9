"""Shadow books: a registered candidate traded on paper next to production.

A shadow book follows production's market streams (``md.bar``, ``md.funding``, ``md.dvol``) and
runs its own regime, signal, sizer, risk, executor and portfolio on them, in its own stream
namespace, against its own in-process paper venue. Its signal service serves the candidate; every
other model is production's. It never holds a network venue: see :mod:`tm_app.shadow.venue`.
"""
